// Optimizer updates over many weight arrays in one call (the Python layer's
// Adam would otherwise make a dozen NumPy passes per array per step).
#pragma once

#include <vector>

#include "rnnfast/common.h"

namespace rnnfast {

// One array's share of a Keras Adam step:
//   w [n] weights, g [n] gradient, m, v [n] first and second moments,
//   vhat [n] or null (amsgrad: running maximum of v).
// In T's arithmetic and Keras's order of operations (each result rounded as
// NumPy rounds it, no fused multiply-add), so that it matches the NumPy
// implementation bit for bit:
//   m += (g - m) * c1;  v += (g * g - v) * c2;  [vhat = max(vhat, v); v' = vhat]
//   w -= (m * alpha) / (sqrt(v') + eps)
// with c1 = 1 - beta_1, c2 = 1 - beta_2, alpha the bias-corrected step size.
template <typename T>
struct AdamArray {
  Index n = 0;
  T* w = nullptr;
  const T* g = nullptr;
  T* m = nullptr;
  T* v = nullptr;
  T* vhat = nullptr;
};

// All arrays, split over the kernels' threads.
template <typename T>
void AdamStep(const std::vector<AdamArray<T>>& arrays, T alpha, T c1, T c2, T eps);

}  // namespace rnnfast
