"""Sequence classification (sentiment-style, sequence to vector) and the
vanishing-gradient lesson.

Synthetic "reviews" of variable length: filler words with two opinion words,
the first in the middle of the review and the second, of random polarity,
later. The label is the polarity of the first one ("first impressions
count"), so the order matters and a rule that only counts opinion words
gets about 75%. Whichever direction it reads, a recurrent layer must carry
the first opinion across a third of the review or more, past the second one.
Each model is Embedding(mask_zero=True) -> Bidirectional(cell) -> Dense
sigmoid, trained with Adam (clipnorm=1: gradients can also explode) on
binary cross-entropy. LSTM and GRU learn the task; SimpleRNN, whose
gradients fade over long distances, stays near chance.
"""

from __future__ import annotations

import sys

import numpy as np

from ..utils import pad_sequences
from . import _common

EPOCHS_FULL, EPOCHS_QUICK = 8, 4
CELLS = ("SimpleRNN", "GRU", "LSTM")

POSITIVE = ("great", "superb", "wonderful", "moving")
NEGATIVE = ("awful", "boring", "dull", "terrible")
FILLER = ("the", "a", "movie", "film", "plot", "actors", "scene", "story", "was", "is", "and",
          "with", "of", "in", "it", "this", "that", "director", "music", "ending", "camera",
          "script", "cast", "hero", "we", "i", "they", "saw", "watched", "seemed", "then", "at",
          "time", "night", "city", "friend", "two", "hours", "long", "its")
# Token 0 is padding (masked by Embedding(mask_zero=True)).
VOCAB = ("<pad>",) + POSITIVE + NEGATIVE + FILLER


def make_reviews(n, min_len, max_len, rng):
    """(padded token ids [n, max_len] int32, labels [n] float32, lengths [n])."""
    pos_ids = np.arange(1, 1 + len(POSITIVE))
    neg_ids = np.arange(1 + len(POSITIVE), 1 + len(POSITIVE) + len(NEGATIVE))
    first_filler = 1 + len(POSITIVE) + len(NEGATIVE)
    labels = rng.integers(0, 2, n)
    second = rng.integers(0, 2, n)  # the later opinion: a distractor
    lengths = rng.integers(min_len, max_len + 1, n)
    reviews = []
    for label, other, length in zip(labels, second, lengths):
        words = rng.integers(first_filler, len(VOCAB), length)
        # First opinion in the middle (30-50% in), the second one 60-90% in.
        words[rng.integers(int(0.3 * length), int(0.5 * length) + 1)] = \
            rng.choice(pos_ids if label else neg_ids)
        words[rng.integers(int(0.6 * length), int(0.9 * length) + 1)] = \
            rng.choice(pos_ids if other else neg_ids)
        reviews.append(words)
    return (pad_sequences(reviews, maxlen=max_len).astype(np.int32), labels.astype(np.float32),
            lengths)


def decode(ids):
    return " ".join(VOCAB[i] for i in ids if i != 0)


def counting_rule(X, majority):
    """The best an order-free rule can do: the polarity with more opinion
    words, or the majority class on a tie."""
    pos = np.isin(X, np.arange(1, 1 + len(POSITIVE))).sum(axis=1)
    neg = np.isin(X, np.arange(1 + len(POSITIVE), 1 + len(POSITIVE) + len(NEGATIVE))).sum(axis=1)
    return np.where(pos > neg, 1.0, np.where(neg > pos, 0.0, majority))


def _lengths(quick, min_len, max_len):
    min_len = min_len or 20
    max_len = max_len or (60 if quick else 150)
    if not 10 <= min_len <= max_len:
        raise ValueError(f"review lengths need 10 <= min_len <= max_len, got {min_len} and "
                         f"{max_len}")
    return min_len, max_len


def build_model(cell, units, embed_dim=16):
    import rnnfast as keras

    Cell = getattr(keras.layers, cell)
    return keras.Sequential([
        keras.layers.Embedding(len(VOCAB), embed_dim, mask_zero=True),
        keras.layers.Bidirectional(Cell(units)),
        keras.layers.Dense(1, activation="sigmoid"),
    ])


