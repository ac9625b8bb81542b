"""What a search leaves in its run folder besides the archive: the front (JSON, CSV, PNG) and the
hypervolume after each evaluation (CSV), plus the one-line progress summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.files import output_folder, write_csv, write_json
from hwnas.core.pareto import constrained_front, scaled_hypervolume
from hwnas.core.plots import add_legend, metric_label, new_axes, save_figure, staircase
from hwnas.evaluation.sources import Evaluation
from hwnas.optimize.objectives import ObjectiveSet, is_feasible
from hwnas.optimize.fidelity import SuccessiveHalving, latest_per_architecture, rung_counts


def front_of(trace: Sequence[Evaluation], objectives: ObjectiveSet) -> tuple[list[Evaluation], bool]:
    """The constrained front of the complete evaluations (in a multi-fidelity search, each
    architecture's at the highest rung it reached), and whether it is feasible."""
    done = [e for e in latest_per_architecture(trace) if e.ok]
    if not done:
        return [], False
    F = objectives.F({m: np.array([e.metrics[m] for e in done]) for m in objectives.names})
    idx, feasible = constrained_front(F, np.array([e.violation for e in done]))
    return [done[i] for i in idx], feasible


def _objective_matrix(evaluations: Sequence[Evaluation], objectives: ObjectiveSet) -> np.ndarray:
    return objectives.F({m: np.array([e.metrics[m] for e in evaluations]) for m in objectives.names})


def history(trace: Sequence[Evaluation], objectives: ObjectiveSet) -> list[dict[str, float]]:
    """Run-relative hypervolume after each expensive evaluation (objectives scaled by the run's
    own ideal and nadir of feasible complete evaluations; reference point 1.1 in each), as a
    fraction of the reference box."""
    done = [e for e in trace if is_feasible(e)]
    if not done:
        return []
    F_all = _objective_matrix(done, objectives)
    ideal, nadir = F_all.min(0), F_all.max(0)
    rows, k, seen = [], 0, []
    for e in trace:
        if not e.expensive:
            continue
        k += 1
        if is_feasible(e):
            seen.append(e)
        hv = scaled_hypervolume(_objective_matrix(seen, objectives), ideal, nadir) if seen else 0.0
        rows.append({"eval": k, "hypervolume": hv})
    return rows


def progress_info(trace: Sequence[Evaluation], objectives: ObjectiveSet, scheduler: SuccessiveHalving | None = None) -> str:
    """Front size, best feasible accuracy and the run-relative hypervolume so far (and the
    evaluations per rung of a multi-fidelity search)."""
    front, feasible = front_of(trace, objectives)
    acc = next((o for o in objectives.objectives if not o.cheap and o.direction == "max"), None)
    best = max((e.metrics[acc.name] for e in front), default=float("nan")) if acc and feasible else float("nan")
    hv = float("nan")
    done = [e for e in trace if is_feasible(e)]
    if feasible and done:
        F = _objective_matrix(done, objectives)
        hv = scaled_hypervolume(F, F.min(0), F.max(0))
    return (f"front {len(front)}{'' if feasible or not front else ' (infeasible)'}  "
            f"best {acc.name if acc else ''} {best:.4g}  HV {hv:.3f}" + (f"  [{rung_counts(scheduler)}]" if scheduler else ""))


def front_members(front: Sequence[Evaluation], objectives: ObjectiveSet) -> list[dict[str, Any]]:
    """front.json's rows, listed from the cheapest (e.g. fastest) member up by the first cheap objective."""
    members = [{"arch": e.arch.string, "arch_id": e.arch.id, **{m: e.metrics.get(m) for m in objectives.metrics},
                "violation": e.violation, "feasible": bool(e.violation == 0),
                **({} if e.fidelity is None else {"epochs": e.fidelity})} for e in front]
    order = next((o for o in objectives.objectives if o.cheap), objectives.objectives[0])
    members.sort(key=lambda r: float(order.to_min(np.asarray(r[order.name], dtype=float))))
    return members


def front_record(run_dir: Path, config: Any, meta: dict[str, Any], members: list[dict[str, Any]], *, used: int,
                 feasible: bool, note: str, **flags: bool) -> dict[str, Any]:
    """front.json's content: the members with the run's objectives, config and provenance (``meta``:
    the archive's versions, fingerprint and sources); ``flags``: ``least_violating``, ``partial``."""
    return {"run_dir": str(run_dir), "feasible": feasible, "least_violating": False, **flags, "note": note,
            "objectives": config.objectives.to_dict(), "evaluations_used": used, "front": members,
            "config": config.to_dict(), "versions": meta.get("versions"), "fingerprint": meta.get("fingerprint"),
            "sources": meta.get("sources"), "seed": config.seed}


def write_front(run_dir: Path, record: dict[str, Any], members: Sequence[dict[str, Any]], objectives: ObjectiveSet) -> None:
    """front.json (``record``, members included) and front.csv."""
    output_folder(run_dir, "run folder")
    write_json(run_dir / "front.json", record)
    write_csv(run_dir / "front.csv", ["arch", "arch_id", *objectives.metrics, "feasible"],
              ([r["arch"], r["arch_id"], *(r[m] for m in objectives.metrics), r["feasible"]] for r in members))


def write_history(path: Path, rows: Sequence[dict[str, float]]) -> None:
    write_csv(path, ["eval", "hypervolume"], ([row["eval"], f"{row['hypervolume']:.6f}"] for row in rows))


def front_title(config: Any) -> str:
    """``<device>, <data>, <budget>``: what a front was searched for, for plot titles."""
    device = Path(config.table).parent.name if config.table else None
    data = config.accuracy_options.get("dataset") or (Path(config.benchmark).name if config.benchmark else None)
    budgets = ", ".join(c.text for c in config.objectives.constraints) or "no budget"
    parts = [f"device {device}" if device else "no device table", f"data {data}" if data else None, budgets]
    return " · ".join(p for p in parts if p)


def plot_front(path: Path, trace: Sequence[Evaluation], front: Sequence[Evaluation], objectives: ObjectiveSet,
               least_violating: bool, title: str = "") -> None:
    """Every complete evaluation in grey, the front on top as a staircase, the budget on the cheap
    axis; axis labels carry units, the title names device, data and budget."""
    objs = objectives.objectives
    if len(objs) < 2:
        return
    # accuracy-like objective on y, the first cheap one on x
    y = next((o for o in objs if not o.cheap), objs[0])
    x = next((o for o in objs if o is not y), objs[1])
    fig, ax = new_axes(6, 4.2)
    done = [e for e in trace if e.ok]
    if done:
        ax.scatter([e.metrics[x.name] for e in done], [e.metrics[y.name] for e in done], s=10, color="0.7", label="evaluated")
    if front:
        staircase(ax, [float(e.metrics.get(x.name, np.nan)) for e in front], [float(e.metrics.get(y.name, np.nan)) for e in front],
                  x_min=x.direction == "min", y_max=y.direction == "max",
                  color="tab:red" if least_violating else "tab:blue",
                  label="least-violating (budget not met)" if least_violating else "Pareto front")
    for c in objectives.constraints:
        if c.name == x.name:
            ax.axvline(c.bound, color="k", ls="--", lw=1, label=f"budget {c.text}")
    ax.set_xlabel(f"{metric_label(x.name)}, {'lower' if x.direction == 'min' else 'higher'} is better")
    ax.set_ylabel(f"{metric_label(y.name)}, {'higher' if y.direction == 'max' else 'lower'} is better")
    if title:
        ax.set_title(title, fontsize=9)
    add_legend(ax, fontsize=8)
    save_figure(fig, path)
