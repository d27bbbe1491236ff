"""bf16 on a CPU without bf16 instructions is emulated and slow: minbert says so once instead of silently crawling."""

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
        runtime.cpu_has_native_bf16.cache_clear()
        runtime.warn_emulated_bf16.cache_clear()

    yield write
    runtime.cpu_has_native_bf16.cache_clear()
    runtime.warn_emulated_bf16.cache_clear()


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


def test_native_bf16_or_fp32_does_not_warn(cpuinfo, caplog):
    cpuinfo("fpu avx512f avx512_bf16")
    with caplog.at_level(logging.WARNING, logger="minbert"):
        with runtime.autocast(torch.device("cpu"), bf16=True):
            pass
        cpuinfo("fpu avx512f")
        with runtime.autocast(torch.device("cpu"), bf16=False):
            pass
    assert not caplog.records
