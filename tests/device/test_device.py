"""Device specs: the shipped ones, malformed ones, provider checks, fingerprint, pinning."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort
import pytest

from hwnas.device.spec import DeviceSpecError, ProviderUnavailableError, load_device, parse_device, spec_from_record
from hwnas.device.connect import check_provider, device_session, fingerprint, pinned

DEVICES = Path(__file__).resolve().parents[2] / "devices"


@pytest.mark.parametrize("path", sorted(DEVICES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_specs_parse_and_round_trip(path: Path) -> None:
    spec = load_device(path)
    assert spec.name == path.stem
    assert spec_from_record(spec.to_dict()) == spec


def test_local_cpu_spec() -> None:
    spec = load_device(DEVICES / "local-cpu.toml")
    assert spec.runtime.intra_op_threads == 1 and spec.runtime.provider == "CPUExecutionProvider"
    assert spec.energy.meter == "none" and spec.batch_size == 1


@pytest.mark.parametrize(
    ("text", "fieldname"),
    [
        ('name = "x"\n[runtime]\nintra_op_threads = "two"\n', "runtime.intra_op_threads"),
        ('name = "x"\n[runtime]\ngraph_optimization = "max"\n', "runtime.graph_optimization"),
        ('name = "x"\n[runtime]\nthreads = 2\n', "runtime.threads"),
        ('name = "x"\nbatch_size = 0\n', "batch_size"),
        ('[runtime]\nprovider = "CPUExecutionProvider"\n', "name"),
        ('name = "x"\n[energy]\nmeter = "wattmeter"\n', "energy.meter"),
        ('name = "x"\n[energy]\nmeter = "external"\n', "energy.path"),
        ('name = "x"\n[runtime]\naffinity = []\n', "runtime.affinity"),
        ('name = "x"\nconnection = "pi@host"\n', "connection"),
        ('name = "x"\nconnection = "ssh://pi@host:22"\nremote_batch = 0\n', "remote_batch"),
        ('name = "x"\npython = "/usr/bin/python3"\n', "python"),
        ('name = "x"\nconnection = "ssh://pi@host"\nkey_file = "/nonexistent/key"\n', "key_file"),
        ('name = "x"\n[protocol]\nstatistic = "p42"\n', "protocol"),
        ('name = "x"\ncolour = "red"\n', "colour"),
    ],
)
def test_malformed_specs_name_the_file_and_field(tmp_path: Path, text: str, fieldname: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DeviceSpecError) as exc:
        load_device(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: field '{fieldname}'") and "\n" not in message


def test_unparseable_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text('name = "x\n')
    with pytest.raises(DeviceSpecError, match="broken.toml: not valid TOML"):
        load_device(bad)
    with pytest.raises(DeviceSpecError, match="no such device spec"):
        load_device(tmp_path / "missing.toml")


def test_unavailable_provider_is_an_error_not_a_cpu_fallback(tmp_path: Path) -> None:
    spec = load_device(DEVICES / "cuda-gpu.toml")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ProviderUnavailableError, match="runtime.provider': CUDAExecutionProvider is not available"):
        check_provider(spec)
    with pytest.raises(ProviderUnavailableError):
        fingerprint(spec)
    with pytest.raises(ProviderUnavailableError):
        device_session(tmp_path / "any.onnx", spec)


def test_fingerprint_records_the_provider_actually_used() -> None:
    spec = parse_device({"name": "t", "runtime": {"intra_op_threads": 2}})
    fp = fingerprint(spec)
    assert fp["provider_used"] == "CPUExecutionProvider"
    assert fp["onnxruntime_version"] == ort.__version__
    assert fp["intra_op_threads"] == 2 and fp["cpu_count"] == os.cpu_count()
    assert fp["cpu_model"] and fp["os"]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux only")
def test_pinning_is_temporary() -> None:
    before = os.sched_getaffinity(0)
    core = min(before)
    with pinned((core,)):
        assert os.sched_getaffinity(0) == {core}
    assert os.sched_getaffinity(0) == before
    with pytest.raises(DeviceSpecError, match="names no core"), pinned((10_000,)):
        pass
