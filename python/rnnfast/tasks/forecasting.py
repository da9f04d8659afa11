"""Time-series forecasting: the textbook chapter's table on the two-sine series.

10,000 synthetic series of 50 steps (two sines with random frequencies and
phases, plus noise), split 7,000/2,000/1,000. Forecast step 51 with a naive
baseline, a linear model, SimpleRNN(1), two deep SimpleRNNs, a 2-layer LSTM and
a 2-layer GRU; then forecast 10 steps ahead, sequence-to-vector and
sequence-to-sequence (TimeDistributed Dense), and with the chapter's two
convolutional sequence-to-sequence models: Conv1D(20, 4, strides=2) in front of
two GRUs (trained on the targets of every second step, Y[:, 3::2], to match the
convolution's output) and a WaveNet (causal Conv1D layers with dilation rates
1, 2, 4, 8, 1, 2, 4, 8, then a 1x1 Conv1D). Adam, MSE, batch 32. Prints the
validation and test MSE and seconds per epoch of each model next to the
published figures.
"""

from __future__ import annotations

import sys

import numpy as np

from ..demo import generate_time_series
from . import _common

EPOCHS_FULL, EPOCHS_QUICK = 20, 4
N_STEPS, AHEAD = 50, 10

# Test MSE after 20 epochs with Adam, as published (Geron, "Hands-On Machine
# Learning", 2nd ed., ch. 15); the 10-step figures are that chapter's text.
PUBLISHED = {"naive": "0.020", "linear": "0.004", "simple_rnn_1": "0.011",
             "deep_rnn": "0.003", "deep_rnn_dense": "0.003", "naive_10": "",
             "seq2vec_10": "~0.008", "seq2seq_10": "~0.006", "conv_gru_10": "",
             "wavenet_10": ""}

# Learning rates other than Adam's default 0.001: the chapter trains the RNN
# sequence-to-sequence model with 0.01, and the convolutional ones with "adam".
LEARNING_RATE = {"seq2seq_10": 0.01}
# Conv1D(kernel_size=4, strides=2, padding="valid") turns 50 steps into 24: its
# output t sees input steps 2t..2t+3, so its targets are those of step 2t+3.
SEQ_TARGET_STEPS = {"conv_gru_10": slice(3, None, 2)}


def load_data(n_series, n_steps, seed):
    """(train, valid, test): a 70/20/10 split of n_series [n_steps, 1] series."""
    series = generate_time_series(n_series, n_steps, np.random.default_rng(seed))
    a, b = int(0.7 * n_series), int(0.9 * n_series)
    return series[:a], series[a:b], series[b:]


def one_step(series):
    return series[:, :N_STEPS], series[:, N_STEPS]


def ten_steps(series):
    return series[:, :N_STEPS], series[:, N_STEPS:, 0]


def seq2seq_targets(series):
    """Y[:, t, k-1] = the value k steps after step t, for k = 1..10: a target at
    every time step, so that the gradient flows in at every step."""
    Y = np.empty((len(series), N_STEPS, AHEAD), np.float32)
    for k in range(1, AHEAD + 1):
        Y[:, :, k - 1] = series[:, k:k + N_STEPS, 0]
    return Y


def last_time_step_mse(y_true, y_pred):
    """The sequence-to-sequence model's MSE on the forecast that matters: the
    one made at the last step (comparable with sequence-to-vector)."""
    import rnnfast as keras

    return keras.metrics.mean_squared_error(y_true[:, -1], y_pred[:, -1])


