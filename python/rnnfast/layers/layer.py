"""The layer base class, weights and the forward/backward protocol.

rnnfast has no autodiff. Every layer implements two methods:

- ``forward(ctx, inputs, training=False, mask=None, **kwargs) -> outputs``
  computes the outputs and, when ``training`` is true, keeps in ``ctx`` what
  its backward needs. ``ctx`` is a :class:`Context` that the *caller* owns
  (one per call site, a graph node), so one layer called at several places
  keeps one record per call.
- ``backward(ctx, grad, need_input_grad=True) -> input gradient`` takes
  dL/d(outputs) (one array, or a list with one entry per output, ``None``
  where an output gets no gradient) and returns dL/d(inputs) in the
  structure of ``inputs`` (``None`` with ``need_input_grad=False``, or for
  inputs that have no gradient, such as integer ids). It **adds** its
  weights' gradients into ``Variable.grad`` (``Variable.add_grad``), so that a
  layer used twice gets the sum; the caller zeroes them once per step. A
  layer that takes tensors as keyword arguments (an RNN's
  ``initial_state``) leaves their gradients in ``ctx.kwarg_grads``
  ({argument: gradient in its structure}).

``call(inputs, ...)`` is the plain inference entry point (a throwaway
context); ``layer(x)`` on NumPy data runs it, and ``layer(x)`` on symbolic
tensors (``rnnfast.Input``) records a graph node instead (``node.py``).
"""

from __future__ import annotations

import inspect
import math
import threading

import numpy as np

from .. import _budget, _tree
from .. import mixed_precision

from .._naming import auto_name
from .. import constraints as constraints_module
from .. import initializers as initializers_module
from .. import regularizers as regularizers_module



def dtype_policy(name: str) -> dict:
    """Keras 3 writes a layer's dtype as a policy; the same dict keeps configs interchangeable."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def resolve_dtype(dtype) -> np.dtype:
    """The NumPy dtype of a layer's arrays under a dtype (a name, a policy, a
    Keras 3 policy dict, or None: the global policy); float32 for mixed_bfloat16."""
    return np.dtype(mixed_precision.get(dtype).variable_dtype)


class Variable:
    """A weight: a NumPy array updated in place, plus Keras's attributes.

    ``value`` is the array (never rebound after creation, so kernels and the
    optimizer can hold on to it). ``grad`` is the gradient summed over the
    backward passes since the last ``zero_grad`` (None: no contribution yet).

    During ``fit`` on a GPU a recurrent layer's weight may live on the device
    (``_device``, an ``rnnfast._device.DeviceCopy``): its value, gradient and
    optimizer state are updated there, and reading ``value`` copies the
    device's value back first (and has the device copy refreshed before its
    next use, since the reader may write into the array). Gradients given on
    the host (``add_grad``/``commit_grad``) are then added on the device.
    An array taken from ``value`` and kept across training steps is therefore
    a snapshot during such a fit: read ``value`` again (writes go through
    ``assign`` or a fresh ``value``).
    """

    def __init__(self, value, name: str, trainable: bool = True, regularizer=None,
                 constraint=None, path: str | None = None, dtype="float32"):
        self._value = np.array(value, dtype=dtype, order="C", copy=True)
        self._device = None
        self.name = name
        self.path = path or name
        self.trainable = trainable
        self.regularizer = regularizer
        self.constraint = constraint
        self._grad = None
        self._grad_buffer = None  # reused by kernels that write gradients in place

    @property
    def value(self) -> np.ndarray:
        if self._device is not None:
            self._device.to_host(self._value)
        return self._value

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, g) -> None:
        self._grad = g
        if g is None and self._device is not None:
            self._device.grad_live = False  # zero_grad

    def add_grad(self, g) -> None:
        """Adds one backward pass's contribution to ``grad``."""
        if self._device is not None:
            self._device.add_host_grad(g)
            return
        self.grad = g if self.grad is None else self.grad + g

    def grad_target(self):
        """(array, fresh): where a kernel may write this pass's gradient. While
        ``grad`` is empty that is a buffer kept between steps (fresh=True: the
        written array becomes ``grad``, see ``commit_grad``); otherwise a new
        array to add in."""
        if self.grad is None:
            buf = self._grad_buffer  # value is never rebound, so its shape never changes
            if buf is None:
                buf = self._grad_buffer = np.empty_like(self._value)
            return buf, True
        return np.empty_like(self._value), False

    def commit_grad(self, written, fresh) -> None:
        if self._device is not None:
            self._device.add_host_grad(written)
            return
        if fresh:
            self.grad = written
        else:
            self.grad = self.grad + written

    @property
    def shape(self):
        return self._value.shape

    @property
    def dtype(self):
        return self._value.dtype

    def numpy(self):
        return self.value.copy()

    def assign(self, value):
        value = np.asarray(value)
        if value.shape != self.value.shape:
            raise ValueError(f"cannot assign a value of shape {value.shape} to variable "
                             f"'{self.path}' of shape {self.value.shape}")
        self.value[...] = value
        return self

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}>"


