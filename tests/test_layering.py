"""The package's shape, as docs/architecture.md states it: stages import only stages before them,
no module imports form a cycle, and the measurement stack stays portable to a remote target.

Every import counts, including those inside functions (a deferred import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "hwnas"
# the pipeline, in the direction data flows; the entry points (cli, demo, the package itself) sit on top
STAGES = ("core", "measure", "spaces", "data", "models", "device", "latency", "evaluation", "optimize", "deploy", "bench")
TOP = len(STAGES)
MAX_MODULE_LINES = 400
# where the measurement stack may reach: itself and the error base class (both are shipped to a target)
MEASURE_MAY_IMPORT = ("hwnas.measure", "hwnas.core.errors")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The hwnas modules ``name`` imports (a ``from X import y`` counts ``X.y`` where that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out |= {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known}
    return {m for m in out if m == "hwnas" or m.startswith("hwnas.")}


def _stage(module: str) -> int:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else TOP


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: {m for m in _imports(name, path, known) if m in known and m != name} for name, path in mods.items()}


def test_every_stage_imports_only_stages_before_it(graph: dict[str, set[str]]) -> None:
    backward = sorted(f"{a} -> {b}" for a, deps in graph.items() for b in deps if _stage(b) > _stage(a))
    assert not backward, "imports against the pipeline:\n" + "\n".join(backward)


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    # Tarjan's strongly connected components: any component of two or more modules is a cycle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_measurement_stack_is_portable() -> None:
    """What is copied to a remote target must import nothing it does not ship, and never torch."""
    for path in sorted((ROOT / "measure").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for n in names:
                assert not n.startswith(("torch", "onnx.", "fvcore", "pymoo")) and n != "onnx", f"{path.name} imports {n}"
                assert not n.startswith("hwnas") or n.startswith(MEASURE_MAY_IMPORT), f"{path.name} imports {n}"


def test_the_tree_shows_the_pipeline() -> None:
    top = sorted(p.name for p in ROOT.iterdir() if p.suffix == ".py")
    assert top == ["__init__.py", "__main__.py", "api.py", "demo.py"], top  # the entry points and the API; the rest lives in stages
    assert (ROOT / "cli" / "__init__.py").is_file()
    for stage in STAGES:
        assert (ROOT / stage / "__init__.py").is_file(), stage


def test_modules_stay_small() -> None:
    long = {_module_name(p): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


MAX_FUNCTION_LINES = 60
LONG_REASON = "# long:"  # a function may run longer when a comment in it says why


def test_functions_stay_short() -> None:
    """Bodies (after the signature and docstring) stay within 60 lines unless a `# long:` comment
    in them gives the reason."""
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring
            first, last = body[0].lineno, node.end_lineno or body[0].lineno
            if last - first + 1 > MAX_FUNCTION_LINES and not any(LONG_REASON in ln for ln in lines[first - 1:last]):
                long.append(f"{_module_name(path)}.{node.name}: {last - first + 1} lines")
    assert not long, "functions over 60 lines with no reason given:\n" + "\n".join(long)


MAX_PARAMETERS = 8


def test_functions_take_few_parameters() -> None:
    """A function with more than 8 parameters (``self`` and ``cls`` aside) groups them in a typed
    record instead (``ExportSettings``, ``ProfileSettings``, ``BenchPlan``, ``Sources``)."""
    many = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                n = len(names) + bool(a.vararg) + bool(a.kwarg) - (names[:1] in (["self"], ["cls"]))
                if n > MAX_PARAMETERS:
                    many.append(f"{_module_name(path)}.{node.name}: {n} parameters")
    assert not many, "functions over 8 parameters:\n" + "\n".join(many)
