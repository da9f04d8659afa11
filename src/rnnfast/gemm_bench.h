// Measures this build's FP32 GEMM speed (the ceiling the kernels are held
// against in the benchmarks): C[M, N] = A[M, K] B[K, N] with Eigen, the
// columns split over the kernels' thread pool as the kernels split theirs.
#pragma once

#include "rnnfast/common.h"

namespace rnnfast {

// Median GFLOP/s over `repeats` products after one warm-up.
double GemmGflops(Index M, Index N, Index K, int threads, int repeats);

}  // namespace rnnfast
