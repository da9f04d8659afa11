#include "rnnfast/bf16.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && \
    defined(__AVX512VL__) && (defined(__GNUC__) || defined(__clang__))
#define RNNFAST_BF16_KERNELS 1
#include <immintrin.h>

#include "rnnfast/cpu_levels.h"
#endif

namespace rnnfast {
namespace detail {

std::size_t L2CacheBytes();  // math.cc

std::uint16_t ToBf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) == 0)  // zero or subnormal: a signed zero
    return static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

namespace {

struct Scratch {
  Pair* data = nullptr;
  std::size_t size = 0;
  ~Scratch() { std::free(data); }
};

}  // namespace

Pair* Bf16Scratch(int slot, std::size_t n) {
  thread_local Scratch s[4];
  Scratch& b = s[slot];
  if (n > b.size) {
    std::free(b.data);
    b.data = nullptr;
    b.size = 0;
    const std::size_t bytes = ((n * sizeof(Pair) + 63) / 64) * 64;
    b.data = static_cast<Pair*>(std::aligned_alloc(64, bytes));
    if (b.data == nullptr) throw std::bad_alloc();
    b.size = n;
  }
  return b.data;
}

}  // namespace detail

namespace {

#if defined(RNNFAST_BF16_KERNELS)
bool CpuHasBf16() { return rnnfast_cpu_has_avx512_bf16() != 0; }
#endif

const char* UnsupportedReason() {
#if defined(RNNFAST_BF16_KERNELS)
  static const bool has = CpuHasBf16();
  return has ? "" : "this CPU has no AVX512_BF16";
#else
  return "this build of the kernels has no bf16 code (only the x86-64-v4 build does)";
#endif
}

bool EnvEnabled() {
  const char* v = std::getenv("RNNFAST_BF16");
  if (v == nullptr) return true;
  const std::string s(v);
  return !(s == "0" || s == "off" || s == "OFF" || s == "false" || s == "False" || s == "no");
}

std::atomic<bool>& EnabledFlag() {
  static std::atomic<bool> flag{EnvEnabled()};
  return flag;
}

}  // namespace

const char* Bf16Unsupported() { return UnsupportedReason(); }
bool Bf16Supported() { return UnsupportedReason()[0] == '\0'; }
bool Bf16Enabled() { return Bf16Supported() && EnabledFlag().load(std::memory_order_relaxed); }
void SetBf16Enabled(bool enabled) { EnabledFlag().store(enabled, std::memory_order_relaxed); }

