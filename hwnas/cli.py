"""The ``hwnas`` command line.

Every subcommand has ``--help``. Bad input exits with code 2 and one line on stderr that names
what is wrong (``hwnas: error: ...``), as argparse does for usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hwnas import __version__
from hwnas.errors import HwnasError, InvalidInputShapeError
from hwnas.spaces import SPACES, SearchSpace, get_space

Handler = Callable[[argparse.Namespace], int]


def _space_option(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"space option {text!r} is not KEY=INTEGER, e.g. C=16")
    return key, int(value)


def _add_space_args(p: argparse.ArgumentParser, *, input_required: bool = True) -> None:
    p.add_argument("--space", required=True, help=f"search space ({', '.join(SPACES.names())})")
    p.add_argument("--input", required=input_required, default="3x32x32", metavar="CxHxW",
                   help="input shape without batch, e.g. 1x28x28, 3x32x32, 3x224x224")
    p.add_argument("--classes", type=int, default=10, help="number of output classes (default 10)")
    p.add_argument("--space-opt", type=_space_option, action="append", default=[], metavar="KEY=VALUE",
                   help="a macro setting of the space, e.g. C=16 or N=5 for nb201 (repeatable)")


def _space(args: argparse.Namespace) -> SearchSpace:
    return get_space(args.space, input_shape=args.input, num_classes=args.classes, **dict(args.space_opt))


def cmd_spaces(args: argparse.Namespace) -> int:
    rows = []
    for name in SPACES.names():
        cls = SPACES.get(name)
        distinct = cls.n_distinct() if hasattr(cls, "n_distinct") else cls.size()
        rows.append({"name": name, "version": cls.version, "size": cls.size(), "distinct": distinct,
                     "genes": len(cls.cardinalities()), "description": cls.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    def count(n: int) -> str:
        return f"{n:,}" if n < 10**12 else f"{n:.3e}"

    print(f"{'space':<10} {'version':>7} {'architectures':>14} {'distinct':>14} {'genes':>5}  description")
    for r in rows:
        print(f"{r['name']:<10} {r['version']:>7} {count(r['size']):>14} {count(r['distinct']):>14} {r['genes']:>5}  {r['description']}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise InvalidInputShapeError(f"--n must be >= 1, got {args.n}")
    space = _space(args)  # validates the input shape even though genotypes do not depend on it
    for arch in space.sample(np.random.default_rng(args.seed), args.n):
        print(arch.string)
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from hwnas.facts import describe

    space = _space(args)
    arch = space.parse(args.arch)
    facts = describe(space, arch)
    if args.json:
        print(json.dumps({**facts.to_dict(), "space_version": space.version, "space_config": space.config()}, indent=2))
        return 0
    print(f"space      {space.name} (version {space.version})")
    print(f"arch       {arch.string}")
    print(f"id         {arch.id}")
    if arch.canonical != arch.string:
        print(f"canonical  {arch.canonical}")
    print(f"input      {args.input}")
    print(f"params     {facts.params:,}")
    print(f"FLOPs      {facts.macs:,} multiply-accumulates (fvcore)")
    print(f"blocks     {len(facts.blocks)}")
    width = max(len(b.key) for b in facts.blocks)
    print(f"  {'#':>3}  {'key':<{width}}  {'params':>10}  {'MACs':>12}")
    for i, b in enumerate(facts.blocks):
        print(f"  {i:>3}  {b.key:<{width}}  {b.params:>10,}  {b.macs:>12,}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from hwnas.onnx_io import check_writable, export_onnx

    space = _space(args)
    arch = space.parse(args.arch)
    check_writable(args.output)  # fail before spending time on the build
    model = space.build(arch, seed=args.seed)
    report = export_onnx(model, space.example_input(1, seed=args.seed), args.output, opset=args.opset,
                         dynamic_batch=not args.static_batch, exporter=args.exporter, seed=args.seed)
    print(f"wrote {report.path}: {space.name} {arch.string} (id {arch.id})")
    print(f"  opset {report.opset}, {report.exporter} exporter, onnx.checker passed, "
          f"onnxruntime ran it ({', '.join(report.providers)})")
    print(f"  max |torch - onnxruntime| = {report.max_abs_diff:.2e} over {report.n_parity_inputs} random inputs")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwnas",
        description="Hardware-aware multi-objective NAS: profile a device, search under its budget, "
        "export the Pareto front as verified ONNX models.",
    )
    parser.add_argument("--version", action="version", version=f"hwnas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("spaces", help="list the search spaces and their sizes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_spaces)

    p = sub.add_parser("sample", help="print random architectures, one per line")
    _add_space_args(p, input_required=False)
    p.add_argument("--n", type=int, default=1, help="how many (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the run's numpy Generator (default 0)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("describe", help="parameters, FLOPs and block list of an architecture")
    _add_space_args(p)
    p.add_argument("--arch", required=True, help="architecture string (quote it)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("build", help="export an architecture to a verified ONNX file")
    _add_space_args(p)
    p.add_argument("--arch", required=True, help="architecture string (quote it)")
    p.add_argument("--output", required=True, help="path of the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17 (default 17)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch exporter (default torchscript: ~300x faster here, see hwnas/onnx_io.py)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension at 1")
    p.set_defaults(func=cmd_build)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.func
    try:
        return handler(args)
    except HwnasError as exc:
        print(f"hwnas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwnas: interrupted", file=sys.stderr)
        return 130


def _entry() -> None:  # console script
    sys.exit(main())


if __name__ == "__main__":
    _entry()


__all__: list[Any] = ["main", "build_parser"]
