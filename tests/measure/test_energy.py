"""Energy meters against fakes at the hardware boundary: a sysfs tree and a power-meter CSV."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hwnas.device.energy import EnergyMeterError, ExternalMeter, RaplMeter, estimate_energy_mj, integrate_power_mj, open_meter
from hwnas.device.spec import parse_device


class FakeRapl:
    """A powercap zone whose energy_uj a background thread advances, wrapping at the max."""

    def __init__(self, root: Path, *, start_uj: int, max_uj: int, uj_per_tick: int) -> None:
        self.zone = root / "intel-rapl:0"
        self.zone.mkdir(parents=True)
        (self.zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
        self.value, self.max_uj, self.step = start_uj, max_uj, uj_per_tick
        self.ticks = 0
        self._write()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _write(self) -> None:
        tmp = self.zone / "energy_uj.tmp"
        tmp.write_text(f"{self.value}\n")
        tmp.replace(self.zone / "energy_uj")

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.value = (self.value + self.step) % (self.max_uj + 1)
                self.ticks += 1
                self._write()
            time.sleep(0.001)

    def __enter__(self) -> FakeRapl:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


def test_rapl_reads_the_counter_across_a_wraparound(tmp_path: Path) -> None:
    step = 1000  # 1 mJ per tick
    with FakeRapl(tmp_path, start_uj=10**6 - 20_000, max_uj=10**6 - 1, uj_per_tick=step) as rapl:
        meter = RaplMeter(rapl.zone)
        with rapl._lock:
            meter.start()
            t0 = rapl.ticks
        time.sleep(0.1)  # ~100 ticks: the counter wraps after 20
        with rapl._lock:
            mj = meter.stop()
            ticks = rapl.ticks - t0
    assert ticks > 20
    assert mj == pytest.approx(ticks * step / 1000)
    assert meter.source == f"rapl:{rapl.zone}"


def test_rapl_measure_divides_by_inferences(tmp_path: Path) -> None:
    with FakeRapl(tmp_path, start_uj=0, max_uj=2**32 - 1, uj_per_tick=500) as rapl:
        spec = parse_device({"name": "r", "energy": {"meter": "rapl", "path": str(rapl.zone)}})
        meter = open_meter(spec)
        per_call, calls = meter.measure(lambda: time.sleep(0.002), min_window_s=0.05)
    assert calls >= 10
    assert 0 < per_call < 5  # ~0.5 mJ per ms, ~2 ms a call


def test_unreadable_rapl_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EnergyMeterError, match="cannot be read"):
        RaplMeter(tmp_path / "no-such-zone")


def test_external_csv_is_integrated_over_the_window(tmp_path: Path) -> None:
    csv_path = tmp_path / "power.csv"
    t = np.arange(0.0, 10.0, 0.01)
    power = 2.0 + np.sin(t)  # watts
    csv_path.write_text("timestamp_s,power_w\n" + "\n".join(f"{a:.3f},{b:.6f}" for a, b in zip(t, power)) + "\n")
    exact_mj = (2.0 * (5.0 - 2.0) - (np.cos(5.0) - np.cos(2.0))) * 1000
    assert integrate_power_mj(t, power, 2.0, 5.0) == pytest.approx(exact_mj, rel=1e-4)
    times = iter([2.0, 5.0])
    meter = ExternalMeter(csv_path, clock=lambda: next(times))
    meter.start()
    assert meter.stop() == pytest.approx(exact_mj, rel=1e-4)
    assert meter.source == f"external:{csv_path}"


def test_external_csv_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,watts\n0,1\n1,1\n")
    with pytest.raises(EnergyMeterError, match="no column 'timestamp_s'"):
        ExternalMeter(bad)
    short = tmp_path / "short.csv"
    short.write_text("timestamp_s,power_w\n0,1\n1,1\n")
    times = iter([0.5, 3.0])
    meter = ExternalMeter(short, clock=lambda: next(times), wait_s=0.1)
    meter.start()
    with pytest.raises(EnergyMeterError, match="not the window"):
        meter.stop()
    with pytest.raises(EnergyMeterError, match="no such power CSV"):
        ExternalMeter(tmp_path / "missing.csv")


def test_nvml_without_the_library_says_what_to_install() -> None:
    pytest.importorskip("torch")
    try:
        import pynvml  # noqa: F401
    except ImportError:
        spec = parse_device({"name": "g", "energy": {"meter": "nvml"}})
        with pytest.raises(EnergyMeterError, match="nvidia-ml-py"):
            open_meter(spec)
    else:  # pragma: no cover - a machine with the library but maybe no GPU
        pytest.skip("nvidia-ml-py is installed")


def test_no_meter_and_the_stated_estimate() -> None:
    assert open_meter(parse_device({"name": "n"})) is None
    assert estimate_energy_mj(10**9, 0) == pytest.approx(4.6)  # 1 GMAC at 4.6 pJ
    assert estimate_energy_mj(0, 10**6) == pytest.approx(0.16)


def test_an_external_power_csv_that_is_a_pipe_is_refused(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "power.csv")  # reading it would block forever
    with pytest.raises(EnergyMeterError, match="power.csv: no such power CSV, or not a regular file"):
        ExternalMeter(tmp_path / "power.csv")
