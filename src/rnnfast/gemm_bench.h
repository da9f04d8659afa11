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

}  // namespace rnnfast
