#include "rnnfast/math.h"

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>
#include <stdexcept>

namespace rnnfast {

Activation ParseActivation(const std::string& name) {
  if (name == "tanh") return Activation::kTanh;
  if (name == "sigmoid") return Activation::kSigmoid;
  if (name == "hard_sigmoid") return Activation::kHardSigmoid;
  if (name == "relu") return Activation::kRelu;
  if (name == "linear" || name.empty()) return Activation::kLinear;
  throw std::invalid_argument("unknown activation '" + name +
                              "': expected one of 'tanh', 'sigmoid', 'hard_sigmoid', "
                              "'relu', 'linear'");
}

const char* ActivationName(Activation a) {
  switch (a) {
    case Activation::kTanh:
      return "tanh";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kHardSigmoid:
      return "hard_sigmoid";
    case Activation::kRelu:
      return "relu";
    case Activation::kLinear:
      return "linear";
  }
  return "?";
}

namespace detail {
namespace {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMat = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using Mat = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// Eigen's GEMM packs its operands into blocking buffers; through the
// high-level API it allocates them on every call once they pass
// EIGEN_STACK_ALLOCATION_LIMIT, i.e. at every time step. Calling the GEMM
// routine itself with blocking buffers cached per thread and per shape keeps
// the kernels' loops free of allocation. (Eigen 3.4's internal API; the build
// pins Eigen to 3.4.)
template <typename T>
using Blocking = Eigen::internal::gemm_blocking_space<Eigen::RowMajor, T, T, Eigen::Dynamic,
                                                      Eigen::Dynamic, Eigen::Dynamic, 1, false>;

template <typename T>
Blocking<T>& CachedBlocking(Index M, Index N, Index K) {
  struct Entry {
    Index m = -1, n = -1, k = -1;
    std::unique_ptr<Blocking<T>> blocking;
  };
  // A time loop uses a few shapes per thread; 8 entries, replaced in turn.
  thread_local Entry cache[8];
  thread_local unsigned next = 0;
  for (Entry& e : cache)
    if (e.m == M && e.n == N && e.k == K) return *e.blocking;
  Entry& e = cache[next++ % 8];
  e.blocking.reset(new Blocking<T>(M, N, K, 1, true));
  e.blocking->allocateAll();
  e.m = M;
  e.n = N;
  e.k = K;
  return *e.blocking;
}

template <typename T, int OrderA, int OrderB>
void RunGemm(Index M, Index N, Index K, const T* A, Index lda, const T* B, Index ldb, T* C,
             Index ldc) {
  Eigen::internal::general_matrix_matrix_product<Index, T, OrderA, false, T, OrderB, false,
                                                 Eigen::RowMajor, 1>::run(M, N, K, A, lda, B, ldb,
                                                                          C, 1, ldc, T(1),
                                                                          CachedBlocking<T>(M, N, K));
}

// ---- Small products without packing ----------------------------------------
// A time step's recurrent product is small (e.g. [32, 20] x [20, 80]); Eigen's
// GEMM spends more time packing and blocking than multiplying at such sizes.
// This register-blocked kernel reads the operands in place: R rows of A times
// NP packets of B's columns, accumulated in registers over all of K.

// Cache lines that GemmPacked prefetches into L2 (the next slice of a panel,
// which would otherwise stream from L3 at the pace of the first row block
// that reads it): each micro-kernel call with PF takes K of them, one per k.
struct Prefetch {
  const char* p = nullptr;
  Index lines = 0;
};

// TA: A is stored transposed (element (r, k) at A[k * lda + r]). The last of
// the NP packets holds `last` <= packet-size columns (masked loads/stores).
// PF: also prefetches the K lines from pf into L2.
template <typename T, int R, int NP, bool TA, bool PF = false>
EIGEN_ALWAYS_INLINE void MicroKernel(Index K, const T* A, Index lda, const T* B, Index ldb, T* C,
                                     Index ldc, bool accumulate, Index last,
                                     const char* pf = nullptr) {
  using P = Packet<T>;
  constexpr Index PS = kPacket<T>;
  P c[R][NP];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < NP; ++i)
      c[r][i] = accumulate ? LoadN(C + r * ldc + i * PS, i == NP - 1 ? last : PS)
                           : pk::pset1<P>(T(0));
  for (Index k = 0; k < K; ++k) {
    if constexpr (PF) __builtin_prefetch(pf + k * 64, 0, 2);  // 2: into L2 (prefetcht1)
    P b[NP];
    for (int i = 0; i < NP - 1; ++i) b[i] = pk::ploadu<P>(B + k * ldb + i * PS);
    b[NP - 1] = LoadN(B + k * ldb + (NP - 1) * PS, last);
    for (int r = 0; r < R; ++r) {
      const P a = pk::pset1<P>(TA ? A[k * lda + r] : A[r * lda + k]);
      for (int i = 0; i < NP; ++i) c[r][i] = pk::pmadd(a, b[i], c[r][i]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < NP; ++i) StoreN(C + r * ldc + i * PS, c[r][i], i == NP - 1 ? last : PS);
}

// The last rows <= R of a column block, as one block of exactly that many.
template <typename T, int R, int NP, bool TA>
EIGEN_ALWAYS_INLINE void TailRows(Index rows, Index K, const T* A, Index lda, const T* B,
                                  Index ldb, T* C, Index ldc, bool accumulate, Index last) {
  if (rows == R) return MicroKernel<T, R, NP, TA>(K, A, lda, B, ldb, C, ldc, accumulate, last);
  if constexpr (R > 1)
    TailRows<T, R - 1, NP, TA>(rows, K, A, lda, B, ldb, C, ldc, accumulate, last);
}

// Rows of a column block: blocks of R rows (more rows when the block is
// narrower, so that a step of k keeps enough multiply-adds per load), the
// remainder in one block (R <= 8) or in halving blocks.
template <typename T, int R, int NP, bool TA>
void RowBlocks(Index M, Index K, const T* A, Index lda, const T* B, Index ldb, T* C, Index ldc,
               bool accumulate, Index last, Prefetch* pf = nullptr) {
  const Index step = TA ? 1 : lda;  // row m of op(A) starts at A + m * step
  Index m = 0;
  for (; m + R <= M; m += R) {
    if (pf != nullptr && pf->lines >= K) {
      MicroKernel<T, R, NP, TA, true>(K, A + m * step, lda, B, ldb, C + m * ldc, ldc, accumulate,
                                      last, pf->p);
      pf->p += K * 64;
      pf->lines -= K;
    } else {
      MicroKernel<T, R, NP, TA>(K, A + m * step, lda, B, ldb, C + m * ldc, ldc, accumulate, last);
    }
  }
  if constexpr (R > 1) {
    if (m == M) return;
    if constexpr (R <= 8) {
      // One block of exactly the remaining rows: with few rows each
      // accumulator chain waits on the FMA latency, so two 1-row blocks take
      // as long as one 2-row block (W1: M = 32 = 5 x 6 + 2, M = 20 = 3 x 6 + 2).
      TailRows<T, R - 1, NP, TA>(M - m, K, A + m * step, lda, B, ldb, C + m * ldc, ldc,
                                 accumulate, last);
    } else {
      RowBlocks<T, R / 2, NP, TA>(M - m, K, A + m * step, lda, B, ldb, C + m * ldc, ldc,
                                  accumulate, last, pf);
    }
  }
}

template <typename T, int NP, bool TA>
void Columns(Index M, Index K, const T* A, Index lda, const T* B, Index ldb, T* C, Index ldc,
             bool accumulate, Index last, Prefetch* pf = nullptr) {
  // About 16-24 accumulators with 32 registers: 6x4, 8x3, 8x2, 16x1 packets;
  // 12 with 16 registers (6x2, 12x1, and 4x3 for SmallGemm's tail blocks),
  // leaving room for B's packets and A's broadcast so that nothing spills.
  static_assert(NP <= (kMaxPackets == 2 ? 3 : kMaxPackets), "block wider than the registers allow");
  constexpr int R = kMaxPackets == 4 ? (NP == 4 ? 6 : NP == 3 ? 8 : NP == 2 ? 8 : 16)
                                     : (NP == 3 ? 4 : NP == 2 ? 6 : 12);
  RowBlocks<T, R, NP, TA>(M, K, A, lda, B, ldb, C, ldc, accumulate, last, pf);
}

// Columns for a block of `packets` packets: 1..kMaxPackets, or 3 with 16 registers.
template <typename T, bool TA>
void ColumnsN(Index packets, Index M, Index K, const T* A, Index lda, const T* B, Index ldb, T* C,
              Index ldc, bool accumulate, Index last, Prefetch* pf = nullptr) {
  if constexpr (kMaxPackets == 4) {
    if (packets == 4) return Columns<T, 4, TA>(M, K, A, lda, B, ldb, C, ldc, accumulate, last, pf);
  }
  if (packets == 3) return Columns<T, 3, TA>(M, K, A, lda, B, ldb, C, ldc, accumulate, last, pf);
  if (packets == 2) return Columns<T, 2, TA>(M, K, A, lda, B, ldb, C, ldc, accumulate, last, pf);
  Columns<T, 1, TA>(M, K, A, lda, B, ldb, C, ldc, accumulate, last, pf);
}

template <typename T, bool TA>
void SmallGemm(Index M, Index N, Index K, const T* A, Index lda, const T* B, Index ldb, T* C,
               Index ldc, bool accumulate) {
  constexpr Index PS = kPacket<T>, W = kMaxPackets * PS;
  // With 16 registers a tail of at most one packet joins the last full block
  // as one 3-packet block (4x3 tile) instead of a masked pass of its own:
  // N = 20 (W1's units) is then one block instead of 16 + 4 columns.
  Index stop = N;
  if (kMaxPackets == 2 && N > W && N % W != 0 && N % W <= PS) stop = (N / W - 1) * W;
  Index n = 0;
  for (; n + W <= stop; n += W)
    Columns<T, kMaxPackets, TA>(M, K, A, lda, B + n, ldb, C + n, ldc, accumulate, PS);
  const Index rest = N - n;
  if (rest == 0) return;
  const Index packets = (rest + PS - 1) / PS, last = rest - (packets - 1) * PS;
  ColumnsN<T, TA>(packets, M, K, A, lda, B + n, ldb, C + n, ldc, accumulate, last);
}

// Where the in-place kernel beats Eigen's packing GEMM (measured on the time
// loop's shapes; see benchmarks/RESULTS.md): B (K x N) small enough to stay in
// the L1/L2 cache while A streams by. With A transposed, C stays small instead.
template <typename T>
bool UseSmallGemm(Index N, Index K) {
  return (K <= 128 && N <= 1024) ||
         static_cast<double>(K) * static_cast<double>(N) * sizeof(T) <= 128 * 1024;
}
// With A transposed the kernel streams B (K x N, K long) once per block of
// rows: only worth it while B stays in the L2 cache.
template <typename T>
bool UseSmallGemmTransA(Index M, Index N, Index K) {
  const double b_bytes = static_cast<double>(K) * static_cast<double>(N) * sizeof(T);
  return b_bytes <= 256 * 1024 || (M <= 64 && N <= 256 && b_bytes <= 1024 * 1024);
}

// One column block of Gemv: NP packets, the last holding `last` columns.
// The loads of B stream whole rows of the block (NP lines per k with
// AVX-512), many lines in flight at once where the 4-packet tiles of the
// small GEMM kept only 4 (W1-sized M = 1 products waited on the L2).
// Not MicroKernel<T, 1, NP>: that one loads a k's NP packets of B into
// registers first, which with 16 accumulators would spill; here each
// multiply-add takes its B packet from memory.
template <typename T, int NP>
EIGEN_ALWAYS_INLINE void GemvBlock(Index K, const T* x, const T* B, Index ldb, T* y, Index last) {
  using P = Packet<T>;
  constexpr Index PS = kPacket<T>;
  P c[NP];
  for (int i = 0; i < NP; ++i) c[i] = pk::pset1<P>(T(0));
  if (last == PS) {
    for (Index k = 0; k < K; ++k) {
      const P a = pk::pset1<P>(x[k]);
      const T* b = B + k * ldb;
      for (int i = 0; i < NP; ++i) c[i] = pk::pmadd(a, pk::ploadu<P>(b + i * PS), c[i]);
    }
  } else {
    for (Index k = 0; k < K; ++k) {
      const P a = pk::pset1<P>(x[k]);
      const T* b = B + k * ldb;
      for (int i = 0; i < NP - 1; ++i) c[i] = pk::pmadd(a, pk::ploadu<P>(b + i * PS), c[i]);
      c[NP - 1] = pk::pmadd(a, LoadN(b + (NP - 1) * PS, last), c[NP - 1]);
    }
  }
  for (int i = 0; i < NP; ++i) StoreN(y + i * PS, c[i], i == NP - 1 ? last : PS);
}

// GemvBlock for 1..NP packets chosen at run time.
template <typename T, int NP>
EIGEN_ALWAYS_INLINE void GemvTail(Index packets, Index K, const T* x, const T* B, Index ldb, T* y,
                                  Index last) {
  if (packets == NP) return GemvBlock<T, NP>(K, x, B, ldb, y, last);
  if constexpr (NP > 1) GemvTail<T, NP - 1>(packets, K, x, B, ldb, y, last);
}

}  // namespace

template <typename T>
void Gemm(bool trans_a, bool trans_b, Index M, Index N, Index K, const T* A, Index lda,
          const T* B, Index ldb, T* C, Index ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  Mat<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K <= 0) {
    if (!accumulate) c.setZero();
    return;
  }
  if (!trans_b && (trans_a ? UseSmallGemmTransA<T>(M, N, K) : UseSmallGemm<T>(N, K))) {
    if (trans_a) {
      SmallGemm<T, true>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    } else {
      SmallGemm<T, false>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    }
    return;
  }
  if (!trans_a && trans_b && UseSmallGemm<T>(N, K)) {
    // B is [N, K]: transposed into a [K, N] buffer once, then read row by row.
    thread_local std::vector<T> bt;
    bt.resize(static_cast<std::size_t>(K * N));
    for (Index n = 0; n < N; ++n)
      for (Index k = 0; k < K; ++k) bt[static_cast<std::size_t>(k * N + n)] = B[n * ldb + k];
    SmallGemm<T, false>(M, N, K, A, lda, bt.data(), N, C, ldc, accumulate);
    return;
  }
  if (!accumulate) c.setZero();  // the GEMM routine accumulates
  if (M == 1 || N == 1) {
    // Matrix-vector products: Eigen's GEMV, which allocates nothing here.
    const ConstMat<T> a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
    const ConstMat<T> b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
    if (!trans_a && !trans_b) c.noalias() += a * b;
    if (!trans_a && trans_b) c.noalias() += a * b.transpose();
    if (trans_a && !trans_b) c.noalias() += a.transpose() * b;
    if (trans_a && trans_b) c.noalias() += a.transpose() * b.transpose();
    return;
  }
  // A row-major operand transposed is a column-major one, with the same stride.
  constexpr int R = Eigen::RowMajor, Cm = Eigen::ColMajor;
  if (!trans_a && !trans_b) {
    RunGemm<T, R, R>(M, N, K, A, lda, B, ldb, C, ldc);
  } else if (!trans_a && trans_b) {
    RunGemm<T, R, Cm>(M, N, K, A, lda, B, ldb, C, ldc);
  } else if (trans_a && !trans_b) {
    RunGemm<T, Cm, R>(M, N, K, A, lda, B, ldb, C, ldc);
  } else {
    RunGemm<T, Cm, Cm>(M, N, K, A, lda, B, ldb, C, ldc);
  }
}

template <typename T>
void Gemv(Index K, Index N, const T* x, const T* B, Index ldb, T* y) {
  if (N <= 0) return;
  if (K <= 0) {
    std::fill(y, y + N, T(0));
    return;
  }
  constexpr Index PS = kPacket<T>;
  constexpr int NB = kMaxPackets == 4 ? 16 : 8;  // accumulators: half the registers
  constexpr Index W = NB * PS;
  const Index full = N / W, rest = N - full * W;
  // Blocks of W columns, then the rest as one narrower block.
  for (Index j = 0; j < full; ++j) GemvBlock<T, NB>(K, x, B + j * W, ldb, y + j * W, PS);
  if (rest == 0) return;
  const Index packets = (rest + PS - 1) / PS;
  GemvTail<T, NB>(packets, K, x, B + full * W, ldb, y + full * W, rest - (packets - 1) * PS);
}

std::size_t L2CacheBytes() {
  static const std::size_t bytes = [] {
    long n = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
    n = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return n > 0 ? static_cast<std::size_t>(n) : std::size_t{512} * 1024;
  }();
  return bytes;
}

template <typename T>
void GemmPacked(Index M, Index N, Index K, const T* A, Index lda, const T* Bp, Index panel_stride,
                T* C, Index ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate) Mat<T>(C, M, N, Eigen::OuterStride<>(ldc)).setZero();
    return;
  }
  constexpr Index PS = kPacket<T>, W = kPanel<T>, KC = 32 * 1024 / (W * sizeof(T));
  // A [KC, W] slice of a panel (32 KiB) stays in L1 while every row block of
  // A passes. Panels outside, K slices inside, while A stays in L2 between
  // panels (slicing K outside measured 10-15% slower on Zen 3 for a 512 KiB
  // A: its L3 feeds A fast enough, and the shorter passes reload C's tiles
  // more often). A bigger A (the LSTM backward's [128, 4096] gate gradients
  // at W4: 2 MiB) would come from L3 once per panel: then K slices go
  // outside, each slice of A read from L3 once and reused from L2 by every
  // panel (Sapphire Rapids, 1 thread, 128x512x4096: 90-95 -> 114-116
  // GFLOP/s; 128x512x3072: 112-141 -> 130-150).
  const double a_bytes = static_cast<double>(M) * static_cast<double>(K) * sizeof(T);
  const bool k_outside =
      a_bytes > std::max(0.5 * static_cast<double>(L2CacheBytes()), 1024.0 * 1024.0);
  // While a block runs, its row blocks prefetch the next block's [KC, W]
  // slice of B into L2 (Sapphire Rapids, 1 thread, B from L3: 128x2048x1536
  // 90-92 -> 105-108 GFLOP/s, 128x512x4096 97 -> 109-111; B in L2: no change).
  auto block = [&](Index n, Index k) {
    const Index cols = std::min(W, N - n);
    const Index packets = (cols + PS - 1) / PS, last = cols - (packets - 1) * PS;
    Index next_n = n, next_k = k + KC;
    if (k_outside) {
      next_n = n + W;
      if (next_n >= N) {
        next_n = 0;
      } else {
        next_k = k;
      }
    } else if (next_k >= K) {
      next_k = 0;
      next_n = n + W;
    }
    Prefetch pf;
    if (next_n < N && next_k < K) {
      pf.p = reinterpret_cast<const char*>(Bp + (next_n / W) * panel_stride + next_k * W);
      pf.lines = std::min(KC, K - next_k) * W * static_cast<Index>(sizeof(T)) / 64;
    }
    ColumnsN<T, false>(packets, M, std::min(KC, K - k), A + k, lda,
                       Bp + (n / W) * panel_stride + k * W, W, C + n, ldc, accumulate || k > 0,
                       last, &pf);
  };
  if (k_outside) {
    for (Index k = 0; k < K; k += KC)
      for (Index n = 0; n < N; n += W) block(n, k);
  } else {
    for (Index n = 0; n < N; n += W)
      for (Index k = 0; k < K; k += KC) block(n, k);
  }
}

template <typename T>
bool PreferPacked(Index N, Index K) {
  return !UseSmallGemm<T>(N, K);
}

template void GemmPacked<float>(Index, Index, Index, const float*, Index, const float*, Index,
                                float*, Index, bool);
template void GemmPacked<double>(Index, Index, Index, const double*, Index, const double*, Index,
                                 double*, Index, bool);
template bool PreferPacked<float>(Index, Index);
template bool PreferPacked<double>(Index, Index);
template void Gemv<float>(Index, Index, const float*, const float*, Index, float*);
template void Gemv<double>(Index, Index, const double*, const double*, Index, double*);
template void Gemm<float>(bool, bool, Index, Index, Index, const float*, Index, const float*,
                          Index, float*, Index, bool);
template void Gemm<double>(bool, bool, Index, Index, Index, const double*, Index,
                           const double*, Index, double*, Index, bool);

}  // namespace detail
}  // namespace rnnfast