namespace detail {

#if !defined(RNNFAST_BF16_KERNELS)

// Portable versions: never run by the kernels (Bf16Enabled() is false), kept
// so that every build links and the layouts are defined in one place.
namespace {
Pair MakePair(float lo, float hi) {
  return static_cast<Pair>(ToBf16(lo)) | (static_cast<Pair>(ToBf16(hi)) << 16);
}
}  // namespace

void PackBf16Panels(Index K, Index N, const float* src, Index ld, bool trans, Pair* out,
                    Index segs, float* colsum) {
  const Index seg = trans ? K / segs : K, sq = Pairs(seg), kq = trans ? segs * sq : Pairs(K);
  if (colsum != nullptr && !trans)
    for (Index k = 0; k < K; ++k)
      for (Index n = 0; n < N; ++n) colsum[n] += src[k * ld + n];
  auto at = [&](Index k, Index n) { return trans ? src[n * ld + k] : src[k * ld + n]; };
  for (Index p = 0; p * kBf16Panel < N; ++p) {
    Pair* dst = out + p * kq * kBf16Panel;
    for (Index q = 0; q < kq; ++q) {
      for (Index j = 0; j < kBf16Panel; ++j) {
        const Index n = p * kBf16Panel + j;
        float lo = 0, hi = 0;
        if (n < N) {
          const Index s = q / sq, k = (q % sq) * 2;
          const Index base = trans ? s * seg : 0, lim = trans ? seg : K;
          lo = at(base + k, n);
          if (k + 1 < lim) hi = at(base + k + 1, n);
        }
        dst[q * kBf16Panel + j] = MakePair(lo, hi);
      }
    }
  }
}

void ConvertBf16Rows(Index M, Index K, const float* src, Index ld, Pair* out, Index ldo,
                     Index segs) {
  const Index seg = K / segs, sq = Pairs(seg);
  for (Index m = 0; m < M; ++m)
    for (Index s = 0; s < segs; ++s)
      for (Index q = 0; q < sq; ++q) {
        const float* r = src + m * ld + s * seg;
        out[m * ldo + s * sq + q] = MakePair(r[2 * q], 2 * q + 1 < seg ? r[2 * q + 1] : 0.0f);
      }
}

void ConvertBf16Cols(Index K, Index M, const float* src, Index ld, Pair* out, Index ldo, Index q0,
                     Index q1) {
  for (Index q = q0; q < q1; ++q)
    for (Index m = 0; m < M; ++m)
      out[q * ldo + m] =
          MakePair(src[2 * q * ld + m], 2 * q + 1 < K ? src[(2 * q + 1) * ld + m] : 0.0f);
}

void GemmBf16(Index M, Index N, Index Kq, bool a_cols, const Pair* A, Index lda, const Pair* Bp,
              Index panel_stride, float* C, Index ldc, bool accumulate) {
  auto f = [](Pair p, int hi) {
    const std::uint32_t u = hi ? (p & 0xffff0000u) : (p << 16);
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
  };
  for (Index m = 0; m < M; ++m)
    for (Index n = 0; n < N; ++n) {
      float acc = accumulate ? C[m * ldc + n] : 0.0f;
      const Pair* b = Bp + (n / kBf16Panel) * panel_stride + n % kBf16Panel;
      for (Index q = 0; q < Kq; ++q) {
        const Pair a = a_cols ? A[q * lda + m] : A[m * lda + q];
        const Pair bq = b[q * kBf16Panel];
        acc += f(a, 0) * f(bq, 0) + f(a, 1) * f(bq, 1);
      }
      C[m * ldc + n] = acc;
    }
}

#else  // RNNFAST_BF16_KERNELS

// Everything below runs only after Bf16Enabled(): AVX512-BF16 instructions.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512bf16,avx512bw,avx512vl,avx512f"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512bf16,avx512bw,avx512vl,avx512f")
#endif

namespace {

constexpr Index W = kBf16Panel;

inline __mmask16 Mask16(Index n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1u);
}

// 16 floats (the first n, the rest zero) as 16 bfloat16.
inline __m256i Cvt16(const float* p, Index n) {
  const __m512 v = n >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(Mask16(n), p);
  return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
}

// Pairs (a[j], b[j]) as 16 pairs.
inline __m512i Interleave16(__m512 a, __m512 b) {
  // cvtne2ps(b, a): words 0-15 from a, 16-31 from b; then word 2j = a[j], 2j+1 = b[j].
  const __m512i t = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a));
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                       8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, t);
}

// Pairs (lo[j], hi[j]) for j < n (n <= 16, the rest zero) as 16 pairs.
inline __m512i Interleave16(const float* lo, const float* hi, Index n) {
  const __mmask16 k = Mask16(n);
  return Interleave16(_mm512_maskz_loadu_ps(k, lo),
                      hi != nullptr ? _mm512_maskz_loadu_ps(k, hi) : _mm512_setzero_ps());
}

// One row of `seg`-long segments as pairs, each segment padded to even.
inline void ConvertRow(Index K, Index segs, const float* src, Pair* out) {
  const Index seg = K / segs, sq = Pairs(seg);
  for (Index s = 0; s < segs; ++s) {
    const float* r = src + s * seg;
    std::uint16_t* o = reinterpret_cast<std::uint16_t*>(out + s * sq);
    Index k = 0;
    for (; k + 16 <= seg; k += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + k), Cvt16(r + k, 16));
    if (k < seg) {  // the tail, padded with a zero to whole pairs
      const Index n = seg - k, words = (n + 1) & ~Index(1);
      _mm256_mask_storeu_epi16(o + k, Mask16(words), Cvt16(r + k, n));
    }
  }
}

// ---- the GEMM ----------------------------------------------------------------

