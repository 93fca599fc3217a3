"""runtime/device.py: Execution, device and precision choices, the host allocator, reading values without syncs."""
from __future__ import annotations

import collections
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from featviz_cli import runtime as rt
from featviz_cli.config import json_schema, parse_spec
from featviz_cli.engine import render
from featviz_cli.errors import SpecError

CUDA = torch.cuda.is_available()
cuda_only = pytest.mark.skipif(not CUDA, reason="needs CUDA")


def _render(spec: dict[str, Any], **kw: Any):
    return render(parse_spec({**spec, **kw}))


# ---------------------------------------------------------------- spec options and their resolution


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("precision", "fp64", "precision: 'fp64' is not one of auto, fp32, bf16, fp16"),
        ("channels_last", "yes", "channels_last: expected true/false or 'auto'"),
        ("channels_last", 1, "channels_last: expected true/false or 'auto'"),
        ("compile", "fast", "compile: expected true or false"),
    ],
)
def test_speed_options_are_validated(tiny_spec: dict[str, Any], key: str, value: Any, message: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_spec({**tiny_spec, key: value})
    assert str(e.value).startswith(message)


def test_speed_options_defaults_and_schema(tiny_spec: dict[str, Any]) -> None:
    spec = parse_spec(tiny_spec)
    assert (spec.precision, spec.channels_last, spec.compile) == ("auto", "auto", False)
    assert parse_spec({**tiny_spec, "channels_last": False, "compile": True}).channels_last is False
    props = json_schema()["properties"]
    assert props["compile"]["type"] == "boolean"
    assert {"type": "boolean"} in props["channels_last"]["anyOf"] and {"enum": ["auto"]} in props["channels_last"]["anyOf"]
    assert "AMX" in props["precision"]["description"]


def test_resolve_precision_rules() -> None:
    cpu = torch.device("cpu")
    assert rt.resolve_precision("fp32", cpu) is None
    assert rt.resolve_precision("bf16", cpu) is torch.bfloat16
    with pytest.raises(SpecError, match="^precision: fp16 needs a CUDA device"):
        rt.resolve_precision("fp16", cpu)
    # auto on the CPU follows the hardware: bf16 only with native bf16 units
    expected = torch.bfloat16 if rt.cpu_has_native_bf16() else None
    assert rt.resolve_precision("auto", cpu) is expected
    assert rt.resolve_precision("auto", torch.device("mps")) is None


def test_resolve_channels_last() -> None:
    assert rt.resolve_channels_last("auto", torch.device("cpu")) is True
    assert rt.resolve_channels_last("auto", torch.device("mps")) is False
    assert rt.resolve_channels_last(False, torch.device("cpu")) is False
    assert rt.resolve_channels_last(True, torch.device("mps")) is True


def test_devices() -> None:
    assert rt.pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert rt.pick_device("auto").type in ("cpu", "mps")
        with pytest.raises(SpecError, match="device"):
            rt.pick_device("cuda:0")
    # issue 5: auto is bf16 on CPUs with native bf16 (AMX / AVX-512 BF16), fp32 on others (BENCHMARKS.md)
    assert rt.resolve_precision("auto", torch.device("cpu")) is (torch.bfloat16 if rt.cpu_has_native_bf16() else None)
    assert rt.resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(SpecError, match="precision"):
        rt.resolve_precision("fp16", torch.device("cpu"))


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        (("cuda:0",), "device", "CUDA is not available here"),
        (("mps",), "device", "MPS is not available here"),
        (("cpu", "fp16"), "precision", "fp16 needs a CUDA device"),
    ],
)
def test_execution_resolve_errors_name_the_field(settings: tuple[str, ...], field: str, message: str) -> None:
    if settings[0] == "cuda:0" and CUDA:
        pytest.skip("CUDA is available here")
    if settings[0] == "mps" and torch.backends.mps.is_available():
        pytest.skip("MPS is available here")
    with pytest.raises(SpecError) as e:
        rt.Execution.resolve(*settings)
    assert e.value.field == field and str(e.value).startswith(f"{field}: ") and message in str(e.value)


def test_execution_resolve_and_precision_names() -> None:
    cpu = torch.device("cpu")
    e = rt.Execution.resolve("cpu", "bf16", False, True)
    assert e == rt.Execution(cpu, torch.bfloat16, False, True) and e.precision == "bfloat16"
    assert rt.Execution.resolve("cpu", "fp32").precision == "fp32" and rt.Execution(cpu).dtype is None
    assert rt.Execution(torch.device("cuda"), torch.float16).precision == "float16"
    auto = rt.Execution.resolve("cpu")
    assert auto.channels_last == "auto" and auto.compile is False
    assert auto.dtype is (torch.bfloat16 if rt.cpu_has_native_bf16() else None)


# ---------------------------------------------------------------- host syncs and helpers


def test_value_reader_and_to_device_on_the_cpu() -> None:
    reader = rt.ValueReader(torch.device("cpu"))
    assert reader.push(3, torch.tensor(1.5)) == (3, 1.5)
    assert reader.flush() is None
    t = torch.ones(3)
    assert rt.to_device(t, torch.device("cpu")) is t


@cuda_only
def test_value_reader_lags_one_report_on_cuda() -> None:
    reader = rt.ValueReader(torch.device("cuda"))
    assert reader.push(1, torch.tensor(1.0, device="cuda")) is None
    assert reader.push(2, torch.tensor(2.0, device="cuda")) == (1, 1.0)
    assert reader.flush() == (2, 2.0)


@cuda_only
def test_cuda_step_loop_syncs_do_not_grow_with_steps(tiny_spec: dict[str, Any]) -> None:
    spec = {**tiny_spec, "device": "cuda"}
    _render(spec, steps=2)  # warm: cuDNN autotuning, allocator, pinned memory

    def syncs(steps: int) -> collections.Counter[str]:
        """Where (file:line of the Python caller) each host-device sync of a render happened."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                render(parse_spec({**spec, "steps": steps}), progress=lambda *a: None, progress_every=1)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return collections.Counter(f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message))

    short, long = syncs(3), syncs(12)
    # On failure the message lists the places that synced more often in the longer render.
    assert sum(long.values()) <= sum(short.values()), dict(long - short)


@cuda_only
@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16", "fp32"])
def test_cuda_precisions_render_finite_images(tiny_spec: dict[str, Any], precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    r = _render({**tiny_spec, "device": "cuda"}, precision=precision)
    assert torch.isfinite(r.images).all() and r.runtime["channels_last"] is True
    assert r.precision == {"auto": "bfloat16" if torch.cuda.is_bf16_supported() else "float16",
                           "bf16": "bfloat16", "fp16": "float16", "fp32": "fp32"}[precision]


@cuda_only
def test_cudnn_autotune_is_restored() -> None:
    before = torch.backends.cudnn.benchmark
    with rt.cudnn_autotune(torch.device("cuda")):
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark is before


def test_host_allocator_is_tuned_on_glibc_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform
    import sys

    tune = rt.tune_host_allocator.__wrapped__  # the cached function, called afresh
    monkeypatch.setenv(rt.SYSTEM_MALLOC_ENV, "1")
    assert tune() == "system"
    monkeypatch.delenv(rt.SYSTEM_MALLOC_ENV)
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert tune() == ("glibc: mmap above 32 MiB, trim above 2 GiB" if glibc else "system")


def test_render_reports_the_host_allocator(tiny_spec: dict[str, Any]) -> None:
    result = render(parse_spec({**tiny_spec, "steps": 1}))
    assert result.runtime["host_allocator"] == rt.tune_host_allocator()
