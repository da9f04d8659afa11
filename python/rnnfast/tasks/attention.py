"""A sequence-to-sequence model with Attention: reversing strings of digits.

Each input is a string of random digits; the target is the same string
reversed. Both models are functional: an Embedding and an encoder LSTM over
the digits (``return_sequences`` and ``return_state``), and a decoder LSTM
that starts from the encoder's states and reads one learned query per output
position. With Luong ``Attention`` the decoder looks back at every encoder
step and concatenates what it finds with its own state before the softmax;
without it, all it knows is the encoder's final state, which cannot hold 20
digits.

Measured (full run, 2 threads, AMD EPYC with AVX2, 2026-12-04): strings of
20 digits, 20,000 for training and 2,000 held out, 6 epochs each; with
Attention every held-out string comes out exactly right (exact match 1.000;
0.999 already after the first epoch); without it 0.013 (digit accuracy
0.80). 3.2 s per epoch with Attention, 2.3 s without; 33 s in all.
"""

from __future__ import annotations

import sys

import numpy as np

from . import _common

EPOCHS_FULL, EPOCHS_QUICK = 6, 3


def make_strings(n, length, rng):
    """n strings of `length` random digits (as integer arrays) and their reversals."""
    x = rng.integers(0, 10, (n, length)).astype(np.int32)
    return x, x[:, ::-1].copy()


def build_model(length, units, attention=True):
    import rnnfast as keras

    layers = keras.layers
    digits = keras.Input((length,), dtype="int32", name="digits")
    positions = keras.Input((length,), dtype="int32", name="positions")
    embedded = layers.Embedding(10, 16, name="digit_embedding")(digits)
    encoded, h, c = layers.LSTM(units, return_sequences=True, return_state=True,
                                name="encoder")(embedded)
    queries = layers.Embedding(length, 16, name="position_embedding")(positions)
    decoded = layers.LSTM(units, return_sequences=True, name="decoder")(queries,
                                                                       initial_state=[h, c])
    if attention:
        context = layers.Attention(use_scale=True, name="attention")([decoded, encoded])
        decoded = layers.Concatenate(name="with_context")([decoded, context])
    out = layers.Dense(10, activation="softmax", name="digit")(decoded)
    return keras.Model([digits, positions], out,
                       name="reverse_attention" if attention else "reverse_plain")


def run(quick=False, epochs=None, seed=42, verbose=1, out=None, length=None, n_train=None,
        units=None, batch_size=64):
    """Returns {"attention": {...}, "plain": {...}} with exact-match and digit
    accuracies on held-out strings and seconds per epoch."""
    import rnnfast as keras

    out = out or sys.stdout
    epochs = epochs or (EPOCHS_QUICK if quick else EPOCHS_FULL)
    length = length or (10 if quick else 20)
    n_train = n_train or (6000 if quick else 20000)
    units = units or (32 if quick else 64)
    n_test = max(1, n_train // 10)
    rng = np.random.default_rng(seed)
    x, y = make_strings(n_train + n_test, length, rng)
    pos = np.tile(np.arange(length, dtype=np.int32), (len(x), 1))
    train = ([x[:n_train], pos[:n_train]], y[:n_train])
    test = ([x[n_train:], pos[n_train:]], y[n_train:])
    print(f"attention: reversing strings of {length} digits, {n_train} train / {n_test} held "
          f"out; {epochs} epochs", file=out)
    results = {}
    for name, use in (("attention", True), ("plain", False)):
        keras.utils.set_random_seed(seed)
        model = build_model(length, units, attention=use)
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      optimizer=keras.optimizers.Adam(0.005, clipnorm=1.0))
        timer = _common.EpochTimer()
        with _common.redirect_stdout(out):
            model.fit(*train, batch_size=batch_size, epochs=epochs, verbose=verbose,
                      callbacks=[timer])
        pred = model.predict(test[0], verbose=0, batch_size=512).argmax(axis=-1)
        results[name] = {"exact_match": float(np.all(pred == test[1], axis=1).mean()),
                         "digit_accuracy": float((pred == test[1]).mean()),
                         "seconds_per_epoch": timer.seconds_per_epoch,
                         "params": model.count_params()}
        if use:
            example = "".join(map(str, x[n_train])), "".join(map(str, pred[0]))
            print(f"  {example[0]} -> {example[1]}", file=out)
    rows = [[f"{'with' if k == 'attention' else 'without'} Attention", f"{r['params']:,}",
             f"{r['digit_accuracy']:.3f}", f"{r['exact_match']:.3f}",
             f"{r['seconds_per_epoch']:.2f}"] for k, r in results.items()]
    print("\n" + _common.table(["model", "params", "digit accuracy", "exact match", "s/epoch"],
                               rows), file=out)
    return results


def main(argv=None, prog=None):
    p = _common.parser(prog or "attention", __doc__, EPOCHS_FULL, EPOCHS_QUICK)
    p.add_argument("--length", type=int, default=None, help="digits per string (default 20, "
                                                            "or 10 with --quick)")
    p.add_argument("--train", type=int, default=None,
                   help="training strings (default 20000, or 6000 with --quick)")
    p.add_argument("--units", type=int, default=None, help="default 64, or 32 with --quick")
    args = p.parse_args(argv)
    kw = _common.common_args(p, args)
    for name in ("length", "train", "units"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be positive")
    run(length=args.length, n_train=args.train, units=args.units, **kw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