def run(quick=False, epochs=None, seed=42, verbose=1, out=None, plot=None, cells=CELLS,
        n_train=None, min_len=None, max_len=None, units=None):
    """Trains one model per cell type; returns {cell: {"accuracy", ...}, "majority": ...}."""
    import rnnfast as keras

    out = out or sys.stdout
    epochs = epochs or (EPOCHS_QUICK if quick else EPOCHS_FULL)
    n_train = n_train or (4000 if quick else 10000)
    min_len, max_len = _lengths(quick, min_len, max_len)
    units = units or (16 if quick else 32)
    n_valid, n_test = n_train // 8, n_train // 4
    rng = np.random.default_rng(seed)
    X, y, lengths = make_reviews(n_train + n_valid + n_test, min_len, max_len, rng)
    X_train, y_train = X[:n_train], y[:n_train]
    X_valid, y_valid = X[n_train:n_train + n_valid], y[n_train:n_train + n_valid]
    X_test, y_test = X[n_train + n_valid:], y[n_train + n_valid:]
    len_test = lengths[n_train + n_valid:]
    long = len_test >= np.quantile(len_test, 2 / 3)  # the longest third
    print(f"classification: {n_train} train / {n_valid} valid / {n_test} test synthetic reviews "
          f"of {min_len}-{max_len} words, vocabulary {len(VOCAB)}; label = polarity of the first "
          f"opinion word; {epochs} epochs", file=out)
    for label in (1.0, 0.0):  # the shortest review of each class, as an illustration
        i = int(np.argmin(np.where(y_train == label, lengths[:n_train], max_len + 1)))
        print(f"  e.g. [{'positive' if label else 'negative'}] {decode(X_train[i])}", file=out)

    majority = float(y_train.mean() >= 0.5)
    results = {"majority": float(np.mean(y_test == majority)),
               "counting": float(np.mean(counting_rule(X_test, majority) == y_test)),
               "lengths": len_test}
    for cell in cells:
        keras.utils.set_random_seed(seed)
        model = build_model(cell, units)
        model.compile(loss="binary_crossentropy", metrics=["accuracy"],
                      optimizer=keras.optimizers.Adam(learning_rate=0.01, clipnorm=1.0))
        print(f"\nBidirectional({cell}({units}))", file=out)
        timer = _common.EpochTimer()
        with _common.redirect_stdout(out):
            history = model.fit(X_train, y_train, epochs=epochs, batch_size=32, verbose=verbose,
                                validation_data=(X_valid, y_valid), callbacks=[timer])
        correct = (model.predict(X_test, verbose=0)[:, 0] > 0.5) == (y_test > 0.5)
        results[cell] = {"accuracy": float(correct.mean()),
                         "long_accuracy": float(correct[long].mean()), "correct": correct,
                         "val_accuracy": list(history.history["val_accuracy"]),
                         "params": model.count_params(),
                         "seconds_per_epoch": timer.seconds_per_epoch}

    if plot:
        _common.save_plot(plot, lambda Figure: _draw(Figure, results, cells, min_len, max_len),
                          out)
    cut = int(np.ceil(np.quantile(len_test, 2 / 3)))
    rows = [["majority class", "", f"{results['majority']:.3f}", "", ""],
            ["counting opinion words (order-free)", "", f"{results['counting']:.3f}", "", ""]]
    rows += [[f"Bidirectional({c}({units}))", f"{results[c]['params']:,}",
              f"{results[c]['accuracy']:.3f}", f"{results[c]['long_accuracy']:.3f}",
              f"{results[c]['seconds_per_epoch']:.2f}"] for c in cells]
    print("\n" + _common.table(["model", "params", "test accuracy",
                                f"accuracy, reviews of {cut}+ words", "s/epoch"], rows), file=out)
    return results


def _draw(Figure, results, cells, min_len, max_len):
    """Left: validation accuracy per epoch; right: test accuracy by review length."""
    fig = Figure(figsize=(11, 3.8))
    a, b = fig.subplots(1, 2)
    lengths = results["lengths"]
    edges = np.unique(np.linspace(min_len, max_len + 1, 6).astype(int))
    centers = (edges[:-1] + edges[1:]) / 2
    for i, cell in enumerate(cells):
        r = results[cell]
        # Distinct line styles: GRU and LSTM often overlap at 1.0.
        style = dict(color=f"C{i}", ls=("-", "--", ":")[i % 3], marker="os^"[i % 3], label=cell)
        a.plot(np.arange(1, len(r["val_accuracy"]) + 1), r["val_accuracy"], **style)
        acc = [r["correct"][(lengths >= lo) & (lengths < hi)].mean() for lo, hi in
               zip(edges[:-1], edges[1:])]
        b.plot(centers, acc, **style)
    for ax in (a, b):
        ax.axhline(results["counting"], color="0.5", ls="--", lw=1, label="counting rule")
        ax.axhline(0.5, color="0.7", ls="-.", lw=1, label="chance")
        ax.set_ylim(0.4, 1.02)
        ax.grid(alpha=0.3)
    a.set(xlabel="epoch", ylabel="validation accuracy", title="Learning curves")
    a.xaxis.get_major_locator().set_params(integer=True)
    b.set(xlabel="review length (words)", ylabel="test accuracy", title="Accuracy by length")
    a.legend(fontsize=8)
    fig.suptitle("Bidirectional recurrent classifiers: first-opinion reviews")
    fig.tight_layout()
    return fig


def main(argv=None, prog=None):
    p = _common.parser(prog or "classification", __doc__, EPOCHS_FULL, EPOCHS_QUICK,
                       "classification.png")
    p.add_argument("--train", type=int, default=None,
                   help="training reviews (default 10000, or 4000 with --quick)")
    p.add_argument("--min-len", type=int, default=None, help="shortest review (default 20)")
    p.add_argument("--max-len", type=int, default=None, help="default 150, or 60 with --quick")
    p.add_argument("--units", type=int, default=None, help="default 32, or 16 with --quick")
    p.add_argument("--cell", action="append", choices=CELLS, default=None,
                   help="train only this cell type (repeatable; default all three)")
    args = p.parse_args(argv)
    kw = _common.common_args(p, args, "classification.png")
    if args.train is not None and args.train < 8:
        p.error("--train must be at least 8")
    if args.units is not None and args.units < 1:
        p.error("--units must be positive")
    try:
        _lengths(args.quick, args.min_len, args.max_len)
    except ValueError as e:
        p.error(str(e))
    run(n_train=args.train, min_len=args.min_len, max_len=args.max_len, units=args.units,
        cells=tuple(args.cell or CELLS), **kw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
