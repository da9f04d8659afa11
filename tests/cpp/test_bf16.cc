// The bf16 GEMM routines (bf16.h) against a double-precision product of the
// same bf16-rounded operands; the kernels' bf16 option against float32.
// Passes (skipping) where the CPU or this build has no AVX512-BF16.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "rnnfast/bf16.h"
#include "rnnfast/gru.h"
#include "rnnfast/lstm.h"

namespace {

using rnnfast::Index;
using namespace rnnfast::detail;

int failures = 0;

void Check(bool ok, const char* what, double err) {
  if (!ok) {
    std::printf("FAIL %s (error %g)\n", what, err);
    ++failures;
  }
}

float Round(float x) {
  const std::uint32_t u = static_cast<std::uint32_t>(ToBf16(x)) << 16;
  float y;
  std::memcpy(&y, &u, sizeof y);
  return y;
}

// C (M x N) = A (M x K) @ B (K x N) through every layout: A as rows or
// columns, B packed from [K, N] or from its transpose, with segs segments.
void TestGemm(Index M, Index N, Index K, Index segs, bool accumulate, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> a(M * K), b(K * N), bt(N * K), at(K * M), c0(M * N);
  for (auto& v : a) v = d(rng);
  for (auto& v : b) v = d(rng);
  for (auto& v : c0) v = d(rng);
  for (Index k = 0; k < K; ++k) {
    for (Index n = 0; n < N; ++n) bt[n * K + k] = b[k * N + n];
    for (Index m = 0; m < M; ++m) at[k * M + m] = a[m * K + k];
  }
  std::vector<double> want(M * N);
  double scale = 0;
  for (Index m = 0; m < M; ++m)
    for (Index n = 0; n < N; ++n) {
      double s = accumulate ? c0[m * N + n] : 0.0;
      for (Index k = 0; k < K; ++k)
        s += static_cast<double>(Round(a[m * K + k])) * static_cast<double>(Round(b[k * N + n]));
      want[m * N + n] = s;
      scale = std::max(scale, std::abs(s));
    }
  const Index seg = K / segs, kq = segs * Pairs(seg);
  // Layouts 4, 5: A = X^T converted by ConvertBf16ColsT (rows layout, padded
  // stride), in two shares of pair columns as two members would.
  for (int layout = 0; layout < 6; ++layout) {
    const bool colst = layout >= 4, a_cols = !colst && (layout & 1), b_trans = layout & 2;
    if (segs > 1 && (a_cols || colst || !b_trans)) continue;  // segments: rows layout, B^T
    const Index lr = colst ? Bf16RowStride(kq) : kq;
    std::vector<Pair, std::allocator<Pair>> ap(a_cols ? kq * M : M * lr);
    if (a_cols) {
      ConvertBf16Cols(K, M, at.data(), M, ap.data(), M, 0, kq);
    } else if (colst) {
      const Index half = kq / 32 * 16;  // a multiple of 16, as the kernels split
      ConvertBf16ColsT(K, M, at.data(), M, ap.data(), lr, 0, half);
      ConvertBf16ColsT(K, M, at.data(), M, ap.data(), lr, half, kq);
      std::vector<Pair> rows_layout(M * kq);
      ConvertBf16Rows(M, K, a.data(), K, rows_layout.data(), kq);
      bool same = true;
      for (Index m = 0; m < M; ++m)
        for (Index q = 0; q < kq; ++q) same = same && ap[m * lr + q] == rows_layout[m * kq + q];
      Check(same, "ConvertBf16ColsT equals ConvertBf16Rows of the transpose", 0);
    } else {
      ConvertBf16Rows(M, K, a.data(), K, ap.data(), kq, segs);
    }
    Pair* bp = Bf16Scratch(0, static_cast<std::size_t>(Bf16PanelPairs(kq, N)));
    if (b_trans) {
      PackBf16Panels(K, N, bt.data(), K, true, bp, segs);
    } else {
      PackBf16Panels(K, N, b.data(), N, false, bp);
    }
    std::vector<float> c = c0;
    GemmBf16(M, N, kq, a_cols, ap.data(), a_cols ? M : lr, bp, kq * kBf16Panel, c.data(), N,
             accumulate);
    double err = 0;
    for (Index i = 0; i < M * N; ++i) err = std::max(err, std::abs(c[i] - want[i]));
    char what[160];
    std::snprintf(what, sizeof what,
                  "GemmBf16 M=%ld N=%ld K=%ld segs=%ld a_cols=%d colst=%d b_trans=%d acc=%d",
                  static_cast<long>(M), static_cast<long>(N), static_cast<long>(K),
                  static_cast<long>(segs), a_cols, colst, b_trans, accumulate);
    Check(err <= 1e-5 * std::max(1.0, scale), what, err);
  }
}

// A training forward and backward with bf16 and with float32 GEMMs: close
// (bf16 rounding), not equal (the bf16 path ran).
template <typename Cell>
void TestCell(const char* name, int gates, Index B, Index Tn, Index I, Index U, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> x(B * Tn * I), k(I * gates * U), r(U * gates * U), bias(gates * U),
      dy(B * Tn * U);
  for (auto& v : x) v = d(rng);
  for (auto& v : k) v = d(rng) * std::sqrt(3.0f / I);
  for (auto& v : r) v = d(rng) * std::sqrt(1.5f / U);
  for (auto& v : bias) v = 0.2f * d(rng);
  for (auto& v : dy) v = d(rng);
  std::vector<float> y[2], dk[2], dr[2], dx[2];
  for (int bf = 0; bf < 2; ++bf) {
    typename Cell::Options o;
    o.bf16 = bf == 1;
    if constexpr (std::is_same<typename Cell::Options, rnnfast::GRUOptions>::value)
      o.reset_after = false;  // bias [3U]
    Cell cell(o);
    y[bf].resize(B * Tn * U);
    dk[bf].resize(k.size());
    dr[bf].resize(r.size());
    dx[bf].resize(x.size());
    std::vector<float> db(bias.size());
    rnnfast::ForwardArgs<float> fa;
    fa.dims = {B, Tn, I, U};
    fa.x = x.data();
    fa.kernel = k.data();
    fa.recurrent_kernel = r.data();
    fa.bias = bias.data();
    fa.y = y[bf].data();
    cell.Forward(true, fa);
    rnnfast::BackwardArgs<float> ba;
    ba.kernel = k.data();
    ba.recurrent_kernel = r.data();
    ba.dy = dy.data();
    ba.dx = dx[bf].data();
    ba.dkernel = dk[bf].data();
    ba.drecurrent_kernel = dr[bf].data();
    ba.dbias = db.data();
    cell.Backward(ba);
  }
  auto rel = [](const std::vector<float>& p, const std::vector<float>& q) {
    double e = 0, s = 0;
    for (std::size_t i = 0; i < p.size(); ++i) {
      e = std::max(e, static_cast<double>(std::abs(p[i] - q[i])));
      s = std::max(s, static_cast<double>(std::abs(q[i])));
    }
    return e / s;
  };
  const double ey = rel(y[1], y[0]), ek = rel(dk[1], dk[0]), er = rel(dr[1], dr[0]),
               ex = rel(dx[1], dx[0]);
  char what[128];
  std::snprintf(what, sizeof what, "%s bf16 vs float32 (y %.2g dk %.2g dr %.2g dx %.2g)", name, ey,
                ek, er, ex);
  std::printf("%s\n", what);
  Check(ey < 3e-2 && ek < 5e-2 && er < 5e-2 && ex < 5e-2, what, std::max({ey, ek, er, ex}));
  Check(ey > 0 && ek > 0, "bf16 path ran (results differ from float32)", 0);
}

}  // namespace

