"""``hwnas report RUN_DIR``: one static HTML page with PNG plots; no server, no JavaScript library.

Written to ``RUN_DIR/report/index.html`` (or ``--out``):
- the Pareto front as the search predicted it and, for exported models, as measured;
- run-relative hypervolume against expensive evaluations (``history.csv``);
- predicted against measured latency of the exported models (and of the table's validation
  models when the table was validated);
- a table of the exported models (or of the front, before export) that sorts by any column on a
  click, linking to each ONNX file and card. ``index.html#sort=<column>`` opens it sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
import html
import os
from pathlib import Path
from typing import Any

from hwnas.core.files import output_folder, read_json, write_atomic
from hwnas.core.errors import HwnasError
from hwnas.core.plots import add_legend, metric_label, new_axes, save_figure, staircase
from hwnas.optimize.choice import recommend
from hwnas.optimize.objectives import Constraint, ObjectiveSet
from hwnas.optimize.outputs import front_title
from hwnas.optimize.rundir import RunDir


def _front_plot(path: Path, front: dict[str, Any], evaluations: list[dict[str, Any]], models: list[dict[str, Any]],
                x: str, y: str, budgets: Sequence[Constraint], title: str = "") -> None:
    fig, ax = new_axes(6.4, 4.4)
    pts = [(e[x], e[y]) for e in evaluations if e.get(x) is not None and e.get(y) is not None]
    if pts:
        ax.scatter(*zip(*pts), s=9, color="0.75", label="evaluated: search proxy, predicted cost")
    fr = [(m[x], m[y]) for m in front["front"] if m.get(x) is not None and m.get(y) is not None]
    if fr:
        staircase(ax, [p[0] for p in fr], [p[1] for p in fr], color="tab:blue",
                  label="Pareto front: search proxy, predicted cost")
    if models:
        for m in models:
            px, mx = m.get("predicted_ms"), m.get("measured_ms")
            acc = m.get("search_accuracy")
            if px is not None and mx is not None and acc is not None:
                ax.annotate("", xy=(mx, acc), xytext=(px, acc), arrowprops={"arrowstyle": "->", "color": "tab:orange", "lw": 0.8})
        meas = [(m["measured_ms"], m["search_accuracy"]) for m in models if m.get("search_accuracy") is not None]
        if meas:
            ax.scatter(*zip(*meas), marker="s", s=28, facecolors="none", edgecolors="tab:orange", zorder=3,
                       label="exported: search proxy, MEASURED latency")
        test = [(m["measured_ms"], m["test_accuracy"]) for m in models if m.get("test_accuracy") is not None]
        if test:
            ax.scatter(*zip(*test), marker="*", s=80, color="tab:green", zorder=4,
                       label="exported: RETRAINED test accuracy, measured latency")
    ref = front["config"].get("reference")
    if ref and x == "latency_ms" and (ref.get("accuracy") or {}).get("accuracy") is not None:
        ax.scatter([ref["latency_ms"]], [ref["accuracy"]["accuracy"]], marker="X", s=90, color="tab:red", zorder=5,
                   label="your reference: test accuracy, latency in the table's terms")
    for c in budgets:
        if c.name == x:
            ax.axvline(c.bound, color="k", ls="--", lw=1, label=f"budget {c.text}")
    ax.set_xlabel(metric_label(x))
    ax.set_ylabel(f"{metric_label(y)} (search proxy unless marked retrained)")
    ax.set_title(title, fontsize=9)
    add_legend(ax, fontsize=7)
    save_figure(fig, path)


HV_REFERENCE = ("each objective scaled to [0, 1] between the run's best and worst feasible values; "
                "reference point 1.1 in every objective; 1.0 = the whole box")


def _hv_plot(path: Path, history: list[tuple[int, float]]) -> None:
    fig, ax = new_axes(6.4, 3.8)
    if history:
        ax.plot([h[0] for h in history], [h[1] for h in history], color="tab:blue")
    ax.set_xlabel("expensive evaluations")
    ax.set_ylabel("hypervolume (fraction of the reference box)")
    ax.set_title("hypervolume: " + HV_REFERENCE, fontsize=7, wrap=True)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def _error_plot(path: Path, models: list[dict[str, Any]], validation: list[dict[str, Any]], statistic: str) -> None:
    fig, ax = new_axes(4.8, 4.8)
    pairs = [(m["measured_ms"], m["predicted_ms"]) for m in models if m.get("predicted_ms") is not None]
    vpairs = [(v["measured_ms"], v["predicted_ms"]) for v in validation]
    allv = [v for p in pairs + vpairs for v in p]
    if allv:
        lo, hi = 0.9 * min(allv), 1.1 * max(allv)
        ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="exact")
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.9", label="±10%")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    if vpairs:
        ax.scatter(*zip(*vpairs), s=10, color="0.55", label="table validation models")
    if pairs:
        ax.scatter(*zip(*pairs), s=30, color="tab:orange", marker="s", label="exported models")
    ax.set_xlabel(f"measured latency, {statistic} (ms)")
    ax.set_ylabel("predicted latency (ms)")
    add_legend(ax, fontsize=7, loc="upper left")
    save_figure(fig, path)


def _cell(v: Any, digits: int = 3) -> tuple[str, str]:
    """(display text, sort key) of a table cell."""
    if v is None:
        return "-", ""
    if isinstance(v, bool):
        return ("yes" if v else "NO"), str(int(v))
    if isinstance(v, float):
        return f"{v:.{digits}f}", repr(v)
    if isinstance(v, int):
        return f"{v:,}", str(v)
    return html.escape(str(v)), html.escape(str(v))


_SCRIPT = """
const table = document.getElementById('models');
function sortBy(col, dir) {
  const ths = Array.from(table.tHead.rows[0].cells);
  const i = ths.findIndex(th => th.dataset.col === col);
  if (i < 0) return;
  const rows = Array.from(table.tBodies[0].rows);
  const numeric = ths[i].dataset.type === 'num';
  rows.sort((a, b) => {
    const x = a.cells[i].dataset.key, y = b.cells[i].dataset.key;
    const c = numeric ? (parseFloat(x === '' ? 'NaN' : x) || 0) - (parseFloat(y === '' ? 'NaN' : y) || 0) : x.localeCompare(y);
    return dir * c;
  });
  rows.forEach(r => table.tBodies[0].appendChild(r));
  ths.forEach(th => th.removeAttribute('aria-sort'));
  ths[i].setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
  table.dataset.sortedBy = col;
}
Array.from(table.tHead.rows[0].cells).forEach(th => th.addEventListener('click', () => {
  sortBy(th.dataset.col, th.getAttribute('aria-sort') === 'ascending' ? -1 : 1);
}));
const m = location.hash.match(/sort=([\\w-]+)(:desc)?/);
if (m) sortBy(m[1], m[2] ? -1 : 1);
document.querySelectorAll('img').forEach(img => {
  const mark = () => { img.dataset.loaded = img.naturalWidth > 0 ? 'yes' : 'no'; };
  if (img.complete) mark(); else { img.addEventListener('load', mark); img.addEventListener('error', mark); }
});
document.body.dataset.ready = 'yes';
"""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0;cursor:pointer;user-select:none}td.l,th.l{text-align:left}td.arch{max-width:28em;overflow-wrap:anywhere;font-family:monospace;font-size:11px}
tr.over td{background:#fde2e2}img{max-width:100%;border:1px solid #eee}.plots{display:flex;flex-wrap:wrap;gap:1em}
code{font-size:12px}
"""


