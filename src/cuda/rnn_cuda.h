// SimpleRNN, LSTM and GRU over whole sequences on a CUDA device (Keras 3
// semantics and layouts, as the CPU kernels in src/rnnfast/). Plain host
// pointers in and out: the object uploads, runs and downloads, and keeps the
// device workspace (and, after a training forward, the cache its backward
// needs) between calls. No CUDA types in this header.
//
// Structure (after haste, lmnt-com/haste): the input projection of all steps
// is one cuBLAS GEMM; each step is one recurrent GEMM (two for GRU with
// reset_after=False) and one fused pointwise kernel (src/cuda/device_cells.h)
// over the (row, unit) grid; the backward walks the steps in reverse with the
// pointwise backward kernel and one GEMM for dh_{t-1}, and the weight and
// input gradients are single large GEMMs after the loop.
//
// Shapes (B batch, T time, I input features, U units, G gates: SimpleRNN 1,
// LSTM 4, GRU 3; row-major):
//   x [B, T, I]; kernel [I, G*U]; recurrent_kernel [U, G*U];
//   bias [G*U] (GRU reset_after: [2, G*U]) or null;
//   h0, c0 [B, U] or null (zeros); mask [B, T] (nonzero: step) or null;
//   y [B, T, U] in processing order (go_backwards reverses x) or null;
//   h_last, c_last [B, U].
// Backward: dy [B, T, U] or null, dh_last, dc_last [B, U] or null; writes
//   dx [B, T, I] (original order; null: skipped), dh0, dc0 [B, U],
//   dkernel, drecurrent_kernel, dbias (the shapes above; dbias only with a bias).
// input_dropout [B, I] (null: none): one multiplicative mask shared by all
// gates and steps (Keras's `dropout` without `recurrent_dropout`). Per-gate
// and recurrent dropout masks are not supported on the device (the layers
// run on the CPU when they are used).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace rnnfast {
namespace cuda {

enum class Cell : int { kSimpleRNN = 1, kLSTM = 4, kGRU = 3 };

struct CellOptions {
  Cell cell = Cell::kLSTM;
  int activation = 0;            // device_cells.h ActivationCode (tanh)
  int recurrent_activation = 1;  // sigmoid
  bool reset_after = true;       // GRU only
  bool go_backwards = false;
};

// Devices visible to this process; 0 (and `why` says why) without a driver
// or device.
int DeviceCount(std::string* why);
std::string DeviceName(int device);
// Loads cuBLAS from `path` (a file, or a library name the loader searches);
// false and `why` on failure. Needed before the first kernel call.
bool LoadCublas(const std::string& path, std::string* why);
bool CublasLoaded();

template <typename T>
class DeviceRNN {
 public:
  DeviceRNN(const CellOptions& options, int device);
  ~DeviceRNN();
  DeviceRNN(const DeviceRNN&) = delete;
  DeviceRNN& operator=(const DeviceRNN&) = delete;

  void Forward(bool training, long long B, long long Tn, long long I, long long U, const T* x,
               const T* kernel, const T* recurrent_kernel, const T* bias, const T* h0, const T* c0,
               const std::uint8_t* mask, const T* input_dropout, T* y, T* h_last, T* c_last);
  // Consumes the cache of the last training Forward; throws std::logic_error without one.
  void Backward(const T* dy, const T* dh_last, const T* dc_last, T* dx, T* dh0, T* dc0, T* dkernel,
                T* drecurrent_kernel, T* dbias);
  bool has_cache() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

extern template class DeviceRNN<float>;
extern template class DeviceRNN<double>;

}  // namespace cuda
}  // namespace rnnfast
