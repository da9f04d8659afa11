// Measures this build's FP32 GEMM speed (the ceiling the kernels are held
// against in the benchmarks): C[M, N] = A[M, K] B[K, N] with Eigen, the
// columns split over the kernels' thread pool as the kernels split theirs.
#pragma once

#include "rnnfast/common.h"

namespace rnnfast {

// Median GFLOP/s over `repeats` products after one warm-up. bf16: the
// mixed-precision GEMM instead (GemmBf16: AMX tiles where enabled, else
// VDPBF16PS; operands converted and packed before the timing, as the kernels
// hold them); throws std::invalid_argument where Bf16Enabled() is false.
double GemmGflops(Index M, Index N, Index K, int threads, int repeats, bool bf16 = false);

// The arithmetic peak of this build's float32 multiply-adds: each of `threads`
// pool members runs independent multiply-add chains on registers only (the
// widest vectors the build targets: 512 bits for x86-64-v4, 256 for v3, 128
// and separate multiplies and adds for the baseline), nothing loaded or stored.
// Best GFLOP/s (2 per multiply-add) of `repeats` timed runs of `iterations`
// steps each (a step is one multiply-add on every lane of every chain). No
// float32 code of this build can do arithmetic faster, so a kernel's required
// GFLOP/s above it is unreachable on the machine, whatever the implementation.
double FmaPeakGflops(int threads, int repeats, long iterations = 1L << 22);

}  // namespace rnnfast
