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
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
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
  thread_local Scratch s[5];
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

bool EnvEnabled(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return true;
  const std::string s(v);
  return !(s == "0" || s == "off" || s == "OFF" || s == "false" || s == "False" || s == "no");
}

std::atomic<bool>& EnabledFlag() {
  static std::atomic<bool> flag{EnvEnabled("RNNFAST_BF16")};
  return flag;
}

std::atomic<bool>& AmxFlag() {
  static std::atomic<bool> flag{EnvEnabled("RNNFAST_AMX")};
  return flag;
}

// Asked once per process: on Linux the first tile instruction faults unless
// the process has requested the tile data state (ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA); the grant is inherited by threads and forked children.
const char* AmxReason() {
#if defined(RNNFAST_BF16_KERNELS)
  static const char* reason = []() -> const char* {
    if (!CpuHasBf16()) return "this CPU has no AVX512_BF16";
    if (rnnfast_cpu_has_amx_bf16() == 0)
      return "this CPU has no AMX-BF16 (or its OS does not save the tile state)";
#if defined(__linux__)
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
      return "Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM)";
#endif
    return "";
  }();
  return reason;
#else
  return UnsupportedReason();
#endif
}

}  // namespace

const char* Bf16Unsupported() { return UnsupportedReason(); }
bool Bf16Supported() { return UnsupportedReason()[0] == '\0'; }
bool Bf16Enabled() { return Bf16Supported() && EnabledFlag().load(std::memory_order_relaxed); }
void SetBf16Enabled(bool enabled) { EnabledFlag().store(enabled, std::memory_order_relaxed); }

const char* AmxUnsupported() { return AmxReason(); }
bool AmxSupported() { return AmxReason()[0] == '\0'; }
bool AmxEnabled() {
  return Bf16Enabled() && AmxSupported() && AmxFlag().load(std::memory_order_relaxed);
}
void SetAmxEnabled(bool enabled) { AmxFlag().store(enabled, std::memory_order_relaxed); }

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

