"""Memory objectives: the liveness analysis on hand-built graphs with known peaks, the per-block
composition against whole exported models, and a search under a memory budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwnas.evaluation.accuracy import ACCURACY
from hwnas.evaluation.memory import MemoryMetrics, module_memory
from hwnas.evaluation.sources import MetricSource
from hwnas.models.memory import graph_memory
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


@pytest.mark.parametrize("name, shape, options", [("mobilenet", "1x28x28", {"scale": 0.25}), ("dppnet", "1x8x8", {})])
def test_blocks_in_sequence_compose_to_the_whole_exported_model(name: str, shape: str, options: dict) -> None:
    space = get_space(name, input_shape=shape, **options)
    archs = space.sample(np.random.default_rng(4), 2)
    composed = MemoryMetrics(space).evaluate(archs)
    for i, a in enumerate(archs):
        whole = module_memory(space.build(a, seed=0, calibrate_bn=False), [space.input_shape], "fp32")
        assert composed["peak_memory_kb"][i] == pytest.approx(whole.peak_memory_kb)
        assert composed["model_kb"][i] == pytest.approx(whole.model_kb)


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


def test_onnxruntime_holds_about_what_the_analysis_says_for_a_plain_conv_chain(tmp_path: Path) -> None:
    import onnx
    import torch

    from hwnas.models.memory import onnxruntime_peak
    from hwnas.models.onnx_io import export_onnx

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, padding=1),
                                torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16 * 28 * 28, 10)).eval()
    path = str(tmp_path / "chain.onnx")
    export_onnx(model, torch.zeros(1, 1, 28, 28), path, dynamic_batch=False)
    ours = graph_memory(onnx.load(path)).peak_activation_bytes
    assert ours == 2 * 16 * 28 * 28 * 4  # the second conv's output and its ReLU's, live together
    peak = onnxruntime_peak(path)
    assert peak.nodes >= 3 and peak.arena_peak_bytes >= peak.requested_peak_bytes >= 28 * 28 * 4
    assert abs(peak.arena_peak_bytes - ours) <= 0.25 * ours  # layout copies and padding, not a different picture
