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
//
// An object owns its workspace, which grows to the largest call and is then
// reused; use one object per thread (or per layer) at a time.
#pragma once

#include <memory>

#include "rnnfast/common.h"

namespace rnnfast {

template <typename T>
class GRU {
 public:
  struct Options {
    Activation activation = Activation::kTanh;
    Activation recurrent_activation = Activation::kSigmoid;
    bool reset_after = true;
    bool go_backwards = false;
  };
  static constexpr int kGates = 3;

  explicit GRU(const Options& options);
  ~GRU();
  GRU(const GRU&) = delete;
  GRU& operator=(const GRU&) = delete;

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

extern template class GRU<float>;
extern template class GRU<double>;

}  // namespace rnnfast
