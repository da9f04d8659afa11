"""Finite-difference checks of every gradient output of every cell, in float64.

The loss is linear in the outputs, L = sum(wy * y) + sum(ws * final_states),
so the backward's inputs are wy and ws; central differences of L through the
kernels' own forward must match what the backward returns.
"""

import numpy as np
import pytest

from finite_differences import numeric_gradient
from kernel_harness import (Case, kernel_backward, kernel_forward, make_arrays, make_kernel,
                            output_grads)

EPS = 1e-6


def fd_cases():
    cases = []
    for cell in ("simple_rnn", "lstm", "gru"):
        base = Case(cell, B=2, T=4, I=3, U=3, seed=11)
        G = base.G
        variants = [
            {},
            {"go_backwards": True, "mask": True, "initial_state": True},
            {"bias": False},
            {"input_dropout": 1, "recurrent_dropout": 1},
            {"input_dropout": G, "recurrent_dropout": G, "mask": True},
            # relu(c) with c0 = 0 would sit on the kink: random initial states.
            {"activation": "relu", "initial_state": True},
            {"activation": "sigmoid"},
            {"activation": "linear"},
            {"activation": "hard_sigmoid"},
        ]
        if cell != "simple_rnn":
            variants += [{"recurrent_activation": "hard_sigmoid"}, {"recurrent_activation": "tanh"}]
        if cell == "gru":
            variants += [{"reset_after": False, **v} for v in variants]
        cases += [base.replace(**v) for v in variants]
    # One size whose time loop runs on two threads.
    cases += [Case(c, B=16, T=3, I=5, U=40, seed=5, mask=True) for c in ("simple_rnn", "lstm", "gru")]
    return cases


def loss(case, a, wy, ws):
    k = make_kernel(case)
    y, states = kernel_forward(case, k, a, training=False)
    return float(np.sum(wy * y) + sum(np.sum(w * s) for w, s in zip(ws, states)))


def numeric_grad(case, a, name, wy, ws):
    return numeric_gradient(lambda: loss(case, a, wy, ws), a[name], EPS)


def case_id(c):
    opts = [f"{k}={v}" for k, v in vars(c).items()
            if k not in ("cell", "seed", "dtype") and v != getattr(Case(c.cell), k)]
    return "-".join([c.cell] + opts)


@pytest.mark.parametrize("case", fd_cases(), ids=case_id)
def test_gradients_match_finite_differences(case):
    a = make_arrays(case)
    # Explicit zero initial states, so that dh0/dc0 are checked in every case.
    if a["h0"] is None:
        a["h0"] = np.zeros((case.B, case.U))
    if case.cell == "lstm" and a["c0"] is None:
        a["c0"] = np.zeros((case.B, case.U))
    wy, ws = output_grads(case)
    k = make_kernel(case)
    kernel_forward(case, k, a, training=True)
    grads = kernel_backward(case, k, a, wy, ws)
    pairs = {"x": "dx", "kernel": "dkernel", "recurrent_kernel": "drecurrent_kernel",
             "bias": "dbias", "h0": "dh0", "c0": "dc0"}
    checked = []
    for name, gname in pairs.items():
        if a.get(name) is None:
            assert grads.get(gname) is None, gname
            continue
        num = numeric_grad(case, a, name, wy, ws)
        np.testing.assert_allclose(grads[gname], num, rtol=1e-6, atol=1e-7, err_msg=gname)
        checked.append(gname)
    expected = {"dx", "dkernel", "drecurrent_kernel", "dh0"} | ({"dbias"} if case.bias else set())
    if case.cell == "lstm":
        expected.add("dc0")
    assert set(checked) == expected
