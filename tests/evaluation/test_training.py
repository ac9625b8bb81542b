"""The `train` accuracy estimator: determinism, cache, divergence as a failure, a tiny real search."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hwnas.core.errors import HwnasError
from hwnas.evaluation.accuracy import ACCURACY
from hwnas.evaluation.supernet import SupernetSettings
from hwnas.evaluation.training import TrainAccuracy, TrainSettings, TrainingFailed, accuracy_on, settings_key
from hwnas.optimize.archive import Archive
from hwnas.optimize.loop import make_config, run_search
from hwnas.optimize.objectives import objectives_from_specs
from hwnas.spaces import get_space

FAST = {"dataset": "digits", "epochs": 2, "batch_size": 64, "threads": 1}


def _space():
    return get_space("dppnet", input_shape="1x8x8", N=1, growth=8, stem_channels=8)


def test_training_is_deterministic_and_cached(tmp_path: Path) -> None:
    space = _space()
    arch = space.parse("bnrelu-conv3x3+bnrelu-conv1x1")
    a = TrainAccuracy(space, cache=str(tmp_path / "cache.json"), **FAST)
    first = a.accuracy(arch)
    assert 30.0 < first <= 100.0  # two epochs on digits learn well above chance (10%)
    assert a.accuracy(arch) == first and a.hits == 1
    fresh = TrainAccuracy(space, **FAST)  # no cache: trains again, same result
    assert fresh.accuracy(arch) == first and fresh.hits == 0
    reloaded = TrainAccuracy(space, cache=str(tmp_path / "cache.json"), **FAST)
    assert reloaded.accuracy(arch) == first and reloaded.hits == 1
    other_seed = TrainAccuracy(space, seed=1, **FAST)
    assert other_seed.accuracy(arch) != first


@pytest.mark.parametrize("settings_type", [TrainSettings, SupernetSettings])
def test_cache_keys_survive_a_new_setting_but_not_a_changed_one(settings_type: type) -> None:
    @dataclass(frozen=True)
    class WithNewSetting(settings_type):  # type: ignore[valid-type,misc]
        new_option: int = 0  # a later release's setting whose default keeps the old behaviour

    assert WithNewSetting().key() == settings_type().key()
    assert WithNewSetting(epochs=7).key() == settings_type(epochs=7).key()
    assert WithNewSetting(new_option=1).key() != settings_type().key()
    assert settings_type(epochs=7).key() != settings_type().key()
    assert settings_type(epochs=settings_type().epochs).key() == settings_type().key()  # spelled out = default
    # a changed default (the version bumped with it) retires every key made under the old one
    assert settings_key(settings_type(), 2) != settings_key(settings_type(), 1)


def test_accuracy_on_counts_top1_answers_or_averages_the_true_class_probability() -> None:
    import numpy as np
    import torch
    from torch import nn

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0.5, 0]]))
    x = torch.tensor([[3.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 4.0, 0], [1.0, 1.0, 0, 0], [0, 0, 0, 1.0]]).reshape(5, 1, 2, 2)
    y = torch.tensor([0, 1, 2, 0, 2])
    idx = np.arange(5)
    probs = torch.softmax(model(x), 1)[torch.arange(5), y]
    hits = (model(x).argmax(1) == y).sum()
    for batch in (1, 2, 64):  # the batching does not change the result
        assert accuracy_on(model, x, y, idx, batch_size=batch) == pytest.approx(100.0 * float(hits) / 5)
        assert accuracy_on(model, x, y, idx, batch_size=batch, expected=True) == pytest.approx(100.0 * float(probs.mean()))
    with torch.no_grad():
        model[1].weight[0, 0] = float("nan")
    with pytest.raises(TrainingFailed, match="NaN or infinite logits"):
        accuracy_on(model, x, y, idx, expected=True)


def test_divergence_is_a_recorded_failure(tmp_path: Path) -> None:
    objectives = objectives_from_specs(["accuracy:max", "params:min"])
    cfg = make_config(space="dppnet", input_shape="1x8x8", space_options={"N": 1, "growth": 8, "stem_channels": 8},
                      objectives=objectives, strategy="random", evaluations=3, seed=0, accuracy="train",
                      accuracy_options={**FAST, "epochs": 1, "lr": 1e6})
    result = run_search(cfg, tmp_path, progress=False)
    with Archive(tmp_path / "archive.sqlite") as arc:
        failed = [r for r in arc.records() if r.status == "failed"]
    assert failed and all("diverged" in r.reason or "NaN" in r.reason for r in failed)
    assert result.used == 3 and not result.front


def test_tiny_search_with_train_accuracy_on_digits(tmp_path: Path) -> None:
    objectives = objectives_from_specs(["accuracy:max", "flops:min"])
    cfg = make_config(space="dppnet", input_shape="1x8x8", space_options={"N": 1, "growth": 8, "stem_channels": 8},
                      objectives=objectives, strategy="nsga2", strategy_options={"pop_size": 4}, evaluations=6, seed=0,
                      accuracy="train", accuracy_options=FAST)
    said: list[str] = []
    result = run_search(cfg, tmp_path, progress=False, log=said.append)
    assert result.used == 6 and result.front
    # digits' 1,797 images leave 269 for validation: the user is told what that resolves
    assert any(line.startswith("warning: dataset digits: the validation split holds 269 images") and
               "steps of 0.4 points" in line for line in said), said
    assert all(20.0 < m["accuracy"] <= 100.0 and m["flops"] > 0 for m in result.front)


def test_mismatched_dataset_and_options_are_errors() -> None:
    with pytest.raises(HwnasError, match="is 1x8x8, but the space is built for 1x28x28"):
        ACCURACY.get("train")(get_space("dppnet", input_shape="1x28x28"), dataset="digits")
    with pytest.raises(HwnasError, match="unknown option 'epoch'"):
        ACCURACY.get("train")(_space(), dataset="digits", epoch=3)


def test_retrain_gives_each_front_member_val_and_test_accuracy(tmp_path: Path, capsys) -> None:
    import json

    from hwnas.cli import main

    objectives = objectives_from_specs(["accuracy:max", "flops:min"])
    cfg = make_config(space="dppnet", input_shape="1x8x8", space_options={"N": 1, "growth": 8, "stem_channels": 8},
                      objectives=objectives, strategy="random", evaluations=4, seed=0, accuracy="train",
                      accuracy_options={**FAST, "epochs": 1})
    result = run_search(cfg, tmp_path, progress=False)
    assert main(["retrain", str(tmp_path), "--epochs", "3", "--limit", "2"]) == 0
    report = json.loads((tmp_path / "retrain.json").read_text())
    assert len(report["models"]) == min(2, len(result.front))
    for m in report["models"]:
        assert m["status"] == "complete" and m["proxy"] == "train"
        assert 0 <= m["val_accuracy"] <= 100 and 0 <= m["test_accuracy"] <= 100
        assert Path(m["weights"]).is_file()
    sizes = report["split_sizes"]
    assert sizes["train"] + sizes["val"] + sizes["test"] == 1797
    bench_run = tmp_path / "no-dataset"
    bench_run.mkdir()
    assert main(["retrain", str(bench_run)]) == 1


def test_accuracy_at_a_number_of_epochs_trains_that_long_and_keeps_the_settings(tmp_path: Path) -> None:
    space = _space()
    arch = space.parse("bnrelu-conv3x3+bnrelu-conv1x1")
    source = TrainAccuracy(space, **FAST)
    one = float(source.evaluate_at([arch], 1)["accuracy"][0])
    assert source.settings.epochs == 2  # restored after the shorter training
    assert one == TrainAccuracy(space, **{**FAST, "epochs": 1}).accuracy(arch)  # the same as training for 1 epoch
    assert float(source.evaluate([arch])["accuracy"][0]) != one
    assert source.fidelities() == ()  # any whole number of epochs
    with pytest.raises(HwnasError, match="whole number of epochs"):
        source.evaluate_at([arch], 1.5)
