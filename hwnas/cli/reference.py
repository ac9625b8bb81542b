"""``hwnas search --reference MODEL.onnx``: the user's model measured for the run, and the
recommended model set against it at the end of the search."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from hwnas.spaces import get_space


def measure_reference_of(args: argparse.Namespace) -> dict[str, object]:
    """``--reference MODEL.onnx`` timed beside the table's sentinels; its record for the run."""
    from hwnas.core.errors import UsageError
    from hwnas.evaluation.reference import reference_record
    from hwnas.latency.table import open_table

    if not args.table:
        raise UsageError("--reference needs --table: the reference is timed on the table's device, beside its sentinels")
    table, _, _ = open_table(args.table, allow_mismatch=args.allow_mismatch)
    space = get_space(args.space, input_shape=args.input, num_classes=args.classes, **dict(args.space_opt))
    options = dict(args.accuracy_opt)
    scored = args.accuracy in ("train", "supernet") and options.get("dataset")  # scored as the candidates will be
    record = reference_record(args.reference, table, space, dataset=str(options["dataset"]) if scored else None,
                              split_seed=int(options.get("split_seed", 0)))
    print(f"reference {record['path']}: {record['measured_ms']:.4f} ms ({record['statistic']}) now, timed beside the "
          f"table's sentinels, which take {record['drift']:.2f}x their profiled time: {record['latency_ms']:.4f} ms "
          "in the table's terms")
    if scored:
        print(f"reference accuracy: {record['accuracy']['accuracy']:.2f}% on the test split of "
              f"{options['dataset']} ({record['accuracy']['n']} images)")
    return record


def against_reference(ref: Mapping[str, Any] | None, member: Mapping[str, Any]) -> str | None:
    """The search's recommended model against the reference, in the table's terms (None without one)."""
    if not ref or not member.get("latency_ms"):
        return None
    acc = ref.get("accuracy")
    return (f"predicted {ref['latency_ms'] / member['latency_ms']:.2f}x faster ({member['latency_ms']:.4f} vs "
            f"{ref['latency_ms']:.4f} ms, the table's terms)"
            + (f"; the reference scores {acc['accuracy']:.2f}% on the test split, which export --retrain compares "
               "with the recommended model's own" if acc else ""))
