"""Device and dtype choice: a half-precision type the CPU cannot run natively is served in float32."""

from __future__ import annotations

import logging
import platform

import pytest
import torch

from maas_server.runtime.device import choose_dtype, read_cpu_flags

WITHOUT_BF16 = frozenset({"avx2", "avx512f", "avx512bw"})
WITH_BF16 = WITHOUT_BF16 | {"avx512_bf16"}


def test_auto_is_float32_on_cpu_and_float16_on_cuda() -> None:
    assert choose_dtype("auto", "cpu") == torch.float32
    assert choose_dtype("auto", "cuda") == torch.float16


def test_bfloat16_without_native_support_serves_float32_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "maas.runtime"):
        assert choose_dtype("bfloat16", "cpu", WITHOUT_BF16) == torch.float32
    assert "no native bfloat16" in caplog.text and "serving float32" in caplog.text


def test_bfloat16_with_native_support_is_kept() -> None:
    assert choose_dtype("bfloat16", "cpu", WITH_BF16) == torch.bfloat16
    assert choose_dtype("bfloat16", "cpu", frozenset({"amx_bf16"})) == torch.bfloat16
    assert choose_dtype("float16", "cpu", WITH_BF16) == torch.float32  # bf16 support says nothing of fp16


def test_other_requests_are_served_as_asked() -> None:
    assert choose_dtype("float32", "cpu", WITHOUT_BF16) == torch.float32
    assert choose_dtype("bfloat16", "cuda", WITHOUT_BF16) == torch.bfloat16  # the GPU's matter, not the CPU's
    assert choose_dtype("bfloat16", "cpu", frozenset()) == torch.bfloat16  # flags unknown: nothing is assumed


@pytest.mark.skipif(platform.machine() != "x86_64" or platform.system() != "Linux", reason="x86-64 Linux flags")
def test_this_machines_flags_are_read() -> None:
    assert "sse2" in read_cpu_flags()  # every x86-64 CPU has SSE2