// R rows x NP packets of 16 columns of C, over Kq pairs; the last packet holds
// `last` columns. A: rows layout (ACOLS false) or columns layout.
template <int R, int NP, bool ACOLS>
inline __attribute__((always_inline)) void Micro(Index Kq, const Pair* A, Index lda, const Pair* B,
                                                 float* C, Index ldc, bool accumulate, Index last) {
  __m512 c[R][NP];
  const __mmask16 lm = Mask16(last);
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < NP; ++i)
      c[r][i] = !accumulate ? _mm512_setzero_ps()
                : i == NP - 1 ? _mm512_maskz_loadu_ps(lm, C + r * ldc + i * 16)
                              : _mm512_loadu_ps(C + r * ldc + i * 16);
  for (Index q = 0; q < Kq; ++q) {
    __m512i b[NP];
    for (int i = 0; i < NP; ++i) b[i] = _mm512_load_si512(B + q * W + i * 16);
    for (int r = 0; r < R; ++r) {
      const Pair p = ACOLS ? A[q * lda + r] : A[r * lda + q];
      const __m512i a = _mm512_set1_epi32(static_cast<int>(p));
      for (int i = 0; i < NP; ++i)
        c[r][i] = _mm512_dpbf16_ps(c[r][i], reinterpret_cast<__m512bh>(a),
                                   reinterpret_cast<__m512bh>(b[i]));
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < NP; ++i) {
      if (i == NP - 1 && last < 16) {
        _mm512_mask_storeu_ps(C + r * ldc + i * 16, lm, c[r][i]);
      } else {
        _mm512_storeu_ps(C + r * ldc + i * 16, c[r][i]);
      }
    }
}

template <int R, int NP, bool ACOLS>
void TailRows(Index rows, Index Kq, const Pair* A, Index lda, const Pair* B, float* C, Index ldc,
              bool accumulate, Index last) {
  if (rows == R) return Micro<R, NP, ACOLS>(Kq, A, lda, B, C, ldc, accumulate, last);
  if constexpr (R > 1) TailRows<R - 1, NP, ACOLS>(rows, Kq, A, lda, B, C, ldc, accumulate, last);
}

// All M rows of one panel's block of columns: blocks of R rows, then the
// remaining rows as one block.
template <int NP, bool ACOLS>
void Rows(Index M, Index Kq, const Pair* A, Index lda, const Pair* B, float* C, Index ldc,
          bool accumulate, Index last) {
  // 24 accumulators of 32 registers: 6x4, 8x3, 12x2, 16x1 (A broadcast from memory).
  constexpr int R = NP == 4 ? 6 : NP == 3 ? 8 : NP == 2 ? 12 : 16;
  const Index step = ACOLS ? 1 : lda;
  Index m = 0;
  for (; m + R <= M; m += R)
    Micro<R, NP, ACOLS>(Kq, A + m * step, lda, B, C + m * ldc, ldc, accumulate, last);
  if (m < M)
    TailRows<R - 1, NP, ACOLS>(M - m, Kq, A + m * step, lda, B, C + m * ldc, ldc, accumulate,
                               last);
}

template <bool ACOLS>
void Panel(Index packets, Index M, Index Kq, const Pair* A, Index lda, const Pair* B, float* C,
           Index ldc, bool accumulate, Index last) {
  switch (packets) {
    case 4:
      return Rows<4, ACOLS>(M, Kq, A, lda, B, C, ldc, accumulate, last);
    case 3:
      return Rows<3, ACOLS>(M, Kq, A, lda, B, C, ldc, accumulate, last);
    case 2:
      return Rows<2, ACOLS>(M, Kq, A, lda, B, C, ldc, accumulate, last);
    default:
      return Rows<1, ACOLS>(M, Kq, A, lda, B, C, ldc, accumulate, last);
  }
}

}  // namespace

