"""Memory objectives: the liveness bound and onnxruntime's allocation plan on hand-built graphs with
known peaks, the plan against onnxruntime's own allocator, the blocks joined against whole exported
models, and a search under a memory budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwnas.evaluation.accuracy import ACCURACY
from hwnas.evaluation.memory import MemoryMetrics, chain_graphs, module_memory, planned_peak_of
from hwnas.evaluation.sources import MetricSource
from hwnas.models.memory import graph_memory, onnxruntime_peak
from hwnas.models.ort_planner import RuntimeProgram, Step, planned_peak_bytes, runtime_program
from hwnas.optimize.loop import make_config, run_search
from hwnas.optimize.objectives import objectives_from_specs
from hwnas.spaces import get_space

T = [1, 4, 8, 8]  # 256 floats: 1,024 bytes in fp32


def _graph(nodes, outputs, initializers=()):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, T)
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, T) for o in outputs]
    graph = helper.make_graph(nodes, "g", [x], outs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_chain_holds_two_tensors_at_once() -> None:
    model = _graph([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])], ["y"])
    assert graph_memory(model).peak_activation_bytes == 2 * 1024
    assert graph_memory(model, "int8").peak_activation_bytes == 2 * 256


def test_a_branch_keeps_its_input_alive_until_the_last_reader() -> None:
    model = _graph([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["x"], ["c"]),
                    helper.make_node("Add", ["a", "c"], ["y"])], ["y"])
    assert graph_memory(model).peak_activation_bytes == 3 * 1024  # x, a, c; then a, c, y


def test_weights_and_their_aliases_count_as_weights_not_activations() -> None:
    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), dtype=np.float32), "w")
    model = _graph([helper.make_node("Identity", ["w"], ["w2"]), helper.make_node("Conv", ["x", "w2"], ["y"])], ["y"], [w])
    facts = graph_memory(model)
    assert facts.peak_activation_bytes == 2 * 1024 and facts.weights_bytes == 2 * 16 * 4
    assert graph_memory(model, "int8").weights_bytes == 2 * 16 and facts.model_kb == 128 / 1024


def _program(steps: list[tuple[str, list[str], list[str]]], shapes: dict[str, tuple[int, ...]],
             outputs: tuple[str, ...] = ("y",)) -> RuntimeProgram:
    return RuntimeProgram(tuple(Step(op, "", tuple(i), tuple(o)) for op, i, o in steps), ("x",), outputs, shapes,
                          {k: 4 * int(np.prod(v)) for k, v in shapes.items()})


BIG, SMALL = (1, 16, 8, 8), (1, 1, 8, 8)  # 4,096 and 256 bytes


def test_a_dead_buffer_kept_for_a_later_tensor_of_its_shape_stays_allocated() -> None:
    # a (big) dies at step 1; d (big, step 3) will take its buffer, so the plan holds it meanwhile
    shapes = {"x": SMALL, "a": BIG, "b": SMALL, "c": SMALL, "d": BIG, "y": SMALL}
    program = _program([("Conv", ["x"], ["a"]), ("Conv", ["a"], ["b"]), ("Conv", ["b"], ["c"]),
                        ("Conv", ["c"], ["d"]), ("Conv", ["d"], ["y"])], shapes)
    assert planned_peak_bytes(program) == 256 + 4096 + 256 + 256  # step 2: x, a's buffer, b, c
    # the same program with a small d: nothing takes a's buffer, so it is freed after step 1
    small_d = _program([("Conv", ["x"], ["a"]), ("Conv", ["a"], ["b"]), ("Conv", ["b"], ["c"]),
                        ("Conv", ["c"], ["d"]), ("Conv", ["d"], ["y"])], {**shapes, "d": SMALL})
    assert planned_peak_bytes(small_d) == 256 + 4096 + 256  # step 1: x, a, b


def test_a_buffer_of_the_same_bytes_but_another_shape_is_not_reused() -> None:
    shapes = {"x": SMALL, "a": (1, 16, 8, 8), "b": SMALL, "d": (1, 8, 16, 8), "y": SMALL}
    program = _program([("Conv", ["x"], ["a"]), ("Conv", ["a"], ["b"]), ("Conv", ["b"], ["d"]), ("Conv", ["d"], ["y"])],
                       shapes)
    # a is freed at step 1 and nothing takes it: b, then d in a fresh buffer
    assert planned_peak_bytes(program) == 256 + 4096 + 256  # steps 1 and 2 each hold x, two tensors


def test_in_place_kernels_write_over_their_last_read_input_and_aliases_take_nothing() -> None:
    shapes = {"x": SMALL, "a": BIG, "b": BIG, "r": (1, 1024), "y": (1, 1024)}
    chain = [("Conv", ["x"], ["a"]), ("Relu", ["a"], ["b"]), ("Flatten", ["b"], ["r"]), ("Conv", ["r"], ["y"])]
    assert planned_peak_bytes(_program(chain, shapes)) == 256 + 4096 + 4096  # a/b/r one buffer, then y
    # a read again later: Relu may not write over it; onnxruntime's Add never writes over an input
    shapes.update({"z": BIG, "w": BIG})
    held = [("Conv", ["x"], ["a"]), ("Relu", ["a"], ["b"]), ("Add", ["a", "b"], ["z"]), ("Conv", ["z"], ["w"])]
    assert planned_peak_bytes(_program(held, {k: shapes[k] for k in ("x", "a", "b", "z", "w")}, ("w",))) == 256 + 3 * 4096


def test_the_plan_is_what_onnxruntime_asks_its_allocator_for(tmp_path: Path) -> None:
    import torch

    from hwnas.models.onnx_io import export_onnx

    class Residual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU6())
            self.body = torch.nn.Sequential(torch.nn.Conv2d(16, 64, 1), torch.nn.ReLU6(), torch.nn.Conv2d(64, 16, 1))
            self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 14 * 14, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.stem(x)
            return self.head(h + self.body(h))

    path = str(tmp_path / "residual.onnx")
    export_onnx(Residual().eval(), torch.zeros(1, 1, 14, 14), path, dynamic_batch=False)
    measured = onnxruntime_peak(path)
    assert planned_peak_bytes(runtime_program(path)) == measured.requested_peak_bytes
    assert measured.arena_peak_bytes >= measured.requested_peak_bytes


@pytest.mark.parametrize("name, shape, options", [("mobilenet", "1x28x28", {"scale": 0.25}), ("dppnet", "1x8x8", {})])
def test_blocks_joined_in_sequence_plan_as_the_whole_exported_model(name: str, shape: str, options: dict,
                                                                    tmp_path: Path) -> None:
    import onnx
    import torch

    from hwnas.models.onnx_io import ParityCheck, export_onnx

    space = get_space(name, input_shape=shape, **options)
    archs = space.sample(np.random.default_rng(4), 2)
    composed = MemoryMetrics(space).evaluate(archs)
    for i, a in enumerate(archs):
        model = space.build(a, seed=0, calibrate_bn=False).eval()
        path = str(tmp_path / f"{a.id}.onnx")
        export_onnx(model, torch.zeros((1, *space.input_shape)), path, dynamic_batch=False, parity=ParityCheck(inputs=1))
        assert composed["peak_memory_kb"][i] * 1024 == onnxruntime_peak(path).requested_peak_bytes
        assert composed["peak_memory_kb"][i] * 1024 == planned_peak_of(onnx.load(path))
        whole = module_memory(model, [space.input_shape], "fp32")
        assert composed["model_kb"][i] == pytest.approx(whole.model_kb)


def test_a_candidate_whose_plan_fails_is_unknown_and_the_others_are_planned(monkeypatch: pytest.MonkeyPatch,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    import hwnas.evaluation.memory as memory

    space = get_space("mobilenet", input_shape="1x28x28", scale=0.25)
    archs = space.sample(np.random.default_rng(5), 3)
    real = memory.planned_peak_of
    calls = []

    def flaky(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("onnxruntime could not place a tensor")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(memory, "planned_peak_of", flaky)
    with caplog.at_level("WARNING", logger="hwnas"):
        peak = MemoryMetrics(space).evaluate(archs)["peak_memory_kb"]
    assert np.isnan(peak[1]) and np.all(np.isfinite(peak[[0, 2]])) and np.all(peak[[0, 2]] > 0)
    assert "peak_memory_kb of" in caplog.text and "could not place a tensor" in caplog.text


def test_an_int8_table_plans_the_quantized_graph() -> None:
    space = get_space("mobilenet", input_shape="1x28x28", scale=0.25)
    arch = space.sample(np.random.default_rng(2), 1)
    fp32 = MemoryMetrics(space).evaluate(arch)
    int8 = MemoryMetrics(space, "int8").evaluate(arch)
    # uint8 activations where onnxruntime fuses the QDQ pairs: well under the fp32 plan, weights a quarter
    assert 0 < int8["peak_memory_kb"][0] < 0.6 * fp32["peak_memory_kb"][0]
    assert int8["model_kb"][0] == pytest.approx(fp32["model_kb"][0] / 4)


def test_a_chain_of_graphs_runs_as_its_parts_in_turn() -> None:
    import onnxruntime as ort

    relu = _graph([helper.make_node("Relu", ["x"], ["y"])], ["y"])
    neg = _graph([helper.make_node("Neg", ["x"], ["y"])], ["y"])
    chained = chain_graphs([neg, relu, neg])
    session = ort.InferenceSession(chained.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.linspace(-1, 1, 256, dtype=np.float32).reshape(T)
    assert np.array_equal(session.run(None, {session.get_inputs()[0].name: x})[0], -np.maximum(-x, 0))


class _Seeded(MetricSource):
    """An accuracy that only depends on the architecture (the budget is what is tested here)."""

    provides = ("accuracy",)
    cheap = False

    def __init__(self, space, **_):
        pass

    def evaluate(self, archs):
        return {"accuracy": np.array([50 + int(a.id[:4], 16) % 40 for a in archs], dtype=float)}


ACCURACY.register("test-seeded", _Seeded)


def test_a_search_under_a_memory_budget_keeps_it(tmp_path: Path) -> None:
    objectives = objectives_from_specs(["accuracy:max", "peak_memory_kb:min", "model_kb:min"])
    space = get_space("mobilenet", input_shape="1x28x28", scale=0.25)
    sizes = MemoryMetrics(space).evaluate(space.sample(np.random.default_rng(0), 12))["model_kb"]
    bound = float(np.median(sizes))
    config = make_config(space="mobilenet", input_shape="1x28x28", space_options={"scale": 0.25}, objectives=objectives,
                         budgets=[f"model_kb<={bound:g}"], strategy="random", evaluations=6, seed=0,
                         accuracy="test-seeded")
    result = run_search(config, tmp_path / "r", progress=False, log=lambda _m: None)
    assert result.front and all(m["model_kb"] <= bound for m in result.front)
    assert any(e.status == "infeasible" and "model_kb" in (e.reason or "") for e in result.evaluations)


def test_the_sequential_bound_sits_below_onnxruntimes_plan_for_a_plain_conv_chain(tmp_path: Path) -> None:
    import onnx
    import torch

    from hwnas.models.onnx_io import export_onnx

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, padding=1),
                                torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16 * 28 * 28, 10)).eval()
    path = str(tmp_path / "chain.onnx")
    export_onnx(model, torch.zeros(1, 1, 28, 28), path, dynamic_batch=False)
    ours = graph_memory(onnx.load(path)).peak_activation_bytes
    assert ours == 2 * 16 * 28 * 28 * 4  # the second conv's output and its ReLU's, live together
    peak = onnxruntime_peak(path)
    assert peak.nodes >= 3 and peak.arena_peak_bytes >= peak.requested_peak_bytes >= 28 * 28 * 4
    assert planned_peak_bytes(runtime_program(path)) == peak.requested_peak_bytes
