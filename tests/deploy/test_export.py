"""Export (issue 7): a real small run -> verified ONNX + cards + index, budget flags, and the HTML
report rendered in a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hwnas.cli import main
from hwnas.deploy.export import CARD_FIELDS, ExportSettings, export_front, proxy_label
from hwnas.deploy.report import write_report
from hwnas.latency.profiler import ProfileSettings, profile
from hwnas.optimize.loop import make_config, run_search
from hwnas.optimize.objectives import objectives_from_specs, parse_budget
from hwnas.spaces import get_space

TRAIN = {"dataset": "digits", "epochs": 1, "threads": 1}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, quick_spec) -> Path:
    """A real tiny loop: profile nb201 (one cell per stage) at 1x8x8, search on digits with the
    `train` estimator under a latency budget."""
    root = tmp_path_factory.mktemp("export")
    space = get_space("nb201", input_shape="1x8x8", N=1)
    table = profile(quick_spec, space, out=root / "nb201-1x8x8.json", progress=False, log=lambda _m: None,
                    settings=ProfileSettings(context_models=12))
    generous = 10 * max(m.stats["p10_ms"] for m in table.context.models if m.stats)  # binds nothing
    cfg = make_config(space="nb201", input_shape="1x8x8", space_options={"N": 1},
                      objectives=objectives_from_specs(["accuracy:max", "latency_ms:min"]),
                      budgets=[parse_budget(f"latency_ms<={generous:.4f}")], strategy="nsga2",
                      strategy_options={"pop_size": 4}, evaluations=8, seed=0, table=str(root / "nb201-1x8x8.json"),
                      accuracy="train", accuracy_options=TRAIN)
    run_search(cfg, root / "run", progress=False)
    return root / "run"


def test_export_writes_verified_onnx_and_complete_cards(run: Path, tmp_path: Path, quick_spec) -> None:
    out = tmp_path / "models"
    index = export_front(run, out, ExportSettings(retrain=True, epochs=2), device=quick_spec, progress=False, log=lambda _m: None)
    front = json.loads((run / "front.json").read_text())["front"]
    assert index["exported"] == len(front) == len(index["models"]) and not index["over_budget"]
    # a run with a hard budget exports the most accurate first, and recommends the best of them as measured
    assert index["selection"] == "accuracy"
    tested = [m["test_accuracy"] for m in index["models"]]
    rec = index["recommended"]
    assert rec["name"] == index["models"][int(np.argmax(tested))]["name"]
    assert f"accuracy {max(tested):.2f}%" in rec["why"] and "images)" in rec["why"]  # with its interval
    assert "test accuracy of the retrained model" in rec["why"] and "against the budget latency_ms<=" in rec["why"]
    space = get_space("nb201", input_shape="1x8x8", N=1)
    retrained = {m["arch_id"]: m for m in json.loads((run / "retrain.json").read_text())["models"]}
    for entry in index["models"]:
        card = json.loads((out / entry["card_json"]).read_text())
        assert set(CARD_FIELDS) <= set(card), set(CARD_FIELDS) - set(card)
        assert (out / entry["card_md"]).read_text().startswith(f"# {card['name']}")
        assert card["accuracy"]["weights"] == "retrained" and 0 <= card["accuracy"]["test"] <= 100
        assert card["latency"]["measured_ms"] > 0 and card["latency"]["predicted_ms"] > 0
        # the table's sentinels were timed beside the models: raw and drift-corrected errors side by side
        assert card["latency"]["drift"]["n"] >= 3 and card["latency"]["error_pct_drift_corrected"] is not None
        # said as what it means for the user's predictions, and the budget's margin
        md = (out / entry["card_md"]).read_text()
        assert "Drift: predictions on this device are currently " in md and "% to spare)" in md
        # memory of the exported file: at least the input and the output live at once, weights at 4 bytes each
        assert card["memory"]["peak_memory_kb"] >= (64 + 10) * 4 / 1024 and card["memory"]["model_kb"] > 0
        assert "peak activations" in md and entry["peak_memory_kb"] == card["memory"]["peak_memory_kb"]
        assert card["device"]["conditions"]["usable_cores"]
        assert card["budget"]["ok"] and card["budget"]["checks"][0]["source"] == "measured"
        assert card["device"]["fingerprint"]["provider_used"] == "CPUExecutionProvider"
        assert card["seeds"] == {"search": 0, "retrain": 0, "export": 0} and card["versions"]["torch"].startswith("2.13")
        # the file itself: checker, a session, and parity with the retrained torch model
        path = out / entry["onnx"]
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        model = space.build(space.parse(card["arch"]), calibrate_bn=False)
        model.load_state_dict(torch.load(retrained[card["arch_id"]]["weights"], weights_only=True))
        x = np.random.default_rng(1).standard_normal((1, 1, 8, 8)).astype(np.float32)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        with torch.no_grad():
            want = model.eval()(torch.from_numpy(x)).numpy()
        assert np.abs(got - want).max() <= 1e-4
    # retrained weights are reused, not retrained, by a second export
    weights_mtime = {m["weights"]: Path(m["weights"]).stat().st_mtime_ns for m in retrained.values()}
    export_front(run, tmp_path / "again", ExportSettings(retrain=True, epochs=2), device=quick_spec, progress=False, log=lambda _m: None)
    again = json.loads((run / "retrain.json").read_text())["models"]
    assert [m["seconds"] for m in again] == [retrained[m["arch_id"]]["seconds"] for m in again]
    assert {w: Path(w).stat().st_mtime_ns for w in weights_mtime} == weights_mtime  # no weights file rewritten


def test_a_model_over_the_budget_is_flagged(run: Path, tmp_path: Path, quick_spec, capsys) -> None:
    out = tmp_path / "tight"
    spec_file = tmp_path / "dev.toml"
    spec_file.write_text('name = "test-cpu"\n[runtime]\nintra_op_threads = 1\n'
                         '[protocol]\nwarmup_runs = 3\nwarmup_s = 0.2\nmin_runs = 20\nmax_runs = 60\nmin_span_s = 0.2\n')
    rc = main(["export", str(run), "--out", str(out), "--device", str(spec_file), "--limit", "2",
               "--budget", "latency_ms<=0.000001", "--no-progress"])
    assert rc == 0
    index = json.loads((out / "index.json").read_text())
    assert index["exported"] == 2 and len(index["over_budget"]) == 2
    printed = capsys.readouterr().out
    assert "BREAK THE BUDGET" in printed
    assert "recommended: " in printed and "no member meets every budget" in printed
    for entry in index["models"]:
        card = json.loads((out / entry["card_json"]).read_text())
        assert not card["budget"]["ok"] and card["budget"]["broken"] == ["latency_ms<=1e-06"]
        assert card["accuracy"]["weights"].startswith("seeded initial weights") or card["accuracy"]["weights"] == "retrained"
        text = (out / entry["card_md"]).read_text()
        assert "BREAKS THE BUDGET" in text and "% over)" in text  # how far past the bound, in the user's terms
        assert "single runs spread" in text and "(CV); the p10 reported above is robust to that spread" in text
        assert card["command"].startswith("hwnas export")
    assert main(["export", str(tmp_path / "nothing"), "--out", str(out)]) == 1


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Debian chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(run: Path, tmp_path: Path, quick_spec) -> None:
    from PIL import Image

    export_front(run, tmp_path / "models", device=quick_spec, progress=False, log=lambda _m: None)
    page = write_report(run, out=tmp_path / "report")
    for png in ("front.png", "hypervolume.png", "prediction_error.png"):
        assert (tmp_path / "report" / png).stat().st_size > 5000
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    url = page.as_uri() + "#sort=measured_ms:desc"
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert 'data-ready="yes"' in dom, dom[:500]
    assert dom.count('data-loaded="yes"') == 3 and 'data-loaded="no"' not in dom  # every plot decoded
    assert 'data-sorted-by="measured_ms"' in dom
    recommended = json.loads((tmp_path / "models" / "index.json").read_text())["recommended"]["name"]
    assert f"Recommended: {recommended}" in dom
    rows = re.findall(r"<tr class=\"[^\"]*\">(.*?)</tr>", dom, flags=re.S)
    n = len(json.loads((tmp_path / "models" / "index.json").read_text())["models"])
    assert len(rows) == n
    col = 5  # measured ms
    keys = [float(re.findall(r'data-key="([^"]*)"', r)[col]) for r in rows]
    assert keys == sorted(keys, reverse=True)  # the page's script sorted the rows in the browser
    assert all(f'href="../models/{name}' in dom for name in ("nb201-01-",))
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, "--window-size=1200,1400", f"--screenshot={shot}", url], capture_output=True, timeout=120)
    img = Image.open(shot).convert("RGB").resize((120, 140))
    assert len(img.getcolors(maxcolors=120 * 140)) > 50  # rendered text and plots, not a blank page


def test_a_card_names_what_the_search_proxy_measured() -> None:
    # a supernet's default score is a mean probability; a card must not pass it off as top-1
    assert proxy_label({"accuracy": "supernet"}) == "supernet, expected accuracy: mean true-class probability"
    assert proxy_label({"accuracy": "supernet", "accuracy_options": {"score": "top1"}}) == "supernet, top-1"
    assert proxy_label({"accuracy": "train"}) == "train"
    assert proxy_label({}) is None


def test_the_users_reference_is_scored_timed_beside_the_models_and_compared_in_words(
        run: Path, tmp_path: Path, quick_spec, capsys: pytest.CaptureFixture[str]) -> None:
    from hwnas.models.onnx_io import export_onnx

    space = get_space("nb201", input_shape="1x8x8", N=1)
    ref_path = tmp_path / "mine.onnx"
    export_onnx(space.build(space.sample(np.random.default_rng(3), 1)[0], seed=0), torch.zeros(1, 1, 8, 8), ref_path,
                dynamic_batch=False)
    table = str(run.parent / "nb201-1x8x8.json")
    new = tmp_path / "with-ref"
    assert main(["search", "--space", "nb201", "--input", "1x8x8", "--space-opt", "N=1", "--objectives",
                 "accuracy-latency", "--table", table, "--reference", str(ref_path), "--budget", "latency_ms<=3x",
                 "--accuracy", "train", "--accuracy-opt", "dataset=digits", "--accuracy-opt", "epochs=1",
                 "--accuracy-opt", "threads=1", "--strategy", "random", "--evaluations", "4", "--run-dir", str(new),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "reference accuracy: " in out and "% on the test split of digits (270 images)" in out
    assert "against your reference: predicted " in out and "x faster (" in out
    assert main(["export", str(new), "--out", str(tmp_path / "models"), "--retrain", "--epochs", "1", "--limit", "1",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    index = json.loads((tmp_path / "models" / "index.json").read_text())
    card = json.loads((tmp_path / "models" / index["models"][0]["card_json"]).read_text())
    ref = card["reference"]
    assert ref["measured_ms"] > 0 and ref["speedup"] == pytest.approx(ref["measured_ms"] / card["latency"]["measured_ms"])
    lo, hi = ref["accuracy_points_ci95"]
    assert lo < ref["accuracy_points"] < hi and ref["test_images"] == 270
    assert ref["accuracy_points"] == pytest.approx(card["accuracy"]["test"] - ref["accuracy"])
    assert "## Against your reference" in (tmp_path / "models" / index["models"][0]["card_md"]).read_text()
    assert "than mine.onnx (both measured here)" in out and "against your reference: " in out
    page = write_report(new, export_dir=tmp_path / "models").read_text()
    assert "Against your reference:" in page
