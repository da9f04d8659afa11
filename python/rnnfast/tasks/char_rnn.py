"""Character-level language model and text generation (char-rnn).

By default the text is the Python standard library's own source (as char-rnn
learned from the Linux kernel's), read from this machine, so nothing is
downloaded; ``--text FILE`` trains on any UTF-8 file instead. The last 10% of
the text is held out. An Embedding feeds a stateful LSTM, then a GRU (the
quick form trains the LSTM only), trained with truncated backpropagation
through time: the text is cut into ``batch`` contiguous streams, each batch
holds the next window of every stream, and the states carry from one window
to the next while gradients stop at the window's start. A softmax over the
characters is trained with sparse categorical cross-entropy. Reports held-out
perplexity next to unigram and bigram baselines and samples text at several
temperatures.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np

from .. import callbacks
from . import _common

EPOCHS_FULL, EPOCHS_QUICK = 6, 3
TEMPERATURES = (0.2, 0.5, 1.0)

# Well-known pure-Python modules, in this order, make the default text: the
# same on every machine with the same Python version.
STDLIB_MODULES = ("argparse", "textwrap", "string", "csv", "calendar", "heapq", "fractions",
                  "functools", "dataclasses", "enum", "difflib", "ast", "inspect", "typing",
                  "statistics", "random", "shutil", "subprocess", "tarfile", "zipfile",
                  "pathlib", "json.decoder", "json.encoder", "collections", "logging")


def load_text(path=None, max_chars=None):
    """(text, description) from `path`, or from the standard library's sources."""
    if path is not None:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(max_chars) if max_chars else f.read()
        return text, str(path)
    parts, total, used = [], 0, []
    for name in STDLIB_MODULES:
        spec = importlib.util.find_spec(name)
        origin = getattr(spec, "origin", None)
        if not origin or not origin.endswith(".py"):
            continue  # no source on this install (frozen, compiled only)
        with open(origin, encoding="utf-8", errors="replace") as f:
            parts.append(f.read())
        used.append(name)
        total += len(parts[-1])
        if max_chars and total >= max_chars:
            break
    if not parts:
        raise RuntimeError("no Python standard library sources found here: pass --text FILE")
    text = "".join(parts)[:max_chars]
    return text, (f"Python {sys.version_info.major}.{sys.version_info.minor} standard library "
                  f"source ({', '.join(used)})")


def stateful_windows(ids, batch_size, seq_len):
    """Inputs and next-character targets [n_windows * batch_size, seq_len] for
    stateful training: the text is cut into `batch_size` contiguous streams, and
    row w * batch_size + b holds window w of stream b, so that each sample in
    batch w + 1 continues the one at the same position in batch w."""
    n_windows = (len(ids) - 1) // (batch_size * seq_len)
    if n_windows < 1:
        raise ValueError(f"the text ({len(ids)} characters) is too short for batches of "
                         f"{batch_size} windows of {seq_len}")
    n = n_windows * batch_size * seq_len

    def arrange(a):
        return a.reshape(batch_size, n_windows, seq_len).transpose(1, 0, 2).reshape(-1, seq_len)

    return arrange(ids[:n]), arrange(ids[1:n + 1])


def ngram_perplexities(train_ids, test_ids, vocab_size):
    """Held-out perplexity of add-one-smoothed unigram and bigram models: the
    baselines a language model must beat."""
    uni = np.bincount(train_ids, minlength=vocab_size) + 1.0
    uni /= uni.sum()
    big = np.ones((vocab_size, vocab_size))
    np.add.at(big, (train_ids[:-1], train_ids[1:]), 1.0)
    big /= big.sum(axis=1, keepdims=True)
    return (float(np.exp(-np.mean(np.log(uni[test_ids])))),
            float(np.exp(-np.mean(np.log(big[test_ids[:-1], test_ids[1:]])))))


def build_model(cell, vocab_size, batch_size, units, n_layers, embed_dim=32):
    """Embedding -> stateful recurrent layer(s) -> softmax over the characters,
    for a fixed batch size (stateful layers keep one state per batch row)."""
    import rnnfast as keras

    Cell = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
    model = keras.Sequential([keras.Input(batch_size=batch_size, shape=(None,), dtype="int32"),
                              keras.layers.Embedding(vocab_size, embed_dim)])
    for _ in range(n_layers):
        model.add(Cell(units, return_sequences=True, stateful=True))
    model.add(keras.layers.Dense(vocab_size, activation="softmax"))
    return model