def as_float(x, dtype=np.float32):
    """Inputs in the layer's float type (Keras casts inputs to the layer's dtype)."""
    x = np.asarray(x)
    if x.dtype != dtype:
        x = x.astype(dtype)
    return x


def normalize_shape(shape):
    if shape is None:
        return None
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(None if d is None else int(d) for d in shape)


class Context:
    """What one call of a layer keeps for its backward (and, for models, the
    contexts of their own nodes). The caller owns it: a graph keeps one per
    node and reuses it from step to step, so that kernels' workspaces and
    output buffers stored in it are allocated once."""

    def child(self, key) -> "Context":
        """A sub-context for a wrapped layer (a Bidirectional's directions, ...)."""
        children = self.__dict__.setdefault("_children", {})
        c = children.get(key)
        if c is None:
            c = children[key] = Context()
        return c


def _call_parameters(fn) -> tuple:
    """Names of a forward(self, ctx, inputs, ...) or call(self, inputs, ...)
    method's arguments after the inputs."""
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    lead = 3 if len(params) > 1 and params[1].name == "ctx" else 2
    return tuple(p.name for p in params[lead:])

# Held while a layer or model builds lazily on its first data, so that two
# threads' first calls do not both build it (reentrant: builds nest).
BUILD_LOCK = threading.RLock()


_CALL_ARGS: dict = {}


