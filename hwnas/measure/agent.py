"""hwnas's measurement agent: what runs on a remote target.

It needs only Python >= 3.8, numpy and onnxruntime there, and never imports torch or hwnas:
hwnas copies this file and ``hwnas/measure/timing.py`` (as ``hwnas_timing.py``) into a work folder on
the target over SSH, then runs

    python agent.py probe                      versions and providers, as JSON
    python agent.py fingerprint < runtime.json the device fingerprint, as JSON
    python agent.py measure JOB.json           time the job's ONNX files; statistics as JSON

A job names its ONNX files and input shapes, the runtime settings, the protocol and the energy
meter. The files are timed together with the same protocol as local profiling (warm-up,
interleaved rounds, stability rule, re-measurement), on the pinned cores, with seeded inputs
bound once (IOBinding); the energy meter (``rapl`` or ``nvml``) is read over a window per file.
Inside the hwnas package the same functions build local sessions (``hwnas.device.spec``), so local and
remote sessions are configured by one piece of code.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import numpy as np
import onnxruntime as ort

try:  # inside the package
    from hwnas.measure.timing import Protocol, measure
except ImportError:  # shipped to a target: the copy beside this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from hwnas_timing import Protocol, measure  # type: ignore[no-redef]

OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
EXEC_MODES = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL, "parallel": ort.ExecutionMode.ORT_PARALLEL}


def session_options(runtime: dict) -> ort.SessionOptions:
    """onnxruntime session options from a device spec's ``runtime`` settings."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(runtime.get("intra_op_threads", 1))
    so.inter_op_num_threads = int(runtime.get("inter_op_threads", 1))
    so.graph_optimization_level = OPT_LEVELS[runtime.get("graph_optimization", "all")]
    so.execution_mode = EXEC_MODES[runtime.get("execution_mode", "sequential")]
    spin = "1" if runtime.get("allow_spinning") else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    so.log_severity_level = 3
    if runtime.get("provider", "CPUExecutionProvider") != "CPUExecutionProvider":
        # onnxruntime otherwise runs unsupported nodes (or everything) on the CPU without a word
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return so


def providers_of(runtime: dict) -> list:
    provider = runtime.get("provider", "CPUExecutionProvider")
    options = runtime.get("provider_options") or {}
    return [(provider, dict(options))] if options else [provider]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _probe_session(runtime: dict) -> ort.InferenceSession:
    """A one-node model: which provider does a real session use with these settings?"""
    import base64

    # Relu on float[1], opset 17, IR 8: built once with onnx.helper and embedded (the target has no onnx)
    model = base64.b64decode(
        "CAg6NwoMCgF4EgF5IgRSZWx1EgVwcm9iZVoPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAFCBAoAEBE=")
    return ort.InferenceSession(model, sess_options=session_options(runtime), providers=providers_of(runtime))


def fingerprint(runtime: dict, batch_size: int) -> dict:
    """The same fields as ``hwnas.device.spec.fingerprint``, read here."""
    sess = _probe_session(runtime)
    affinity = runtime.get("affinity")
    return {
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "system": platform.system(), "os": platform.platform(), "python": platform.python_version(),
        "onnxruntime_version": ort.__version__, "onnx_version": None, "provider_used": sess.get_providers()[0],
        "affinity": list(affinity) if affinity else None,
        "provider": runtime.get("provider", "CPUExecutionProvider"),
        "intra_op_threads": runtime.get("intra_op_threads", 1), "inter_op_threads": runtime.get("inter_op_threads", 1),
        "graph_optimization": runtime.get("graph_optimization", "all"),
        "execution_mode": runtime.get("execution_mode", "sequential"),
        "allow_spinning": bool(runtime.get("allow_spinning", False)), "batch_size": batch_size,
    }


