"""The recurrent layer (Keras's RNN) on rnnfast's fused kernels, and the base
of its cells.

A cell (SimpleRNNCell, LSTMCell, GRUCell) holds the weights and options in
Keras's layout; RNN runs whole sequences through the cell's C++ kernel in one
call, forward and backward, with masking, dropout and initial states on the
fused path.
"""

from __future__ import annotations

import threading

import numpy as np

from ... import _device, _rng
from ... import activations as activations_module
from ... import constraints as constraints_module
from ... import initializers as initializers_module
from ... import regularizers as regularizers_module
from .. import registry
from ..layer import Layer, as_float
from ..registry import register

# The nonlinearities the fused kernels implement.
KERNEL_ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear")


def kernel_activation_name(layer_name: str, arg: str, identifier) -> str:
    fn = activations_module.get(identifier)
    name = activations_module.serialize(fn)
    if name not in KERNEL_ACTIVATIONS:
        raise ValueError(f"{layer_name}: {arg}={name!r} is not supported by rnnfast's recurrent "
                         f"kernels; supported: {', '.join(KERNEL_ACTIVATIONS)}")
    return name


def _ser(module, obj):
    return None if obj is None else module.serialize(obj)


class KernelCell(Layer):
    """Weights and options of one recurrent cell; subclasses set GATES, STATES
    and make_kernel()."""

    GATES = 1
    STATES = 1

    def _init_common(self, units, activation, use_bias, kernel_initializer, recurrent_initializer,
                     bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer,
                     kernel_constraint, recurrent_constraint, bias_constraint, dropout,
                     recurrent_dropout, seed):
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"Received an invalid value for argument `units`, expected a positive "
                             f"integer, got {units!r}.")
        self.units = int(units)
        self.activation = activations_module.get(activation)
        self._activation_name = kernel_activation_name(type(self).__name__, "activation", activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers_module.get(kernel_initializer)
        self.recurrent_initializer = initializers_module.get(recurrent_initializer)
        self.bias_initializer = initializers_module.get(bias_initializer)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers_module.get(recurrent_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.kernel_constraint = constraints_module.get(kernel_constraint)
        self.recurrent_constraint = constraints_module.get(recurrent_constraint)
        self.bias_constraint = constraints_module.get(bias_constraint)
        # Keras clamps the rates to [0, 1] and applies them only strictly inside.
        self.dropout = min(1.0, max(0.0, float(dropout)))
        self.recurrent_dropout = min(1.0, max(0.0, float(recurrent_dropout)))
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    @property
    def state_size(self):
        return self.units if self.STATES == 1 else [self.units] * self.STATES

    @property
    def output_size(self):
        return self.units

    def bias_shape(self):
        return (self.GATES * self.units,)

    def bias_initial_value(self, shape):
        return initializers_module.get(self.bias_initializer)(shape, dtype=self.compute_dtype.name)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"{type(self).__name__}: the number of input features must be known")
        G, U = self.GATES, self.units
        self.kernel = self.add_weight((input_dim, G * U), self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight((U, G * U), self.recurrent_initializer,
                                                "recurrent_kernel",
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint)
        self.bias = None
        if self.use_bias:
            shape = self.bias_shape()
            value = self.bias_initial_value(shape)
            self.bias = self.add_weight(shape, initializers_module.Constant(0.0), "bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
            self.bias.value[...] = value
        self.built = True

    def dropout_masks(self, batch, input_dim, training):
        """Input and recurrent dropout masks for one sequence, as Keras 3 draws
        them: one shared input mask, or one mask per gate for inputs and state
        once recurrent_dropout is on (Keras's implementation 1)."""
        if not training:
            return None, None
        rng = self._rng or _rng.global_rng()
        dt = self.compute_dtype
        per_gate = self.recurrent_dropout > 0 and self.GATES > 1
        n = self.GATES if per_gate else 1

        def draw(rate, width):
            if not 0.0 < rate < 1.0:
                return None
            keep = rng.random((n, batch, width)) >= rate
            m = keep.astype(dt) / dt.type(1.0 - rate)
            return m if n > 1 else m[0]

        return draw(self.dropout, input_dim), draw(self.recurrent_dropout, self.units)

    def make_kernel(self, go_backwards: bool):
        raise NotImplementedError

    def call(self, inputs, states, training=False):
        """One step, Keras's cell API: (output, new_states) for inputs [B, I]."""
        x = as_float(inputs, self.compute_dtype)[:, None, :]
        kernel = self.make_kernel(False)
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        init = tuple(states) if self.STATES > 1 else states[0]
        din, drec = self.dropout_masks(x.shape[0], x.shape[-1], training)
        _, final = kernel.forward(x, self.kernel.value, self.recurrent_kernel.value,
                                  None if self.bias is None else self.bias.value,
                                  initial_state=init, input_dropout_mask=din,
                                  recurrent_dropout_mask=drec, return_sequences=False)
        new_states = list(final) if self.STATES > 1 else [final]
        return new_states[0], new_states

    def get_initial_state(self, batch_size=None):
        return [np.zeros((batch_size, self.units), self.compute_dtype) for _ in range(self.STATES)]

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": activations_module.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers_module.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers_module.serialize(self.recurrent_initializer),
                "bias_initializer": initializers_module.serialize(self.bias_initializer),
                "kernel_regularizer": _ser(regularizers_module, self.kernel_regularizer),
                "recurrent_regularizer": _ser(regularizers_module, self.recurrent_regularizer),
                "bias_regularizer": _ser(regularizers_module, self.bias_regularizer),
                "kernel_constraint": _ser(constraints_module, self.kernel_constraint),
                "recurrent_constraint": _ser(constraints_module, self.recurrent_constraint),
                "bias_constraint": _ser(constraints_module, self.bias_constraint),
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed}


@register
class RNN(Layer):
    """Runs a cell over whole sequences on the fused C++ kernels.

    Keras 3's arguments: return_sequences, return_state, go_backwards,
    stateful, unroll (accepted; the fused kernel is already unrolled in C++),
    zero_output_for_mask. Calls take initial_state, mask and training.
    """

    supports_masking = True

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        if not isinstance(cell, KernelCell):
            raise ValueError(f"RNN: rnnfast runs SimpleRNNCell, LSTMCell and GRUCell on its fused "
                             f"kernels; got cell={cell!r}")
        super().__init__(**kwargs)
        self.cell = cell
        self._layers = [cell]
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = stateful
        self.unroll = unroll
        self.zero_output_for_mask = zero_output_for_mask
        self.states = None

    # ---- building -----------------------------------------------------------------

    def build(self, sequences_shape):
        if len(sequences_shape) != 3:
            raise ValueError(f"{type(self).__name__} '{self.name}' expects inputs of shape (batch, "
                             f"time, features), got {sequences_shape}")
        self.cell._path_prefix = self.name + "/"
        self.cell.maybe_build((sequences_shape[0], sequences_shape[-1]))
        if self.stateful:
            if sequences_shape[0] is None:
                raise ValueError("When using `stateful=True` in a RNN, the batch size must be "
                                 "static: give the first layer batch_input_shape=(batch, time, "
                                 "features) or Input(batch_size=...)")
            from ... import _budget

            # Under a loader the states count too: a file's batch size sets their size.
            cell = self.cell
            _budget.claim_states(cell.STATES * int(sequences_shape[0]) * cell.units *
                                 cell.compute_dtype.itemsize,
                                 f"the states of stateful layer '{self.name}' for a batch of "
                                 f"{sequences_shape[0]}")
            self.states = self.cell.get_initial_state(sequences_shape[0])
        self.built = True

    def reset_state(self):
        if self.states is not None:
            for s in self.states:
                s[...] = 0.0

    def reset_states(self):
        self.reset_state()

    # ---- forward / backward ---------------------------------------------------------

    def _kernel(self, ctx):
        """The C++ kernel object of this call site: its workspace holds the
        training forward's cache for the backward, so each context (graph
        node) has its own, made once and reused every step."""
        kernel = getattr(ctx, "kernel", None)
        if kernel is None:
            # The CPU's, or the GPU's when one is in use (rnnfast._device).
            kernel, ctx.kernel_device = _device.make_recurrent_kernel(self.cell, self.go_backwards)
            ctx.kernel = kernel
        return kernel

    def _params(self):
        cell = self.cell
        return [cell.kernel, cell.recurrent_kernel] + ([cell.bias] if cell.bias is not None else [])

    def _buffer(self, ctx, key, shape):
        """Output arrays reused from step to step (per context): a training
        forward's outputs live until that context's next training forward."""
        buffers = ctx.__dict__.setdefault("buffers", {})
        buf = buffers.get(key)
        if buf is None or buf.shape != shape:
            buf = np.empty(shape, self.cell.compute_dtype)
            buffers[key] = buf
        return buf

    def forward(self, ctx, sequences, initial_state=None, mask=None, training=False):
        if not self.stateful:
            return self._forward(ctx, sequences, initial_state, mask, training)
        # The states are the layer's: two threads' calls would interleave them.
        lock = self.__dict__.get("_state_lock") or \
            self.__dict__.setdefault("_state_lock", threading.Lock())
        if not lock.acquire(blocking=False):
            raise RuntimeError(f"stateful {type(self).__name__} '{self.name}' is running in another "
                               f"thread: its states are the layer's, so a stateful model runs in "
                               f"one thread at a time (use one model per thread)")
        try:
            return self._forward(ctx, sequences, initial_state, mask, training)
        finally:
            lock.release()

    def _forward(self, ctx, sequences, initial_state, mask, training):
        x = as_float(sequences, self.cell.compute_dtype)
        if x.ndim != 3:
            raise ValueError(f"{type(self).__name__} '{self.name}' expects inputs of shape (batch, "
                             f"time, features), got {x.shape}")
        cell = self.cell
        B, T, I = x.shape
        if I != cell.kernel.shape[0]:
            raise ValueError(f"{type(self).__name__} '{self.name}' was built for {cell.kernel.shape[0]} "
                             f"input features, got inputs of shape {x.shape}")
        given_state = initial_state is not None
        given_list = isinstance(initial_state, (list, tuple))
        if initial_state is None and self.stateful:
            if self.states[0].shape[0] != B:
                raise ValueError(f"stateful {type(self).__name__} '{self.name}' was built for batch "
                                 f"size {self.states[0].shape[0]}, got a batch of {B}")
            initial_state = self.states
        if initial_state is not None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            if len(states) != cell.STATES:
                raise ValueError(f"{type(self).__name__} '{self.name}' expects {cell.STATES} initial "
                                 f"state(s), got {len(states)}")
            states = [as_float(s, cell.compute_dtype) for s in states]
            for s in states:
                if s.shape != (B, cell.units):
                    raise ValueError(f"{type(self).__name__} '{self.name}': an initial state must "
                                     f"have shape ({B}, {cell.units}) for a batch of {B}, got "
                                     f"{s.shape}")
            initial_state = tuple(states) if cell.STATES > 1 else states[0]
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
        din, drec = cell.dropout_masks(B, I, training)
        # Without return_sequences the kernel writes only the final state.
        seqs = self.return_sequences
        out = self._buffer(ctx, "y", (B, T, cell.units)) if training and seqs else None
        kernel = self._kernel(ctx)
        # During fit on a GPU the weights may live there (rnnfast._device.Residency).
        weights = _device.resident_weights(self._params(), kernel)
        ctx.resident = weights is not None
        if weights is None:
            weights = [v.value for v in self._params()]
        y, final = kernel.forward(
            x, weights[0], weights[1], weights[2] if len(weights) > 2 else None,
            initial_state=initial_state, mask=mask,
            input_dropout_mask=din, recurrent_dropout_mask=drec, training=training, out=out,
            return_sequences=seqs)
        final = list(final) if cell.STATES > 1 else [final]
        out_mask = None
        if mask is not None and self.zero_output_for_mask and self.return_sequences:
            # Outputs are in processing order, the mask in the inputs' order.
            out_mask = mask[:, ::-1, None] if self.go_backwards else mask[:, :, None]
            y *= out_mask
        if training:
            ctx.saved = {"shape": x.shape, "mask": out_mask, "given_state": given_state,
                         "state_list": given_list}
        if self.stateful:
            self.states = [s.copy() for s in final]
        output = y if self.return_sequences else final[0]
        if self.return_state:
            return [output] + final
        return output

    def backward(self, ctx, grad, need_input_grad=True):
        cell = self.cell
        saved = getattr(ctx, "saved", None)
        if saved is None:
            raise RuntimeError(f"{type(self).__name__} '{self.name}': backward() needs a forward "
                               f"with training=True first")
        ctx.saved = None
        B, T, I = saved["shape"]
        dt = cell.compute_dtype
        if self.return_state:
            d_out, d_states = grad[0], list(grad[1:]) + [None] * (cell.STATES + 1 - len(grad))
            d_states = [None if g is None else np.asarray(g, dtype=dt) for g in d_states]
        else:
            d_out, d_states = grad, [None] * cell.STATES
        doutputs = dfinal = None
        if self.return_sequences:
            if d_out is not None:
                doutputs = np.asarray(d_out, dtype=dt)
                if saved["mask"] is not None:
                    doutputs = doutputs * saved["mask"]
        elif d_out is not None:
            d_out = np.asarray(d_out, dtype=dt)
            d_states[0] = d_out if d_states[0] is None else d_states[0] + d_out
        if d_states[0] is not None or (cell.STATES > 1 and d_states[1] is not None):
            dfinal = tuple(d_states) if cell.STATES > 1 else d_states[0]
        params = self._params()
        train = self.trainable and cell.trainable
        dx = self._buffer(ctx, "dx", (B, T, I)) if need_input_grad else None
        kernel = self._kernel(ctx)
        if train and getattr(ctx, "resident", False) and all(v._device is not None for v in params):
            # The weight gradients stay on the GPU, added to this step's earlier ones.
            devs = [v._device for v in params]
            accumulate = any(d.grad_live for d in devs)
            for d in devs:
                if accumulate and not d.grad_live:
                    d.grad.zero()
                d.grad_live = True
            _, dinit, _, _, _ = kernel.backward(
                None, None, doutputs=doutputs, dfinal_state=dfinal, dx_out=dx,
                compute_dx=need_input_grad, device_grads=[d.grad for d in devs],
                accumulate=accumulate)
        else:
            targets = [v.grad_target() if train else (np.empty(v.shape, v.dtype), False)
                       for v in params]
            on_gpu = isinstance(kernel, _device.GPUKernel)  # reads no weights in its backward
            _, dinit, _, _, _ = kernel.backward(
                None if on_gpu else cell.kernel.value,
                None if on_gpu else cell.recurrent_kernel.value, doutputs=doutputs,
                dfinal_state=dfinal, dx_out=dx, dkernel_out=targets[0][0],
                drecurrent_kernel_out=targets[1][0],
                dbias_out=None if cell.bias is None else targets[2][0], compute_dx=need_input_grad)
            if train:
                for v, (written, fresh) in zip(params, targets):
                    v.commit_grad(written, fresh)
        if saved["given_state"]:
            dinit = list(dinit) if cell.STATES > 1 else [dinit]
            ctx.kwarg_grads = {"initial_state": dinit if saved["state_list"] else dinit[0]}
        return dx

    # ---- shapes, masks, config -----------------------------------------------------

    def compute_output_shape(self, sequences_shape):
        B, T = sequences_shape[0], sequences_shape[1]
        out = (B, T, self.cell.units) if self.return_sequences else (B, self.cell.units)
        if self.return_state:
            return [out] + [(B, self.cell.units)] * self.cell.STATES
        return out

    def compute_output_spec(self, sequences_shape, initial_state=None, **kwargs):
        if len(sequences_shape) != 3:
            raise ValueError(f"expected inputs of shape (batch, time, features), got "
                             f"{tuple(sequences_shape)}")
        built_for = self.cell.kernel.shape[0]
        if sequences_shape[-1] is not None and sequences_shape[-1] != built_for:
            raise ValueError(f"the layer was built for {built_for} input features, got "
                             f"{sequences_shape[-1]}")
        if initial_state is not None:
            states = initial_state if isinstance(initial_state, list) and \
                isinstance(initial_state[0], (list, tuple)) else [initial_state]
            if len(states) != self.cell.STATES:
                raise ValueError(f"initial_state must hold {self.cell.STATES} state(s), got "
                                 f"{len(states)}")
            for s in states:
                if len(s) != 2 or (s[-1] is not None and s[-1] != self.cell.units):
                    raise ValueError(f"each initial state must have shape (batch, "
                                     f"{self.cell.units}), got {tuple(s)}")
        return self.compute_output_shape(sequences_shape)

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * self.cell.STATES
        return output_mask

    def get_config(self):
        return {**super().get_config(), "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask,
                "cell": registry.serialize(self.cell)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["cell"] = registry.deserialize(config["cell"], custom_objects)
        config.pop("build_config", None)
        return cls(**config)


class CellLayer(RNN):
    """SimpleRNN, LSTM and GRU: an RNN whose constructor builds its cell, with
    the cell's options as attributes and a flat config (as in Keras 3)."""

    CELL = KernelCell
    CELL_NAME = "cell"
    # Constructor arguments that belong to the layer, not to its cell.
    LAYER_ARGS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll",
                  "activity_regularizer")

    @classmethod
    def _from_signature(cls, layer, args: dict) -> None:
        """Initializes `layer` from the subclass constructor's locals(): the
        layer's own arguments go to RNN, the rest to the cell."""
        args = dict(args)
        args.pop("self")
        args.pop("__class__", None)
        kwargs = args.pop("kwargs")
        layer_args = {k: args.pop(k) for k in cls.LAYER_ARGS}
        CellLayer.__init__(layer, args, **layer_args, **kwargs)

    def __init__(self, cell_kwargs, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, zero_output_for_mask=False,
                 activity_regularizer=None, implementation=None, use_cudnn="auto", **kwargs):
        # implementation and use_cudnn: Keras's choices of slow paths, which
        # rnnfast does not need; accepted for compatibility.
        cell = self.CELL(name=self.CELL_NAME, dtype=kwargs.get("dtype"), **cell_kwargs)
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         zero_output_for_mask=zero_output_for_mask,
                         activity_regularizer=activity_regularizer, **kwargs)

    def __getattr__(self, name):
        # units, activation, dropout, kernel, ...: the cell's (Keras exposes them too).
        cell = self.__dict__.get("cell")
        if cell is None or name.startswith("_"):
            raise AttributeError(name)
        return getattr(cell, name)

    def get_config(self):
        config = super().get_config()
        cell_config = config.pop("cell")["config"]
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        return {**config, **cell_config,
                "activity_regularizer": _ser(regularizers_module, self.activity_regularizer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config.pop("build_config", None)
        return cls(**config)
