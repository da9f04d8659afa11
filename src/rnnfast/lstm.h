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
//
// An object owns its workspace, which grows to the largest call and is then
// reused; use one object per thread (or per layer) at a time.
#pragma once

#include <memory>

#include "rnnfast/common.h"

namespace rnnfast {

template <typename T>
class LSTM {
 public:
  struct Options {
    Activation activation = Activation::kTanh;
    Activation recurrent_activation = Activation::kSigmoid;
    bool go_backwards = false;
  };
  static constexpr int kGates = 4;

  explicit LSTM(const Options& options);
  ~LSTM();
  LSTM(const LSTM&) = delete;
  LSTM& operator=(const LSTM&) = delete;

  // training = false keeps no cache (inference); true keeps one for Backward.
  void Forward(bool training, const ForwardArgs<T>& args);
  // Gradients of the last training Forward; consumes its cache. Throws
  // std::logic_error without one.
  void Backward(const BackwardArgs<T>& args);
  CacheInfo cache() const;
  const Options& options() const { return options_; }

 private:
  struct Impl;
  Options options_;
  std::unique_ptr<Impl> impl_;
};

extern template class LSTM<float>;
extern template class LSTM<double>;

}  // namespace rnnfast
