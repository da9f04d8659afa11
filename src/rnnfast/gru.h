// GRU over whole sequences, Keras 3 formulation; gate blocks z, r, h.
// reset_after = true (Keras 3 default, the cuDNN/PyTorch form), bias [2, 3U]
// (row 0 input bias b, row 1 recurrent bias br):
//   z = ract(x W_z + b_z + h_{t-1} R_z + br_z)    r likewise
//   hh = act(x W_h + b_h + r * (h_{t-1} R_h + br_h))
// reset_after = false, bias [3U]:
//   hh = act(x W_h + b_h + (r * h_{t-1}) R_h)
// both: h_t = z * h_{t-1} + (1 - z) * hh.
// With recurrent dropout, h_{t-1} inside the products is h_{t-1} * mask;
// the h_{t-1} of the last line is unmasked (as in Keras).
//
// Shapes (see common.h): kernel [I, 3U], recurrent_kernel [U, 3U].
// Forward fills y [B, T, U] and h_last [B, U]; with training it keeps what
// Backward needs. Backward returns dx [B, T, I], dh0 [B, U], dkernel [I, 3U],
// drecurrent_kernel [U, 3U], dbias (the bias's shape).
#pragma once

#include "rnnfast/common.h"

namespace rnnfast {

struct GRUOptions {
  static constexpr int kGates = 3;
  Activation activation = Activation::kTanh;
  Activation recurrent_activation = Activation::kSigmoid;
  bool reset_after = true;
  bool go_backwards = false;
  // Mixed precision (float only): GEMM operands rounded to bfloat16, sums,
  // states and gate math in float32 (bf16.h). Ignored, float32 GEMMs, where
  // Bf16Enabled() is false.
  bool bf16 = false;
  template <typename T>
  struct Impl;  // gru.cc
};

template <typename T>
using GRU = RecurrentKernel<T, GRUOptions>;

extern template class RecurrentKernel<float, GRUOptions>;
extern template class RecurrentKernel<double, GRUOptions>;

}  // namespace rnnfast
