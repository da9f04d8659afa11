"""Encoder-decoder (sequence to sequence): learning to add numbers written as text.

Questions such as "12+345" (padded with spaces) and their answers "357" are
made locally, every question unique, with held-out questions never seen in
training. As in Keras's addition example, the question is read reversed
(which shortens the paths between related digits). One-hot characters feed an
encoder LSTM, whose final state RepeatVector copies to every output step of a
decoder LSTM, followed by a TimeDistributed softmax over the characters.
Reports per-character accuracy and exact-match accuracy (the whole answer
right) next to the most frequent answer's share.
"""

from __future__ import annotations

import sys

import numpy as np

from . import _common

EPOCHS_FULL, EPOCHS_QUICK = 30, 8
CHARS = "0123456789+ "


def make_questions(n, digits, rng):
    """n distinct (question, answer) string pairs, padded to fixed widths."""
    max_number = 10 ** digits
    if n > max_number ** 2:
        raise ValueError(f"only {max_number ** 2} distinct questions with {digits} digits, "
                         f"asked for {n}")
    # Distinct (a, b) pairs drawn without replacement from all of them.
    pairs = rng.choice(max_number ** 2, size=n, replace=False)
    a, b = pairs // max_number, pairs % max_number
    q_width, a_width = 2 * digits + 1, digits + 1
    questions = [f"{x}+{y}".ljust(q_width) for x, y in zip(a, b)]
    answers = [str(x + y).ljust(a_width) for x, y in zip(a, b)]
    return questions, answers


def encode(strings, reverse=False):
    index = {c: i for i, c in enumerate(CHARS)}
    ids = np.array([[index[c] for c in (s[::-1] if reverse else s)] for s in strings], np.int32)
    return ids


def decode(ids):
    return "".join(CHARS[i] for i in ids)


def build_model(digits, units, layers=1):
    import rnnfast as keras

    model = keras.Sequential([
        keras.Input(shape=(2 * digits + 1, len(CHARS))),
        keras.layers.LSTM(units),                # encoder: the question -> one vector
        keras.layers.RepeatVector(digits + 1),   # that vector at every output step
    ])
    for _ in range(layers):
        model.add(keras.layers.LSTM(units, return_sequences=True))  # decoder
    model.add(keras.layers.TimeDistributed(keras.layers.Dense(len(CHARS), activation="softmax")))
    return model


def run(quick=False, epochs=None, seed=42, verbose=1, out=None, digits=None, n_train=None,
        units=None, reverse=True, batch_size=None, learning_rate=None):
    """Returns {"exact_match", "char_accuracy", "baseline", "seconds_per_epoch", ...}."""
    import rnnfast as keras

    out = out or sys.stdout
    epochs = epochs or (EPOCHS_QUICK if quick else EPOCHS_FULL)
    digits = digits or (2 if quick else 3)
    n_train = n_train or (6000 if quick else 50000)
    units = units or (64 if quick else 128)
    batch_size = batch_size or 32
    # Adam at 10x (5x) its default rate learns this in a few epochs, clipped
    # for stability.
    learning_rate = learning_rate or (0.01 if quick else 0.005)
    n_valid = n_test = max(1, n_train // 10)
    rng = np.random.default_rng(seed)
    questions, answers = make_questions(n_train + n_valid + n_test, digits, rng)
    X = keras.utils.to_categorical(encode(questions, reverse), len(CHARS))
    Y = encode(answers)
    X_train, Y_train = X[:n_train], Y[:n_train]
    X_valid, Y_valid = X[n_train:n_train + n_valid], Y[n_train:n_train + n_valid]
    X_test, Y_test = X[n_train + n_valid:], Y[n_train + n_valid:]
    test_answers = answers[n_train + n_valid:]
    print(f"seq2seq: {digits}-digit addition, {n_train} train / {n_valid} valid / {n_test} test "
          f"distinct questions{', read reversed' if reverse else ''}, e.g. {questions[0]!r} -> "
          f"{answers[0]!r}; {epochs} epochs", file=out)

    keras.utils.set_random_seed(seed)
    model = build_model(digits, units)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0))
    timer = _common.EpochTimer()
    with _common.redirect_stdout(out):
        model.fit(X_train, Y_train, batch_size=batch_size, epochs=epochs, verbose=verbose,
                  validation_data=(X_valid, Y_valid), callbacks=[timer])
    return report(model, X_test, Y_test, test_answers, digits, reverse, timer, out,
                  f"LSTM({units}) -> RepeatVector({digits + 1}) -> LSTM({units}) -> "
                  f"TimeDistributed(Dense({len(CHARS)}))")


def report(model, X_test, Y_test, test_answers, digits, reverse, timer, out, description):
    """Scores held-out questions, prints eight of them and the results table;
    returns {"exact_match", "char_accuracy", "baseline", "seconds_per_epoch", ...}."""
    predicted = model.predict(X_test, verbose=0, batch_size=512).argmax(axis=-1)
    exact = np.all(predicted == Y_test, axis=1)
    _, counts = np.unique(test_answers, return_counts=True)
    results = {"exact_match": float(exact.mean()),
               "char_accuracy": float((predicted == Y_test).mean()),
               # The best constant guess: always the most frequent answer.
               "baseline": float(counts.max() / len(test_answers)),
               "seconds_per_epoch": timer.seconds_per_epoch, "params": model.count_params(),
               "seconds": float(sum(timer.times))}

    print("\nheld-out questions:", file=out)
    for i in range(min(8, len(X_test))):
        q = decode(np.argmax(X_test[i], axis=-1))
        q = q[::-1] if reverse else q
        mark = "ok" if exact[i] else f"wrong, expected {test_answers[i].strip()}"
        print(f"  {q.strip():>{2 * digits + 1}} = {decode(predicted[i]).strip():<{digits + 1}} "
              f"{mark}", file=out)
    rows = [["most frequent answer (constant)", "", "", f"{results['baseline']:.3f}", ""],
            [description, f"{results['params']:,}", f"{results['char_accuracy']:.3f}",
             f"{results['exact_match']:.3f}", f"{results['seconds_per_epoch']:.2f}"]]
    print("\n" + _common.table(["model", "params", "character accuracy", "exact match",
                                "s/epoch"], rows), file=out)
    return results


def check_args(p, args, default_train, held_out):
    """Validates --digits, --train and --units; held_out(n) is the number of
    held-out questions kept beside n training ones."""
    if args.digits is not None and not 1 <= args.digits <= 9:
        p.error("--digits must be between 1 and 9")
    for name in ("train", "units"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be positive")
    digits = args.digits or (2 if args.quick else 3)
    n_train = args.train or (6000 if args.quick else default_train)
    if n_train + held_out(n_train) > 100 ** digits:
        p.error(f"--train {n_train}: there are only {100 ** digits} distinct {digits}-digit "
                f"questions (train + held out must fit)")


def main(argv=None, prog=None):
    p = _common.parser(prog or "seq2seq", __doc__, EPOCHS_FULL, EPOCHS_QUICK)
    p.add_argument("--digits", type=int, default=None, help="default 3, or 2 with --quick")
    p.add_argument("--train", type=int, default=None,
                   help="training questions (default 50000, or 6000 with --quick)")
    p.add_argument("--units", type=int, default=None, help="default 128, or 64 with --quick")
    p.add_argument("--no-reverse", action="store_true", help="read the questions forwards")
    args = p.parse_args(argv)
    kw = _common.common_args(p, args)
    check_args(p, args, 50000, lambda n: 2 * max(1, n // 10))
    run(digits=args.digits, n_train=args.train, units=args.units, reverse=not args.no_reverse,
        **kw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
