"""The kernels' own thread pool: results do not depend on the thread count,
kernels run concurrently from several Python threads, and a fork()ed child can
use the kernels after the parent did (the OpenMP failure mode). Models: one
model serves predict from many threads; separate models train in threads; one
model's training (or a stateful model) from two threads raises."""

import multiprocessing
import threading
import warnings

import numpy as np
import pytest

import rnnfast
import rnnfast as keras
from kernel_harness import (Case, kernel_backward, kernel_forward, make_arrays, make_kernel,
                            output_grads, reference_forward)

# Big enough for the per-step product to be split over two threads.
BIG = [Case(c, B=48, T=5, I=16, U=96, mask=True, seed=8) for c in ("simple_rnn", "lstm", "gru")]
# Small weights: the batch's rows are split over the threads, in training too.
ROWS = [Case(c, B=50, T=6, I=16, U=40, mask=True, initial_state=True, input_dropout=1,
             recurrent_dropout=1, seed=12) for c in ("simple_rnn", "lstm", "gru")]


@pytest.fixture
def threads():
    saved = rnnfast.get_num_threads()
    yield rnnfast.set_num_threads
    rnnfast.set_num_threads(saved)


def run(case):
    a = make_arrays(case)
    dy, ds = output_grads(case)
    k = make_kernel(case)
    y, states = kernel_forward(case, k, a)
    return [y, *states, *kernel_backward(case, k, a, dy, ds).values()]


@pytest.mark.parametrize("case", BIG + ROWS, ids=lambda c: f"{c.cell}-U{c.U}")
def test_thread_count_does_not_change_results(case, threads):
    threads(1)
    one = run(case)
    threads(2)
    two = run(case)
    threads(4)  # more threads than cores: the barrier must still make progress
    four = run(case)
    for a, b, c in zip(one, two, four):
        if a is None:
            continue
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12)


def run_concurrently(job, cases):
    """{i: job(case)} with every case on its own Python thread, all at once."""
    results, errors = {}, []

    def work(i, case):
        try:
            results[i] = job(case)
        except Exception as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(cases)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not errors
    assert len(results) == len(cases)
    return results


def test_concurrent_python_threads(threads):
    threads(2)

    def job(case):
        a = make_arrays(case)
        for _ in range(5):
            y, _ = kernel_forward(case, make_kernel(case), a, training=False)
        return y, reference_forward(case, a)[0]

    for y, ref in run_concurrently(job, BIG * 2).values():
        np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)


def test_concurrent_training_with_row_split(threads):
    # Python threads (one per case) train, forward and backward, at once: a
    # caller that finds the pool busy runs alone, so a forward may split rows
    # over two members and its backward run on one (or the reverse);
    # gradients must not change.
    threads(2)
    expected = [run(c) for c in ROWS]

    def job(case):
        for _ in range(3):
            run(case)
        return run(case)

    for i, got in run_concurrently(job, ROWS).items():
        for a, b in zip(got, expected[i]):
            if b is not None:
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _child(q):
    case = BIG[1]
    a = make_arrays(case)
    y, _ = kernel_forward(case, make_kernel(case), a, training=False)
    q.put(float(np.abs(y - reference_forward(case, a)[0]).max()))


def test_forked_child_can_run_kernels(threads):
    threads(2)
    run(BIG[1])  # the parent's pool has started its workers
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() in a multi-threaded process; the
        # pool is built to survive it, which is what this test checks.
        warnings.simplefilter("ignore", DeprecationWarning)
        p = ctx.Process(target=_child, args=(q,))
        p.start()
    p.join(timeout=120)
    if p.is_alive():
        p.kill()
        pytest.fail("the forked child hung")
    assert p.exitcode == 0
    assert q.get(timeout=5) < 1e-10


# ---- one model from several Python threads (threaded serving) ----------------------

L = keras.layers


def _seq(layer):
    return lambda: keras.Sequential([keras.Input((12, 6)), layer(24, return_sequences=True),
                                     layer(16), L.Dense(3)])


def _functional():
    a, b = keras.Input((12, 6), name="a"), keras.Input((4,), name="b")
    h = L.Bidirectional(L.LSTM(12, return_sequences=True))(a)
    # (No LayerNormalization: its kernel's sums depend on the input's
    # alignment, so its results differ in the last bit from call to call.)
    h = L.GRU(10, go_backwards=True)(L.Add()([h, L.Dense(24, activation="tanh")(h)]))
    out = L.Dense(2)(L.Concatenate()([h, L.Dense(5, activation="relu")(b)]))
    return keras.Model([a, b], out)


