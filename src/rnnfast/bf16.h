// bfloat16 GEMMs for mixed precision (the cells' `bf16` option): operands
// rounded to bfloat16 (round to nearest even), products summed in float32, on
// AVX512-BF16 (VDPBF16PS). Only the x86-64-v4 build compiles them (with a
// target attribute: the rest of that build stays plain AVX-512), and they run
// only where the CPU reports AVX512_BF16; elsewhere Bf16Enabled() is false and
// the cells run their float32 GEMMs. No Eigen here.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rnnfast/common.h"

namespace rnnfast {

// This build has the bf16 kernels and this CPU runs them.
bool Bf16Supported();
// Supported and not switched off. The switch starts off where the
// environment has RNNFAST_BF16=0 (or "off", "false", "no").
bool Bf16Enabled();
void SetBf16Enabled(bool enabled);
// Why Bf16Supported() is false ("" when it is true).
const char* Bf16Unsupported();

// AMX (TDPBF16PS on 16 x 16 tiles) for the whole 16-row, 16-column, 16-pair
// blocks of the bf16 GEMMs, where the CPU has AMX-BF16 and the OS grants the
// tile state; the rest of a product, and every product where AMX is missing or
// switched off, runs on VDPBF16PS. Both add each pair's two products to a
// float32 sum, k in increasing order. The switch starts off where the
// environment has RNNFAST_AMX=0 (as RNNFAST_BF16).
bool AmxSupported();
bool AmxEnabled();  // supported, bf16 enabled and AMX not switched off
void SetAmxEnabled(bool enabled);
const char* AmxUnsupported();

namespace detail {

// Two bfloat16 values in one 32-bit word: element 2q in the low half, 2q + 1
// in the high half (the operand layout of VDPBF16PS). K = 2 * pairs; an odd
// K gets a zero in the high half of its last pair.
using Pair = std::uint32_t;
constexpr Index Pairs(Index k) { return (k + 1) / 2; }

// Right operands are packed in panels of kBf16Panel columns: panel p holds
// columns [p*64, p*64 + 64) as Kq rows of 64 pairs, row q the pairs
// (B(2q, n), B(2q + 1, n)) of its columns, zero past column N.
constexpr Index kBf16Panel = 64;
constexpr Index Bf16PanelPairs(Index kq, Index n) {
  return (n + kBf16Panel - 1) / kBf16Panel * kq * kBf16Panel;
}

// out (Bf16PanelPairs(Kq, N) pairs) = the panels of the [K, N] matrix with
// element (k, n) at src[k * ld + n], or with trans at src[n * ld + k]. With
// trans, K is `segs` segments of K / segs rows each padded to an even count
// (Kq = segs * Pairs(K / segs)), so that each gate's block of a [G*U, N]
// operand starts at a pair whatever U. colsum (without trans; may be null):
// [N], the sums of the matrix's columns added to it (a bias gradient, while
// the pack reads the matrix anyway).
void PackBf16Panels(Index K, Index N, const float* src, Index ld, bool trans, Pair* out,
                    Index segs = 1, float* colsum = nullptr);

// The row stride, in pairs, for a rows-layout operand of kq pairs: a multiple
// of 16 pairs (64 bytes) that is an odd multiple, so that the 16 rows of an
// AMX tile load fall in 16 different L1 sets (a power-of-two stride put them
// in 2 to 8 sets, and the AMX products ran 10-50% slower).
constexpr Index Bf16RowStride(Index kq) {
  const Index blocks = (kq + 15) / 16;
  return 16 * (blocks % 2 == 0 ? blocks + 1 : blocks);
}

// Left operands, two layouts:
// rows: out[m * ldo + q] = (A(m, 2q), A(m, 2q + 1)) for A [M, K] at
//   src[m * ld + k]; K is `segs` segments padded to even as above (ldo >=
//   segs * Pairs(K / segs)).
void ConvertBf16Rows(Index M, Index K, const float* src, Index ld, Pair* out, Index ldo,
                     Index segs = 1);
// columns ("transposed A"): out[q * ldo + m] = (A(m, 2q), A(m, 2q + 1)) for
//   A = X^T, X [K, M] at src[k * ld + m]; only pair rows [q0, q1) (a member's
//   share). The left operand of X^T @ Y products (weight gradients).
void ConvertBf16Cols(Index K, Index M, const float* src, Index ld, Pair* out, Index ldo,
                     Index q0, Index q1);

// rows layout of the same A = X^T: out[m * ldo + q] = (X(2q, m), X(2q + 1, m))
//   for X [K, M] at src[k * ld + m]; pair columns [q0, q1) only. What the AMX
//   tiles load: converting X this way once saves GemmBf16 transposing the
//   columns layout at every call that reads it.
void ConvertBf16ColsT(Index K, Index M, const float* src, Index ld, Pair* out, Index ldo,
                      Index q0, Index q1);

// C[M, N] (+)= A @ B over Kq pairs of k. A in the rows layout (element (m, q)
// at A[m * lda + q]) or, with a_cols, the columns layout (A[q * lda + m]).
// Bp points at pair row q0 of panel 0 (packed + q0 * 64), panels
// panel_stride pairs apart. C row-major with row stride ldc. Single-threaded.
void GemmBf16(Index M, Index N, Index Kq, bool a_cols, const Pair* A, Index lda, const Pair* Bp,
              Index panel_stride, float* C, Index ldc, bool accumulate);

// Growable per-thread scratch of at least n pairs; slot 0..4 are separate
// buffers (a thread's buffers are kept for its later calls; GemmBf16 uses 4).
Pair* Bf16Scratch(int slot, std::size_t n);

// float -> bfloat16 bits, round to nearest even, subnormals flushed to zero
// (as VCVTNEPS2BF16); for tests and edges.
std::uint16_t ToBf16(float x);

}  // namespace detail
}  // namespace rnnfast