def write_report(run_dir: str | Path, out: str | Path | None = None, export_dir: str | Path | None = None) -> Path:
    """Write the report; returns the path of ``index.html``."""
    run = RunDir(run_dir)
    run_dir = run.path
    front = run.front()
    out = Path(out) if out else run_dir / "report"
    output_folder(out, "report folder (give --out to write it elsewhere)")
    if export_dir is None:
        export_dir = run.exported_to()
    index = None
    if export_dir is not None:
        ipath = Path(export_dir) / "index.json"
        if not ipath.is_file():
            raise HwnasError(f"{ipath}: not found (run hwnas export first, or leave --export out)")
        index = read_json(ipath, HwnasError, "export index")

    objectives = front["objectives"]["objectives"]
    y = next((o["name"] for o in objectives if not o["cheap"]), objectives[0]["name"])
    x = next((o["name"] for o in objectives if o["name"] != y), y)
    constraints = ObjectiveSet.from_dict(front["objectives"]).constraints
    budgets = [c.text for c in constraints]
    evaluations = _evaluations(run)
    history = run.history()
    by_id = {m["arch_id"]: m for m in front["front"]}
    models = []
    if index:
        for m in index["models"]:
            models.append({**m, "search_accuracy": by_id.get(m["arch_id"], {}).get(y)})
    validation: list[dict[str, Any]] = []
    table_path = front["config"].get("table")
    if table_path:
        vpath = Path(table_path).with_suffix("")
        vpath = vpath.parent / f"{vpath.name}.validation.json"
        if vpath.is_file():
            validation = read_json(vpath, HwnasError, "validation report").get("models", [])

    _front_plot(out / "front.png", front, evaluations, models, x, y, constraints, front_title(run.config()))
    _hv_plot(out / "hypervolume.png", history)
    _error_plot(out / "prediction_error.png", models, validation, index["statistic"] if index else "p10")

    head, rows, caption = _model_table(models, index, out) if models else _front_table(front, run_dir)
    page = _page(run_dir, front, budgets, (head, rows, caption), _recommended(front, index))
    target = out / "index.html"
    write_atomic(target, page)
    return target


