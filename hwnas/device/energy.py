"""Energy on a device: the spec's meter (``hwnas.measure.meters``, where the meters live) and the
explicit alternative, ``estimate_energy_mj``: a model of MACs and memory traffic with stated
coefficients, labelled ``estimated`` wherever it appears."""

from __future__ import annotations

from hwnas.device.spec import DeviceSpec
from hwnas.measure import meters
from hwnas.measure.meters import (EnergyMeter, EnergyMeterError, ExternalMeter, NvmlMeter, RaplMeter,
                                  integrate_power_mj)

__all__ = ["ENERGY_MODEL", "EnergyMeter", "EnergyMeterError", "ExternalMeter", "NvmlMeter", "RaplMeter",
           "estimate_energy_mj", "integrate_power_mj", "open_meter"]


def open_meter(spec: DeviceSpec) -> EnergyMeter | None:
    """The spec's meter, or None for ``meter = "none"``. Raises EnergyMeterError if unreadable."""
    return meters.open_meter(spec.energy, source=spec.source)


# A stated, deliberately simple energy model (Horowitz, ISSCC 2014, 45 nm): a 32-bit float
# multiply-add is about 4.6 pJ (3.7 + 0.9), a 32-bit DRAM access about 640 pJ (160 pJ per byte).
ENERGY_MODEL = {"name": "horowitz-45nm", "pj_per_mac": 4.6, "pj_per_byte": 160.0}


def estimate_energy_mj(macs: int, bytes_moved: int) -> float:
    """Estimated energy of one inference of a block: MACs and DRAM traffic times fixed costs."""
    return (macs * ENERGY_MODEL["pj_per_mac"] + bytes_moved * ENERGY_MODEL["pj_per_byte"]) * 1e-9
