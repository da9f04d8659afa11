// SimpleRNN over whole sequences (Keras 3):
//   h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)
// act in {tanh (default), sigmoid, hard_sigmoid, relu, linear}.
//
// Shapes (see common.h): kernel [I, U], recurrent_kernel [U, U], bias [U].
// Forward fills y [B, T, U] and h_last [B, U]; with training it keeps what
// Backward needs. Backward returns dx [B, T, I], dh0 [B, U], dkernel [I, U],
// drecurrent_kernel [U, U], dbias [U].
//
// An object owns its workspace, which grows to the largest call and is then
// reused; use one object per thread (or per layer) at a time.
#pragma once

#include <memory>

#include "rnnfast/common.h"

namespace rnnfast {

template <typename T>
class SimpleRNN {
 public:
  struct Options {
    Activation activation = Activation::kTanh;
    bool go_backwards = false;
  };
  static constexpr int kGates = 1;

  explicit SimpleRNN(const Options& options);
  ~SimpleRNN();
  SimpleRNN(const SimpleRNN&) = delete;
  SimpleRNN& operator=(const SimpleRNN&) = delete;

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

extern template class SimpleRNN<float>;
extern template class SimpleRNN<double>;

}  // namespace rnnfast
