// Types shared by the SimpleRNN, LSTM and GRU kernels. This header and the
// cell headers are the public C++ API: plain pointers and sizes, no Eigen, so
// that callers (the Python bindings, C++ programs) need nothing else.
//
// Conventions for every kernel:
//   B = batch, T = time steps, I = input features, U = units,
//   G = gate blocks (SimpleRNN 1, LSTM 4, GRU 3).
//   Arrays are dense and row-major (C order). Weights use Keras 3's layout:
//   kernel [I, G*U] and recurrent_kernel [U, G*U], gate g in columns
//   [g*U, (g+1)*U).
//   "Processing order": with go_backwards, step s consumes x[:, T-1-s]. The
//   outputs y[:, s] are in processing order (as Keras returns them); the
//   input gradient dx is in the original order of x.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace rnnfast {

using Index = std::ptrdiff_t;

// Element-wise nonlinearities with Keras 3's definitions
// (hard_sigmoid(x) = relu6(x + 3) / 6).
enum class Activation : int { kTanh, kSigmoid, kHardSigmoid, kRelu, kLinear };

// Keras name ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear") to enum;
// throws std::invalid_argument naming the accepted values.
Activation ParseActivation(const std::string& name);
const char* ActivationName(Activation a);

struct Dims {
  Index batch = 0;   // B
  Index time = 0;    // T
  Index input = 0;   // I
  Index units = 0;   // U
};

// Arguments of a forward pass over a whole sequence.
template <typename T>
struct ForwardArgs {
  Dims dims;
  const T* x = nullptr;                 // [B, T, I] batch-major input
  const T* kernel = nullptr;            // [I, G*U]
  const T* recurrent_kernel = nullptr;  // [U, G*U]
  // [G*U]; GRU with reset_after: [2, G*U] (row 0 input bias, row 1 recurrent
  // bias). Null: the cell has no bias.
  const T* bias = nullptr;
  const T* h0 = nullptr;                // [B, U] initial hidden state; null: zeros
  const T* c0 = nullptr;                // [B, U] LSTM initial cell state; null: zeros
  // [B, T] in original time order: nonzero processes the step, zero carries
  // the state(s) forward unchanged (Keras masking). Null: every step counts.
  const std::uint8_t* mask = nullptr;
  // Multiplicative dropout masks, drawn once per sequence (already scaled by
  // 1/(1-rate)). input_dropout is [n, B, I] and recurrent_dropout [n, B, U]
  // with n = 1 (one mask shared by all gates) or n = G (one per gate, as Keras
  // uses with recurrent_dropout); n = 0 or a null pointer: no mask. The
  // recurrent mask multiplies h_{t-1} only inside the recurrent products.
  const T* input_dropout = nullptr;
  int input_dropout_count = 0;
  const T* recurrent_dropout = nullptr;
  int recurrent_dropout_count = 0;
  T* y = nullptr;                       // out [B, T, U] every step's h, processing order;
                                        // null: not written (only the final state wanted)
  T* h_last = nullptr;                  // out [B, U] final h (may be null)
  T* c_last = nullptr;                  // out [B, U] LSTM final c (may be null)
};

// Arguments of the backward pass; it uses the cache of the last forward with
// training = true and consumes it (the gate cache is overwritten in place).
template <typename T>
struct BackwardArgs {
  const T* kernel = nullptr;            // [I, G*U] the weights the forward used
  const T* recurrent_kernel = nullptr;  // [U, G*U]
  const T* dy = nullptr;                // [B, T, U] dL/dy, processing order; null: zeros
  const T* dh_last = nullptr;           // [B, U] dL/dh_last; null: zeros
  const T* dc_last = nullptr;           // [B, U] LSTM dL/dc_last; null: zeros
  T* dx = nullptr;                      // out [B, T, I] dL/dx, original time order; null: skipped
  T* dh0 = nullptr;                     // out [B, U] dL/dh0 (may be null)
  T* dc0 = nullptr;                     // out [B, U] LSTM dL/dc0 (may be null)
  T* dkernel = nullptr;                 // out [I, G*U]
  T* drecurrent_kernel = nullptr;       // out [U, G*U]
  T* dbias = nullptr;                   // out, the bias's shape; needed iff it had one
};

// What the cached forward was called with (for checks in the bindings).
struct CacheInfo {
  bool valid = false;
  Dims dims;
  bool has_bias = false;
  bool has_mask = false;
  int input_dropout_count = 0;
  int recurrent_dropout_count = 0;
};

// The class shared by SimpleRNN, LSTM and GRU (rnn.h, lstm.h, gru.h). Opts is
// the cell's options struct; it names kGates and declares the Impl that the
// cell's .cc file defines.
//
// An object owns its workspace, which grows to the largest call and is then
// reused; use one object per thread (or per layer) at a time.
template <typename T, typename Opts>
class RecurrentKernel {
 public:
  using Options = Opts;
  static constexpr int kGates = Opts::kGates;

  explicit RecurrentKernel(const Options& options);
  ~RecurrentKernel();
  RecurrentKernel(const RecurrentKernel&) = delete;
  RecurrentKernel& operator=(const RecurrentKernel&) = delete;

  // training = false keeps no cache (inference); true keeps one for Backward.
  void Forward(bool training, const ForwardArgs<T>& args);
  // Gradients of the last training Forward; consumes its cache. Throws
  // std::logic_error without one, std::invalid_argument on missing outputs.
  void Backward(const BackwardArgs<T>& args);
  CacheInfo cache() const;
  const Options& options() const { return options_; }

 private:
  using Impl = typename Opts::template Impl<T>;
  Options options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rnnfast