class Layer:
    """Base class of rnnfast's layers (Keras 3 names and arguments)."""

    #: Whether the layer passes an incoming mask on (Keras's supports_masking).
    supports_masking = False
    #: Whether integer inputs (token ids) reach the layer unconverted (Embedding).
    accepts_integer_inputs = False
    #: The "module" Keras writes in this layer's serialized config.
    KERAS_MODULE = "keras.layers"

    def __init__(self, trainable=True, name=None, dtype=None, input_shape=None, input_dim=None,
                 batch_input_shape=None, batch_size=None, activity_regularizer=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) "
                            f"{sorted(kwargs)}")
        # compute_dtype: the NumPy dtype of the layer's arrays (float32 under
        # mixed_bfloat16, whose bf16 GEMMs the recurrent kernels do inside).
        self._dtype_policy = mixed_precision.get(dtype)
        self.compute_dtype = np.dtype(self._dtype_policy.variable_dtype)
        self.name = name or auto_name(type(self).__name__)
        self.trainable = trainable
        self.built = False
        self._variables: list[Variable] = []
        self._layers: list[Layer] = []  # sublayers whose weights this layer owns
        self._inbound_nodes: list = []  # one graph node per symbolic call (node.py)
        self.activity_regularizer = regularizers_module.get(activity_regularizer)
        # The input shape the user declared (Keras 2 style), batch dim included.
        if batch_input_shape is not None:
            self._batch_input_shape = normalize_shape(batch_input_shape)
        elif input_shape is not None:
            self._batch_input_shape = (batch_size,) + normalize_shape(input_shape)
        elif input_dim is not None:
            self._batch_input_shape = (batch_size, int(input_dim))
        else:
            self._batch_input_shape = None
        self._path_prefix = ""  # set by a parent layer (an RNN for its cell)

    @property
    def dtype(self):
        return self.compute_dtype.name

    @property
    def dtype_policy(self):
        """The layer's policy (``rnnfast.mixed_precision.DTypePolicy``)."""
        return self._dtype_policy

    @property
    def variable_dtype(self):
        return self._dtype_policy.variable_dtype

    # ---- weights -----------------------------------------------------------------

    def add_weight(self, shape, initializer="glorot_uniform", name=None, trainable=True,
                   regularizer=None, constraint=None, dtype=None):
        shape = normalize_shape(shape)
        # Exact (Python ints): a float product loses digits, an int64 one wraps.
        nbytes = math.prod(shape) * self.compute_dtype.itemsize
        what = f"weight '{name}' of layer '{self._path_prefix}{self.name}' with shape {shape}"
        _budget.claim(nbytes, what)
        held = sum(v.value.nbytes for v in self._variables)
        _budget.check_fits_memory(nbytes + held, f"{what}, with the layer's other weights,"
                                  if held else what)
        init = initializers_module.get(initializer)
        value = np.asarray(init(shape, dtype=self.compute_dtype.name), dtype=self.compute_dtype)
        if value.shape != shape:
            raise ValueError(f"initializer for '{name}' returned shape {value.shape}, expected {shape}")
        var = Variable(value, name=name or f"variable_{len(self._variables)}", trainable=trainable,
                       regularizer=regularizers_module.get(regularizer),
                       constraint=constraints_module.get(constraint),
                       path=f"{self._path_prefix}{self.name}/{name}", dtype=self.compute_dtype)
        self._variables.append(var)
        return var

    @property
    def weights(self) -> list:
        out = list(self._variables)
        for layer in self._layers:
            out += layer.weights
        return out

    @property
    def variables(self):
        return self.weights

    @property
    def trainable_weights(self) -> list:
        if not self.trainable:
            return []
        out = [v for v in self._variables if v.trainable]
        for layer in self._layers:
            out += layer.trainable_weights
        return out

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def non_trainable_weights(self) -> list:
        trainable = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable]

    @property
    def non_trainable_variables(self):
        return self.non_trainable_weights

    def get_weights(self) -> list:
        return [v.numpy() for v in self.weights]

    def set_weights(self, weights) -> None:
        params = self.weights
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(
                f"layer '{self.name}' expects {len(params)} weight arrays with shapes "
                f"{[v.shape for v in params]}, got {len(weights)}")
        for v, w in zip(params, weights):
            w = np.asarray(w)
            if w.shape != v.shape:
                raise ValueError(f"layer '{self.name}': weight '{v.name}' has shape {v.shape}, "
                                 f"got an array of shape {w.shape}")
        for v, w in zip(params, weights):
            v.value[...] = w

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"layer '{self.name}' is not built yet: call it on data or build() it "
                             f"first to count its parameters")
        return int(sum(v.value.size for v in self.weights))

    def zero_grad(self) -> None:
        """Forgets every weight's gradient (the start of a training step)."""
        for v in self.weights:
            v.grad = None

    @property
    def losses(self) -> list:
        """Regularization penalties of this layer's weights (floats)."""
        return [float(v.regularizer(v.value)) for v in self.weights
                if v.regularizer is not None and (v.trainable and self.trainable)]

    # ---- the forward/backward protocol ---------------------------------------------

    def build(self, input_shape) -> None:
        self.built = True

    def maybe_build(self, input_shape) -> None:
        if not self.built:
            with BUILD_LOCK:
                if not self.built:
                    self.build(normalize_shapes(input_shape))
                    self.built = True

    def forward(self, ctx, inputs, training=False, mask=None, **kwargs):
        """The outputs for `inputs`; with training=True, keeps in `ctx` what
        backward needs. The default runs a Keras-style ``call`` (custom layers
        that define only ``call`` then work forward; they cannot be trained
        through, having no backward)."""
        if type(self).call is Layer.call:
            raise NotImplementedError(f"{type(self).__name__} defines neither forward() nor call()")
        accepted = _call_parameters(type(self).call)
        extra = {k: v for k, v in (("training", training), ("mask", mask)) if k in accepted}
        return self.call(inputs, **extra, **kwargs)

    def backward(self, ctx, grad, need_input_grad=True):
        """dL/d(inputs) from dL/d(outputs); adds this layer's weight gradients
        into Variable.grad. Reads what forward(ctx, ..., training=True) kept."""
        raise NotImplementedError(
            f"layer '{self.name}' ({type(self).__name__}) has no backward pass: rnnfast has no "
            f"autodiff, so a layer that is trained through needs a hand-written backward(ctx, "
            f"grad, need_input_grad)")

    def call(self, inputs, training=False, mask=None, **kwargs):
        """Runs the layer (no gradient bookkeeping kept)."""
        return self.forward(Context(), inputs, training=training, mask=mask, **kwargs)

    def _first_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer '{self.name}' has never been called on symbolic tensors "
                                 f"and thus has no defined {what}.")
        return self._inbound_nodes[0]

    @property
    def input(self):
        """The symbolic input(s) of the layer's first call (Keras's layer.input)."""
        return self._first_node("input").inputs

    @property
    def output(self):
        """The symbolic output(s) of the layer's first call (Keras's layer.output)."""
        return self._first_node("output").output_structure

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, input_shape, **kwargs):
        """Output shape(s) of a symbolic call: a tuple for one output, a list of
        tuples for several. `kwargs` are the call's keyword arguments, with the
        shapes of any tensors among them."""
        return self.compute_output_shape(input_shape)

    def compute_mask(self, inputs, mask=None):
        return mask if self.supports_masking else None

    def activity_penalty(self, outputs) -> float:
        """The activity regularizer's penalty, divided by the batch size (Keras 3)."""
        if self.activity_regularizer is None:
            return 0.0
        value = float(self.activity_regularizer(outputs))
        return value / len(outputs) if np.ndim(outputs) > 0 and len(outputs) else value

    def activity_gradient(self, outputs):
        g = self.activity_regularizer.gradient(outputs)
        if np.ndim(outputs) > 0 and len(outputs):
            g = g / np.asarray(outputs).dtype.type(len(outputs))
        return g

    def _call_arg_names(self) -> tuple:
        """Names that extra positional call arguments bind to (after the inputs)."""
        cls = type(self)
        names = _CALL_ARGS.get(cls)
        if names is None:
            fn = cls.forward if cls.forward is not Layer.forward else cls.call
            names = _CALL_ARGS[cls] = _call_parameters(fn)
        return names

    def __call__(self, *args, **kwargs):
        """On symbolic tensors (rnnfast.Input), records a graph node and returns
        symbolic outputs; on NumPy data, runs the layer (inference unless
        training=True)."""
        if len(args) == 1 and not kwargs and type(args[0]) is np.ndarray and self.built:
            # The common eager call, layer(x) or model(x) on one array: nothing
            # symbolic, no arguments to bind, nothing to build (~3 us of a
            # streamed step's model(x)).
            return self.call(args[0])
        from . import node as node_module

        if not args:
            if "inputs" not in kwargs:
                raise TypeError(f"{type(self).__name__}.__call__ needs its inputs")
            args = (kwargs.pop("inputs"),)
        inputs = args[0]
        if len(args) > 1:
            names = self._call_arg_names()
            if len(args) - 1 > len(names):
                raise TypeError(f"{type(self).__name__}.__call__ takes at most {len(names) + 1} "
                                f"positional arguments, got {len(args)}")
            for name, value in zip(names, args[1:]):
                if name in kwargs:
                    raise TypeError(f"{type(self).__name__}.__call__ got {name!r} twice")
                kwargs[name] = value
        if node_module.any_symbolic(inputs, kwargs):
            return node_module.symbolic_call(self, inputs, kwargs)
        accepted = self._call_arg_names()
        for key in ("training", "mask"):
            if key not in accepted and kwargs.get(key) is None:
                kwargs.pop(key, None)
        if "training" in kwargs:
            kwargs["training"] = bool(kwargs["training"])
        self.maybe_build(_tree.map_structure(np.shape, inputs)
                         if isinstance(inputs, (list, tuple, dict)) else np.shape(inputs))
        return self.call(inputs, **kwargs)

    # ---- configuration ----------------------------------------------------------

    def get_config(self) -> dict:
        return {"name": self.name, "trainable": self.trainable,
                "dtype": mixed_precision.serialize(self._dtype_policy)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("build_config", None)
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def normalize_shapes(shape):
    """A shape, or a list/dict of shapes, with ints and Nones."""
    if isinstance(shape, dict):
        return {k: normalize_shapes(v) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple, dict)):
        return [normalize_shapes(s) for s in shape]
    return normalize_shape(shape)


def as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]
