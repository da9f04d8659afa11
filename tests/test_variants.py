"""Every instruction-set build of the kernels that this CPU runs computes the
same results, and the loader picks the widest (or the one RNNFAST_ISA names)."""

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import rnnfast
from rnnfast import _loader
from kernel_harness import (GRAD_KEYS, Case, assert_close, make_arrays, output_grads,
                            reference_backward, reference_forward, run_kernel, tolerance)

LEVELS = _loader.supported_levels()
CASES = [Case("simple_rnn", mask=True), Case("lstm", go_backwards=True, initial_state=True),
         Case("gru", recurrent_dropout=3), Case("gru", reset_after=False, B=40, U=64, I=8)]


def test_widest_level_is_loaded():
    assert LEVELS, "no kernel build runs on this CPU"
    assert rnnfast.build_info()["isa_level"] == LEVELS[0]
    if sys.platform == "linux":
        with open("/proc/cpuinfo") as f:
            avx512 = "avx512f" in f.read()
        if avx512:
            assert LEVELS[0] == "x86-64-v4"  # this machine has AVX-512: the wheel must use it


# The x86-64 psABI levels as the kernel's /proc/cpuinfo names their features
# (pni = SSE3, abm = LZCNT): an independent reference for the probe, which
# reads CPUID and XGETBV itself (the kernel lists avx* only when the OS saves
# the registers, as the probe's XGETBV check requires).
PSABI_FLAGS = {
    "x86-64-v2": ["pni", "ssse3", "cx16", "sse4_1", "sse4_2", "popcnt", "lahf_lm"],
    "x86-64-v3": ["avx", "avx2", "bmi1", "bmi2", "fma", "f16c", "movbe", "abm"],
    "x86-64-v4": ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"],
}


@pytest.mark.skipif(not (sys.platform == "linux" and os.uname().machine == "x86_64"),
                    reason="x86-64 Linux only (/proc/cpuinfo)")
def test_cpu_probe_matches_proc_cpuinfo():
    from rnnfast import _cpu

    with open("/proc/cpuinfo") as f:
        line = next(l for l in f if l.startswith("flags"))
    flags = set(line.split(":", 1)[1].split())
    expected, ok = {}, True
    for level in ("x86-64-v2", "x86-64-v3", "x86-64-v4"):
        ok = ok and all(f in flags for f in PSABI_FLAGS[level])
        expected[level] = ok
    assert {lv: _cpu.supports(lv) for lv in expected} == expected
    assert _cpu.supports("x86-64") and _cpu.supports("generic")
    assert not _cpu.supports("x86-64-v5")
    bf16 = rnnfast.build_info()["bf16"]
    if rnnfast.build_info()["isa_level"] == "x86-64-v4" and "avx512_bf16" in flags:
        assert bf16["supported"], bf16


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.cell}-{c.U}")
def test_every_variant_matches_reference(level, dtype, case):
    core = importlib.import_module(f"rnnfast.{_loader.module_name(level)}")
    assert core.build_info()["isa_level"] == level
    case = case.replace(dtype=dtype)
    a = make_arrays(case)
    dy, ds = output_grads(case)
    y, states, grads = run_kernel(case, a, dy, ds, core=core)
    y_ref, states_ref, cache = reference_forward(case, a)
    ref = reference_backward(case, cache, dy, ds)
    tol = tolerance(dtype)
    assert_close(y, y_ref, tol, "y")
    for key in GRAD_KEYS:
        if ref.get(key) is not None:
            assert_close(grads[key], ref[key], tol, key)


@pytest.mark.parametrize("level", LEVELS)
def test_rnnfast_isa_forces_a_level(level):
    env = dict(os.environ, RNNFAST_ISA=level)
    out = subprocess.run([sys.executable, "-c", "import rnnfast; print(rnnfast.build_info()['isa_level'])"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == level


def test_rnnfast_isa_unknown_level_fails_clearly():
    env = dict(os.environ, RNNFAST_ISA="x86-64-v9")
    out = subprocess.run([sys.executable, "-c", "import rnnfast"], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "RNNFAST_ISA='x86-64-v9': no such kernel build" in out.stderr