def build_models():
    """name -> (description, model factory, target kind), in the table's order."""
    import rnnfast as keras
    from rnnfast import layers

    return {
        "linear": ("Flatten + Dense(1) (linear)", lambda: keras.Sequential([
            layers.Flatten(input_shape=[N_STEPS, 1]),
            layers.Dense(1)]), "one"),
        "simple_rnn_1": ("SimpleRNN(1)", lambda: keras.Sequential([
            layers.SimpleRNN(1, input_shape=[None, 1])]), "one"),
        "deep_rnn": ("SimpleRNN(20, 20, 1), return_sequences", lambda: keras.Sequential([
            layers.SimpleRNN(20, return_sequences=True, input_shape=[None, 1]),
            layers.SimpleRNN(20, return_sequences=True),
            layers.SimpleRNN(1)]), "one"),
        "deep_rnn_dense": ("SimpleRNN(20, 20) + Dense(1)", lambda: keras.Sequential([
            layers.SimpleRNN(20, return_sequences=True, input_shape=[None, 1]),
            layers.SimpleRNN(20),
            layers.Dense(1)]), "one"),
        "lstm": ("LSTM(20, 20) + Dense(1)", lambda: keras.Sequential([
            layers.LSTM(20, return_sequences=True, input_shape=[None, 1]),
            layers.LSTM(20),
            layers.Dense(1)]), "one"),
        "gru": ("GRU(20, 20) + Dense(1)", lambda: keras.Sequential([
            layers.GRU(20, return_sequences=True, input_shape=[None, 1]),
            layers.GRU(20),
            layers.Dense(1)]), "one"),
        "seq2vec_10": ("10 ahead, seq-to-vector: SimpleRNN(20, 20) + Dense(10)",
                       lambda: keras.Sequential([
                           layers.SimpleRNN(20, return_sequences=True, input_shape=[None, 1]),
                           layers.SimpleRNN(20),
                           layers.Dense(AHEAD)]), "ten"),
        "seq2seq_10": ("10 ahead, seq-to-seq: SimpleRNN(20, 20) + TimeDistributed(Dense(10))",
                       lambda: keras.Sequential([
                           layers.SimpleRNN(20, return_sequences=True, input_shape=[None, 1]),
                           layers.SimpleRNN(20, return_sequences=True),
                           layers.TimeDistributed(layers.Dense(AHEAD))]), "seq"),
        "conv_gru_10": ("10 ahead, seq-to-seq: Conv1D(20, 4, strides 2) + GRU(20, 20) + "
                        "TimeDistributed(Dense(10))", lambda: keras.Sequential([
                            layers.Conv1D(filters=20, kernel_size=4, strides=2, padding="valid",
                                          input_shape=[None, 1]),
                            layers.GRU(20, return_sequences=True),
                            layers.GRU(20, return_sequences=True),
                            layers.TimeDistributed(layers.Dense(AHEAD))]), "seq"),
        "wavenet_10": ("10 ahead, seq-to-seq: WaveNet, Conv1D(20, 2, causal) x 8 (dilation 1, 2, 4, "
                       "8 twice) + Conv1D(10, 1)", _wavenet, "seq"),
    }


def _wavenet():
    import rnnfast as keras
    from rnnfast import layers

    model = keras.Sequential()
    model.add(layers.InputLayer(input_shape=[None, 1]))
    for rate in (1, 2, 4, 8) * 2:
        model.add(layers.Conv1D(filters=20, kernel_size=2, padding="causal", activation="relu",
                                dilation_rate=rate))
    model.add(layers.Conv1D(filters=AHEAD, kernel_size=1))
    return model


def run(quick=False, epochs=None, seed=42, verbose=1, out=None, plot=None, n_series=None,
        models=None):
    """Trains the table's models; returns {name: {"mse", "seconds_per_epoch", ...}}."""
    import rnnfast as keras

    out = out or sys.stdout
    epochs = epochs or (EPOCHS_QUICK if quick else EPOCHS_FULL)
    n_series = n_series or (3000 if quick else 10000)
    # As in the chapter: 51-step series for the one-step models, and separate
    # 60-step series for forecasting 10 steps ahead.
    splits = {"one": load_data(n_series, N_STEPS + 1, seed),
              "ten": load_data(n_series, N_STEPS + AHEAD, seed + 1)}
    train, valid, test = splits["one"]
    zoo = build_models()
    names = list(zoo) if models is None else list(models)
    print(f"forecasting: two-sine series, {len(train)} train / {len(valid)} valid / {len(test)} "
          f"test, {N_STEPS} steps, Adam, batch 32, {epochs} epochs", file=out)

    def naive(X, y):
        return float(np.mean((X[:, -1] - y) ** 2))

    results = {
        "naive": {"mse": naive(*one_step(test)), "val_mse": naive(*one_step(valid))},
        # Repeating the last value for all 10 future steps.
        "naive_10": {"mse": naive(*ten_steps(splits["ten"][2])),
                     "val_mse": naive(*ten_steps(splits["ten"][1]))},
    }
    forecasts = {}
    for name in names:
        description, make, kind = zoo[name]
        keras.utils.set_random_seed(seed)  # each model starts from the same seed
        model = make()
        if kind == "one":
            data = [one_step(s) for s in splits["one"]]
            model.compile(loss="mse", optimizer="adam")
        elif kind == "ten":
            data = [ten_steps(s) for s in splits["ten"]]
            model.compile(loss="mse", optimizer="adam")
        else:
            steps = SEQ_TARGET_STEPS.get(name, slice(None))
            data = [(s[:, :N_STEPS], seq2seq_targets(s)[:, steps]) for s in splits["ten"]]
            model.compile(loss="mse", optimizer=keras.optimizers.Adam(
                learning_rate=LEARNING_RATE.get(name, 0.001)), metrics=[last_time_step_mse])
        (X_train, y_train), (X_valid, y_valid), (X_test_k, y_test_k) = data
        print(f"\n{description}", file=out)
        timer = _common.EpochTimer()
        with _common.redirect_stdout(out):
            model.fit(X_train, y_train, epochs=epochs, batch_size=32, verbose=verbose,
                      validation_data=(X_valid, y_valid), callbacks=[timer])
        mses = []
        for X, y in ((X_valid, y_valid), (X_test_k, y_test_k)):
            y_pred = model.predict(X, verbose=0)
            if kind == "seq":  # the forecast made at the last step (of the test set last)
                y_pred, y = y_pred[:, -1], y[:, -1]
            mses.append(float(np.mean((y_pred - y) ** 2)))
        results[name] = {"mse": mses[1], "val_mse": mses[0],
                         "seconds_per_epoch": timer.seconds_per_epoch,
                         "params": model.count_params(), "description": description}
        forecasts[name] = y_pred

    if plot:
        _common.save_plot(plot, lambda Figure: _draw(Figure, test, splits["ten"][2], forecasts),
                          out)
    rows = [_row("naive: last value", "naive", results)]
    rows += [_row(zoo[n][0], n, results) for n in names if zoo[n][2] == "one"]
    tens = [n for n in names if zoo[n][2] != "one"]
    if tens:
        rows.append(_row("10 ahead, naive: last value x 10", "naive_10", results))
        rows += [_row(zoo[n][0], n, results) for n in tens]
    print("\n" + _common.table(["model", "params", "valid MSE", "test MSE",
                                "published (20 epochs)", "s/epoch"], rows),
          file=out)
    return results


