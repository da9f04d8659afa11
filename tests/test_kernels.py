"""Forward and backward of every cell and option against the NumPy references.

float32 within 1e-5 and float64 within 1e-10 (relative, with the array's
scale as the absolute floor; see kernel_harness.assert_close).
"""

import numpy as np
import pytest

from kernel_harness import (GATES, GRAD_KEYS, Case, assert_close, kernel_forward, make_arrays,
                            make_kernel, output_grads,
                            reference_backward, reference_forward, run_kernel, tolerance)

ACTIVATIONS = ["tanh", "sigmoid", "hard_sigmoid", "relu", "linear"]


def option_cases():
    """Each option alone, and a few together, for each cell."""
    cases = []
    for cell in ("simple_rnn", "lstm", "gru"):
        base = Case(cell)
        G = base.G
        variants = [
            {},
            {"go_backwards": True},
            {"initial_state": True},
            {"bias": False},
            {"mask": True},
            {"mask": True, "go_backwards": True, "initial_state": True},
            {"input_dropout": 1},
            {"recurrent_dropout": 1},
            {"input_dropout": G, "recurrent_dropout": G},
            {"input_dropout": G, "recurrent_dropout": G, "mask": True, "go_backwards": True,
             "initial_state": True},
            {"T": 1},
            {"B": 1},
            {"U": 1},
            {"I": 1, "T": 2},
        ]
        variants += [{"activation": act} for act in ACTIVATIONS if act != "tanh"]
        if cell != "simple_rnn":
            variants += [{"recurrent_activation": act} for act in ACTIVATIONS if act != "sigmoid"]
        if cell == "gru":
            variants += [{"reset_after": False, **v} for v in variants]
        cases += [base.replace(**v) for v in variants]
    return cases


def split_variants(base):
    """base with masks, reversal, initial state, dropout and (GRU) reset_after=False."""
    cases = [base, base.replace(mask=True, go_backwards=True, initial_state=True),
             base.replace(input_dropout=base.G, recurrent_dropout=base.G, mask=True)]
    if base.cell == "gru":
        cases += [base.replace(reset_after=False),
                  base.replace(reset_after=False, recurrent_dropout=3, mask=True)]
    return cases


def multithreaded_cases():
    """Sizes whose per-step product is split over threads (units not a multiple of 16)."""
    cases = []
    for cell in ("simple_rnn", "lstm", "gru"):
        # Small kernels and enough rows: the forward's members split the batch rows.
        cases += split_variants(Case(cell, B=32, T=6, I=24, U=70, seed=3))
        # Small weights and an odd batch: training splits rows too (17 + 16 on
        # two threads), each member's weight gradients summed after the loop.
        odd = Case(cell, B=33, T=6, I=24, U=40, seed=4)
        cases += split_variants(odd) + [
            odd.replace(input_dropout=1, recurrent_dropout=1, mask=True, initial_state=True),
            odd.replace(input_dropout=1, recurrent_dropout=odd.G, go_backwards=True)]
        # Small kernels and too few rows to split (under 2 x 4): members split units.
        cases += split_variants(Case(cell, B=7, T=5, I=8, U=128 if cell == "simple_rnn" else 120,
                                     seed=5))
        # Recurrent kernels big enough to be multiplied from packed panels
        # (the last panel is partial), the input projected step by step from
        # W's panels (one shared input dropout mask; per-gate masks keep the
        # projection before the loop). The weights fit in the L2, so members
        # split the batch rows, sharing the panels that each packed a part of.
        packed = Case(cell, B=8, T=5, I=20, U=150, seed=11)
        cases += split_variants(packed) + [packed.replace(input_dropout=1, mask=True)]
        # The same with too few rows to split: members own whole panels of
        # units and stream their columns' weight gradients.
        cases += split_variants(packed.replace(B=7, seed=12))
        # Weights too big to stream their gradients step by step: GEMMs after the loop.
        big = Case(cell, B=4, T=3, I=100, U=400 if cell != "simple_rnn" else 900, seed=9)
        cases += [big, big.replace(mask=True, go_backwards=True, recurrent_dropout=1)]
    return cases


