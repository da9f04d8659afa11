"""Keras 3's own golden values (its lstm/gru/simple_rnn tests: constant
initializers kernel 0.01, recurrent_kernel 0.02, bias 0.03 on arange inputs),
reproduced through rnnfast's kernels in float32."""

import numpy as np
import pytest

from rnnfast import _core

X72 = np.arange(72, dtype=np.float32).reshape(3, 6, 4)
X24A = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
X24B = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
S4 = np.arange(4, dtype=np.float32).reshape(2, 2)
S8 = np.arange(8, dtype=np.float32).reshape(2, 4)
MASK_A = np.array([[True, True, True, False], [True, True, False, False]])
MASK_B = np.array([[True, True, False, True], [True, False, False, True]])
MASK_C = np.array([[False, True, True, True], [False, False, True, True]])


def rows(values, units):
    """Keras's expected outputs repeat one value across the units of a row."""
    return np.repeat(np.asarray(values, dtype=np.float64)[..., None], units, axis=-1)


def bias_for(cell, units, kind, reset_after=True):
    if kind is None:
        return None
    if cell == "lstm" and kind == "unit_forget":  # Keras: forget gate bias 1
        return np.concatenate([np.full(units, 0.03), np.ones(units), np.full(2 * units, 0.03)])
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    shape = (2, 3 * units) if cell == "gru" and reset_after else (gates * units,)
    return np.full(shape, 0.03)


# (name, cell, x, units, kernel options, bias kind, initial state, mask, expected,
#  expected is the whole output sequence (True) or the last step (False))
CASES = [
    ("lstm", "lstm", X72, 3, {}, "unit_forget", None, None,
     rows([0.6288687, 0.86899155, 0.9460773], 3), False),
    ("lstm_backwards", "lstm", X72, 3, {"go_backwards": True}, "unit_forget", None, None,
     rows([0.35622165, 0.74789524, 0.8872726], 3), False),
    ("lstm_const_bias", "lstm", X72, 3, {}, "const", None, None,
     rows([0.57019705, 0.8661914, 0.9459622], 3), False),
    ("lstm_no_bias", "lstm", X72, 3, {}, None, None, None,
     rows([0.54986924, 0.86226785, 0.9443936], 3), False),
    ("lstm_initial_state", "lstm", X24B, 2, {}, "unit_forget", (S4, S4), None,
     [[0.20574439, 0.3558822], [0.64930826, 0.66276]], False),
    ("lstm_initial_state_backwards", "lstm", X24B, 2, {"go_backwards": True}, "unit_forget",
     (S4, S4), None, [[0.13281618, 0.2790356], [0.5839337, 0.5992567]], False),
    ("lstm_masking", "lstm", X24B, 2, {}, "unit_forget", None, MASK_A,
     rows([[0.0158891, 0.05552048, 0.11755939, 0.11755939],
           [0.14185596, 0.28556206, 0.28556206, 0.28556206]], 2), True),
    ("lstm_masking_backwards", "lstm", X24B, 2, {"go_backwards": True}, "unit_forget", None,
     MASK_C, rows([0.15341201, 0.3844719], 2), False),
    ("gru", "gru", X72, 3, {}, "const", None, None,
     rows([0.5217289, 0.6371659, 0.39384964], 3), False),
    ("gru_backwards", "gru", X72, 3, {"go_backwards": True}, "const", None, None,
     rows([0.24406259, 0.611516, 0.3928808], 3), False),
    ("gru_reset_before", "gru", X72, 3, {"reset_after": False}, "const", None, None,
     rows([0.51447755, 0.6426879, 0.40208298], 3), False),
    ("gru_no_bias", "gru", X72, 3, {}, None, None, None,
     rows([0.49988455, 0.64701194, 0.4103359], 3), False),
    ("gru_initial_state", "gru", X24B, 2, {}, "const", S4, None,
     [[0.23774096, 0.33508456], [0.83659905, 1.0227708]], False),
    ("gru_initial_state_backwards", "gru", X24B, 2, {"go_backwards": True}, "const", S4, None,
     [[0.13486053, 0.23261218], [0.78257304, 0.9691353]], False),
    ("gru_masking", "gru", X24B, 2, {}, "const", None, MASK_B,
     rows([[0.03606692, 0.09497581, 0.09497581, 0.19393763], [0.16051409] * 3 + [0.30818558]], 2),
     True),
    ("gru_masking_backwards", "gru", X24B, 2, {"go_backwards": True}, "const", None, MASK_B,
     rows([0.11669192, 0.28380975], 2), False),
    ("simple_rnn", "simple_rnn", X24A, 4, {}, "const", None, None,
     rows([0.405432, 0.73605347], 4), False),
    ("simple_rnn_backwards", "simple_rnn", X24A, 4, {"go_backwards": True}, "const", None, None,
     rows([0.11144729, 0.5528889], 4), False),
    ("simple_rnn_initial_state", "simple_rnn", X24B, 4, {}, "const", S8, None,
     rows([0.33621645, 0.6262637], 4), False),
    ("simple_rnn_initial_state_backwards", "simple_rnn", X24B, 4, {"go_backwards": True}, "const",
     S8, None, rows([0.07344437, 0.43043602], 4), False),
    ("simple_rnn_masking", "simple_rnn", X24B, 2, {}, "const", None, MASK_B,
     rows([[0.0599281, 0.15122814, 0.15122814, 0.32394567], [0.3969304] * 3 + [0.608085]], 2),
     True),
]

KERNELS = {"simple_rnn": _core.SimpleRNNKernel, "lstm": _core.LSTMKernel, "gru": _core.GRUKernel}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


@pytest.mark.parametrize("name,cell,x,units,opts,bias,state,mask,expected,full",
                         CASES, ids=[c[0] for c in CASES])
def test_keras_golden_values(name, cell, x, units, opts, bias, state, mask, expected, full):
    G, I = GATES[cell], x.shape[-1]
    kernel = np.full((I, G * units), 0.01, np.float32)
    recurrent = np.full((units, G * units), 0.02, np.float32)
    b = bias_for(cell, units, bias, opts.get("reset_after", True))
    k = KERNELS[cell](units, **opts)
    y, _ = k.forward(x, kernel, recurrent, None if b is None else b.astype(np.float32),
                     initial_state=state, mask=mask)
    got = y if full else y[:, -1]
    np.testing.assert_allclose(got, np.asarray(expected), atol=1e-5, rtol=1e-5)