void ConvertBf16ColsT(Index K, Index M, const float* src, Index ld, Pair* out, Index ldo,
                      Index q0, Index q1) {
  for (Index m = 0; m < M; ++m)
    for (Index q = q0; q < q1; ++q)
      out[m * ldo + q] =
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

// dst[i * ldd + j] = src[j * lds + i] for a 16 x 16 block of pairs: rows
// interleaved in pairs, then fours (each 128-bit lane then holds 4 rows of
// one column), then the lanes gathered.
inline void Transpose16x16(const Pair* src, Index lds, Pair* dst, Index ldd) {
  __m512i r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(src + i * lds);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // r[4g + j]: lane L holds rows 4g..4g+3 of column 4L + j
    r[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    r[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i v0 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x88);
    const __m512i v1 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xdd);
    const __m512i v2 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x88);
    const __m512i v3 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xdd);
    _mm512_storeu_si512(dst + (0 + j) * ldd, _mm512_shuffle_i32x4(v0, v2, 0x88));
    _mm512_storeu_si512(dst + (4 + j) * ldd, _mm512_shuffle_i32x4(v1, v3, 0x88));
    _mm512_storeu_si512(dst + (8 + j) * ldd, _mm512_shuffle_i32x4(v0, v2, 0xdd));
    _mm512_storeu_si512(dst + (12 + j) * ldd, _mm512_shuffle_i32x4(v1, v3, 0xdd));
  }
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
    // Pair rows outer, panels inner: each source row is read once, front to
    // back. Panels outer read 256 bytes per row, one 4 KiB page apart at
    // GU = 1024, where the hardware prefetchers do not follow.
    const Index kq = Pairs(K);
    for (Index q = 0; q < kq; ++q) {
      const float* lo = src + 2 * q * ld;
      const float* hi = 2 * q + 1 < K ? lo + ld : nullptr;
      for (Index p = 0; p * W < N; ++p) {
        Pair* dst = out + (p * kq + q) * W;
        const Index cols = std::min(W, N - p * W);
        for (Index j = 0; j < W; j += 16) {
          const Index n = p * W + j;
          const __mmask16 m = Mask16(std::max<Index>(0, std::min<Index>(16, cols - j)));
          const __m512 a = _mm512_maskz_loadu_ps(m, lo + n);
          const __m512 b = hi != nullptr ? _mm512_maskz_loadu_ps(m, hi + n) : _mm512_setzero_ps();
          _mm512_store_si512(dst + j, Interleave16(a, b));
          if (colsum != nullptr && m != 0)
            _mm512_mask_storeu_ps(colsum + n, m,
                                  _mm512_add_ps(_mm512_maskz_loadu_ps(m, colsum + n),
                                                _mm512_add_ps(a, b)));
        }
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

void ConvertBf16ColsT(Index K, Index M, const float* src, Index ld, Pair* out, Index ldo,
                      Index q0, Index q1) {
  // 16 x 16 blocks of pairs: 16 pair rows interleaved as ConvertBf16Cols
  // does, then transposed; blocks cut by q1 or M go through a copy.
  alignas(64) Pair blk[16 * 16], tr[16 * 16];
  for (Index q = q0; q < q1; q += 16) {
    const Index nq = std::min<Index>(16, q1 - q);
    for (Index m = 0; m < M; m += 16) {
      const Index nm = std::min<Index>(16, M - m);
      for (Index i = 0; i < 16; ++i) {
        if (i < nq) {
          const float* lo = src + 2 * (q + i) * ld + m;
          const float* hi = 2 * (q + i) + 1 < K ? lo + ld : nullptr;
          _mm512_store_si512(blk + i * 16, Interleave16(lo, hi, nm));
        } else {
          _mm512_store_si512(blk + i * 16, _mm512_setzero_si512());
        }
      }
      if (nq == 16 && nm == 16) {
        Transpose16x16(blk, 16, out + m * ldo + q, ldo);
        continue;
      }
      Transpose16x16(blk, 16, tr, 16);
      for (Index r = 0; r < nm; ++r)
        std::memcpy(out + (m + r) * ldo + q, tr + r * 16, sizeof(Pair) * static_cast<std::size_t>(nq));
    }
  }
}

namespace {

// GemmBf16 on VDPBF16PS, any sizes.
void GemmVnni(Index M, Index N, Index Kq, bool a_cols, const Pair* A, Index lda, const Pair* Bp,
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

}  // namespace

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

// ---- AMX ---------------------------------------------------------------------
// Runs only after AmxEnabled(). Tiles 0-3 hold C blocks (16 rows x 16 floats),
// 4-5 A blocks (16 rows x 16 pairs), 6-7 B blocks (16 pair rows x 16 columns:
// exactly 16 columns of a panel, whose rows are 64 pairs apart). The tile
// intrinsics are asm statements without memory operands: the compiler does
// not know that they read or write memory, hence the barriers around them.
#if defined(__clang__)
#pragma clang attribute push(                                                              \
    __attribute__((target("amx-tile,amx-bf16,avx512bf16,avx512bw,avx512vl,avx512f"))), \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512bf16,avx512bw,avx512vl,avx512f")
#endif

namespace {

struct alignas(64) TileConfig {
  std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

inline void MemoryBarrier() { __asm__ volatile("" ::: "memory"); }


// C[16*RM, 16*RN] (+)= a[16*RM, kq pairs] @ b[kq pairs, 16*RN]; kq a multiple
// of 16. a: rows layout, row stride lda; b: a panel at the block's first
// column and first pair row.
template <int RM, int RN>
inline __attribute__((always_inline)) void AmxBlock(Index kq, const Pair* a, Index lda,
                                                    const Pair* b, float* c, Index ldc, bool load) {
  const long sa = static_cast<long>(lda * sizeof(Pair)), sb = W * sizeof(Pair),
             sc = static_cast<long>(ldc * sizeof(float));
  float* c2 = c + 16 * ldc;
  if (load) {
    _tile_loadd(0, c, sc);
    if constexpr (RN == 2) _tile_loadd(1, c + 16, sc);
    if constexpr (RM == 2) _tile_loadd(2, c2, sc);
    if constexpr (RM == 2 && RN == 2) _tile_loadd(3, c2 + 16, sc);
  } else {
    _tile_zero(0);
    if constexpr (RN == 2) _tile_zero(1);
    if constexpr (RM == 2) _tile_zero(2);
    if constexpr (RM == 2 && RN == 2) _tile_zero(3);
  }
  for (Index q = 0; q < kq; q += 16) {
    if (q + 16 < kq) {  // the next step's rows into L1 while this one computes (+10-20%)
      for (int r = 0; r < 16; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(a + r * lda + q + 16), _MM_HINT_T0);
        if constexpr (RM == 2)
          _mm_prefetch(reinterpret_cast<const char*>(a + (r + 16) * lda + q + 16), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(b + (q + 16 + r) * W), _MM_HINT_T0);
        if constexpr (RN == 2)
          _mm_prefetch(reinterpret_cast<const char*>(b + (q + 16 + r) * W + 16), _MM_HINT_T0);
      }
    }
    _tile_loadd(4, a + q, sa);
    _tile_loadd(6, b + q * W, sb);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (RN == 2) {
      _tile_loadd(7, b + q * W + 16, sb);
      _tile_dpbf16ps(1, 4, 7);
    }
    if constexpr (RM == 2) {
      _tile_loadd(5, a + 16 * lda + q, sa);
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (RN == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c, sc);
  if constexpr (RN == 2) _tile_stored(1, c + 16, sc);
  if constexpr (RM == 2) _tile_stored(2, c2, sc);
  if constexpr (RM == 2 && RN == 2) _tile_stored(3, c2 + 16, sc);
}

// One AMX pass of GemmBf16 over tiles of tr rows, tk pairs and tc columns
// (each 1-16): M, Kq and N are multiples of them, and where one is under 16
// the pass has exactly that many (the rows, pairs or columns left over by a
// pass of whole tiles). K is taken in slices of KC pairs; within a slice a
// 32-row block of A (32 KiB at most) stays in L1 while the column blocks of
// B pass (measured 5-15% faster than B's blocks staying). The columns layout
// of A (whole tiles only) is transposed, one slice at a time, into the rows
// layout the tiles load, its rows Bf16RowStride apart. Leaves the tiles
// configured: GemmBf16 releases them after its last pass.
__attribute__((noinline)) void GemmAmx(Index M, Index N, Index Kq, bool a_cols, const Pair* A,
                                       Index lda, const Pair* Bp, Index panel_stride, float* C,
                                       Index ldc, bool accumulate, int tr, int tk, int tc) {
  constexpr Index KC = 256;
  const Index lt = Bf16RowStride(std::min(KC, Kq));
  Pair* t = a_cols ? Bf16Scratch(4, static_cast<std::size_t>(M * lt)) : nullptr;
  TileConfig cfg;
  for (int i = 0; i < 4; ++i) {  // C
    cfg.rows[i] = static_cast<std::uint8_t>(tr);
    cfg.colsb[i] = static_cast<std::uint16_t>(4 * tc);
  }
  for (int i = 4; i < 6; ++i) {  // A
    cfg.rows[i] = static_cast<std::uint8_t>(tr);
    cfg.colsb[i] = static_cast<std::uint16_t>(4 * tk);
  }
  for (int i = 6; i < 8; ++i) {  // B
    cfg.rows[i] = static_cast<std::uint8_t>(tk);
    cfg.colsb[i] = static_cast<std::uint16_t>(4 * tc);
  }
  MemoryBarrier();
  __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
  for (Index q0 = 0; q0 < Kq; q0 += KC) {
    const Index kq = std::min(KC, Kq - q0);
    const Pair* a = A + q0;
    Index la = lda;
    if (a_cols) {
      // t[m * kq + q] = A[(q0 + q) * lda + m], in 16 x 16 blocks.
      for (Index q = 0; q < kq; q += 16)
        for (Index m = 0; m < M; m += 16)
          Transpose16x16(A + (q0 + q) * lda + m, lda, t + m * lt + q, lt);
      a = t;
      la = lt;
      MemoryBarrier();
    }
    const bool load = accumulate || q0 > 0;
    for (Index m = 0; m < M; m += 32) {
      const Pair* am = a + m * la;
      for (Index n = 0; n < N; n += 32) {
        const Pair* b = Bp + (n / W) * panel_stride + n % W + q0 * W;  // 32 | W: one panel
        const bool two_n = N - n >= 32;
        float* c = C + m * ldc + n;
        if (M - m >= 32) {
          if (two_n) {
            AmxBlock<2, 2>(kq, am, la, b, c, ldc, load);
          } else {
            AmxBlock<2, 1>(kq, am, la, b, c, ldc, load);
          }
        } else if (two_n) {
          AmxBlock<1, 2>(kq, am, la, b, c, ldc, load);
        } else {
          AmxBlock<1, 1>(kq, am, la, b, c, ldc, load);
        }
      }
    }
  }
  MemoryBarrier();
}

__attribute__((noinline)) void AmxRelease() {
  _tile_release();
  MemoryBarrier();
}

}  // namespace

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

// Products under 2^14 flops, and rows in blocks of fewer than 4, stay on
// VDPBF16PS: loading a tile configuration and releasing it cost about as
// much as VDPBF16PS takes for 2^14 flops, and one to three rows are bound
// by reading B, which VDPBF16PS does faster (gemm_gflops on Sapphire Rapids,
// GFLOP/s AMX / VDPBF16PS: [2, 64, 32 pairs] 21 / 33, [4, 64, 32] 44 / 46,
// [6, 80, 10] 50 / 42, [8, 64, 16] 131 / 72, [32, 80, 10] 257 / 82,
// [1, 1024, 128] 52 / 62).
constexpr double kAmxMinFlops = 16384.0;
constexpr Index kAmxMinRows = 4;

void GemmBf16(Index M, Index N, Index Kq, bool a_cols, const Pair* A, Index lda, const Pair* Bp,
              Index panel_stride, float* C, Index ldc, bool accumulate) {
  const Index M16 = M / 16 * 16, N16 = N / 16 * 16, K16 = Kq / 16 * 16;
  const double flops = 4.0 * static_cast<double>(M) * static_cast<double>(N) *
                       static_cast<double>(Kq);
  if (M < kAmxMinRows || N <= 0 || Kq <= 0 || flops < kAmxMinFlops || !AmxEnabled() ||
      (a_cols && (M16 == 0 || N16 == 0 || K16 == 0)))
    return GemmVnni(M, N, Kq, a_cols, A, lda, Bp, panel_stride, C, ldc, accumulate);
  if (a_cols) {
    // Whole tiles on AMX (transposed there); the leftover pairs, rows and
    // columns on VDPBF16PS.
    GemmAmx(M16, N16, K16, true, A, lda, Bp, panel_stride, C, ldc, accumulate, 16, 16, 16);
    AmxRelease();
    if (K16 < Kq)
      GemmVnni(M16, N16, Kq - K16, true, A + K16 * lda, lda, Bp + K16 * W, panel_stride, C, ldc,
               true);
    if (N16 < N)  // fewer than 16 columns, inside one panel
      GemmVnni(M16, N - N16, Kq, true, A, lda, Bp + (N16 / W) * panel_stride + N16 % W,
               panel_stride, C + N16, ldc, accumulate);
    if (M16 < M)
      GemmVnni(M - M16, N, Kq, true, A + M16, lda, Bp, panel_stride, C + M16 * ldc, ldc,
               accumulate);
    return;
  }
  // Rows layout: every part on AMX (but 1-3 leftover rows), in up to
  // 2 x 2 x 2 passes: whole tiles, then tiles cut to the leftover rows,
  // columns or pairs (each pass its own tile configuration). The pairs left
  // over are added after the whole ones, in the same order of k as
  // VDPBF16PS.
  struct Part {
    Index begin, size;
    int tile;
  };
  const Part ms[2] = {{0, M16, 16}, {M16, M - M16, static_cast<int>(M - M16)}};
  const Part ns[2] = {{0, N16, 16}, {N16, N - N16, static_cast<int>(N - N16)}};
  const Part ks[2] = {{0, K16, 16}, {K16, Kq - K16, static_cast<int>(Kq - K16)}};
  for (const Part& m : ms) {
    if (m.size == 0) continue;
    if (m.size < kAmxMinRows) {  // 1-3 rows left over
      GemmVnni(m.size, N, Kq, false, A + m.begin * lda, lda, Bp, panel_stride,
               C + m.begin * ldc, ldc, accumulate);
      continue;
    }
    for (const Part& n : ns) {
      if (n.size == 0) continue;
      for (const Part& k : ks) {
        if (k.size == 0) continue;
        // n.begin is a multiple of 16: a leftover block of columns lies in one panel.
        GemmAmx(m.size, n.size, k.size, false, A + m.begin * lda + k.begin, lda,
                Bp + (n.begin / W) * panel_stride + n.begin % W + k.begin * W, panel_stride,
                C + m.begin * ldc + n.begin, ldc, accumulate || k.begin > 0, m.tile, k.tile,
                n.tile);
      }
    }
  }
  AmxRelease();
}

#endif  // RNNFAST_BF16_KERNELS

}  // namespace detail
}  // namespace rnnfast