def whole_row_cases():
    """LSTM with one thread and U not a multiple of the SIMD width: the forward
    activates a row's four gates as one array (W1's U = 20)."""
    cases = []
    for U in (5, 17, 20, 33):
        base = Case("lstm", B=9, T=6, I=3, U=U, seed=U)
        cases += [base, base.replace(mask=True, go_backwards=True, initial_state=True),
                  base.replace(recurrent_dropout=1, input_dropout=1)]
    return cases


def case_id(c: Case) -> str:
    default = Case(c.cell)
    parts = [c.cell]
    for field in ("B", "T", "I", "U", "activation", "recurrent_activation", "go_backwards",
                  "reset_after", "bias", "initial_state", "mask", "input_dropout",
                  "recurrent_dropout"):
        v = getattr(c, field)
        if v != getattr(default, field):
            parts.append(f"{field}={v}")
    return "-".join(parts)


def check_against_reference(case: Case) -> None:
    a = make_arrays(case)
    dy, ds = output_grads(case)
    y, states, grads = run_kernel(case, a, dy, ds)
    y_ref, states_ref, cache = reference_forward(case, a)
    grads_ref = reference_backward(case, cache, dy, ds)
    tol = tolerance(case.dtype)
    assert y.dtype == case.dtype
    assert_close(y, y_ref, tol, "y")
    for i, (s, s_ref) in enumerate(zip(states, states_ref)):
        assert_close(s, s_ref, tol, f"final state {i}")
    for key in GRAD_KEYS:
        if key not in grads_ref:
            continue
        if grads_ref[key] is None:
            assert grads[key] is None, key
            continue
        assert grads[key].dtype == case.dtype, key
        assert_close(grads[key], grads_ref[key], tol, key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", option_cases(), ids=case_id)
def test_matches_reference(case, dtype):
    check_against_reference(case.replace(dtype=dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", whole_row_cases(), ids=case_id)
def test_lstm_whole_row_gates_match_reference(case, dtype):
    check_against_reference(case.replace(dtype=dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", multithreaded_cases(), ids=case_id)
def test_matches_reference_multithreaded(case, dtype):
    check_against_reference(case.replace(dtype=dtype))


def batch_one_inference_cases():
    # A one-row inference forward reads recurrent_kernel in place (no packed or
    # reordered copy; Gemv, whose column blocks of 256 floats with AVX-512 end
    # in a masked packet at U=130): small and packed-size U, with the options
    # that change which recurrent products run (per-gate recurrent masks,
    # GRU's reset_before). T=12: past the short-forward rule, so in place only
    # on one thread or for U=6's steps too small to split. U=130's steps are
    # too small to split too; U=190 (330 for SimpleRNN's one gate) splits
    # units between two members, each projecting its own columns of W (up to
    # 8 steps) and reading its columns of R, the second member's ending in a
    # masked packet.
    out = []
    for cell in ("simple_rnn", "lstm", "gru"):
        for U in (6, 130, 330 if cell == "simple_rnn" else 190):
            base = Case(cell, B=1, T=4, I=3, U=U)
            out += [base, base.replace(T=1), base.replace(T=12),
                    base.replace(go_backwards=True, initial_state=True),
                    base.replace(recurrent_dropout=GATES[cell], input_dropout=1, mask=True),
                    base.replace(bias=False)]
        out.append(Case("gru", B=1, T=3, I=3, U=130, reset_after=False, recurrent_dropout=3))
    return out


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", batch_one_inference_cases(), ids=case_id)
def test_batch_one_inference_matches_reference(case, dtype, threads):
    import rnnfast

    case = case.replace(dtype=dtype)
    a = make_arrays(case)
    y_ref, states_ref, _ = reference_forward(case, a)
    before = rnnfast.get_num_threads()
    rnnfast.set_num_threads(threads)
    try:
        y, states = kernel_forward(case, make_kernel(case), a, training=False)
    finally:
        rnnfast.set_num_threads(before)
    tol = tolerance(case.dtype)
    assert_close(y, y_ref, tol, "y")
    for i, (s, s_ref) in enumerate(zip(states, states_ref)):
        assert_close(s, s_ref, tol, f"final state {i}")


@pytest.mark.parametrize("case", [Case("gru", B=1, T=4, I=3, U=190),
                                  Case("gru", B=1, T=1, I=5, U=190, go_backwards=True,
                                       initial_state=True),
                                  Case("simple_rnn", B=1, T=3, I=3, U=330)], ids=case_id)
def test_batch_one_inference_bits_do_not_depend_on_the_split(case):
    # One member or two splitting the units: the projections and the recurrent
    # products are Gemv's, which sum over k in order for every column, so the
    # outputs are the same bits (GRU and SimpleRNN: no LSTM whole-row pass,
    # which one member runs and two do not).
    import rnnfast

    a = make_arrays(case)
    before = rnnfast.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            rnnfast.set_num_threads(threads)
            outs.append(kernel_forward(case, make_kernel(case), a, training=False))
    finally:
        rnnfast.set_num_threads(before)
    (y1, s1), (y2, s2) = outs
    np.testing.assert_array_equal(y1, y2)
    for a1, a2 in zip(s1, s2):
        np.testing.assert_array_equal(a1, a2)


def wide_cases():
    """Weights too big to stream their gradients per step (float64, over half
    an L2 per thread): the weight gradients come from products after the time
    loop, with consecutive gates merged into one product where their operands
    continue each other (GRU reset_after: gates z, r together, h alone; input
    dropout: one input copy per gate, nothing merged)."""
    wide = dict(B=6, T=4, I=40, U=384, dtype=np.float64)  # over 1 MiB per thread at 2
    return [Case("lstm", **wide), Case("lstm", input_dropout=4, **wide),
            Case("gru", **wide), Case("gru", reset_after=False, **wide),
            Case("gru", recurrent_dropout=3, mask=True, **wide),
            Case("simple_rnn", **{**wide, "U": 800})]


def staged_cases():
    """Training split by rows (B = 9: 5 + 4 rows on two threads) with weights
    past half the L2 and within twice it: each member copies 4 steps of its
    weight-gradient operands side by side and multiplies them at once (T = 7:
    a group of 4, then one of 3 at step 0). The L2 size varies by machine, so
    each cell has three sizes, about 0.3, 1.3 and 5.5 MiB of float64 weights:
    one of them is in that range for any L2 from 256 KiB to 8 MiB."""
    cases = []
    sizes = {"lstm": (90, 190, 400), "gru": (105, 220, 470), "simple_rnn": (180, 400, 850)}
    for cell, units in sizes.items():
        for U in units:
            base = Case(cell, B=9, T=7, I=40, U=U, seed=U)
            cases += [base, base.replace(mask=True, go_backwards=True, initial_state=True),
                      base.replace(recurrent_dropout=1, input_dropout=1)]
            if cell == "gru":
                cases.append(base.replace(reset_after=False, recurrent_dropout=3, mask=True))
    return cases


@pytest.mark.parametrize("case", staged_cases(), ids=case_id)
def test_staged_weight_gradients_match_reference(case):
    import rnnfast

    before = rnnfast.get_num_threads()
    rnnfast.set_num_threads(2)
    try:
        check_against_reference(case)
    finally:
        rnnfast.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", wide_cases(), ids=case_id)
def test_wide_weights_gradients_match_reference(case, threads):
    import rnnfast

    a = make_arrays(case)
    dy, ds = output_grads(case)
    before = rnnfast.get_num_threads()
    rnnfast.set_num_threads(threads)
    try:
        y, _, grads = run_kernel(case, a, dy, ds)
    finally:
        rnnfast.set_num_threads(before)
    y_ref, _, cache = reference_forward(case, a)
    ref = reference_backward(case, cache, dy, ds)
    tol = tolerance(case.dtype)
    assert_close(y, y_ref, tol, "y")
    for key in GRAD_KEYS:
        if ref.get(key) is not None:
            assert_close(grads[key], ref[key], tol, key)
