"""hwnas's measurement agent: what runs on a remote target.

    python -m hwnas.measure.agent probe                      versions and providers, as JSON
    python -m hwnas.measure.agent fingerprint < runtime.json the device fingerprint, as JSON
    python -m hwnas.measure.agent conditions < affinity.json load, busy cores, clock, heat (hwnas.measure.conditions)
    python -m hwnas.measure.agent measure JOB.json           time the job's ONNX files (hwnas.measure.job)

The host runs the same modules for a local device, so local and remote sessions, timing, energy
meters, fingerprints and pinning cannot drift apart.

How it works, and why: ``docs/design.md`` (hwnas.measure.agent).
"""

from __future__ import annotations

import json
import platform
import sys

import numpy as np
import onnxruntime as ort

from hwnas.measure.conditions import read_conditions
from hwnas.measure.host import fingerprint
from hwnas.measure.job import run_job_json
from hwnas.measure.session import RuntimeSettings

USAGE = ("usage: python -m hwnas.measure.agent probe | fingerprint < runtime.json | conditions < affinity.json "
         "| measure JOB.json")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "probe":
        print(json.dumps({"python": platform.python_version(), "numpy": np.__version__, "onnxruntime": ort.__version__,
                          "providers": ort.get_available_providers(), "torch_loaded": "torch" in sys.modules}))
        return 0
    if command == "fingerprint":
        request = json.loads(sys.stdin.read())
        print(json.dumps(fingerprint(RuntimeSettings.from_dict(request["runtime"]), request["batch_size"])))
        return 0
    if command == "conditions":
        request = json.loads(sys.stdin.read() or "{}")
        print(json.dumps(read_conditions(request.get("affinity"))))
        return 0
    if command == "measure" and len(argv) > 2:
        with open(argv[2]) as f:
            job = json.load(f)
        result = run_job_json(job)
        result["torch_loaded"] = "torch" in sys.modules
        print(json.dumps(result))
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
