// SimpleRNN over whole sequences (Keras 3):
//   h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)
// act in {tanh (default), sigmoid, hard_sigmoid, relu, linear}.
//
// Shapes (see common.h): kernel [I, U], recurrent_kernel [U, U], bias [U].
// Forward fills y [B, T, U] and h_last [B, U]; with training it keeps what
// Backward needs. Backward returns dx [B, T, I], dh0 [B, U], dkernel [I, U],
// drecurrent_kernel [U, U], dbias [U].
#pragma once

#include "rnnfast/common.h"

namespace rnnfast {

struct SimpleRNNOptions {
  static constexpr int kGates = 1;
  Activation activation = Activation::kTanh;
  bool go_backwards = false;
  // Mixed precision (float only): GEMM operands rounded to bfloat16, sums,
  // states and gate math in float32 (bf16.h). Ignored, float32 GEMMs, where
  // Bf16Enabled() is false.
  bool bf16 = false;
  template <typename T>
  struct Impl;  // rnn.cc
};

template <typename T>
using SimpleRNN = RecurrentKernel<T, SimpleRNNOptions>;

extern template class RecurrentKernel<float, SimpleRNNOptions>;
extern template class RecurrentKernel<double, SimpleRNNOptions>;

}  // namespace rnnfast
