#include "rnnfast/gemm_bench.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "rnnfast/sequence.h"

namespace rnnfast {

double GemmGflops(Index M, Index N, Index K, int threads, int repeats, bool bf16) {
  if (M <= 0 || N <= 0 || K <= 0 || repeats <= 0)
    throw std::invalid_argument("M, N, K and repeats must be positive");
  // Products that overflow wrapped to small buffers the GEMM read past.
  constexpr Index kMaxElements = Index{1} << 40;
  if (K > kMaxElements / M || N > kMaxElements / K || N > kMaxElements / M)
    throw std::invalid_argument("M*K, K*N and M*N must be at most 2**40 elements");
  std::vector<float> a(static_cast<std::size_t>(M * K)), b(static_cast<std::size_t>(K * N)),
      c(static_cast<std::size_t>(M * N));
  std::mt19937 gen(0);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (float& v : a) v = u(gen);
  for (float& v : b) v = u(gen);
  if (bf16 && !Bf16Enabled())
    throw std::invalid_argument(std::string("bf16 GEMMs do not run here: ") +
                                (Bf16Supported() ? "switched off" : Bf16Unsupported()));
  // The panels are read with aligned loads: the scratch buffers are aligned
  // (this thread's; the members only read them while it waits in ParallelRun).
  detail::Pair *a16 = nullptr, *b16 = nullptr;
  const Index kq = detail::Pairs(K), la = detail::Bf16RowStride(kq);
  if (bf16) {
    a16 = detail::Bf16Scratch(0, static_cast<std::size_t>(M * la));
    b16 = detail::Bf16Scratch(1, static_cast<std::size_t>(detail::Bf16PanelPairs(kq, N)));
    detail::ConvertBf16Rows(M, K, a.data(), K, a16, la);
    detail::PackBf16Panels(K, N, b.data(), N, false, b16);
  }
  auto run = [&] {
    ParallelRun(threads, [&](const Team& team) {
      if (bf16) {  // whole panels per member
        const detail::Range cols = detail::Split(N, team.size, team.rank, detail::kBf16Panel);
        if (cols.size() > 0)
          detail::GemmBf16(M, cols.size(), kq, false, a16, la, b16 + cols.begin * kq,
                           kq * detail::kBf16Panel,
                           c.data() + cols.begin, N, false);
        return;
      }
      const detail::Range cols = detail::Split(N, team.size, team.rank, 16);
      if (cols.size() > 0)
        detail::Gemm<float>(false, false, M, cols.size(), K, a.data(), K, b.data() + cols.begin, N,
                            c.data() + cols.begin, N, false);
    });
  };
  run();
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(times.begin(), times.begin() + repeats / 2, times.end());
  return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) /
         times[static_cast<std::size_t>(repeats / 2)] / 1e9;
}

namespace {

// The build's widest float vector (GCC/Clang vector extension: one register).
#if defined(__AVX512F__)
constexpr int kPeakBytes = 64;
constexpr int kPeakChains = 16;  // 32 registers: FMA latency 4 x 2 pipes = 8 in flight, with room
#elif defined(__AVX__)
constexpr int kPeakBytes = 32;
constexpr int kPeakChains = 12;  // 16 registers: 12 chains plus the two operands
#else
constexpr int kPeakBytes = 16;
constexpr int kPeakChains = 12;
#endif
typedef float PeakVec __attribute__((vector_size(kPeakBytes)));
constexpr int kPeakLanes = kPeakBytes / 4;

float PeakChains(long iterations, float seed) {
  PeakVec acc[kPeakChains], a, b;
  for (int l = 0; l < kPeakLanes; ++l) {
    a[l] = 1e-3f * seed;
    b[l] = 0.999f;  // the chains decay to a / (1 - b) instead of overflowing
  }
  for (int k = 0; k < kPeakChains; ++k) acc[k] = a * static_cast<float>(k);
  for (long i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int k = 0; k < kPeakChains; ++k) acc[k] = acc[k] * b + a;
    // An opaque b each step: the compiler can neither fold the chains into a
    // closed form nor hoist them out of the loop.
    __asm__ volatile("" : "+x"(b));
  }
  float sum = 0.f;
  for (int k = 0; k < kPeakChains; ++k)
    for (int l = 0; l < kPeakLanes; ++l) sum += acc[k][l];
  return sum;
}

}  // namespace

double FmaPeakGflops(int threads, int repeats, long iterations) {
  if (threads <= 0 || repeats <= 0 || iterations <= 0)
    throw std::invalid_argument("threads, repeats and iterations must be positive");
  double best = 0.0;
  for (int r = 0; r <= repeats; ++r) {  // the first run warms the pool and the clocks
    int ran = 0;
    const auto t0 = std::chrono::steady_clock::now();
    ParallelRun(threads, [&](const Team& team) {
      // Kept, so that the chains are computed.
      volatile float keep = PeakChains(iterations, 1.f + static_cast<float>(team.rank));
      (void)keep;
      if (team.rank == 0) ran = team.size;
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r == 0) continue;
    // The pool may give fewer members than asked (contention): count those that ran.
    const double flops = 2.0 * kPeakChains * kPeakLanes * static_cast<double>(iterations) * ran;
    best = std::max(best, flops / s / 1e9);
  }
  return best;
}

}  // namespace rnnfast

// ---- MatMul (matmul.h) ----

#include "rnnfast/matmul.h"

namespace rnnfast {

template <typename T>
void MatMul(bool trans_a, bool trans_b, Index M, Index N, Index K, const T* A, Index lda,
            const T* B, Index ldb, T* C, Index ldc, bool accumulate) {
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const int want = flops < 4e6 || RecentlyContended() ? 1 : GetNumThreads();
  ParallelRun(want, [&](const Team& team) {
    if (team.size == 1) {
      detail::Gemm<T>(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
      return;
    }
    // Split the longer output side.
    if (N >= M) {
      const detail::Range c = detail::Split(N, team.size, team.rank, 16);
      if (c.size() == 0) return;
      const T* b = trans_b ? B + c.begin * ldb : B + c.begin;
      detail::Gemm<T>(trans_a, trans_b, M, c.size(), K, A, lda, b, ldb, C + c.begin, ldc,
                      accumulate);
    } else {
      const detail::Range r = detail::Split(M, team.size, team.rank);
      if (r.size() == 0) return;
      const T* a = trans_a ? A + r.begin : A + r.begin * lda;
      detail::Gemm<T>(trans_a, trans_b, r.size(), N, K, a, lda, B, ldb, C + r.begin * ldc, ldc,
                      accumulate);
    }
  });
}

template void MatMul<float>(bool, bool, Index, Index, Index, const float*, Index, const float*,
                            Index, float*, Index, bool);
template void MatMul<double>(bool, bool, Index, Index, Index, const double*, Index, const double*,
                             Index, double*, Index, bool);

}  // namespace rnnfast
