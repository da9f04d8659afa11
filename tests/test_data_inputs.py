"""fit, evaluate and predict fed by Python generators, iterables of batches,
keras.utils.PyDataset and utils.timeseries_dataset_from_array: the same
batches give the same training as arrays, epochs and steps behave as in
Keras, and a bad batch is named in the error."""

import numpy as np
import pytest

import rnnfast as keras
from rnnfast import layers
from rnnfast.utils import PyDataset, timeseries_dataset_from_array


@pytest.fixture(autouse=True)
def fresh():
    keras.backend.clear_session()
    yield


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5, 2)).astype(np.float32), \
        rng.standard_normal((n, 1)).astype(np.float32)


def model(seed=1):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential([keras.Input((5, 2)), layers.GRU(4), layers.Dense(1)])
    m.compile(loss="mse", optimizer="adam", metrics=["mae"])
    return m


def batches(x, y, size=8):
    for i in range(0, len(x), size):
        yield x[i:i + size], y[i:i + size]


def test_generator_trains_like_arrays():
    x, y = data()
    a, b = model(), model()
    a.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)

    def forever():
        while True:
            yield from batches(x, y)

    h = b.fit(forever(), steps_per_epoch=3, epochs=3, verbose=0,
              validation_data=forever(), validation_steps=3)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert sorted(h.history) == ["loss", "mae", "val_loss", "val_mae"]
    np.testing.assert_allclose(h.history["val_loss"][-1], b.evaluate(x, y, verbose=0)[0],
                               rtol=1e-6)
    np.testing.assert_allclose(b.evaluate(batches(x, y), verbose=0), b.evaluate(x, y, verbose=0),
                               rtol=1e-6)
    np.testing.assert_allclose(b.predict(batches(x, y), verbose=0), b.predict(x, verbose=0),
                               rtol=1e-6)
    np.testing.assert_allclose(b.predict((bx for bx, _ in batches(x, y)), verbose=0),
                               b.predict(x, verbose=0), rtol=1e-6)


