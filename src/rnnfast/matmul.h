// Matrix products for the Python layer's dense layers, on the kernels' own
// thread pool: NumPy's BLAS would start threads of its own, which fight the
// pool's for the cores (measured: a Dense product before each LSTM call made
// the LSTM several times slower on 2 cores).
#pragma once

#include "rnnfast/common.h"

namespace rnnfast {

// C[M, N] = op(A) op(B) (+ C when accumulate), row-major: op(A) is [M, K]
// (A is [K, M] when trans_a), op(B) is [K, N] (B is [N, K] when trans_b);
// lda, ldb, ldc are row strides.
template <typename T>
void MatMul(bool trans_a, bool trans_b, Index M, Index N, Index K, const T* A, Index lda,
            const T* B, Index ldb, T* C, Index ldc, bool accumulate);

}  // namespace rnnfast