def _recommended(front: dict[str, Any], index: dict[str, Any] | None) -> str:
    """The recommendation paragraph: the export's (measured) when there is one, else the search's."""
    rec = (index or {}).get("recommended")
    if rec:
        against = (f" <b>Against your reference:</b> {html.escape(rec['against_reference'])} (both measured in one "
                   "pass, on the same test split)." if rec.get("against_reference") else "")
        return (f"<p class=\"recommended\"><b>Recommended: {html.escape(rec['name'])}</b> "
                f"(<code>{html.escape(rec['arch'])}</code>): {html.escape(rec['why'])}.{against}</p>")
    found = recommend(front["front"], ObjectiveSet.from_dict(front["objectives"]))
    if found is None:
        return ""
    return (f"<p class=\"recommended\"><b>Recommended: <code>{html.escape(found.arch)}</code></b>: "
            f"{html.escape(found.why)} (as the search predicted it; export it to measure it).</p>")


def _rungs(cfg: dict[str, Any]) -> str:
    """A multi-fidelity run's scheduler, in words; the front's accuracies come from each member's highest rung."""
    f = cfg.get("fidelity")
    if not f:
        return ""
    return (f" (successive halving: {f['min_epochs']} to {f['max_epochs']} epochs, reduction factor {f['eta']}; "
            "each member's accuracy is from the most epochs it was trained for)")