def _conv1d():
    return keras.Sequential([keras.Input((12, 6)), L.Conv1D(8, 3, padding="causal",
                                                            activation="relu"),
                             L.MaxPooling1D(2), L.Conv1D(8, 2, dilation_rate=2, padding="same"),
                             L.GRU(16), L.Dense(3)])


MODELS = {"lstm": _seq(L.LSTM), "gru": _seq(L.GRU), "simple_rnn": _seq(L.SimpleRNN),
          "functional": _functional, "conv1d": _conv1d}


def _inputs(kind, i):
    rng = np.random.default_rng(100 + i)
    n = 5 + 7 * i  # batch sizes differ from call to call: workspaces are resized
    x = rng.standard_normal((n, 12, 6)).astype(np.float32)
    return [x, rng.standard_normal((n, 4)).astype(np.float32)] if kind == "functional" else x


def _call(model, how, x):
    if how == "predict":
        return model.predict(x, batch_size=8, verbose=0)
    if how == "predict_on_batch":
        return model.predict_on_batch(x)
    return model(x)


def run_threads(n, job):
    """job(i) on n threads started together; re-raises the first error."""
    barrier = threading.Barrier(n)
    results, errors = {}, []

    def work(i):
        try:
            barrier.wait(timeout=60)
            results[i] = job(i)
        except BaseException as e:  # re-raised below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in ts), "a thread hung"
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_one_model_predicts_from_many_threads(kind, threads):
    threads(2)  # the kernels' pool is shared too: a busy pool runs a caller alone
    keras.utils.set_random_seed(4)
    model = MODELS[kind]()
    hows = ("predict", "predict_on_batch", "call")
    inputs = [_inputs(kind, i) for i in range(6)]
    # Single-threaded results (predict's batches of 8 may round differently
    # from one batch of all rows: compared per way of calling).
    want = {(how, i): _call(model, how, x) for how in hows for i, x in enumerate(inputs)}

    def job(t):
        got = []
        for step in range(20):
            i, how = (t + step) % len(inputs), hows[(t + step // 2) % 3]
            got.append(((how, i), _call(model, how, inputs[i])))
        return got

    for got in run_threads(8, job).values():
        for key, y in got:
            np.testing.assert_array_equal(np.asarray(y), want[key])


def test_model_call_keeps_each_threads_kernel_objects():
    """model(x) keeps the calling thread's kernel objects, as predict_on_batch
    does (the same ones). It made new ones per call, whose fresh workspaces
    cost about 220 page faults per call: the W1 model took 0.75 ms per call
    against predict_on_batch's 0.39 ms. The outputs stay the caller's."""
    keras.utils.set_random_seed(4)
    model = MODELS["lstm"]()
    x, x2 = _inputs("lstm", 0), _inputs("lstm", 1)

    def kernels():
        return [c.kernel for c in model._predict_ctx().nodes if getattr(c, "kernel", None)]

    y = model(x)
    mine = kernels()
    assert len(mine) == 2  # the two LSTM layers'
    y2 = model(x2)
    assert all(a is b for a, b in zip(kernels(), mine))
    np.testing.assert_array_equal(model.predict_on_batch(x), y)  # y was not overwritten
    assert all(a is b for a, b in zip(kernels(), mine))
    np.testing.assert_array_equal(model(x2), y2)
    # Another thread has kernel objects of its own, and the same results.
    theirs = run_threads(2, lambda i: (model(x), model(x2), kernels()))
    for a, b, k in theirs.values():
        np.testing.assert_array_equal(a, y)
        np.testing.assert_array_equal(b, y2)
        assert len(k) == 2 and not any(o is m for o in k for m in mine)
    assert not any(a is b for a in theirs[0][2] for b in theirs[1][2])
    # A training call gets a context of its own: this thread's kernels keep no cache.
    model(x, training=True)
    assert not any(k.has_cache for k in kernels())


def test_first_calls_from_threads_build_an_unbuilt_model_once():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([L.LSTM(8), L.Dense(2)])  # built by its first data
    x = np.random.default_rng(0).standard_normal((4, 5, 3)).astype(np.float32)
    outs = run_threads(4, lambda i: model.predict_on_batch(x))
    assert len(model.weights) == 5
    for y in outs.values():
        np.testing.assert_array_equal(y, outs[0])


def _train_models(n):
    keras.utils.set_random_seed(9)
    first = _seq(L.LSTM)()
    models = []
    for _ in range(n):
        m = _seq(L.LSTM)()
        m.set_weights(first.get_weights())
        m.compile(optimizer="adam", loss="mse")
        models.append(m)
    data = []
    for i in range(n):
        rng = np.random.default_rng(i)
        data.append((rng.standard_normal((24, 12, 6)).astype(np.float32),
                     rng.standard_normal((24, 3)).astype(np.float32)))
    return models, data


def _train(model, x, y):
    losses = [model.train_on_batch(x[:8], y[:8])]
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    losses.append(model.evaluate(x, y, verbose=0))
    return losses, model.predict(x, verbose=0)


def test_separate_models_train_in_threads_as_one_by_one(threads):
    threads(2)
    models, data = _train_models(4)
    want = [_train(m, *d) for m, d in zip(models, data)]
    want_weights = [m.get_weights() for m in models]
    models, data = _train_models(4)
    got = run_threads(4, lambda i: _train(models[i], *data[i]))
    for i, m in enumerate(models):
        assert got[i][0] == want[i][0]
        np.testing.assert_array_equal(got[i][1], want[i][1])
        for a, b in zip(m.get_weights(), want_weights[i]):
            np.testing.assert_array_equal(a, b)


class _Paused(keras.callbacks.Callback):
    """Holds the model's fit (or predict) at its first batch until released."""

    def __init__(self):
        super().__init__()
        self.inside, self.release = threading.Event(), threading.Event()

    def _hold(self, *args, **kwargs):
        self.inside.set()
        assert self.release.wait(60)

    on_train_batch_begin = on_predict_batch_begin = _hold


def _while_paused(method, call):
    """Runs call() while method (fit or predict, given the callback) is held in
    another thread; returns what call raised."""
    cb, failed = _Paused(), []

    def run():
        try:
            method(cb)
        except BaseException as e:  # reported below
            failed.append(e)
            cb.inside.set()

    t = threading.Thread(target=run)
    t.start()
    try:
        assert cb.inside.wait(60) and not failed, failed
        with pytest.raises(RuntimeError) as e:
            call()
        return e.value
    finally:
        cb.release.set()
        t.join(60)
        assert not failed, failed


def test_training_one_model_from_two_threads_raises():
    keras.utils.set_random_seed(1)
    model = _seq(L.GRU)()
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).standard_normal((16, 12, 6)).astype(np.float32)
    y = np.zeros((16, 3), np.float32)
    fit = lambda cb: model.fit(x, y, batch_size=8, verbose=0, callbacks=[cb])  # noqa: E731
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.train_on_batch(x, y),
                 lambda: model.evaluate(x, y, verbose=0), lambda: model.test_on_batch(x, y)):
        err = _while_paused(fit, call)
        assert "another thread" in str(err) and "one model per thread" in str(err)
    # Inference alongside a fit is allowed (it reads the weights as they are).
    cb = _Paused()
    t = threading.Thread(target=fit, args=(cb,))
    t.start()
    assert cb.inside.wait(60)
    assert model.predict(x, verbose=0).shape == (16, 3)
    cb.release.set()
    t.join(60)
    # Once the other thread is done, the model trains here.
    before = model.get_weights()
    model.train_on_batch(x, y)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_stateful_model_refuses_concurrent_use():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input(batch_shape=(4, 5, 3)),
                              L.LSTM(6, stateful=True), L.Dense(1)])
    x = np.random.default_rng(0).standard_normal((4, 5, 3)).astype(np.float32)
    # A predict over several batches holds the model: the states run through them.
    err = _while_paused(lambda cb: model.predict(np.concatenate([x, x]), batch_size=4, verbose=0,
                                                 callbacks=[cb]),
                        lambda: model.predict(x, batch_size=4, verbose=0))
    assert "another thread" in str(err)
    # One call inside the layer holds the layer.
    layer = model.layers[0]
    inside, release = threading.Event(), threading.Event()
    forward = layer._forward

    def held(*args):
        inside.set()
        assert release.wait(60)
        return forward(*args)

    layer._forward = held
    t = threading.Thread(target=model.predict_on_batch, args=(x,))
    t.start()
    try:
        assert inside.wait(60)
        del layer._forward
        with pytest.raises(RuntimeError, match=r"stateful LSTM '.*' is running in another thread"):
            model.predict_on_batch(x)
    finally:
        release.set()
        t.join(60)
    model.reset_states()
    model.predict_on_batch(x)
