"""Runs rnnfast's kernels and the NumPy references on the same test case.

A Case names a cell, sizes, dtype and options; make_arrays draws its inputs;
run_kernel/run_reference return outputs and gradients in one common format:
    forward:  (y, [h_last] or [h_last, c_last])
    backward: {"dx", "dh0", ("dc0"), "dkernel", "drecurrent_kernel", "dbias"}
"""

from __future__ import annotations

import dataclasses

import numpy as np

import reference
from rnnfast import _core

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1}


@dataclasses.dataclass(frozen=True)
class Case:
    cell: str
    B: int = 3
    T: int = 5
    I: int = 4
    U: int = 6
    dtype: type = np.float64
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    go_backwards: bool = False
    reset_after: bool = True
    bias: bool = True
    initial_state: bool = False
    mask: bool = False
    input_dropout: int = 0  # number of masks: 0, 1 or G
    recurrent_dropout: int = 0
    seed: int = 0

    @property
    def G(self) -> int:
        return GATES[self.cell]

    def replace(self, **kw) -> "Case":
        return dataclasses.replace(self, **kw)


def bias_shape(case: Case) -> tuple:
    if case.cell == "gru" and case.reset_after:
        return (2, 3 * case.U)
    return (case.G * case.U,)


def make_arrays(case: Case) -> dict:
    """Inputs scaled so that the recurrence is stable and gates are not saturated."""
    rng = np.random.default_rng(case.seed)
    B, T, I, U, G = case.B, case.T, case.I, case.U, case.G
    a = {
        "x": rng.standard_normal((B, T, I)),
        "kernel": rng.uniform(-1, 1, (I, G * U)) * np.sqrt(3.0 / I),
        "recurrent_kernel": rng.uniform(-1, 1, (U, G * U)) * np.sqrt(1.5 / U),
        "bias": rng.uniform(-0.5, 0.5, bias_shape(case)) if case.bias else None,
        "h0": rng.uniform(-0.8, 0.8, (B, U)) if case.initial_state else None,
        "c0": rng.uniform(-0.8, 0.8, (B, U)) if case.initial_state and case.cell == "lstm" else None,
        "mask": None,
        "input_dropout": None,
        "recurrent_dropout": None,
    }
    if case.mask:
        m = rng.random((B, T)) > 0.3
        m[0, : min(2, T)] = False  # a row that starts masked
        if B > 1:
            m[-1, :] = True
        a["mask"] = m
    for key, n, width in (("input_dropout", case.input_dropout, I),
                          ("recurrent_dropout", case.recurrent_dropout, U)):
        if n:
            keep = rng.random((n, B, width)) > 0.3
            d = keep / 0.7
            a[key] = d[0] if n == 1 else d
    for k, v in a.items():
        if v is not None and k != "mask":
            a[k] = np.ascontiguousarray(v, dtype=case.dtype)
    return a


def make_kernel(case: Case, core=None):
    """The case's kernel object from `core` (default: the variant rnnfast chose)."""
    core = core or _core
    if case.cell == "simple_rnn":
        return core.SimpleRNNKernel(case.U, activation=case.activation,
                                     go_backwards=case.go_backwards)
    if case.cell == "lstm":
        return core.LSTMKernel(case.U, activation=case.activation,
                                recurrent_activation=case.recurrent_activation,
                                go_backwards=case.go_backwards)
    return core.GRUKernel(case.U, activation=case.activation,
                           recurrent_activation=case.recurrent_activation,
                           reset_after=case.reset_after, go_backwards=case.go_backwards)


def _initial_state(case: Case, a: dict):
    if case.cell == "lstm":
        if a["h0"] is None and a["c0"] is None:
            return None
        return (a["h0"], a["c0"])
    return a["h0"]


def kernel_forward(case: Case, k, a: dict, training: bool = True, return_sequences: bool = True):
    y, final = k.forward(
        a["x"], a["kernel"], a["recurrent_kernel"], a["bias"],
        initial_state=_initial_state(case, a), mask=a["mask"],
        input_dropout_mask=a["input_dropout"], recurrent_dropout_mask=a["recurrent_dropout"],
        training=training, return_sequences=return_sequences)
    states = list(final) if case.cell == "lstm" else [final]
    return y, states


def kernel_backward(case: Case, k, a: dict, dy, dstates) -> dict:
    dfinal = tuple(dstates) if case.cell == "lstm" else dstates[0]
    dx, dinit, dk, dr, db = k.backward(a["kernel"], a["recurrent_kernel"], doutputs=dy,
                                       dfinal_state=dfinal)
    g = {"dx": dx, "dkernel": dk, "drecurrent_kernel": dr, "dbias": db}
    if case.cell == "lstm":
        g["dh0"], g["dc0"] = dinit
    else:
        g["dh0"] = dinit
    return g


def run_kernel(case: Case, a: dict, dy, dstates, core=None):
    k = make_kernel(case, core)
    y, states = kernel_forward(case, k, a, training=True)
    return y, states, kernel_backward(case, k, a, dy, dstates)


def reference_forward(case: Case, a: dict):
    common = dict(bias=a["bias"], h0=a["h0"], mask=a["mask"], go_backwards=case.go_backwards,
                  activation=case.activation, input_dropout=a["input_dropout"],
                  recurrent_dropout=a["recurrent_dropout"])
    if case.cell == "simple_rnn":
        y, h, cache = reference.simple_rnn_forward(a["x"], a["kernel"], a["recurrent_kernel"], **common)
        return y, [h], cache
    if case.cell == "lstm":
        y, (h, c), cache = reference.lstm_forward(
            a["x"], a["kernel"], a["recurrent_kernel"], c0=a["c0"],
            recurrent_activation=case.recurrent_activation, **common)
        return y, [h, c], cache
    y, h, cache = reference.gru_forward(
        a["x"], a["kernel"], a["recurrent_kernel"], reset_after=case.reset_after,
        recurrent_activation=case.recurrent_activation, **common)
    return y, [h], cache


def reference_backward(case: Case, cache, dy, dstates) -> dict:
    if case.cell == "simple_rnn":
        return reference.simple_rnn_backward(cache, dy, dstates[0])
    if case.cell == "lstm":
        return reference.lstm_backward(cache, dy, tuple(dstates))
    return reference.gru_backward(cache, dy, dstates[0])


def output_grads(case: Case, seed: int = 1):
    """Random dL/dy and dL/d(final states) (the weights of a linear loss)."""
    rng = np.random.default_rng(seed + 1000)
    dy = rng.standard_normal((case.B, case.T, case.U)).astype(case.dtype)
    ds = [rng.standard_normal((case.B, case.U)).astype(case.dtype) for _ in range(STATES[case.cell])]
    return dy, ds


GRAD_KEYS = ("dx", "dh0", "dc0", "dkernel", "drecurrent_kernel", "dbias")


def tolerance(dtype) -> float:
    return 1e-5 if dtype == np.float32 else 1e-10


def assert_close(got, want, rtol: float, name: str) -> None:
    """Element-wise within rtol, with an absolute floor of rtol times the array's scale."""
    want = np.asarray(want, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=name)