void PackBf16Panels(Index K, Index N, const float* src, Index ld, bool trans, Pair* out,
                    Index segs, float* colsum) {
  if (!trans) {
    const Index kq = Pairs(K);
    for (Index p = 0; p * W < N; ++p) {
      Pair* dst = out + p * kq * W;
      const Index cols = std::min(W, N - p * W);
      __m512 sum[W / 16];
      for (auto& v : sum) v = _mm512_setzero_ps();
      for (Index q = 0; q < kq; ++q) {
        const float* lo = src + 2 * q * ld + p * W;
        const float* hi = 2 * q + 1 < K ? lo + ld : nullptr;
        for (Index j = 0; j < W; j += 16) {
          const __mmask16 m = Mask16(std::max<Index>(0, std::min<Index>(16, cols - j)));
          const __m512 a = _mm512_maskz_loadu_ps(m, lo + j);
          const __m512 b = hi != nullptr ? _mm512_maskz_loadu_ps(m, hi + j) : _mm512_setzero_ps();
          _mm512_store_si512(dst + q * W + j, Interleave16(a, b));
          if (colsum != nullptr) sum[j / 16] = _mm512_add_ps(sum[j / 16], _mm512_add_ps(a, b));
        }
      }
      for (Index j = 0; j < cols && colsum != nullptr; j += 16) {  // the columns' sums, added
        const __mmask16 m = Mask16(cols - j);
        float* c = colsum + p * W + j;
        _mm512_mask_storeu_ps(c, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), sum[j / 16]));
      }
    }
    return;
  }
  // Transposed: a pair is two neighbours in a row of src; each row (a column
  // of B) is converted, then its pairs are spread down the panel's column.
  const Index kq = segs * Pairs(K / segs);
  Pair* row = Bf16Scratch(3, static_cast<std::size_t>(kq) * 16);
  for (Index p = 0; p * W < N; ++p) {
    Pair* dst = out + p * kq * W;
    const Index cols = std::min(W, N - p * W);
    for (Index j0 = 0; j0 < W; j0 += 16) {
      // 16 columns at a time: their pairs land as 16 consecutive words of each pair row.
      const Index nj = std::max<Index>(0, std::min<Index>(16, cols - j0));
      for (Index j = 0; j < 16; ++j) {
        if (j < nj) {
          ConvertRow(K, segs, src + (p * W + j0 + j) * ld, row + j * kq);
        } else {
          std::memset(row + j * kq, 0, sizeof(Pair) * static_cast<std::size_t>(kq));
        }
      }
      const __m512i vidx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6,
                                                               5, 4, 3, 2, 1, 0),
                                              _mm512_set1_epi32(static_cast<int>(kq)));
      for (Index q = 0; q < kq; ++q)
        _mm512_store_si512(dst + q * W + j0, _mm512_i32gather_epi32(vidx, row + q, 4));
    }
  }
}

void ConvertBf16Rows(Index M, Index K, const float* src, Index ld, Pair* out, Index ldo,
                     Index segs) {
  for (Index m = 0; m < M; ++m) ConvertRow(K, segs, src + m * ld, out + m * ldo);
}

void ConvertBf16Cols(Index K, Index M, const float* src, Index ld, Pair* out, Index ldo, Index q0,
                     Index q1) {
  for (Index q = q0; q < q1; ++q) {
    const float* lo = src + 2 * q * ld;
    const float* hi = 2 * q + 1 < K ? lo + ld : nullptr;
    Index m = 0;
    for (; m + 16 <= M; m += 16)
      _mm512_storeu_si512(out + q * ldo + m, Interleave16(lo + m, hi ? hi + m : nullptr, 16));
    if (m < M)
      _mm512_mask_storeu_epi32(out + q * ldo + m, Mask16(M - m),
                               Interleave16(lo + m, hi ? hi + m : nullptr, M - m));
  }
}

void GemmBf16(Index M, Index N, Index Kq, bool a_cols, const Pair* A, Index lda, const Pair* Bp,
              Index panel_stride, float* C, Index ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (Kq <= 0) {
    if (!accumulate)
      for (Index m = 0; m < M; ++m)
        std::memset(C + m * ldc, 0, sizeof(float) * static_cast<std::size_t>(N));
    return;
  }
  // A [KC, 64] slice of a panel (32 KiB) stays in L1 while the row blocks of
  // A pass. Panels outside, K slices inside while A fits in L2; a bigger A
  // (the weight gradients' [I or U, T*B]) is read in K slices outside, each
  // slice reused from L2 by every panel (as GemmPacked in math.cc).
  constexpr Index KC = 32 * 1024 / (W * sizeof(Pair));
  const double a_bytes = static_cast<double>(M) * static_cast<double>(Kq) * sizeof(Pair);
  const bool k_outside = a_bytes > 0.5 * static_cast<double>(L2CacheBytes());
  auto block = [&](Index n, Index q) {
    const Index cols = std::min(W, N - n);
    const Index packets = (cols + 15) / 16, last = cols - (packets - 1) * 16;
    const Pair* a = a_cols ? A + q * lda : A + q;
    const Pair* b = Bp + (n / W) * panel_stride + q * W;
    const Index kq = std::min(KC, Kq - q);
    if (a_cols) {
      Panel<true>(packets, M, kq, a, lda, b, C + n, ldc, accumulate || q > 0, last);
    } else {
      Panel<false>(packets, M, kq, a, lda, b, C + n, ldc, accumulate || q > 0, last);
    }
  };
  if (k_outside) {
    for (Index q = 0; q < Kq; q += KC)
      for (Index n = 0; n < N; n += W) block(n, q);
  } else {
    for (Index n = 0; n < N; n += W)
      for (Index q = 0; q < Kq; q += KC) block(n, q);
  }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // RNNFAST_BF16_KERNELS

}  // namespace detail
}  // namespace rnnfast
