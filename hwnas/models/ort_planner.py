"""onnxruntime's own peak activation memory for a model, from its allocation plan.

A device does not run the exported graph: onnxruntime first optimizes it (fusing a convolution
with its activation and a residual sum, and on x86 moving convolutions to its blocked NCHWc layout,
with channels padded to the block), then plans buffers for the optimized graph. The plan reuses a
buffer in three ways, and only these:

* an alias: Reshape, Flatten, Squeeze, Unsqueeze and Identity hand on their input's buffer;
* in place: a kernel that may write over an input (an activation, a fused convolution's sum
  input; not the plain elementwise Add, Sub, Mul or Div) does so when it is that input's last reader and the shapes are equal;
* a dead buffer: a new tensor takes the most recently freed buffer of exactly its element size and
  shape. Until that later tensor is made, the dead buffer stays allocated, so a plan can hold more
  than the live tensors.

``runtime_program`` asks onnxruntime for the optimized graph and each kernel's output shapes (one
run with its profiler on); ``planned_peak_bytes`` replays the plan above over it. The figure is
what onnxruntime's CPU provider requests from its allocator at the peak, the model's input
included; the allocator's arena rounds requests to its chunks on top (docs/benchmarks/memory.md).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ORT_DTYPES", "RuntimeProgram", "Step", "planned_peak_bytes", "runtime_program", "zero_feeds"]

# Kernels of onnxruntime's CPU provider that hand their first input's buffer on unchanged.
ALIAS_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
# Kernels that may write their output over an input: (domain, op) -> input positions.
IN_PLACE: Mapping[tuple[str, str], tuple[int, ...]] = {
    **{("", op): (0,) for op in ("Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "Elu", "Selu",
                                 "Neg", "Abs", "Sqrt", "Exp")},
    ("com.microsoft.nchwc", "Conv"): (3,),  # the residual Sum input
    ("com.microsoft", "FusedConv"): (3,),
}
# onnxruntime's element type names (its profiler's, and ``tensor(...)`` of a session's inputs) -> numpy
ORT_DTYPES = {"float": "float32", "double": "float64", "float16": "float16", "int64": "int64", "int32": "int32",
              "int16": "int16", "uint16": "uint16", "int8": "int8", "uint8": "uint8", "bool": "bool"}


@dataclass(frozen=True)
class Step:
    """One kernel of the optimized graph: its inputs by position ('' for a weight or an absent
    optional input, which the plan does not place) and its outputs."""

    op: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class RuntimeProgram:
    """The kernels onnxruntime runs, in its execution order, with each tensor's shape and bytes."""

    steps: tuple[Step, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    shapes: Mapping[str, tuple[int, ...]]
    nbytes: Mapping[str, int]


def _use_counts(program: RuntimeProgram) -> dict[str, int]:
    # onnxruntime's count: each read, the definition itself, and one for the caller's inputs and outputs
    use: dict[str, int] = {}
    for step in program.steps:
        for name in (*step.inputs, *step.outputs):
            if name:
                use[name] = use.get(name, 0) + 1
    for name in (*program.inputs, *program.outputs):
        use[name] = use.get(name, 0) + 1
    return use


def _in_place(step: Step, k: int, program: RuntimeProgram, buffer: dict[str, str], count: dict[str, int],
              owned: set[str]) -> str | None:
    """The buffer output ``k`` of ``step`` writes over, if the kernel may and may here."""
    out = step.outputs[k]
    if step.op in ALIAS_OPS and step.domain in ("", "ai.onnx") and step.inputs and step.inputs[0] in buffer:
        # (a weight's name is '' and buffer[''] is the weights' memory, outside the plan)
        return buffer[step.inputs[0]]
    for j in IN_PLACE.get((step.domain, step.op), ()):
        name = step.inputs[j] if j < len(step.inputs) else ""
        if name and name in buffer and buffer[name] in owned and count[buffer[name]] == 1 \
                and program.shapes.get(name) == program.shapes.get(out) \
                and program.nbytes.get(name) == program.nbytes.get(out):
            return buffer[name]
    return None


def _from_free_list(out: str, program: RuntimeProgram, free: list[str]) -> str | None:
    shape = program.shapes.get(out)
    if not shape:  # onnxruntime does not reuse for scalars or unknown shapes
        return None
    for i, candidate in enumerate(free):
        if program.shapes.get(candidate) == shape and program.nbytes.get(candidate) == program.nbytes.get(out):
            return free.pop(i)
    return None


def planned_peak_bytes(program: RuntimeProgram) -> int:
    """The most bytes onnxruntime's plan holds at once while running ``program`` one kernel at a
    time: its buffers from their first tensor's kernel to the last kernel that reads any tensor
    placed in them, plus the caller's inputs. Raises KeyError for a tensor without a size."""
    use, buffer, count = _use_counts(program), {}, {}
    outputs = set(program.outputs)
    owned: set[str] = set()  # buffers the plan allocates (not the caller's inputs)
    free: list[str] = []
    made_at: dict[str, int] = {}
    last_read: dict[str, int] = {}
    for name in program.inputs:
        buffer[name], count[name] = name, use[name]
    buffer[""], count[""] = "", 1  # the weights' own memory: an alias of a weight takes nothing from the plan
    for pc, step in enumerate(program.steps):
        for k, out in enumerate(step.outputs):
            if not out:
                continue
            target = None  # a graph output always gets its own buffer
            if out not in outputs:
                target = _in_place(step, k, program, buffer, count, owned)
                if target is None:
                    target = _from_free_list(out, program, free)
            if target is None:
                target, count[out] = out, 0
                owned.add(out)
                made_at[out] = pc
            buffer[out] = target
            count[target] += use[out]
        for name in (*step.inputs, *step.outputs):
            if not name or name not in buffer or not buffer[name]:
                continue
            target = buffer[name]
            last_read[target] = pc
            count[target] -= 1
            if count[target] == 0:
                free.insert(0, target)  # onnxruntime looks at the most recently freed first
    end = len(program.steps)
    delta = [0] * (end + 1)
    for target, start in made_at.items():
        stop = end if target in outputs or count[target] > 0 else last_read.get(target, start)
        delta[start] += program.nbytes[target]
        delta[min(stop + 1, end)] -= program.nbytes[target]
    peak = running = 0
    for d in delta[:end]:
        running += d
        peak = max(peak, running)
    return peak + sum(program.nbytes[name] for name in program.inputs)


def _named(model: Any) -> Any:
    """``model`` with a unique name on every node: the profiler reports kernels by name."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_hwnas_{i}"
        seen.add(node.name)
    return model


def _input_facts(graph: Any, weights: set[str], batch: int) -> tuple[list[str], dict[str, tuple[int, ...]], dict[str, int]]:
    import onnx

    names, shapes, nbytes = [], {}, {}
    for value in graph.input:
        if value.name in weights:
            continue
        t = value.type.tensor_type
        shape = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else batch for d in t.shape.dim)
        names.append(value.name)
        shapes[value.name] = shape
        nbytes[value.name] = math.prod(shape) * int(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).itemsize)
    return names, shapes, nbytes


def zero_feeds(session: Any, batch: int = 1) -> dict[str, Any]:
    """Zeros for each input of an onnxruntime session, of the input's own type; ``batch`` for a
    symbolic dimension."""
    import numpy as np

    feeds = {}
    for value in session.get_inputs():
        element = value.type.removeprefix("tensor(").removesuffix(")")
        shape = [d if isinstance(d, int) and d > 0 else batch for d in value.shape]
        feeds[value.name] = np.zeros(shape, dtype=ORT_DTYPES.get(element, "float32"))
    return feeds


def runtime_program(model: Any, runtime: Any = None, *, batch: int = 1) -> RuntimeProgram:
    """The program onnxruntime's CPU provider runs for ``model`` (an onnx ModelProto or a path):
    optimized at ``runtime``'s graph optimization level (a RuntimeSettings; default: all), one
    thread, with the output shapes its kernels report in one run on zeros (``batch`` for a symbolic
    dimension). Raises ValueError when a kernel's outputs carry no shapes, and onnxruntime's own
    errors for a model it cannot load or run."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from hwnas.measure.session import RuntimeSettings, session_options

    proto = onnx.load(str(model)) if isinstance(model, (str, os.PathLike)) else model
    proto = _named(onnx.ModelProto.FromString(proto.SerializeToString()))
    so = session_options(runtime or RuntimeSettings())
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    so.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="hwnas-ortplan-") as tmp:
        so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        so.profile_file_prefix = os.path.join(tmp, "profile")
        session = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        session.run(None, zero_feeds(session, batch))
        with open(session.end_profiling()) as f:
            events = [e for e in json.load(f) if e.get("cat") == "Node"]
        optimized = onnx.load(so.optimized_model_filepath).graph
    weights = {i.name for i in optimized.initializer}
    nodes = {n.name: n for n in optimized.node}
    inputs, shapes, nbytes = _input_facts(optimized, weights, batch)
    steps = []
    for event in events:
        node = nodes.get(event["name"].removesuffix("_kernel_time"))
        if node is None:
            continue
        outputs = tuple(o for o in node.output if o)
        reported = event.get("args", {}).get("output_type_shape", [])
        if len(reported) < len(outputs):
            raise ValueError(f"onnxruntime {ort.__version__} reports no output shapes for kernel {node.name!r}")
        for name, typed in zip(outputs, reported):
            (element, dims), = typed.items()
            shapes[name] = tuple(int(d) for d in dims)
            nbytes[name] = math.prod(shapes[name]) * np.dtype(ORT_DTYPES.get(element, "float32")).itemsize
        steps.append(Step(node.op_type, node.domain, tuple("" if i in weights else i for i in node.input), outputs))
    return RuntimeProgram(tuple(steps), tuple(inputs), tuple(o.name for o in optimized.output), shapes, nbytes)
