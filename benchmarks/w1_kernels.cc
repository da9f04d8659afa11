// W1's kernels alone (issue 21): two stacked layers, B=32, T=50, U=20, the
// first with I=1 (return_sequences), the second with I=20 (final state only),
// float32, as benchmarks/compare.py's W1 model calls them. Prints each layer's
// training forward and backward, a whole training step (forward and backward
// of both layers) and an inference forward, in microseconds (20th percentile
// of n runs: robust to a noisy host).
//
//   g++ -O3 -g -std=c++17 -march=x86-64-v3 -ffp-contract=fast -DEIGEN_DONT_PARALLELIZE \
//       -Isrc -isystem <eigen3> benchmarks/w1_kernels.cc src/rnnfast/{threading,math,rnn,lstm,gru,bf16,build_info}.cc \
//       -lpthread -o w1_kernels
//   ./w1_kernels THREADS [N [CELL]]
//   W1MODE=train ./w1_kernels 1 1000 LSTM   # only training steps, for perf record
//   (W1MODE=fwd: training forwards only; W1MODE=infer: inference forwards)
//   LAYER=128,50,512,1024 W1MODE=train ./w1_kernels 2 4 LSTM
//       one layer of [B, T, I, U] instead (final state only, no dL/dx: a
//       model's first layer, as W2-W4 call it), for perf breakdowns of W2-W4
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>
#include "rnnfast/gru.h"
#include "rnnfast/lstm.h"
#include "rnnfast/rnn.h"
#include "rnnfast/threading.h"
using namespace rnnfast;
using Clock = std::chrono::steady_clock;
template <typename Cell>
struct Layer {
  Index B, T, I, U, G;
  std::vector<float> W, R, b, y, dy, dx, dW, dR, db, hl, dh;
  // BF16=1 in the environment: the cells' bf16 option (mixed precision).
  static typename Cell::Options Opts() {
    typename Cell::Options o;
    o.bf16 = std::getenv("BF16") != nullptr && std::string(std::getenv("BF16")) != "0";
    return o;
  }
  Cell cell{Opts()};
  Layer(Index B_, Index T_, Index I_, Index U_, int G_, bool gru, std::mt19937& gen)
      : B(B_), T(T_), I(I_), U(U_), G(G_) {
    std::normal_distribution<float> n(0.f, 1.f);
    W.resize(I * G * U); R.resize(U * G * U); b.assign((gru ? 2 : 1) * G * U, 0.1f);
    for (auto& v : W) v = n(gen) * 0.3f;
    for (auto& v : R) v = n(gen) * 0.3f;
    y.resize(B * T * U); dy.assign(B * T * U, 0.01f); dx.resize(B * T * I);
    dW.resize(W.size()); dR.resize(R.size()); db.resize(b.size()); hl.resize(B * U); dh.assign(B * U, 1.f);
  }
  void Fwd(const float* x, bool train, bool seq) {
    ForwardArgs<float> a; a.dims = {B, T, I, U}; a.x = x; a.kernel = W.data();
    a.recurrent_kernel = R.data(); a.bias = b.data(); a.y = seq ? y.data() : nullptr; a.h_last = hl.data();
    cell.Forward(train, a);
  }
  void Bwd(bool seq, bool want_dx) {
    BackwardArgs<float> d; d.kernel = W.data(); d.recurrent_kernel = R.data();
    d.dy = seq ? dy.data() : nullptr; d.dh_last = seq ? nullptr : dh.data();
    d.dx = want_dx ? dx.data() : nullptr; d.dkernel = dW.data(); d.drecurrent_kernel = dR.data(); d.dbias = db.data();
    cell.Backward(d);
  }
};
template <typename F> double Time(F f, int n) {
  for (int i = 0; i < 50; ++i) f();
  std::vector<double> ts;
  for (int i = 0; i < n; ++i) { auto a = Clock::now(); f(); ts.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count()); }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 5];  // 20th percentile: robust to a noisy host
}
template <typename Cell> void Run(const char* name, int G, bool gru, int n) {
  std::mt19937 gen(0);
  const Index B = 32, T = 50, U = 20;
  std::vector<float> x(B * T);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& v : x) v = nd(gen);
  Layer<Cell> l1(B, T, 1, U, G, gru, gen), l2(B, T, U, U, G, gru, gen);
  double f1 = Time([&] { l1.Fwd(x.data(), true, true); }, n);
  double f2 = Time([&] { l2.Fwd(l1.y.data(), true, false); }, n);
  double b2 = Time([&] { l2.Fwd(l1.y.data(), true, false); l2.Bwd(false, true); }, n) - f2;
  double b1 = Time([&] { l1.Fwd(x.data(), true, true); l1.Bwd(true, false); }, n) - f1;
  double inf = Time([&] { l1.Fwd(x.data(), false, true); l2.Fwd(l1.y.data(), false, false); }, n);
  double all = Time([&] { l1.Fwd(x.data(), true, true); l2.Fwd(l1.y.data(), true, false); l2.Bwd(false, true); l1.Bwd(true, false); }, n);
  std::printf("%-9s fwd1 %6.1f fwd2 %6.1f bwd2 %6.1f bwd1 %6.1f | train %6.1f us  infer %6.1f us\n", name, f1, f2, b2, b1, all, inf);
}
template <typename C> struct Tag { using type = C; };
int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  int n = argc > 2 ? std::atoi(argv[2]) : 400;
  std::string only = argc > 3 ? argv[3] : "";
  const char* mode = std::getenv("W1MODE");
  if (mode && std::getenv("LAYER")) {  // one W2-W4-style layer, timed per pass
    long B, T, I, U;
    if (std::sscanf(std::getenv("LAYER"), "%ld,%ld,%ld,%ld", &B, &T, &I, &U) != 4) return 2;
    std::mt19937 gen(0);
    std::vector<float> x(B * T * I);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& v : x) v = nd(gen);
    std::string m = mode;
    auto go = [&](auto tag, int G, bool gru) {
      using Cell = typename decltype(tag)::type;
      Layer<Cell> l(B, T, I, U, G, gru, gen);
      for (int i = 0; i < n; ++i) {
        auto a = Clock::now();
        l.Fwd(x.data(), m != "infer", false);
        if (m == "train") l.Bwd(false, false);
        std::printf("%s %.4f ms\n", m.c_str(), std::chrono::duration<double, std::milli>(Clock::now() - a).count());
      }
    };
    SetNumThreads(threads);
    if (only == "SimpleRNN") go(Tag<SimpleRNN<float>>{}, 1, false);
    if (only == "LSTM") go(Tag<LSTM<float>>{}, 4, false);
    if (only == "GRU") go(Tag<GRU<float>>{}, 3, true);
    return 0;
  }
  if (mode) {  // profile one phase only: fwd, train, infer
    std::mt19937 gen(0);
    const Index B = 32, T = 50, U = 20;
    std::vector<float> x(B * T, 0.5f);
    auto go = [&](auto tag, int G, bool gru) {
      using Cell = typename decltype(tag)::type;
      Layer<Cell> l1(B, T, 1, U, G, gru, gen), l2(B, T, U, U, G, gru, gen);
      std::string m = mode;
      for (int i = 0; i < n; ++i) {
        if (m == "infer") { l1.Fwd(x.data(), false, true); l2.Fwd(l1.y.data(), false, false); continue; }
        l1.Fwd(x.data(), true, true); l2.Fwd(l1.y.data(), true, false);
        if (m == "train") { l2.Bwd(false, true); l1.Bwd(true, false); }
      }
    };
    SetNumThreads(threads);
    if (only == "SimpleRNN") go(Tag<SimpleRNN<float>>{}, 1, false);
    if (only == "LSTM") go(Tag<LSTM<float>>{}, 4, false);
    if (only == "GRU") go(Tag<GRU<float>>{}, 3, true);
    return 0;
  }
  SetNumThreads(threads);
  if (only.empty() || only == "SimpleRNN") Run<SimpleRNN<float>>("SimpleRNN", 1, false, n);
  if (only.empty() || only == "LSTM") Run<LSTM<float>>("LSTM", 4, false, n);
  if (only.empty() || only == "GRU") Run<GRU<float>>("GRU", 3, true, n);
}