class ResetStates(callbacks.Callback):
    """Starts each epoch, and each pass over the held-out text, from zero
    states (the streams restart at their beginnings)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_states()

    def on_test_begin(self, logs=None):
        self.model.reset_states()


def sample(model, chars, prime, n_chars, temperature, rng):
    """Generates n_chars after `prime` with a batch-1 stateful model, one
    character at a time, drawing from the softmax sharpened (T < 1) or
    flattened (T > 1) by the temperature."""
    index = {c: i for i, c in enumerate(chars)}
    model.reset_states()
    ids = np.array([[index.get(c, 0) for c in prime]], np.int32)
    probs = model.predict_on_batch(ids)[0, -1]  # reads the prime, keeps the state
    out = []
    for _ in range(n_chars):
        logits = np.log(np.maximum(probs.astype(np.float64), 1e-12)) / temperature
        p = np.exp(logits - logits.max())
        i = int(rng.choice(len(chars), p=p / p.sum()))
        out.append(chars[i])
        probs = model.predict_on_batch(np.array([[i]], np.int32))[0, -1]
    return "".join(out)


def run(quick=False, epochs=None, seed=42, verbose=1, out=None, text_path=None, max_chars=None,
        cells=None, units=None, n_layers=None, batch_size=None, seq_len=None,
        sample_chars=None, prime="def "):
    """Trains each cell; returns {cell: {"perplexity", "samples", ...}, "baselines": ...}."""
    import rnnfast as keras

    out = out or sys.stdout
    epochs = epochs or (EPOCHS_QUICK if quick else EPOCHS_FULL)
    cells = tuple(cells or (("lstm",) if quick else ("lstm", "gru")))
    max_chars = max_chars or (60_000 if quick else 600_000)
    units = units or (64 if quick else 192)
    n_layers = n_layers or (1 if quick else 2)
    batch_size = batch_size or 32
    seq_len = seq_len or (25 if quick else 100)
    sample_chars = sample_chars if sample_chars is not None else (120 if quick else 400)

    text, source = load_text(text_path, max_chars)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = np.fromiter((index[c] for c in text), np.int32, len(text))
    split = int(0.9 * len(ids))
    train_ids, test_ids = ids[:split], ids[split:]
    X_train, Y_train = stateful_windows(train_ids, batch_size, seq_len)
    X_test, Y_test = stateful_windows(test_ids, batch_size, seq_len)
    unigram, bigram = ngram_perplexities(train_ids, test_ids, len(chars))
    print(f"char_rnn: {len(text):,} characters of {source}; {len(chars)} distinct; "
          f"{len(train_ids):,} train / {len(test_ids):,} held out; {batch_size} streams, windows "
          f"of {seq_len}, {epochs} epochs", file=out)

    results = {"baselines": {"unigram": unigram, "bigram": bigram},
               "chars": len(text), "source": source}
    for cell in cells:
        keras.utils.set_random_seed(seed)
        model = build_model(cell, len(chars), batch_size, units, n_layers)
        model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=keras.optimizers.Adam(learning_rate=0.01 if quick else 0.005,
                                                      clipnorm=5.0))
        print(f"\n{n_layers} x {cell.upper()}({units}), stateful", file=out)
        timer = _common.EpochTimer()
        with _common.redirect_stdout(out):
            # shuffle=False keeps the windows in order: batch w + 1 continues batch w.
            # The held-out text is only watched here (val_loss), never used to choose.
            model.fit(X_train, Y_train, batch_size=batch_size, epochs=epochs, shuffle=False,
                      verbose=verbose, validation_data=(X_test, Y_test),
                      callbacks=[ResetStates(), timer])
        model.reset_states()
        loss = model.evaluate(X_test, Y_test, batch_size=batch_size, verbose=0)

        generator = build_model(cell, len(chars), 1, units, n_layers)
        generator.set_weights(model.get_weights())
        rng = np.random.default_rng(seed)
        samples = {t: sample(generator, chars, prime, sample_chars, t, rng) for t in TEMPERATURES}
        results[cell] = {"perplexity": float(np.exp(loss)), "loss": float(loss),
                         "seconds_per_epoch": timer.seconds_per_epoch,
                         "params": model.count_params(), "samples": samples,
                         "description": f"{n_layers} x {cell.upper()}({units})"}

    for cell in cells:
        for t, s in results[cell]["samples"].items():
            print(f"\n--- {cell.upper()} sample, temperature {t} ---\n{prime}{s}", file=out)
    rows = [["unigram (add-one)", "", f"{unigram:.2f}", ""],
            ["bigram (add-one)", "", f"{bigram:.2f}", ""]]
    rows += [[results[c]["description"], f"{results[c]['params']:,}",
              f"{results[c]['perplexity']:.2f}", f"{results[c]['seconds_per_epoch']:.1f}"]
             for c in cells]
    print("\n" + _common.table(["model", "params", "held-out perplexity", "s/epoch"], rows),
          file=out)
    return results


def main(argv=None, prog=None):
    p = _common.parser(prog or "char_rnn", __doc__, EPOCHS_FULL, EPOCHS_QUICK)
    p.add_argument("--text", default=None, metavar="FILE",
                   help="train on this UTF-8 text file (default: Python standard library source)")
    p.add_argument("--max-chars", type=int, default=None,
                   help="use at most this many characters (default 600,000, or 60,000 with "
                        "--quick)")
    p.add_argument("--cell", choices=["lstm", "gru", "both"], default=None,
                   help="default both, or lstm with --quick")
    p.add_argument("--units", type=int, default=None, help="default 192, or 64 with --quick")
    p.add_argument("--layers", type=int, default=None, help="default 2, or 1 with --quick")
    p.add_argument("--seq-len", type=int, default=None,
                   help="truncated-backpropagation window (default 100, or 25 with --quick)")
    p.add_argument("--sample-chars", type=int, default=None)
    p.add_argument("--prime", default="def ", help="text that starts each sample")
    args = p.parse_args(argv)
    kw = _common.common_args(p, args)
    for name in ("max_chars", "units", "layers", "seq_len"):
        v = getattr(args, name)
        if v is not None and v < 1:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if not args.prime:
        p.error("--prime must not be empty")
    cells = None if args.cell is None else ("lstm", "gru") if args.cell == "both" else (args.cell,)
    run(text_path=args.text, max_chars=args.max_chars, cells=cells, units=args.units,
        n_layers=args.layers, seq_len=args.seq_len, sample_chars=args.sample_chars,
        prime=args.prime, **kw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
