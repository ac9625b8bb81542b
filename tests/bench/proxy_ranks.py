"""How well each accuracy proxy ranks architectures: a script, not a test (it runs for minutes to
hours and resumes). Run it as ``.venv/bin/python tests/bench/proxy_ranks.py`` with the settings
below in the environment; it prints and writes bench-results/accuracy-*.json, which
docs/benchmarks/accuracy.md reports.

For N random architectures: the proxy accuracy from `train` (low fidelity) and from `supernet`
(one-shot weights + BN recalibration), against stand-alone training at full fidelity; Kendall tau
between each proxy and the full-fidelity ranking (target >= 0.5), seconds per `train` evaluation,
supernet training time and seconds per subnet evaluation. Two free baselines are ranked the same
way, multiply-adds and parameters: a proxy that does not beat "bigger is better" adds nothing.
Depth (the number of blocks) is a third: `kendall_tau_within_depth` ranks inside groups of
architectures of one depth (pair-weighted mean), which says whether a proxy ranks architectures or
only their depth.

The reference is itself noisy: stand-alone training with another seed ranks the same architectures
differently. So each architecture is trained stand-alone with several seeds; the reference is the
mean, and `reference_self` (seed 0 against seed 1) says how far a single full training agrees
with another; with 4 or more seeds, `reference_split_half` ranks the mean of half the seeds against
the mean of the other half: the reference's own noise, the ceiling a proxy is measured against;
with 3 or more, `single_full_training_vs_rest` is the median tau of one seed's full training
against the mean of the others: how well the expensive thing a proxy stands in for ranks.
A 95% confidence interval of each tau comes from a bootstrap over architectures.

Default: dppnet (one cell per stage) on digits, which this CPU trains in seconds. For the issue's
setting: HWNAS_BENCH_ACC="mobilenet:1x28x28:mnist5k:scale=0.25" HWNAS_BENCH_FULL_EPOCHS=6
HWNAS_BENCH_SUPERNET_EPOCHS=10 (about 45 minutes here, 12-16 s per epoch per model). Space options
follow the third colon, comma-separated. On MNIST and digits every architecture lands at 96-99%,
and two full trainings rank them alike only at tau 0.1-0.4; the task on which the reference agrees
with itself (tau 0.67-0.84 between two seeds) is Fashion-MNIST (Debian's dataset-fashion-mnist):
HWNAS_BENCH_ACC="dppnet:1x28x28:fashion-mnist@5000" HWNAS_BENCH_FULL_EPOCHS=10
HWNAS_BENCH_REF_SEEDS=3 (about 40 minutes with two shards, one per core).

Long runs resume: each architecture's stand-alone and low-fidelity results (with their seconds)
are saved to bench-results/cache/ as they finish, and the trained supernet is saved there too, so
a killed run continues where it stopped and a change to the supernet alone re-runs only the
supernet. Other knobs: HWNAS_BENCH_ACC_N (architectures, 20), HWNAS_BENCH_THREADS (torch threads,
default all cores), HWNAS_BENCH_REF_SEEDS (stand-alone trainings per architecture with
different seeds, 2), HWNAS_BENCH_SUPERNET_OPTS (supernet settings, "key=value,..."), and
HWNAS_BENCH_ACC_PARTS ("train", "supernet", "zero-cost", comma-separated; default all three; the
zero-cost proxies need the train part's reference) to run some parts only,
HWNAS_BENCH_SUPERNET_SEEDS (supernets trained with seeds 0..n-1, or from the options' seed on;
1; with 2 or more, `supernet_self` ranks the first two against each other, and every seed's tau and that of the
subnets' accuracy averaged over the seeds, `supernet_seed_mean`, are reported, and
`ensemble_of_k` gives the spread of an ensemble's tau over k-subsets of the seeds),
HWNAS_BENCH_ACC_SEED (the Generator seed that draws the architectures, 2026; another seed gives
a held-out set for settings chosen on the first) and HWNAS_BENCH_ACC_SHARD ("i/n": this process
trains every n-th architecture from the i-th, so n processes, one per core, share the work and
the cache; a last run without it gathers the results).
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import bootstrap, kendalltau

from hwnas.cli import _key_value
from hwnas.evaluation.proxies import ZeroCostProxies
from hwnas.evaluation.supernet import SHARING_VERSION, SupernetAccuracy, SupernetSettings
from hwnas.evaluation.training import TrainAccuracy
from hwnas.spaces import get_space
from hwnas.spaces.facts import describe

ROOT = Path(__file__).resolve().parents[2]
SETTING = os.environ.get("HWNAS_BENCH_ACC", "dppnet:1x8x8:digits")
N = int(os.environ.get("HWNAS_BENCH_ACC_N", "20"))
FULL_EPOCHS = int(os.environ.get("HWNAS_BENCH_FULL_EPOCHS", "15"))
SUPERNET_EPOCHS = int(os.environ.get("HWNAS_BENCH_SUPERNET_EPOCHS", "30"))
THREADS = int(os.environ.get("HWNAS_BENCH_THREADS", "0")) or None
REF_SEEDS = int(os.environ.get("HWNAS_BENCH_REF_SEEDS", "2"))
PARTS = set(os.environ.get("HWNAS_BENCH_ACC_PARTS", "train,supernet,zero-cost").split(","))
ARCH_SEED = int(os.environ.get("HWNAS_BENCH_ACC_SEED", "2026"))  # which random architectures
SUPERNET_SEEDS = int(os.environ.get("HWNAS_BENCH_SUPERNET_SEEDS", "1"))  # supernets trained with seeds 0..n-1
SHARD, SHARDS = map(int, os.environ.get("HWNAS_BENCH_ACC_SHARD", "0/1").split("/"))
TARGET_TAU = 0.5  # the target for a proxy's rank agreement with stand-alone training
LOW_EPOCHS, LOW_SUBSET = 3, 1.0  # the train estimator's default fidelity


def _options(text: str) -> dict[str, Any]:
    return dict(_key_value(item) for item in filter(None, text.split(",")))  # as the CLI reads KEY=VALUE


def _tau(proxy: list[float], full: list[float]) -> float:
    return float(kendalltau(proxy, full).statistic)


def _ensemble_spread(scores: list[list[float]], full: list[float], most: int = 5000) -> dict[str, dict[str, float]]:
    """For ensembles of k of the supernets (k = 1, 2, 4, 8, ... up to all but one): tau of the mean
    accuracy over every k-subset of the seeds (or ``most`` of them drawn at random), as median,
    10th and 90th percentiles, and the share of subsets at or above the target."""
    from itertools import combinations
    from math import comb

    a = np.asarray(scores, dtype=float)  # architectures x seeds
    n, rng, out = a.shape[1], np.random.default_rng(0), {}
    k = 1
    while k < n:
        subsets = (list(combinations(range(n), k)) if comb(n, k) <= most
                   else [tuple(rng.choice(n, k, replace=False)) for _ in range(most)])
        taus = np.array([_tau(list(a[:, list(c)].mean(1)), full) for c in subsets])
        out[str(k)] = {"subsets": len(subsets), "median": float(np.median(taus)), "p10": float(np.percentile(taus, 10)),
                       "p90": float(np.percentile(taus, 90)), "share_at_target": float(np.mean(taus >= TARGET_TAU))}
        k *= 2
    return out


def _tau_ci(proxy: list[float], full: list[float]) -> list[float]:
    """95% bootstrap interval of tau, resampling architectures (seeded: the same data, the same interval)."""
    res = bootstrap((np.asarray(proxy), np.asarray(full)), lambda p, f: kendalltau(p, f).statistic, paired=True,
                    vectorized=False, method="percentile", n_resamples=2000, rng=np.random.default_rng(0))
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def _tau_within(proxy: list[float], full: list[float], groups: list[int]) -> float | None:
    """Kendall tau inside groups of equal depth, averaged weighted by each group's pairs (groups of
    3 or more): whether a proxy ranks architectures of one depth, or only ranks depth."""
    taus, weights = [], []
    for g in sorted(set(groups)):
        idx = [i for i, v in enumerate(groups) if v == g]
        if len(idx) >= 3:
            t = kendalltau([proxy[i] for i in idx], [full[i] for i in idx]).statistic
            if np.isfinite(t):
                taus.append(float(t))
                weights.append(len(idx) * (len(idx) - 1) / 2)
    return float(np.average(taus, weights=weights)) if taus else None


def main() -> None:
    space_name, shape, dataset, *rest = SETTING.split(":")
    opts: dict[str, Any] = {"N": 1} if space_name == "dppnet" else {}
    opts.update(_options(rest[0] if rest else ""))
    space = get_space(space_name, input_shape=shape, **opts)
    archs = []
    seen = set()
    rng = np.random.default_rng(ARCH_SEED)
    while len(archs) < N:
        a = space.sample(rng, 1)[0]
        if a.id not in seen:
            seen.add(a.id)
            archs.append(a)
    cache = ROOT / "bench-results" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    tag = f"{space_name}-{'-'.join(f'{k}{v}' for k, v in sorted(opts.items()))}-{shape}-{dataset}"
    out: dict[str, Any] = {
        # every knob this run was given (the shard aside: it changes who trains, not what), so it can be re-run
        "command": " ".join([f"HWNAS_BENCH_ACC={SETTING}", f"HWNAS_BENCH_FULL_EPOCHS={FULL_EPOCHS}",
                             f"HWNAS_BENCH_SUPERNET_EPOCHS={SUPERNET_EPOCHS}", f"HWNAS_BENCH_ACC_N={N}",
                             f"HWNAS_BENCH_REF_SEEDS={REF_SEEDS}", f"HWNAS_BENCH_ACC_SEED={ARCH_SEED}",
                             f"HWNAS_BENCH_SUPERNET_SEEDS={SUPERNET_SEEDS}"]
                            + [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
                               if k in ("HWNAS_BENCH_SUPERNET_OPTS", "HWNAS_BENCH_THREADS", "HWNAS_BENCH_ACC_PARTS")]
                            + [".venv/bin/python tests/bench/proxy_ranks.py"]),
        "architecture_seed": ARCH_SEED, "space": space_name, "input": shape, "dataset": dataset, "architectures": N, "space_options": opts,
        "threads": THREADS or os.cpu_count(), "kendall_tau": {"target": TARGET_TAU}, "seconds": {}, "accuracy_mean": {},
    }
    per_arch: list[dict[str, Any]] = [{"arch": a.string} for a in archs]

    # Stand-alone (full fidelity) and the train proxy: saved per architecture as they finish.
    progress_path = cache / f"train-{tag}-full{FULL_EPOCHS}-low{LOW_EPOCHS}.json"
    progress: dict[str, dict[str, float]] = json.loads(progress_path.read_text()) if progress_path.is_file() else {}
    full = [TrainAccuracy(space, dataset=dataset, epochs=FULL_EPOCHS, seed=k, threads=THREADS) for k in range(REF_SEEDS)]
    low = TrainAccuracy(space, dataset=dataset, epochs=LOW_EPOCHS, subset=LOW_SUBSET, seed=0, threads=THREADS)

    def save() -> None:
        # other shards write the same file: merge under a lock instead of overwriting their work
        with open(progress_path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            disk = json.loads(progress_path.read_text()) if progress_path.is_file() else {}
            for key, values in disk.items():  # in place: `done` below is one of these dicts
                mine = progress.setdefault(key, {})
                for name, value in values.items():
                    mine.setdefault(name, value)
            tmp = progress_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(progress, indent=1))
            tmp.replace(progress_path)

    for i, (a, row) in enumerate(zip(archs, per_arch)):
        done = progress.setdefault(a.id, {})
        if "train" in PARTS and i % SHARDS == SHARD:
            for k, est in enumerate(full):  # seed 0 keeps the plain names "full" and "full_s"
                name = "full" if k == 0 else f"full_seed{k}"
                if name not in done:
                    t0 = time.perf_counter()
                    done[name] = est.accuracy(a)
                    done[f"{name}_s"] = time.perf_counter() - t0
                    save()
                    print(f"{a.string}: {name} {done[name]:.2f}% ({done[name + '_s']:.0f} s)", flush=True)
            if "train" not in done:
                t0 = time.perf_counter()
                done["train"] = low.accuracy(a)
                done["train_s"] = time.perf_counter() - t0
                save()
                print(f"{a.string}: train proxy {done['train']:.2f}% ({done['train_s']:.0f} s)", flush=True)
    if SHARDS > 1:  # pick up what the other shards finished
        save()
    for a, row in zip(archs, per_arch):
        row.update(progress[a.id])
    names = ["full"] + [f"full_seed{k}" for k in range(1, REF_SEEDS)]
    have_full = all(n in r for r in per_arch for n in names + ["train"])
    out["full_fidelity"] = f"stand-alone, {FULL_EPOCHS} epochs, full training split, mean of seeds 0-{REF_SEEDS - 1}"
    out["train_proxy"] = f"{LOW_EPOCHS} epochs, {LOW_SUBSET:.0%} of the training split, seed 0"
    if have_full:
        for r in per_arch:
            r["reference"] = float(np.mean([r[n] for n in names]))
        ref = [r["reference"] for r in per_arch]
        out["kendall_tau"]["train"] = _tau([r["train"] for r in per_arch], ref)
        out["kendall_tau_ci95"] = {"train": _tau_ci([r["train"] for r in per_arch], ref)}
        if REF_SEEDS > 1:
            out["kendall_tau"]["reference_self"] = _tau([r["full"] for r in per_arch], [r["full_seed1"] for r in per_arch])
            out["reference_spread_points"] = {  # as supernet_spread_points, for the stand-alone trainings
                "between_architectures_sd": float(np.std(ref, ddof=1)),
                "between_seeds_sd_median": float(np.median([np.std([r[n] for n in names], ddof=1) for r in per_arch]))}
            # the train proxy shares seed 0 (initial weights, batch order) with the first reference run
            others = [float(np.mean([r[n] for n in names[1:]])) for r in per_arch]
            out["kendall_tau"]["train_vs_other_seeds"] = _tau([r["train"] for r in per_arch], others)
        if REF_SEEDS >= 4:
            # how far the reference agrees with itself: the mean of half the seeds against the other half
            half = REF_SEEDS // 2
            first = [float(np.mean([r[n] for n in names[:half]])) for r in per_arch]
            second = [float(np.mean([r[n] for n in names[half:2 * half]])) for r in per_arch]
            out["kendall_tau"]["reference_split_half"] = _tau(first, second)
        if REF_SEEDS >= 3:
            # what one full-fidelity training, the thing a proxy stands in for, achieves against the
            # mean of the other seeds: a proxy above this ranks better than a full training would
            singles = [_tau([r[n] for r in per_arch], [float(np.mean([r[m] for m in names if m != n])) for r in per_arch])
                       for n in names]
            out["kendall_tau"]["single_full_training_vs_rest"] = float(np.median(singles))
        # the baselines any proxy must beat: bigger models are often simply more accurate
        facts = [describe(space, a) for a in archs]
        for r, f in zip(per_arch, facts):
            r.update(macs=f.macs, params=f.params)
        out["kendall_tau"]["macs"] = _tau([f.macs for f in facts], ref)
        out["kendall_tau"]["params"] = _tau([f.params for f in facts], ref)
        # depth (the number of blocks) is free too; within one depth, a proxy must rank what depth cannot
        depth = [len(space.blocks(a)) for a in archs]
        for r, d in zip(per_arch, depth):
            r["blocks"] = d
        out["kendall_tau"]["blocks"] = _tau(depth, ref)
        out["kendall_tau_within_depth"] = {name: _tau_within(values, ref, depth) for name, values in
                                           (("train", [r["train"] for r in per_arch]), ("macs", [f.macs for f in facts]))}
        out["kendall_tau_ci95"]["macs"] = _tau_ci([f.macs for f in facts], ref)
        if "zero-cost" in PARTS:  # one minibatch at initialisation: do they rank better than MACs?
            zc = ZeroCostProxies(space, dataset=dataset, threads=THREADS)
            t0 = time.perf_counter()
            values = zc.evaluate(archs)
            out["seconds"]["zero_cost_per_architecture"] = (time.perf_counter() - t0) / len(archs)
            for name, v in values.items():
                for r, x in zip(per_arch, v):
                    r[name] = float(x)
                out["kendall_tau"][name] = _tau(list(v), ref)
                out["kendall_tau_ci95"][name] = _tau_ci(list(v), ref)
                out["kendall_tau_within_depth"][name] = _tau_within(list(v), ref, depth)
        out["seconds"].update(train_eval_median=float(np.median([r["train_s"] for r in per_arch])),
                              full_eval_median=float(np.median([r["full_s"] for r in per_arch])))
        out["accuracy_mean"].update(reference=float(np.mean(ref)), train=float(np.mean([r["train"] for r in per_arch])))
        out["accuracy_range"] = {"reference": [float(min(ref)), float(max(ref))]}

    if "supernet" in PARTS:
        # a supernet's ranking depends on its seed (initial weights, which paths trained when) as much
        # as a stand-alone training's does: with SUPERNET_SEEDS > 1 each seed is its own supernet
        taus = []
        for k in range(SUPERNET_SEEDS):
            sopts = {"epochs": SUPERNET_EPOCHS, **_options(os.environ.get("HWNAS_BENCH_SUPERNET_OPTS", ""))}
            sopts["seed"] = int(sopts.get("seed", 0)) + k  # a seed in the options is where the seeds start
            settings = SupernetSettings(**sopts)
            path = cache / f"supernet-{tag}-v{SHARING_VERSION}-{settings.key()}.pt"
            name = "supernet" if k == 0 else f"supernet_seed{k}"
            t0 = time.perf_counter()
            est = SupernetAccuracy(space, dataset=dataset, path=str(path), threads=THREADS, log=print, **sopts)
            load_s = time.perf_counter() - t0
            for a, row in zip(archs, per_arch):
                t0 = time.perf_counter()
                row[name] = est.accuracy(a)
                row["subnet_s" if k == 0 else f"{name}_s"] = time.perf_counter() - t0
            if k == 0:
                out["supernet_proxy"] = {**est.meta["settings"], **est.describe()["evaluation"], "path": str(path.relative_to(ROOT))}
                out["seconds"].update(supernet_training=est.train_seconds, supernet_load=load_s,
                                      subnet_eval_median=float(np.median([r["subnet_s"] for r in per_arch])))
                out["accuracy_mean"]["supernet"] = float(np.mean([r["supernet"] for r in per_arch]))
            if have_full:
                sn, ref = [r[name] for r in per_arch], [r["reference"] for r in per_arch]
                taus.append(_tau(sn, ref))
                out["kendall_tau_within_depth"][name] = _tau_within(sn, ref, [r["blocks"] for r in per_arch])
                if k == 0:
                    out["kendall_tau"]["supernet"] = taus[0]
                    out["kendall_tau_ci95"]["supernet"] = _tau_ci(sn, ref)
        if SUPERNET_SEEDS > 1:
            out["supernet_seeds"] = SUPERNET_SEEDS
            # how far two supernets trained alike agree: the proxy's own noise
            out["kendall_tau"]["supernet_self"] = _tau([r["supernet"] for r in per_arch], [r["supernet_seed1"] for r in per_arch])
            if taus:
                out["kendall_tau"]["supernet_each_seed"] = taus
                out["kendall_tau"]["supernet_median_seed"] = float(np.median(taus))
                # an ensemble: each subnet's accuracy averaged over the supernets (SUPERNET_SEEDS times the cost),
                # what --accuracy-opt ensemble=SUPERNET_SEEDS scores (test_supernet checks that the two agree)
                sn_names = ["supernet"] + [f"supernet_seed{k}" for k in range(1, SUPERNET_SEEDS)]
                mean = [float(np.mean([r[n] for n in sn_names])) for r in per_arch]
                out["kendall_tau"]["supernet_seed_mean"] = _tau(mean, [r["reference"] for r in per_arch])
                out["kendall_tau_within_depth"]["supernet_seed_mean"] = _tau_within(
                    mean, [r["reference"] for r in per_arch], [r["blocks"] for r in per_arch])
                # signal and noise, in accuracy points: how far apart the architectures' mean scores are,
                # against how far one architecture's score moves from seed to seed (averaging k seeds
                # divides the second by sqrt(k))
                seeds_sd = [float(np.std([r[n] for n in sn_names], ddof=1)) for r in per_arch]
                out["supernet_spread_points"] = {"between_architectures_sd": float(np.std(mean, ddof=1)),
                                                 "between_seeds_sd_median": float(np.median(seeds_sd))}
                # what an ensemble of k of these supernets typically gives (--accuracy-opt ensemble=k):
                # the spread of its tau over k-subsets of the seeds, one draw of seeds being no evidence
                out["ensemble_of_k"] = _ensemble_spread([[r[n] for n in sn_names] for r in per_arch],
                                                        [r["reference"] for r in per_arch])
    out["per_architecture"] = per_arch
    (ROOT / "bench-results" / f"accuracy-{space_name}-{dataset}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n== proxy rank agreement, {space_name} {shape} on {dataset}, {N} architectures ==")
    print(json.dumps({k: out.get(k) for k in ("kendall_tau", "kendall_tau_within_depth", "kendall_tau_ci95", "ensemble_of_k",
                                              "reference_spread_points", "supernet_spread_points", "seconds",
                                              "accuracy_mean")}, indent=1))


if __name__ == "__main__":
    main()