def _page(run_dir: Path, front: dict[str, Any], budgets: list[str], table: tuple[str, list[str], str],
          recommended: str) -> str:
    """The report page: run summary, the recommended model, the sortable table and the plots (one
    static file)."""
    head, rows, caption = table
    cfg = front["config"]
    fp = front.get("fingerprint") or {}
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hwnas report: {html.escape(str(run_dir))}</title>
<style>{_STYLE}</style></head>
<body>
<h1>hwnas report</h1>
<p>Run <code>{html.escape(str(run_dir))}</code>: space <b>{html.escape(cfg['space'])}</b> at {html.escape(cfg['input_shape'])},
strategy <b>{html.escape(cfg['strategy'])}</b>, accuracy <b>{html.escape(str(cfg.get('accuracy')))}</b>,
{front['evaluations_used']} evaluations{_rungs(cfg)}, seed {cfg['seed']}; budgets: {html.escape(', '.join(budgets) or 'none')}.
{'<b>' + html.escape(front['note']) + '.</b>' if front.get('partial') else '' if front['feasible'] else '<b>No candidate met the budget: the front below is least-violating.</b>'}</p>
<p>Table device: {html.escape(str(fp.get('device', '-')))} ({html.escape(str(fp.get('cpu_model', '-')))},
onnxruntime {html.escape(str(fp.get('onnxruntime_version', '-')))}); search versions:
{html.escape(', '.join(f'{k} {v}' for k, v in (front.get('versions') or {}).items()))}.</p>
{recommended}
<h2>Models</h2>
<table id="models"><caption>{caption}</caption><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
<p>Click a column to sort. Rows in red break the budget as measured.</p>
<h2>Plots</h2>
<div class="plots">
<figure><img src="front.png" alt="Pareto front, predicted and measured"><figcaption>Pareto front: predicted by the
table (blue), measured after export (orange squares; arrows go from predicted to measured latency); green stars
are retrained models' test accuracy, the other points the search's accuracy proxy.</figcaption></figure>
<figure><img src="hypervolume.png" alt="hypervolume against evaluations"><figcaption>Hypervolume of the
feasible front after each expensive evaluation: {html.escape(HV_REFERENCE)}.</figcaption></figure>
<figure><img src="prediction_error.png" alt="prediction error scatter"><figcaption>Predicted against measured
latency.</figcaption></figure>
</div>
<script>{_SCRIPT}</script>
</body></html>
"""
    return page


def _evaluations(run: RunDir) -> list[dict[str, Any]]:
    if not run.archive_path.is_file():
        return []
    with run.archive() as a:
        return [dict(r.metrics) for r in a.records() if r.status == "complete"]


def _model_table(models: list[dict[str, Any]], index: dict[str, Any], out: Path) -> tuple[str, list[str], str]:
    """The sortable table of exported models: header, rows, caption."""
    rel = Path(os.path.relpath(Path(index["out"]), out))
    cols = [("name", "model", "str"), ("arch", "architecture", "str"), ("val_accuracy", "val acc (%)", "num"),
            ("test_accuracy", "test acc (%)", "num"), ("predicted_ms", "predicted ms", "num"),
            ("measured_ms", "measured ms", "num"), ("latency_error_pct", "error (%)", "num"),
            ("params", "params", "num"), ("flops", "FLOPs", "num"), ("peak_memory_kb", "peak memory (KiB)", "num"),
            ("model_kb", "weights (KiB)", "num"), ("budget_ok", "in budget", "num")]
    if any("int8_measured_ms" in m for m in models):  # fp32 and int8 side by side
        cols[6:6] = [("int8_measured_ms", "int8 ms", "num"), ("int8_speedup", "int8 speed-up", "num"),
                     ("fp32_onnx_test_accuracy", "fp32 test (ort, %)", "num"),
                     ("int8_test_accuracy", "int8 test (ort, %)", "num"), ("int8_agreement_pct", "int8 agree (%)", "num")]
    head = "".join(f'<th data-col="{c}" data-type="{t}" class="{"l" if t == "str" else ""}">{html.escape(label)}</th>'
                   for c, label, t in cols) + '<th class="l">files</th>'
    rows = []
    for m in models:
        cells = []
        for c, _label, t in cols:
            text, key = _cell(m.get(c), 2 if "accuracy" in c or "pct" in c or "speedup" in c else 3)
            if c == "int8_speedup" and m.get("int8_faster") is False:
                text += " (slower)"
            if c == "name":
                text = f'<a href="{html.escape(str(rel / m["card_md"]))}">{text}</a>'
            cls = "l arch" if c == "arch" else ("l" if t == "str" else "")
            cells.append(f'<td data-key="{key}" class="{cls}">{text}</td>')
        links = " ".join(f'<a href="{html.escape(str(rel / m[k]))}">{label}</a>'
                         for k, label in (("onnx", "onnx"), ("int8_onnx", "int8"), ("card_json", "json"),
                                          ("card_md", "card")) if m.get(k))
        rows.append(f'<tr class="{"" if m["budget_ok"] else "over"}">{"".join(cells)}<td class="l">{links}</td></tr>')
    caption = (f"{len(models)} exported models, measured on {html.escape(index['device'])} "
               f"({html.escape(index['statistic'])}); {len(index['over_budget'])} over budget")
    return head, rows, caption


def _front_table(front: dict[str, Any], run_dir: Path) -> tuple[str, list[str], str]:
    """Before export: the front members with their objectives."""
    objectives = front["objectives"]["objectives"]
    cols = [("arch", "architecture", "str")] + [(o["name"], o["name"], "num") for o in objectives] + [("feasible", "feasible", "num")]
    head = "".join(f'<th data-col="{c}" data-type="{t}" class="{"l" if t == "str" else ""}">{html.escape(lbl)}</th>'
                   for c, lbl, t in cols)
    rows = []
    for m in front["front"]:
        cells = [f'<td data-key="{_cell(m.get(c))[1]}" class="{"l" if t == "str" else ""}">{_cell(m.get(c))[0]}</td>'
                 for c, _l, t in cols]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    caption = f"{len(front['front'])} front members (not exported yet: hwnas export {html.escape(str(run_dir))} --out DIR)"
    return head, rows, caption
