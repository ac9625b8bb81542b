"""ONNX export verification and the errors for bad files and paths."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from hwnas.core.errors import ExportError, OnnxModelError, UnwritableOutputError, UsageError
from hwnas.spaces import get_space
from hwnas.models.onnx_io import export_onnx, load_onnx, ort_session


class CountingModel(nn.Module):
    """Its output depends on Python state that tracing freezes, so ONNX and torch disagree."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc(x) * self.calls


def test_parity_failure_is_an_error_and_leaves_no_file(tmp_path) -> None:
    path = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="differs from torch"):
        export_onnx(CountingModel(), torch.randn(1, 4), path)
    assert not path.exists()
    assert os.listdir(tmp_path) == []  # the temporary file is gone too


def test_dynamic_batch_and_static_batch(tmp_path) -> None:
    space = get_space("dppnet", input_shape="3x16x16", N=1)
    arch = space.parse("bnrelu-conv3x3")
    model = space.build(arch)
    export_onnx(model, space.example_input(1), tmp_path / "dyn.onnx")
    sess = ort_session(tmp_path / "dyn.onnx")
    assert sess.run(None, {"input": np.zeros((5, 3, 16, 16), np.float32)})[0].shape == (5, 10)
    export_onnx(model, space.example_input(1), tmp_path / "static.onnx", dynamic_batch=False)
    assert ort_session(tmp_path / "static.onnx").get_inputs()[0].shape == [1, 3, 16, 16]


def test_multi_input_block_exports(tmp_path) -> None:
    space = get_space("nb201", input_shape="3x16x16", N=1)
    arch = space.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|skip_connect~1|skip_connect~2|")
    block = next(b for b in space.blocks(arch) if b.kind == "sum")
    xs = tuple(torch.randn(1, *block.in_shape) for _ in range(block.n_inputs))
    report = export_onnx(space.build_block(block), xs, tmp_path / "sum.onnx")
    assert report.max_abs_diff <= 1e-6
    assert len(ort_session(tmp_path / "sum.onnx").get_inputs()) == block.n_inputs


def test_dynamo_exporter_also_verifies(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # torch's compile caches would land here
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    report = export_onnx(model, torch.randn(1, 3, 8, 8), tmp_path / "d.onnx", exporter="dynamo", opset=18)
    assert report.exporter == "dynamo" and report.opset >= 18 and report.max_abs_diff <= 1e-4
    assert not list(scratch.iterdir())  # no torchinductor_<user> cache or scratch folder left behind


def test_corrupt_missing_and_unsupported_files(tmp_path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf\xff\xff")
    with pytest.raises(OnnxModelError, match="corrupt.onnx"):
        load_onnx(corrupt)
    with pytest.raises(OnnxModelError, match="no such ONNX file"):
        load_onnx(tmp_path / "missing.onnx")
    # a well-formed protobuf whose graph uses an operator no opset defines
    import onnx
    from onnx import helper, TensorProto

    node = helper.make_node("NoSuchOp", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    unsupported = tmp_path / "unsupported.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), unsupported)
    with pytest.raises(OnnxModelError, match="unsupported.onnx: fails onnx.checker"):
        load_onnx(unsupported)
    with pytest.raises(OnnxModelError, match="onnxruntime cannot load"):
        ort_session(unsupported)


def test_unwritable_output(tmp_path) -> None:
    model = nn.Linear(4, 2).eval()
    with pytest.raises(UnwritableOutputError, match="does not exist"):
        export_onnx(model, torch.randn(1, 4), tmp_path / "nope" / "m.onnx")
    with pytest.raises(UnwritableOutputError, match="is a directory"):
        export_onnx(model, torch.randn(1, 4), tmp_path)
    with pytest.raises(UsageError, match="opset 13: the torchscript exporter writes opsets 17 to 20"):
        export_onnx(model, torch.randn(1, 4), tmp_path / "m.onnx", opset=13)
