// C++ benchmark of the kernels (Google Benchmark): forward and backward of
// each cell over the reference workloads' shapes and hidden sizes 16..2048,
// reporting GFLOP/s (2*B*T*(I+U)*G*U forward, twice that backward).
//
//   cmake -S . -B build/bench -DRNNFAST_BUILD_BENCHMARKS=ON && cmake --build build/bench
//   build/bench/rnnfast_kernel_bench --benchmark_filter=LSTM
//
// Arguments of every benchmark: batch, time, input, units, threads. The
// "Train" benchmarks time a training forward plus the backward; "Forward" an
// inference forward; "TrainForward" a training forward alone (the caches it
// writes are what separates it from "Forward").
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "rnnfast/gru.h"
#include "rnnfast/lstm.h"
#include "rnnfast/rnn.h"
#include "rnnfast/threading.h"

namespace {

using rnnfast::Index;

template <typename Cell>
void Run(benchmark::State& state, int gates, bool train, bool backward = true) {
  const Index B = state.range(0), T = state.range(1), I = state.range(2), U = state.range(3);
  rnnfast::SetNumThreads(static_cast<int>(state.range(4)));
  const Index GU = gates * U;
  std::vector<float> x(B * T * I), W(I * GU), R(U * GU), b(2 * GU, 0.f), y(B * T * U),
      dy(B * T * U, 1.f), dx(B * T * I), dW(W.size()), dR(R.size()), db(b.size());
  std::mt19937 gen(0);
  std::normal_distribution<float> n(0.f, 1.f);
  for (auto& v : x) v = n(gen);
  for (auto& v : W) v = n(gen) / std::sqrt(static_cast<float>(I));
  for (auto& v : R) v = n(gen) / std::sqrt(static_cast<float>(U));
  typename Cell::Options options;
  Cell cell(options);
  rnnfast::ForwardArgs<float> a;
  a.dims = {B, T, I, U};
  a.x = x.data();
  a.kernel = W.data();
  a.recurrent_kernel = R.data();
  a.bias = b.data();
  a.y = y.data();
  rnnfast::BackwardArgs<float> d;
  d.kernel = W.data();
  d.recurrent_kernel = R.data();
  d.dy = dy.data();
  d.dx = dx.data();
  d.dkernel = dW.data();
  d.drecurrent_kernel = dR.data();
  d.dbias = db.data();
  for (auto _ : state) {
    cell.Forward(train, a);
    if (train && backward) cell.Backward(d);
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = 2.0 * B * T * (I + U) * gates * U * (train && backward ? 3.0 : 1.0);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

void Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "T", "I", "U", "threads"});
  // The reference workloads (W1's two layers, W2, W3, W4).
  for (int threads : {1, 2}) {
    b->Args({32, 50, 1, 20, threads});
    b->Args({32, 50, 20, 20, threads});
    b->Args({64, 100, 32, 64, threads});
    b->Args({64, 100, 128, 256, threads});
    b->Args({128, 50, 512, 1024, threads});
  }
  // Hidden sizes 16 .. 2048 at batch 64, 50 steps, input = units.
  for (int u = 16; u <= 2048; u *= 2) b->Args({64, 50, u, u, 2});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void SimpleRNNTrain(benchmark::State& s) { Run<rnnfast::SimpleRNN<float>>(s, 1, true); }
void SimpleRNNForward(benchmark::State& s) { Run<rnnfast::SimpleRNN<float>>(s, 1, false); }
void LSTMTrain(benchmark::State& s) { Run<rnnfast::LSTM<float>>(s, 4, true); }
void LSTMForward(benchmark::State& s) { Run<rnnfast::LSTM<float>>(s, 4, false); }
void GRUTrain(benchmark::State& s) { Run<rnnfast::GRU<float>>(s, 3, true); }
void GRUForward(benchmark::State& s) { Run<rnnfast::GRU<float>>(s, 3, false); }
void SimpleRNNTrainForward(benchmark::State& s) { Run<rnnfast::SimpleRNN<float>>(s, 1, true, false); }
void LSTMTrainForward(benchmark::State& s) { Run<rnnfast::LSTM<float>>(s, 4, true, false); }
void GRUTrainForward(benchmark::State& s) { Run<rnnfast::GRU<float>>(s, 3, true, false); }

BENCHMARK(SimpleRNNTrain)->Apply(Shapes);
BENCHMARK(SimpleRNNForward)->Apply(Shapes);
BENCHMARK(LSTMTrain)->Apply(Shapes);
BENCHMARK(LSTMForward)->Apply(Shapes);
BENCHMARK(GRUTrain)->Apply(Shapes);
BENCHMARK(GRUForward)->Apply(Shapes);
BENCHMARK(SimpleRNNTrainForward)->Apply(Shapes);
BENCHMARK(LSTMTrainForward)->Apply(Shapes);
BENCHMARK(GRUTrainForward)->Apply(Shapes);

}  // namespace

BENCHMARK_MAIN();