def make_runner(path: str, runtime: dict, shapes: list, batch_size: int, seed: int = 0):
    """One inference per call on pre-bound seeded inputs (IOBinding), as the protocol times it."""
    sess = ort.InferenceSession(path, sess_options=session_options(runtime), providers=providers_of(runtime))
    used = sess.get_providers()
    if not used or used[0] != runtime.get("provider", "CPUExecutionProvider"):
        raise RuntimeError(f"onnxruntime used {used} instead of {runtime.get('provider')}")
    rng = np.random.default_rng(seed)
    io = sess.io_binding()
    for inp, shape in zip(sess.get_inputs(), shapes):
        io.bind_cpu_input(inp.name, rng.standard_normal((batch_size, *shape)).astype(np.float32))
    for out in sess.get_outputs():
        io.bind_output(out.name)

    def run():
        return sess.run_with_iobinding(io)

    run.session = sess  # keep the session alive with the closure
    return run


class _Rapl:
    def __init__(self, zone: str) -> None:
        self.zone = zone
        with open(os.path.join(zone, "max_energy_range_uj")) as f:
            self.max_uj = int(f.read())
        self.source = f"rapl:{zone}"

    def read(self) -> int:
        with open(os.path.join(self.zone, "energy_uj")) as f:
            return int(f.read())

    def window_mj(self, start: int, end: int) -> float:
        delta = end - start
        return (delta + self.max_uj + 1 if delta < 0 else delta) / 1000.0


class _Nvml:
    def __init__(self, index: int) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nvml, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)
        self.source = f"nvml:gpu{index}"

    def read(self) -> int:
        return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def window_mj(self, start: int, end: int) -> float:
        return float(end - start)


def open_meter(energy: dict):
    meter = energy.get("meter", "none")
    if meter == "none":
        return None
    if meter == "rapl":
        return _Rapl(energy.get("path") or "/sys/class/powercap/intel-rapl:0")
    if meter == "nvml":
        return _Nvml(int(energy.get("gpu_index", 0)))
    raise ValueError(f"energy meter {meter!r} cannot be read by the remote agent (use rapl, nvml or none)")


def energy_per_call_mj(meter, work, min_window_s: float) -> float:
    calls, start, t0 = 0, meter.read(), time.perf_counter()
    while True:
        work()
        calls += 1
        if time.perf_counter() - t0 >= min_window_s:
            break
    return meter.window_mj(start, meter.read()) / calls


def measure_job(job: dict) -> dict:
    runtime, energy = job["runtime"], job.get("energy") or {}
    runners = [make_runner(os.path.join(job["folder"], f["file"]), runtime, f["shapes"], job["batch_size"], job.get("seed", 0))
               for f in job["files"]]
    meter = open_meter(energy)
    affinity = runtime.get("affinity")
    before = os.sched_getaffinity(0) if affinity and hasattr(os, "sched_setaffinity") else None
    if before is not None:
        os.sched_setaffinity(0, set(affinity) & before or before)
    try:
        stats = measure(runners, Protocol(**job["protocol"]))
        joules = [energy_per_call_mj(meter, r, float(energy.get("min_window_s", 0.2))) for r in runners] if meter else None
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
    return {"stats": [s.to_dict() for s in stats], "energy_mj": joules, "meter": meter.source if meter else None}


def main(argv: list) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "probe":
        print(json.dumps({"python": platform.python_version(), "numpy": np.__version__, "onnxruntime": ort.__version__,
                          "providers": ort.get_available_providers(), "torch_loaded": "torch" in sys.modules}))
        return 0
    if command == "fingerprint":
        request = json.loads(sys.stdin.read())
        print(json.dumps(fingerprint(request["runtime"], request["batch_size"])))
        return 0
    if command == "measure":
        with open(argv[2]) as f:
            job = json.load(f)
        result = measure_job(job)
        result["torch_loaded"] = "torch" in sys.modules
        print(json.dumps(result))
        return 0
    print("usage: agent.py probe | fingerprint < runtime.json | measure JOB.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
