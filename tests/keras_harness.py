"""Shared pieces of the tests against real Keras (import after
pytest.importorskip("keras")): the same model built by both libraries with
Keras's weights, and the tolerances."""

import json
import os

import numpy as np

import keras as keras_ref
import rnnfast

TRAINABLE = os.environ.get("KERAS_BACKEND", "tensorflow") in ("jax", "tensorflow", "torch")
# float32 against float32: both sum a few dozen terms in different orders.
TOL = dict(rtol=1e-5, atol=1e-6)


def both(build):
    """(keras model, rnnfast model) from build(K), the rnnfast one with Keras's weights."""
    keras_ref.backend.clear_session()  # both name their layers from fresh counters
    rnnfast.backend.clear_session()
    k = build(keras_ref)
    r = build(rnnfast)
    assert [l.name for l in r.layers] == [l.name for l in k.layers]
    assert [w.shape for w in r.get_weights()] == [w.shape for w in k.get_weights()]
    r.set_weights(k.get_weights())
    return k, r


def targets_for(model, n=4, seed=1):
    shape = (n,) + tuple(model.outputs[0].shape[1:])
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def plain(config):
    """The config as a .keras file stores it (JSON: tuples become lists)."""
    return json.loads(json.dumps(config))


def check_config_matches_keras(cls, kw):
    """Layer `cls` made with `kw` has Keras's config keys and values, and each
    library builds the other's layer from its config."""
    ck = plain(getattr(keras_ref.layers, cls)(name="x", **kw).get_config())
    cr = plain(getattr(rnnfast.layers, cls)(name="x", **kw).get_config())
    assert set(cr) == set(ck)
    for key in ck:
        assert cr[key] == ck[key], key
    again = getattr(rnnfast.layers, cls).from_config(ck)
    assert plain(again.get_config()) == cr
    assert plain(getattr(keras_ref.layers, cls).from_config(cr).get_config()) == ck
