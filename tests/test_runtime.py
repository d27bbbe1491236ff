"""bf16 on a CPU without bf16 instructions is emulated and slow, and on some with them still slower than fp32:
minbert says so once instead of silently crawling."""

from __future__ import annotations

import logging

import pytest
import torch

from minbert import runtime


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    def write(flags: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        monkeypatch.setattr(runtime, "CPUINFO", path)
        clear()

    def clear() -> None:
        for cached in (runtime.cpu_has_native_bf16, runtime.warn_emulated_bf16, runtime.warn_slow_bf16):
            cached.cache_clear()

    yield write
    clear()


@pytest.fixture
def measured(monkeypatch):
    """Pretend a bf16 matmul measured this many times the speed of fp32."""

    def pretend(speedup: float) -> None:
        monkeypatch.setattr(runtime, "bf16_matmul_speedup", lambda: speedup)

    return pretend


def test_native_bf16_read_from_cpu_flags(cpuinfo, tmp_path, monkeypatch):
    cpuinfo("fpu sse2 avx2 avx512f avx512bw avx512_vnni")
    assert runtime.cpu_has_native_bf16() is False
    cpuinfo("fpu avx512f avx512_bf16 amx_tile")
    assert runtime.cpu_has_native_bf16() is True
    monkeypatch.setattr(runtime, "CPUINFO", tmp_path / "absent")
    runtime.cpu_has_native_bf16.cache_clear()
    assert runtime.cpu_has_native_bf16() is None


def test_emulated_bf16_warns_once_and_still_runs(cpuinfo, caplog):
    cpuinfo("fpu avx512f avx512bw")
    layer = torch.nn.Linear(8, 4)
    with caplog.at_level(logging.WARNING, logger="minbert"):
        for _ in range(3):
            with runtime.autocast(torch.device("cpu"), bf16=True):
                out = layer(torch.randn(2, 8))
    assert out.dtype == torch.bfloat16
    warnings = [r for r in caplog.records if "no bf16 instructions" in r.getMessage()]
    assert len(warnings) == 1 and "--train.bf16 false" in warnings[0].getMessage()


def test_native_bf16_slower_than_fp32_warns_once(cpuinfo, measured, caplog):
    cpuinfo("fpu avx512f avx512_bf16")
    measured(0.58)
    with caplog.at_level(logging.WARNING, logger="minbert"):
        for _ in range(3):
            with runtime.autocast(torch.device("cpu"), bf16=True):
                pass
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "0.58x the speed of an fp32 one" in message and "--train.bf16 false" in message


def test_bf16_matmul_speedup_is_measured():
    speedup = runtime.bf16_matmul_speedup(size=64, repeats=2)
    assert 0.0 < speedup < float("inf")


def test_native_bf16_that_pays_or_fp32_does_not_warn(cpuinfo, measured, caplog):
    cpuinfo("fpu avx512f avx512_bf16")
    measured(1.6)
    with caplog.at_level(logging.WARNING, logger="minbert"):
        with runtime.autocast(torch.device("cpu"), bf16=True):
            pass
        cpuinfo("fpu avx512f")
        with runtime.autocast(torch.device("cpu"), bf16=False):
            pass
    assert not caplog.records
