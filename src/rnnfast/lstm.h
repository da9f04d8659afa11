// LSTM over whole sequences, Keras 3 formulation and weight layout:
//   gates z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias, blocks i, f, c, o
//   i = ract(z_i)  f = ract(z_f)  c~ = act(z_c)  o = ract(z_o)
//   c_t = f * c_{t-1} + i * c~      h_t = o * act(c_t)
// (act defaults to tanh, ract to sigmoid; dropout masks as in ForwardArgs.)
//
// Shapes (see common.h): kernel [I, 4U], recurrent_kernel [U, 4U], bias [4U].
// Forward fills y [B, T, U], h_last and c_last [B, U]; with training it keeps
// what Backward needs. Backward returns dx [B, T, I], dh0, dc0 [B, U],
// dkernel [I, 4U], drecurrent_kernel [U, 4U], dbias [4U].
#pragma once

#include "rnnfast/common.h"

namespace rnnfast {

struct LSTMOptions {
  static constexpr int kGates = 4;
  Activation activation = Activation::kTanh;
  Activation recurrent_activation = Activation::kSigmoid;
  bool go_backwards = false;
  // Mixed precision (float only): GEMM operands rounded to bfloat16, sums,
  // states and gate math in float32 (bf16.h). Ignored, float32 GEMMs, where
  // Bf16Enabled() is false.
  bool bf16 = false;
  template <typename T>
  struct Impl;  // lstm.cc
};

template <typename T>
using LSTM = RecurrentKernel<T, LSTMOptions>;

extern template class RecurrentKernel<float, LSTMOptions>;
extern template class RecurrentKernel<double, LSTMOptions>;

}  // namespace rnnfast
