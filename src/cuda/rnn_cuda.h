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
// Dropout masks (multiplicative, shared by all steps; null: none), as the
// CPU kernels take them: input_dropout [n_in, B, I] and recurrent_dropout
// [n_rec, B, U], each count 1 (one mask for all gates) or G (one per gate,
// Keras's form once recurrent_dropout is on). With recurrent dropout the
// h_{t-1} inside the recurrent products is h_{t-1} * mask (for GRU with
// reset_after=False: (r * (h_{t-1} * mask_h)) R_h); the h_{t-1} carried to
// h_t is unmasked, as in Keras. Per-gate masks make the input projection and
// each step's recurrent product one GEMM per gate.
//
// Weights kept on the device during fit: with weights_on_device, kernel,
// recurrent_kernel and bias are device pointers (DeviceAlloc) of the shapes
// above, used in place; with grads_on_device, dkernel, drecurrent_kernel and
// dbias are device pointers that Backward overwrites, or adds to with
// accumulate (a layer called more than once in a step). Everything else is
// host memory.
//
// CUDA graphs: the device work of a Forward (input GEMM and step loop) and of
// a Backward (step loop and gradient GEMMs) depends only on the sizes, the
// options and the buffers' addresses. The second call with the same ones is
// captured into a CUDA graph and later ones replay it (a few per object); a
// capture that fails falls back to launching directly. RNNFAST_CUDA_GRAPHS=0
// turns graphs off.
#pragma once

#include <cstddef>
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

// ---- Device memory (rnnfast._cuda.DeviceArray) and fused optimizer updates --------
// Synchronous with respect to the host (one non-blocking stream per device,
// never the legacy default stream). DeviceAlloc returns zeroed memory.
void* DeviceAlloc(std::size_t bytes, int device);
void DeviceFree(void* p, int device) noexcept;
void CopyToDevice(void* dst, const void* src, std::size_t bytes, int device);
void CopyToHost(void* dst, const void* src, std::size_t bytes, int device);
void DeviceZero(void* p, std::size_t bytes, int device);

// One Adam step over n elements, in place (device pointers, each [n]; vhat
// null without amsgrad): alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t),
// c1 = 1 - beta_1, c2 = 1 - beta_2; decay = weight_decay (0: none), applied
// first as w - (w * decay) * lr.
template <typename T>
void AdamUpdate(int device, long long n, T* w, const T* g, T* m, T* v, T* vhat, T alpha, T c1,
                T c2, T eps, T decay, T lr);
// The updates are launched asynchronously; WaitForUpdates(device) waits for
// them (before anything else reads the weights).
void WaitForUpdates(int device);
// One SGD step over n elements (momentum null: plain SGD).
template <typename T>
void SGDUpdate(int device, long long n, T* w, const T* g, T* momentum_buf, T lr, T momentum,
               bool nesterov, T decay);

struct GraphStats {
  long long captures = 0, replays = 0, fallbacks = 0;
};

template <typename T>
class DeviceRNN {
 public:
  DeviceRNN(const CellOptions& options, int device);
  ~DeviceRNN();
  DeviceRNN(const DeviceRNN&) = delete;
  DeviceRNN& operator=(const DeviceRNN&) = delete;

  void Forward(bool training, long long B, long long Tn, long long I, long long U, const T* x,
               const T* kernel, const T* recurrent_kernel, const T* bias, const T* h0, const T* c0,
               const std::uint8_t* mask, const T* input_dropout, T* y, T* h_last, T* c_last,
               bool weights_on_device = false, int n_in = 1, const T* recurrent_dropout = nullptr,
               int n_rec = 0);
  // Consumes the cache of the last training Forward; throws std::logic_error without one.
  void Backward(const T* dy, const T* dh_last, const T* dc_last, T* dx, T* dh0, T* dc0, T* dkernel,
                T* drecurrent_kernel, T* dbias, bool grads_on_device = false,
                bool accumulate = false);
  bool has_cache() const;
  GraphStats graph_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

extern template class DeviceRNN<float>;
extern template class DeviceRNN<double>;

}  // namespace cuda
}  // namespace rnnfast