def test_restartable_iterable_and_exhausted_generator():
    x, y = data()
    class Batches:  # an iterable that is not an iterator: each epoch iterates it anew
        def __iter__(self):
            return batches(x, y)

    a, b = model(), model()
    a.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    b.fit(Batches(), epochs=2, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    c = model()
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        h = c.fit(batches(x, y), epochs=3, verbose=0)
    assert len(h.history["loss"]) == 1  # one pass, then the generator was empty


def test_sample_weights_from_batches():
    x, y = data()
    sw = np.linspace(0.1, 2.0, len(x)).astype(np.float32)
    a, b = model(), model()
    a.fit(x, y, sample_weight=sw, batch_size=8, epochs=1, shuffle=False, verbose=0)
    b.fit(((x[i:i + 8], y[i:i + 8], sw[i:i + 8]) for i in range(0, 24, 8)), epochs=1, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


class Windows(PyDataset):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_ended = 0
        self.seen = []

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, idx):
        self.seen.append(idx)
        lo = idx * self.batch_size
        return self.x[lo:lo + self.batch_size], self.y[lo:lo + self.batch_size]

    def on_epoch_end(self):
        self.epochs_ended += 1


@pytest.mark.parametrize("workers", [1, 3])
def test_py_dataset(workers):
    x, y = data()
    a, b = model(), model()
    a.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    ds = Windows(x, y, 8, workers=workers, use_multiprocessing=False, max_queue_size=2)
    b.fit(ds, epochs=2, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert ds.epochs_ended == 2 and sorted(ds.seen) == [0, 0, 1, 1, 2, 2]
    ds.seen.clear()
    keras.utils.set_random_seed(4)
    b.fit(ds, epochs=1, shuffle=True, verbose=0)  # Keras shuffles a PyDataset's batch order
    assert sorted(ds.seen) == [0, 1, 2]
    np.testing.assert_allclose(b.predict(Windows(x, y, 8), verbose=0), b.predict(x, verbose=0),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="y must not be given"):
        b.fit(ds, y, verbose=0)


def test_bad_batches_are_named():
    x, y = data()
    m = model()

    def wrong_shape():
        yield x[:8], y[:8]
        yield x[:8, :, :1], y[:8]

    with pytest.raises(ValueError, match=r"batch 1 of the generator: Model 'sequential\w*': input "
                                         r"'input_layer\w*' expects arrays of shape "
                                         r"\(None, 5, 2\), got \(8, 5, 1\)"):
        m.fit(wrong_shape(), epochs=1, verbose=0)

    def wrong_count():
        yield x[:8], y[:7]

    with pytest.raises(ValueError, match=r"batch 0 of the generator: Data cardinality is ambiguous: "
                                         r"y has 7 samples, but x has 8"):
        m.fit(wrong_count(), epochs=1, verbose=0)

    def wrong_type():
        yield np.array([["a"] * 2] * 5), y[:5]

    with pytest.raises(ValueError, match=r"batch 0 of the generator: x holds <U1 values, not numbers"):
        m.fit(wrong_type(), epochs=1, verbose=0)

    def wrong_tuple():
        yield (x[:8], y[:8], None, None)

    with pytest.raises(ValueError, match=r"batch 0 of the generator: a batch must be a tuple"):
        m.fit(wrong_tuple(), epochs=1, verbose=0)


# ---- timeseries_dataset_from_array ------------------------------------------------------

def windows_by_hand(data, targets, length, stride, rate, start, end):
    end = len(data) if end is None else end
    out_x, out_y = [], []
    s = start
    while s + (length - 1) * rate < end and (targets is None or s < len(targets)):
        out_x.append([data[s + i * rate] for i in range(length)])
        if targets is not None:
            out_y.append(targets[s])
        s += stride
    return np.array(out_x), (np.array(out_y) if targets is not None else None)


@pytest.mark.parametrize("length,stride,rate,start,end", [
    (10, 1, 1, None, None), (5, 3, 2, None, None), (4, 1, 3, 7, 60), (6, 6, 1, 2, None)])
@pytest.mark.parametrize("batch_size", [7, None])
def test_timeseries_windows(length, stride, rate, start, end, batch_size):
    series = np.arange(100, dtype=np.float32)[:, None] * np.array([[1.0, -1.0]], np.float32)
    targets = np.arange(100) * 10
    ds = timeseries_dataset_from_array(series, targets, sequence_length=length,
                                       sequence_stride=stride, sampling_rate=rate,
                                       batch_size=batch_size, start_index=start, end_index=end)
    want_x, want_y = windows_by_hand(series, targets, length, stride, rate, start or 0, end)
    if batch_size is None:
        got = list(ds)
        gx, gy = np.array([g[0] for g in got]), np.array([g[1] for g in got])
    else:
        got = list(ds)
        assert len(got) == len(ds) == int(np.ceil(len(want_x) / batch_size))
        assert all(len(b[0]) == batch_size for b in got[:-1])
        gx, gy = np.concatenate([b[0] for b in got]), np.concatenate([b[1] for b in got])
    np.testing.assert_array_equal(gx, want_x)
    np.testing.assert_array_equal(gy, want_y)


def test_timeseries_keras_examples_and_shuffle():
    # Keras's docstring example 2: the past 10 steps predict the next one.
    data_ = np.arange(50, dtype=np.float32)
    ds = timeseries_dataset_from_array(data_[:-10], data_[10:], sequence_length=10)
    inputs, targets = next(iter(ds))
    np.testing.assert_array_equal(inputs[0], data_[:10])
    assert targets[0] == data_[10]
    # Shuffled windows: the same set, a repeatable order from the seed.
    a = timeseries_dataset_from_array(data_, None, sequence_length=5, batch_size=4, shuffle=True,
                                      seed=3)
    b = timeseries_dataset_from_array(data_, None, sequence_length=5, batch_size=4, shuffle=True,
                                      seed=3)
    first = np.concatenate(list(a))
    np.testing.assert_array_equal(first, np.concatenate(list(b)))
    assert sorted(first[:, 0].tolist()) == list(range(46)) and first[:, 0].tolist() != list(range(46))
    second = np.concatenate(list(a))  # a new order each pass, as tf.data reshuffles
    assert sorted(second[:, 0].tolist()) == list(range(46))
    with pytest.raises(ValueError, match="`sequence_stride` must be higher than 0"):
        timeseries_dataset_from_array(data_, None, 5, sequence_stride=0)
    with pytest.raises(ValueError, match="`start_index` must be lower than the length"):
        timeseries_dataset_from_array(data_, None, 5, start_index=50)
    with pytest.raises(ValueError, match="no window"):
        timeseries_dataset_from_array(data_, None, 60)


def test_fit_on_a_timeseries_dataset():
    t = np.arange(400, dtype=np.float32)
    series = np.sin(0.1 * t)[:, None]
    train = timeseries_dataset_from_array(series[:-1], series[20:, 0], sequence_length=20,
                                          batch_size=32, end_index=300)
    keras.utils.set_random_seed(2)
    m = keras.Sequential([keras.Input((20, 1)), layers.LSTM(8), layers.Dense(1)])
    m.compile(loss="mse", optimizer=keras.optimizers.Adam(0.01))
    h = m.fit(train, epochs=15, verbose=0)
    assert h.history["loss"][-1] < 0.1 * h.history["loss"][0]