int main() {
  if (!rnnfast::Bf16Supported()) {
    std::printf("skipped: %s\n", rnnfast::Bf16Unsupported());
    return 0;
  }
  std::mt19937 rng(7);
  // With AMX where the CPU has it, then without. K = 600 (300 pairs) takes
  // two slices of 256 pairs.
  std::printf("AMX: %s\n", rnnfast::AmxSupported() ? "yes" : rnnfast::AmxUnsupported());
  // {M, N, K, segs}. From (16, 16, 32) on, whole AMX tiles; (9, ...) and
  // (5, ...) have gate blocks of odd size; from (8, 300, 400) on, fewer than
  // 16 rows, columns or pairs: AMX tiles cut to them (rows layout; 1-3 rows
  // on VDPBF16PS), or VDPBF16PS (columns layout).
  const Index shapes[][4] = {
      {1, 1, 1, 1},      {7, 20, 5, 1},     {13, 64, 64, 1},   {6, 130, 33, 1},
      {25, 77, 300, 1},  {64, 200, 257, 1}, {9, 70, 63, 3},    {5, 65, 40, 4},
      {16, 16, 32, 1},   {32, 96, 64, 1},   {37, 83, 50, 1},   {48, 112, 600, 1},
      {32, 96, 160, 4},  {8, 300, 400, 1},  {17, 100, 90, 1},  {2, 500, 300, 1},
      {4, 20, 400, 1},   {1, 1030, 512, 1}, {40, 9, 1000, 1},  {47, 520, 21, 1},
      {15, 15, 2000, 1}};
  for (bool amx : {true, false}) {
    rnnfast::SetAmxEnabled(amx);
    for (bool acc : {false, true})
      for (const auto& sh : shapes) TestGemm(sh[0], sh[1], sh[2], sh[3], acc, rng);
  }
  rnnfast::SetAmxEnabled(true);
  TestCell<rnnfast::LSTM<float>>("LSTM", 4, 8, 6, 24, 80, rng);
  TestCell<rnnfast::GRU<float>>("GRU", 3, 5, 4, 9, 33, rng);
  if (failures == 0) std::printf("all bf16 tests passed\n");
  return failures == 0 ? 0 : 1;
}