def _row(description, name, results):
    r = results[name]
    spe = r.get("seconds_per_epoch")
    return [description, r.get("params", 0), f"{r['val_mse']:.4f}", f"{r['mse']:.4f}",
            PUBLISHED.get(name, ""),
            "" if spe is None else f"{spe:.2f}"]


def _draw(Figure, test1, test10, forecasts, n=3):
    """Top: a few test series with the one-step forecasts; bottom: 10 steps ahead."""
    one = [k for k in ("linear", "deep_rnn_dense", "lstm", "gru") if k in forecasts]
    ten = [k for k in ("seq2vec_10", "seq2seq_10", "conv_gru_10", "wavenet_10") if k in forecasts]
    rows = [r for r in (("one", test1, one), ("ten", test10, ten)) if r[2]]
    if not rows:
        rows = [("one", test1, [])]
    fig = Figure(figsize=(4.5 * n, 3.2 * len(rows)))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (kind, test, names) in enumerate(rows):
        n_future = test.shape[1] - N_STEPS
        t_in, t_out = np.arange(N_STEPS), np.arange(N_STEPS, N_STEPS + n_future)
        for i in range(n):
            ax = axes[r, i]
            ax.plot(t_in, test[i, :N_STEPS, 0], ".-", color="C0", lw=1, label="series")
            ax.plot(t_out, test[i, N_STEPS:, 0], "o", mfc="none", color="C0", label="future")
            for j, name in enumerate(names):
                ax.plot(t_out, np.ravel(forecasts[name][i]), "x-", color=f"C{j + 1}", label=name)
            ax.axvline(N_STEPS - 0.5, color="0.7", lw=0.8)
            ax.set_xlim(N_STEPS - 25.5, N_STEPS + n_future + 0.5)
            ax.grid(alpha=0.3)
        axes[r, 0].set_ylabel("one step ahead" if kind == "one" else "10 steps ahead")
        axes[r, 0].legend(fontsize=7, loc="best")
    fig.suptitle("Two-sine series: test forecasts (last 25 input steps shown)")
    fig.tight_layout()
    return fig


def main(argv=None, prog=None):
    p = _common.parser(prog or "forecasting", __doc__, EPOCHS_FULL, EPOCHS_QUICK, "forecasting.png")
    p.add_argument("--series", type=int, default=None,
                   help="number of series (default 10000, or 3000 with --quick)")
    args = p.parse_args(argv)
    kw = _common.common_args(p, args, "forecasting.png")
    if args.series is not None and args.series < 20:
        p.error("--series must be at least 20")
    run(n_series=args.series, **kw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
