// The device kernels and their orchestration (see rnn_cuda.h).
#if defined(RNNFAST_CUDA_EMULATE)
#include "cuda/host_emulation.h"  // the test build without a GPU
#else
#include <cuda_runtime.h>
#define RNNFAST_LAUNCH(kernel, blocks, stream, ...) kernel<<<blocks, kThreads, 0, stream>>>(__VA_ARGS__)
#endif
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/device_cells.h"
#include "cuda/rnn_cuda.h"

namespace rnnfast {
namespace cuda {
namespace {

void Check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// ---- cuBLAS, loaded at run time -----------------------------------------------------
// dlopen instead of linking: the build needs only nvcc (cuBLAS's 600 MB wheel
// is a run-time extra, rnnfast[cuda]), and a module built here imports on
// machines without it. The C ABI of these five functions is stable.
using BlasHandle = void*;
using CreateFn = int (*)(BlasHandle*);
using DestroyFn = int (*)(BlasHandle);
using SetStreamFn = int (*)(BlasHandle, cudaStream_t);
template <typename T>
using GemmFn = int (*)(BlasHandle, int, int, int, int, int, const T*, const T*, int, const T*, int,
                       const T*, T*, int);

struct Cublas {
  void* lib = nullptr;
  CreateFn create = nullptr;
  DestroyFn destroy = nullptr;
  SetStreamFn set_stream = nullptr;
  GemmFn<float> sgemm = nullptr;
  GemmFn<double> dgemm = nullptr;
};
Cublas& Blas() {
  static Cublas c;
  return c;
}

}  // namespace

// Device memory that grows to the largest call (named namespace: a member
// type of DeviceRNN<T>::Impl).
template <typename T>
struct Buffer {
  T* p = nullptr;
  std::size_t n = 0;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
    if (p != nullptr) cudaFree(p);
  }
  T* Reserve(std::size_t count) {
    if (count > n) {
      if (p != nullptr) cudaFree(p);
      p = nullptr;
      n = 0;
      Check(cudaMalloc(&p, std::max<std::size_t>(count, 1) * sizeof(T)), "cudaMalloc");
      n = count;
    }
    return p;
  }
};

namespace {

constexpr int kThreads = 256;
inline int Blocks(long long n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

#define RNNFAST_GRID_POINT                                          \
  const long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; \
  if (idx >= B * U) return;                                        \
  const long long b = idx / U, u = idx % U;

template <typename T>
__global__ void AddRows(T* out, const T* row, long long rows, long long cols, bool set) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < rows * cols) out[i] = (set ? T(0) : out[i]) + row[i % cols];
}
template <typename T>
__global__ void Sum2(T* out, const T* a, const T* b, long long n) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + (b != nullptr ? b[i] : T(0));
}
template <typename T>
__global__ void ColumnSums(const T* a, long long rows, long long cols, long long lda, T* out,
                           bool add) {
  const long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (c >= cols) return;
  T s = T(0);
  for (long long r = 0; r < rows; ++r) s += a[r * lda + c];
  out[c] = add ? out[c] + s : s;
}

// Recurrent dropout: out[k] = h * mask[k] for k < n ([n, B*U] each).
template <typename T>
__global__ void MaskRows(T* out, const T* h, const T* masks, int n, long long BU) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i >= BU) return;
  for (int k = 0; k < n; ++k) out[k * BU + i] = h[i] * masks[k * BU + i];
}
// dh += sum_k part[k] * mask[k] (the masked recurrent products' gradients).
template <typename T>
__global__ void AddMasked(T* dh, const T* part, const T* masks, int n, long long BU) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i >= BU) return;
  T s = dh[i];
  for (int k = 0; k < n; ++k) s += part[k * BU + i] * masks[k * BU + i];
  dh[i] = s;
}
// out[k][s] = H[s] * mask[k] for every step s < Tn: the masked states of all
// steps, for the recurrent kernel's gradient ([n, Tn, B*U]).
template <typename T>
__global__ void MaskSteps(T* out, const T* H, const T* masks, int n, long long Tn, long long BU) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i >= Tn * BU) return;
  const long long j = i % BU;
  for (int k = 0; k < n; ++k) out[k * Tn * BU + i] = H[i] * masks[k * BU + j];
}

template <typename T>
__global__ void SimpleFwd(long long B, long long U, int act, T* g, const T* hp, T* hn,
                          const std::uint8_t* m) {
  RNNFAST_GRID_POINT
  SimpleRNNForwardPoint<T>(b, u, U, act, g, hp, hn, nullptr, m);
}
template <typename T>
__global__ void SimpleBwd(long long B, long long U, int act, const T* g, const T* dh, T* dg,
                          T* carry, const std::uint8_t* m) {
  RNNFAST_GRID_POINT
  SimpleRNNBackwardPoint<T>(b, u, U, act, g, dh, dg, carry, m);
}
template <typename T>
__global__ void LSTMFwd(long long B, long long U, int act, int rec, T* g, const T* hp, const T* cp,
                        T* hn, T* cn, const std::uint8_t* m) {
  RNNFAST_GRID_POINT
  LSTMForwardPoint<T>(b, u, U, act, rec, g, hp, cp, hn, cn, nullptr, m);
}
template <typename T>
__global__ void LSTMBwd(long long B, long long U, int act, int rec, const T* g, const T* c,
                        const T* cp, const T* dh, T* dc, T* dg, T* carry, const std::uint8_t* m) {
  RNNFAST_GRID_POINT
  // dc in place: each point reads its dL/dc_t before writing dL/dc_{t-1}.
  LSTMBackwardPoint<T>(b, u, U, act, rec, g, c, cp, dh, dc, dg, dc, carry, m);
}
template <typename T>
__global__ void GRUFwd(long long B, long long U, int act, int rec, T* xg, T* rg, const T* hp,
                       T* hn, const std::uint8_t* m) {
  RNNFAST_GRID_POINT
  GRUForwardPoint<T>(b, u, U, act, rec, xg, rg, hp, hn, nullptr, m);
}
template <typename T>
__global__ void GRUBwd(long long B, long long U, int act, int rec, const T* xg, const T* rg,
                       const T* hp, const T* dh, T* dxg, T* drg, T* carry, const std::uint8_t* m) {
  RNNFAST_GRID_POINT
  GRUBackwardPoint<T>(b, u, U, act, rec, xg, rg, hp, dh, dxg, drg, carry, m);
}
template <typename T>
__global__ void GRUBeforeFwd1(long long B, long long U, int rec, T* xg, const T* rz, const T* hp,
                              T* rh) {
  RNNFAST_GRID_POINT
  GRUBeforeForwardPoint1<T>(b, u, U, rec, xg, rz, hp, rh);
}
template <typename T>
__global__ void GRUBeforeFwd2(long long B, long long U, int act, T* xg, const T* hg, const T* hp,
                              T* hn, const std::uint8_t* m) {
  RNNFAST_GRID_POINT
  GRUBeforeForwardPoint2<T>(b, u, U, act, xg, hg, hp, hn, nullptr, m);
}
template <typename T>
__global__ void GRUBeforeBwd1(long long B, long long U, int act, int rec, const T* xg, const T* hp,
                              const T* dh, T* dg, T* dhg, T* carry, const std::uint8_t* m) {
  RNNFAST_GRID_POINT
  GRUBeforeBackwardPoint1<T>(b, u, U, act, rec, xg, hp, dh, dg, dhg, carry, m);
}
template <typename T>
__global__ void GRUBeforeBwd2(long long B, long long U, int rec, const T* xg, const T* hp,
                              const T* drh, T* dg, T* carry, const std::uint8_t* m) {
  RNNFAST_GRID_POINT
  GRUBeforeBackwardPoint2<T>(b, u, U, rec, xg, hp, drh, dg, carry, m);
}

}  // namespace

int DeviceCount(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why != nullptr) *why = cudaGetErrorString(e);
    cudaGetLastError();  // clear the sticky error
    return 0;
  }
  if (n == 0 && why != nullptr) *why = "no CUDA device visible";
  return n;
}

std::string DeviceName(int device) {
  cudaDeviceProp p;
  Check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  return p.name;
}

bool LoadCublas(const std::string& path, std::string* why) {
  Cublas& c = Blas();
  if (c.lib != nullptr) return true;
#if defined(RNNFAST_CUDA_EMULATE)
  if (path == "emulated") {
    namespace e = ::rnnfast::emulation;
    c.create = e::Create;
    c.destroy = e::Destroy;
    c.set_stream = e::SetStream;
    c.sgemm = e::Gemm<float>;
    c.dgemm = e::Gemm<double>;
    c.lib = &c;  // loaded
    return true;
  }
#endif
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    if (why != nullptr) *why = dlerror();
    return false;
  }
  Cublas n;
  n.create = reinterpret_cast<CreateFn>(dlsym(h, "cublasCreate_v2"));
  n.destroy = reinterpret_cast<DestroyFn>(dlsym(h, "cublasDestroy_v2"));
  n.set_stream = reinterpret_cast<SetStreamFn>(dlsym(h, "cublasSetStream_v2"));
  n.sgemm = reinterpret_cast<GemmFn<float>>(dlsym(h, "cublasSgemm_v2"));
  n.dgemm = reinterpret_cast<GemmFn<double>>(dlsym(h, "cublasDgemm_v2"));
  if (!n.create || !n.destroy || !n.set_stream || !n.sgemm || !n.dgemm) {
    if (why != nullptr) *why = path + " lacks the cuBLAS v2 functions rnnfast uses";
    dlclose(h);
    return false;
  }
  n.lib = h;
  c = n;
  return true;
}

bool CublasLoaded() { return Blas().lib != nullptr; }


// ---- Device memory and the fused optimizer updates ------------------------------------

namespace {

template <typename T>
__global__ void AdamKernel(long long n, T* w, const T* g, T* m, T* v, T* vhat, T alpha, T c1, T c2,
                           T eps, T decay, T lr) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < n) AdamPoint<T>(i, w, g, m, v, vhat, alpha, c1, c2, eps, decay, lr);
}
template <typename T>
__global__ void SGDKernel(long long n, T* w, const T* g, T* mb, T lr, T momentum, bool nesterov,
                          T decay) {
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < n) SGDPoint<T>(i, w, g, mb, lr, momentum, nesterov, decay);
}

}  // namespace

// Device-array copies and optimizer updates run on one non-blocking stream per
// device and are waited for before returning, as the kernel objects wait for
// their own (non-blocking) streams: the host's order is the device's, and no
// work goes to the legacy default stream, which CUDA refuses while another
// thread captures a graph on the device.
static cudaStream_t SideStream(int device) {
  static std::mutex mutex;
  static std::vector<cudaStream_t> streams;
  std::lock_guard<std::mutex> lock(mutex);
  if (static_cast<int>(streams.size()) <= device) streams.resize(device + 1, nullptr);
  if (streams[device] == nullptr) {
    Check(cudaSetDevice(device), "cudaSetDevice");
    Check(cudaStreamCreateWithFlags(&streams[device], cudaStreamNonBlocking), "cudaStreamCreate");
  }
  return streams[device];
}

void* DeviceAlloc(std::size_t bytes, int device) {
  Check(cudaSetDevice(device), "cudaSetDevice");
  void* p = nullptr;
  Check(cudaMalloc(&p, std::max<std::size_t>(bytes, 1)), "cudaMalloc");
  cudaStream_t side = SideStream(device);
  cudaError_t e = cudaMemsetAsync(p, 0, std::max<std::size_t>(bytes, 1), side);
  if (e == cudaSuccess) e = cudaStreamSynchronize(side);
  if (e != cudaSuccess) {
    cudaFree(p);
    Check(e, "cudaMemset");
  }
  return p;
}

void DeviceFree(void* p, int device) noexcept {
  if (p == nullptr) return;
  cudaSetDevice(device);
  cudaFree(p);
}

void CopyToDevice(void* dst, const void* src, std::size_t bytes, int device) {
  Check(cudaSetDevice(device), "cudaSetDevice");
  Check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, SideStream(device)), "upload");
  Check(cudaStreamSynchronize(SideStream(device)), "cudaStreamSynchronize");
}

void CopyToHost(void* dst, const void* src, std::size_t bytes, int device) {
  Check(cudaSetDevice(device), "cudaSetDevice");
  Check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, SideStream(device)), "download");
  Check(cudaStreamSynchronize(SideStream(device)), "cudaStreamSynchronize");
}

void DeviceZero(void* p, std::size_t bytes, int device) {
  Check(cudaSetDevice(device), "cudaSetDevice");
  Check(cudaMemsetAsync(p, 0, bytes, SideStream(device)), "cudaMemset");
  Check(cudaStreamSynchronize(SideStream(device)), "cudaStreamSynchronize");
}

template <typename T>
void AdamUpdate(int device, long long n, T* w, const T* g, T* m, T* v, T* vhat, T alpha, T c1,
                T c2, T eps, T decay, T lr) {
  if (n <= 0) return;
  Check(cudaSetDevice(device), "cudaSetDevice");
  RNNFAST_LAUNCH(AdamKernel<T>, Blocks(n), SideStream(device), n, w, g, m, v, vhat, alpha, c1, c2, eps,
                 decay, lr);
  Check(cudaGetLastError(), "Adam update launch");
}

template <typename T>
void SGDUpdate(int device, long long n, T* w, const T* g, T* momentum_buf, T lr, T momentum,
               bool nesterov, T decay) {
  if (n <= 0) return;
  Check(cudaSetDevice(device), "cudaSetDevice");
  RNNFAST_LAUNCH(SGDKernel<T>, Blocks(n), SideStream(device), n, w, g, momentum_buf, lr, momentum,
                 nesterov, decay);
  Check(cudaGetLastError(), "SGD update launch");
}

void WaitForUpdates(int device) {
  Check(cudaSetDevice(device), "cudaSetDevice");
  Check(cudaStreamSynchronize(SideStream(device)), "cudaStreamSynchronize");
}

template void AdamUpdate<float>(int, long long, float*, const float*, float*, float*, float*, float,
                                float, float, float, float, float);
template void AdamUpdate<double>(int, long long, double*, const double*, double*, double*, double*,
                                 double, double, double, double, double, double);
template void SGDUpdate<float>(int, long long, float*, const float*, float*, float, float, bool,
                               float);
template void SGDUpdate<double>(int, long long, double*, const double*, double*, double, double,
                                bool, double);

// ---- The recurrent kernel objects ------------------------------------------------------

namespace {

bool GraphsWanted() {
  const char* v = std::getenv("RNNFAST_CUDA_GRAPHS");
  return v == nullptr || !(std::string(v) == "0" || std::string(v) == "off" ||
                           std::string(v) == "OFF" || std::string(v) == "false");
}

}  // namespace

// A captured piece of device work and what it was captured for (named
// namespace: a member type of DeviceRNN<T>::Impl).
struct GraphEntry {
  std::vector<long long> key;
  cudaGraphExec_t exec = nullptr;
  int seen = 0;  // calls with this key so far
};

template <typename T>
struct DeviceRNN<T>::Impl {
  CellOptions o;
  int device = 0;
  cudaStream_t stream = nullptr;
  BlasHandle blas = nullptr;
  long long B = 0, Tn = 0, I = 0, U = 0;
  bool has_bias = false, has_mask = false, cache = false;
  Buffer<T> x, W, R, bias, xw, H, C, rg, rh, rz, hg, dy, dh, dc, dht, dg, dg2, dgh, drh, dW, dR,
      db, dx, rmask, hm, part, carry, hmall;
  int n_in = 0, n_rec = 0;  // dropout mask counts of the cached forward
  Buffer<std::uint8_t> mask;
  const T* Wd = nullptr;  // the weights the cached forward used (own copies or the caller's)
  const T* Rd = nullptr;
  std::vector<T> in_drop;  // [n_in, B, I] input dropout masks of the cached forward
  // Graphs of recent shapes (a training batch, the short last batch, ...),
  // least recently used first.
  static constexpr std::size_t kGraphs = 6;
  std::vector<GraphEntry> graphs;
  bool use_graphs = GraphsWanted();
  GraphStats stats;

  int G() const { return static_cast<int>(o.cell); }
  const std::uint8_t* Mask(long long s) const { return has_mask ? mask.p + s * B : nullptr; }

  // Row-major C[M, N] = alpha op(A) op(B) + beta C, through column-major
  // cuBLAS as C^T = op(B)^T op(A)^T.
  void Gemm(bool ta, bool tb, long long M, long long N, long long K, const T* A, long long lda,
            const T* Bm, long long ldb, T beta, T* Cm, long long ldc) {
    const T alpha = T(1);
    const long long most = 2147483647LL;
    if (M > most || N > most || K > most || lda > most || ldb > most || ldc > most)
      throw std::length_error("a GEMM dimension exceeds cuBLAS's 32-bit sizes");
    int status;
    if constexpr (sizeof(T) == 4)
      status = Blas().sgemm(blas, tb ? 1 : 0, ta ? 1 : 0, (int)N, (int)M, (int)K, &alpha, Bm, (int)ldb,
                            A, (int)lda, &beta, Cm, (int)ldc);
    else
      status = Blas().dgemm(blas, tb ? 1 : 0, ta ? 1 : 0, (int)N, (int)M, (int)K, &alpha, Bm, (int)ldb,
                            A, (int)lda, &beta, Cm, (int)ldc);
    if (status != 0) throw std::runtime_error("cuBLAS GEMM failed with status " + std::to_string(status));
  }
  void Upload(T* dst, const T* src, std::size_t n) {
    Check(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyHostToDevice, stream), "upload");
  }
  void Download(T* dst, const T* src, std::size_t n) {
    Check(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToHost, stream), "download");
  }
  void Sync() { Check(cudaStreamSynchronize(stream), "cudaStreamSynchronize"); }
  void Launched() { Check(cudaGetLastError(), "kernel launch"); }

  void DropGraph(GraphEntry& g) {
    if (g.exec != nullptr) cudaGraphExecDestroy(g.exec);
    g.exec = nullptr;
  }
  void DropGraphs() {
    for (GraphEntry& g : graphs) DropGraph(g);
    graphs.clear();
  }

  // Runs `body` (device work on `stream` only: no host copies, no syncs, no
  // allocation). The first call with a key launches it directly (a warm-up:
  // cuBLAS chooses and loads its kernels); the second captures it into a
  // CUDA graph and launches that; later ones only replay the graph. A
  // capture that fails turns graphs off for this object (counted in
  // stats.fallbacks) and the body runs directly.
  template <typename F>
  void Run(const std::vector<long long>& key, F&& body) {
    if (!use_graphs) {
      body();
      return;
    }
    GraphEntry* g = nullptr;
    for (std::size_t i = 0; i < graphs.size(); ++i)
      if (graphs[i].key == key) {  // most recently used last: eviction takes the front
        std::rotate(graphs.begin() + i, graphs.begin() + i + 1, graphs.end());
        g = &graphs.back();
        break;
      }
    if (g == nullptr) {
      if (graphs.size() == kGraphs) {  // forget the oldest shape
        DropGraph(graphs.front());
        graphs.erase(graphs.begin());
      }
      graphs.push_back(GraphEntry{key, nullptr, 0});
      g = &graphs.back();
    }
    if (g->exec != nullptr) {
      Check(cudaGraphLaunch(g->exec, stream), "cudaGraphLaunch");
      ++stats.replays;
      return;
    }
    if (++g->seen < 2) {
      body();
      return;
    }
    cudaGraph_t graph = nullptr;
    bool ok = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
    if (ok) {
      try {
        body();
      } catch (const std::exception&) {
        ok = false;  // ended below; the direct run repeats (and reports) a real error
      }
      const cudaError_t e = cudaStreamEndCapture(stream, &graph);
      ok = ok && e == cudaSuccess && graph != nullptr &&
           cudaGraphInstantiate(&g->exec, graph, 0) == cudaSuccess;
      if (graph != nullptr) cudaGraphDestroy(graph);
    }
    if (!ok) {
      cudaGetLastError();  // capture errors are not sticky; clear them
      g->exec = nullptr;
      DropGraphs();
      use_graphs = false;
      ++stats.fallbacks;
      body();
      return;
    }
    ++stats.captures;
    Check(cudaGraphLaunch(g->exec, stream), "cudaGraphLaunch");
  }

  static long long Addr(const void* p) { return static_cast<long long>(reinterpret_cast<std::uintptr_t>(p)); }
};

template <typename T>
DeviceRNN<T>::DeviceRNN(const CellOptions& options, int device) : impl_(new Impl) {
  if (!CublasLoaded()) throw std::runtime_error("cuBLAS is not loaded (rnnfast._cuda.load_cublas)");
  impl_->o = options;
  impl_->device = device;
  Check(cudaSetDevice(device), "cudaSetDevice");
  // Non-blocking: no implicit ordering with the legacy default stream (see SideStream).
  Check(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  if (Blas().create(&impl_->blas) != 0) {
    cudaStreamDestroy(impl_->stream);
    throw std::runtime_error("cublasCreate failed");
  }
  if (Blas().set_stream(impl_->blas, impl_->stream) != 0) {
    Blas().destroy(impl_->blas);
    cudaStreamDestroy(impl_->stream);
    throw std::runtime_error("cublasSetStream failed");
  }
}

template <typename T>
DeviceRNN<T>::~DeviceRNN() {
  cudaSetDevice(impl_->device);
  impl_->DropGraphs();
  if (impl_->blas != nullptr) Blas().destroy(impl_->blas);
  if (impl_->stream != nullptr) cudaStreamDestroy(impl_->stream);
}

template <typename T>
bool DeviceRNN<T>::has_cache() const {
  return impl_->cache;
}

template <typename T>
GraphStats DeviceRNN<T>::graph_stats() const {
  return impl_->stats;
}

template <typename T>
void DeviceRNN<T>::Forward(bool training, long long B, long long Tn, long long I, long long U,
                           const T* x, const T* kernel, const T* recurrent_kernel, const T* bias,
                           const T* h0, const T* c0, const std::uint8_t* mask,
                           const T* input_dropout, T* y, T* h_last, T* c_last,
                           bool weights_on_device, int n_in, const T* recurrent_dropout,
                           int n_rec) {
  Impl& m = *impl_;
  Check(cudaSetDevice(m.device), "cudaSetDevice");
  m.cache = false;
  const Cell cell = m.o.cell;
  const int G = m.G();
  const long long GU = G * U, BU = B * U;
  const bool gru = cell == Cell::kGRU, after = gru && m.o.reset_after;
  m.B = B, m.Tn = Tn, m.I = I, m.U = U, m.has_bias = bias != nullptr, m.has_mask = mask != nullptr;
  if (input_dropout == nullptr) n_in = 0;
  if (recurrent_dropout == nullptr) n_rec = 0;
  if ((n_in != 0 && n_in != 1 && n_in != G) || (n_rec != 0 && n_rec != 1 && n_rec != G))
    throw std::invalid_argument("dropout mask counts must be 1 or the number of gates");
  if (n_in == G && G == 1) n_in = 1;
  m.n_in = n_in, m.n_rec = n_rec;
  // Time-major input (reversed for go_backwards, times the input dropout
  // mask, which the backward applies to dx too), uploaded once; with one
  // mask per gate, one masked copy per gate ([G, T*B, I]).
  const long long copies = n_in > 1 ? n_in : 1, TBI = Tn * B * I;
  std::vector<T> xt(static_cast<std::size_t>(copies * TBI));
  std::vector<std::uint8_t> mt(mask != nullptr ? static_cast<std::size_t>(Tn * B) : 0);
  if (input_dropout != nullptr)
    m.in_drop.assign(input_dropout, input_dropout + n_in * B * I);
  else
    m.in_drop.clear();
  for (long long s = 0; s < Tn; ++s) {
    const long long t = m.o.go_backwards ? Tn - 1 - s : s;
    for (long long b = 0; b < B; ++b) {
      const T* src = x + (b * Tn + t) * I;
      for (long long k = 0; k < copies; ++k) {
        T* row = xt.data() + k * TBI + (s * B + b) * I;
        if (input_dropout != nullptr) {
          const T* d = input_dropout + (k * B + b) * I;
          for (long long i = 0; i < I; ++i) row[i] = src[i] * d[i];
        } else {
          std::copy(src, src + I, row);
        }
      }
      if (mask != nullptr) mt[s * B + b] = mask[b * Tn + t] != 0;
    }
  }
  T* X = m.x.Reserve(xt.size());
  m.Upload(X, xt.data(), xt.size());
  T* RM = n_rec > 0 ? m.rmask.Reserve(n_rec * B * U) : nullptr;
  if (RM != nullptr) m.Upload(RM, recurrent_dropout, n_rec * B * U);
  T* HM = n_rec > 0 ? m.hm.Reserve(n_rec * B * U) : nullptr;
  if (mask != nullptr) {
    m.mask.Reserve(mt.size());
    Check(cudaMemcpyAsync(m.mask.p, mt.data(), mt.size(), cudaMemcpyHostToDevice, m.stream), "upload");
  }
  const long long nb = after ? 2 * GU : GU;
  const T* W = kernel;
  const T* R = recurrent_kernel;
  const T* bd = bias;
  if (!weights_on_device) {
    T* w = m.W.Reserve(I * GU);
    T* r = m.R.Reserve(U * GU);
    m.Upload(w, kernel, I * GU);
    m.Upload(r, recurrent_kernel, U * GU);
    W = w, R = r;
    if (bias != nullptr) {
      T* bb = m.bias.Reserve(nb);
      m.Upload(bb, bias, nb);
      bd = bb;
    }
  }
  m.Wd = W, m.Rd = R;
  T* XW = m.xw.Reserve(Tn * B * GU);
  T* H = m.H.Reserve((Tn + 1) * BU);
  T* Cs = cell == Cell::kLSTM ? m.C.Reserve((Tn + 1) * BU) : nullptr;
  if (h0 != nullptr) m.Upload(H, h0, BU);
  else Check(cudaMemsetAsync(H, 0, BU * sizeof(T), m.stream), "memset");
  if (Cs != nullptr) {
    if (c0 != nullptr) m.Upload(Cs, c0, BU);
    else Check(cudaMemsetAsync(Cs, 0, BU * sizeof(T), m.stream), "memset");
  }
  // Per-step buffers the backward needs are kept for every step in training.
  T* RG = after ? m.rg.Reserve((training ? Tn : 1) * B * GU) : nullptr;
  T* RH = gru && !after ? m.rh.Reserve((training ? Tn : 1) * BU) : nullptr;
  T* RZ = gru && !after ? m.rz.Reserve(2 * BU) : nullptr;
  T* HG = gru && !after ? m.hg.Reserve(BU) : nullptr;
  const std::uint8_t* MK = mask != nullptr ? m.mask.p : nullptr;
  const int blocks = Blocks(BU);
  const int act = m.o.activation, rec = m.o.recurrent_activation;
  const std::vector<long long> key = {
      0, B, Tn, I, U, training, n_in, n_rec, Impl::Addr(X), Impl::Addr(W), Impl::Addr(R),
      Impl::Addr(bd), Impl::Addr(XW), Impl::Addr(H), Impl::Addr(Cs), Impl::Addr(RG),
      Impl::Addr(RH), Impl::Addr(RZ), Impl::Addr(HG), Impl::Addr(MK), Impl::Addr(RM),
      Impl::Addr(HM)};
  // out[:, (k - k0) U ...] (+)= (h_{t-1} * mask_k) R[:, k U ...] for gates
  // k0 <= k < k1: one GEMM, or one per gate with per-gate masks.
  auto recurrent = [&](const T* hp, T beta, T* out, long long ldo, int k0, int k1) {
    if (n_rec <= 1) {
      m.Gemm(false, false, B, (k1 - k0) * U, U, n_rec == 1 ? HM : hp, U, R + k0 * U, GU, beta,
             out, ldo);
      return;
    }
    for (int k = k0; k < k1; ++k)
      m.Gemm(false, false, B, U, U, HM + k * BU, U, R + k * U, GU, beta, out + (k - k0) * U, ldo);
  };
  m.Run(key, [&] {
    // The input projection of every step: one GEMM (one per gate with
    // per-gate input masks), then the input bias.
    if (copies == 1) {
      m.Gemm(false, false, Tn * B, GU, I, X, I, W, GU, T(0), XW, GU);
    } else {
      for (int k = 0; k < G; ++k)
        m.Gemm(false, false, Tn * B, U, I, X + k * TBI, I, W + k * U, GU, T(0), XW + k * U, GU);
    }
    if (bd != nullptr) {
      RNNFAST_LAUNCH(AddRows<T>, Blocks(Tn * B * GU), m.stream, XW, bd, Tn * B, GU, false);
      m.Launched();
    }
    for (long long s = 0; s < Tn; ++s) {
      T* g = XW + s * B * GU;
      const T* hp = H + s * BU;
      T* hn = H + (s + 1) * BU;
      const std::uint8_t* mk = MK != nullptr ? MK + s * B : nullptr;
      if (n_rec > 0) {
        RNNFAST_LAUNCH(MaskRows<T>, blocks, m.stream, HM, hp, RM, n_rec, BU);
        m.Launched();
      }
      if (cell == Cell::kSimpleRNN) {
        recurrent(hp, T(1), g, GU, 0, 1);
        RNNFAST_LAUNCH(SimpleFwd<T>, blocks, m.stream, B, U, act, g, hp, hn, mk);
      } else if (cell == Cell::kLSTM) {
        recurrent(hp, T(1), g, GU, 0, 4);
        RNNFAST_LAUNCH(LSTMFwd<T>, blocks, m.stream, B, U, act, rec, g, hp, Cs + s * BU, hn,
                       Cs + (s + 1) * BU, mk);
      } else if (after) {
        T* rg = RG + (training ? s * B * GU : 0);
        if (bd != nullptr) {
          RNNFAST_LAUNCH(AddRows<T>, Blocks(B * GU), m.stream, rg, bd + GU, B, GU, true);
          m.Launched();
        }
        recurrent(hp, bd != nullptr ? T(1) : T(0), rg, GU, 0, 3);
        RNNFAST_LAUNCH(GRUFwd<T>, blocks, m.stream, B, U, act, rec, g, rg, hp, hn, mk);
      } else {
        T* rh = RH + (training ? s * BU : 0);
        recurrent(hp, T(0), RZ, 2 * U, 0, 2);
        // rh = r * (h_{t-1} * mask_h): the masked state goes in as "h_prev".
        const T* hph = n_rec == 0 ? hp : HM + (n_rec > 1 ? 2 * BU : 0);
        RNNFAST_LAUNCH(GRUBeforeFwd1<T>, blocks, m.stream, B, U, rec, g, RZ, hph, rh);
        m.Launched();
        m.Gemm(false, false, B, U, U, rh, U, R + 2 * U, GU, T(0), HG, U);
        RNNFAST_LAUNCH(GRUBeforeFwd2<T>, blocks, m.stream, B, U, act, g, HG, hp, hn, mk);
      }
      m.Launched();
    }
  });
  if (y != nullptr) {
    std::vector<T> yt(static_cast<std::size_t>(Tn * BU));
    m.Download(yt.data(), H + BU, yt.size());
    m.Sync();
    for (long long s = 0; s < Tn; ++s)
      for (long long b = 0; b < B; ++b)
        std::copy(yt.data() + (s * B + b) * U, yt.data() + (s * B + b + 1) * U, y + (b * Tn + s) * U);
  }
  if (h_last != nullptr) m.Download(h_last, H + Tn * BU, BU);
  if (c_last != nullptr && Cs != nullptr) m.Download(c_last, Cs + Tn * BU, BU);
  m.Sync();
  m.cache = training;
}

template <typename T>
void DeviceRNN<T>::Backward(const T* dy, const T* dh_last, const T* dc_last, T* dx, T* dh0, T* dc0,
                            T* dkernel, T* drecurrent_kernel, T* dbias, bool grads_on_device,
                            bool accumulate) {
  Impl& m = *impl_;
  if (!m.cache) throw std::logic_error("backward() needs the cache of a training forward");
  m.cache = false;
  Check(cudaSetDevice(m.device), "cudaSetDevice");
  const Cell cell = m.o.cell;
  const long long B = m.B, Tn = m.Tn, I = m.I, U = m.U, G = m.G(), GU = G * U, BU = B * U;
  const bool gru = cell == Cell::kGRU, after = gru && m.o.reset_after;
  const int act = m.o.activation, rec = m.o.recurrent_activation, blocks = Blocks(BU);
  T* DY = nullptr;
  if (dy != nullptr) {  // processing order already: [B, T, U] -> [T, B, U]
    std::vector<T> dt(static_cast<std::size_t>(Tn * BU));
    for (long long b = 0; b < B; ++b)
      for (long long s = 0; s < Tn; ++s)
        std::copy(dy + (b * Tn + s) * U, dy + (b * Tn + s + 1) * U, dt.data() + (s * B + b) * U);
    DY = m.dy.Reserve(dt.size());
    m.Upload(DY, dt.data(), dt.size());
    m.Sync();  // dt leaves scope
  }
  T* dH = m.dh.Reserve(BU);
  T* dC = cell == Cell::kLSTM ? m.dc.Reserve(BU) : nullptr;
  T* dHt = m.dht.Reserve(BU);
  if (dh_last != nullptr) m.Upload(dH, dh_last, BU);
  else Check(cudaMemsetAsync(dH, 0, BU * sizeof(T), m.stream), "memset");
  if (dC != nullptr) {
    if (dc_last != nullptr) m.Upload(dC, dc_last, BU);
    else Check(cudaMemsetAsync(dC, 0, BU * sizeof(T), m.stream), "memset");
  }
  T* XW = m.xw.p;
  T* H = m.H.p;
  T* Cs = m.C.p;
  T* RG = m.rg.p;
  T* RHs = m.rh.p;
  T* X = m.x.p;
  const T* R = m.Rd;
  const T* W = m.Wd;
  const std::uint8_t* MK = m.has_mask ? m.mask.p : nullptr;
  // Gradients of every step's pre-activations, for the GEMMs after the loop.
  T* DG = m.dg.Reserve(Tn * B * GU);
  T* DG2 = after ? m.dg2.Reserve(Tn * B * GU) : nullptr;         // GRU: recurrent side
  T* DGH = gru && !after ? m.dgh.Reserve(Tn * BU) : nullptr;     // GRU before: dL/d(rh R_h)
  T* DRH = gru && !after ? m.drh.Reserve(BU) : nullptr;
  const long long TB = Tn * B;
  // The weight gradients go to the caller's device arrays, or to ours and then to the host.
  T* dW = grads_on_device ? dkernel : m.dW.Reserve(I * GU);
  T* dR = grads_on_device ? drecurrent_kernel : m.dR.Reserve(U * GU);
  T* dB = nullptr;
  if (m.has_bias) dB = grads_on_device ? dbias : m.db.Reserve(after ? 2 * GU : GU);
  if (grads_on_device && (dW == nullptr || dR == nullptr || (m.has_bias && dB == nullptr)))
    throw std::invalid_argument("grads_on_device needs dkernel, drecurrent_kernel (and dbias)");
  const bool add = grads_on_device && accumulate;
  const T beta = add ? T(1) : T(0);
  const int n_in = m.n_in, n_rec = m.n_rec;
  const long long copies = n_in > 1 ? n_in : 1;  // per-gate input masks: per-gate dx parts
  T* DX = dx != nullptr ? m.dx.Reserve(copies * TB * I) : nullptr;
  T* RM = n_rec > 0 ? m.rmask.p : nullptr;
  T* HM = n_rec > 0 ? m.hm.p : nullptr;
  T* PART = n_rec > 0 ? m.part.Reserve(G * BU) : nullptr;     // one recurrent product per gate
  T* CARRY = n_rec > 0 && gru && !after ? m.carry.Reserve(BU) : nullptr;
  T* HMALL = n_rec > 0 ? m.hmall.Reserve(n_rec * TB * U) : nullptr;  // masked states, all steps
  const std::vector<long long> key = {
      1, B, Tn, I, U, m.has_bias, add, n_in, n_rec, Impl::Addr(DY), Impl::Addr(dH),
      Impl::Addr(dC), Impl::Addr(dHt), Impl::Addr(XW), Impl::Addr(H), Impl::Addr(Cs),
      Impl::Addr(RG), Impl::Addr(RHs), Impl::Addr(X), Impl::Addr(R), Impl::Addr(W),
      Impl::Addr(MK), Impl::Addr(DG), Impl::Addr(DG2), Impl::Addr(DGH), Impl::Addr(DRH),
      Impl::Addr(dW), Impl::Addr(dR), Impl::Addr(dB), Impl::Addr(DX), Impl::Addr(RM),
      Impl::Addr(HM), Impl::Addr(PART), Impl::Addr(CARRY), Impl::Addr(HMALL)};
  // dH += sum over gates k0 <= k < k1 of (d[:, (k - k0) U ...] R[:, k U ...]^T) * mask_k.
  auto recurrent_back = [&](const T* d, long long ldd, int k0, int k1) {
    if (n_rec == 0) {
      m.Gemm(false, true, B, U, (k1 - k0) * U, d, ldd, R + k0 * U, GU, T(1), dH, U);
      return;
    }
    if (n_rec == 1) {
      m.Gemm(false, true, B, U, (k1 - k0) * U, d, ldd, R + k0 * U, GU, T(0), PART, U);
    } else {
      for (int k = k0; k < k1; ++k)
        m.Gemm(false, true, B, U, U, d + (k - k0) * U, ldd, R + k * U, GU, T(0),
               PART + (k - k0) * BU, U);
    }
    const int n = n_rec == 1 ? 1 : k1 - k0;
    RNNFAST_LAUNCH(AddMasked<T>, blocks, m.stream, dH, PART, RM + (n_rec == 1 ? 0 : k0 * BU), n,
                   BU);
    m.Launched();
  };
  // dR[:, k U ...] (+)= (H * mask_k)^T d[:, k U ...] over all steps, gates k0 <= k < k1.
  auto recurrent_weight_grad = [&](const T* d, int k0, int k1) {
    if (n_rec <= 1) {
      m.Gemm(true, false, U, (k1 - k0) * U, TB, n_rec == 1 ? HMALL : H, U, d + k0 * U, GU, beta,
             dR + k0 * U, GU);
      return;
    }
    for (int k = k0; k < k1; ++k)
      m.Gemm(true, false, U, U, TB, HMALL + k * TB * U, U, d + k * U, GU, beta, dR + k * U, GU);
  };
  m.Run(key, [&] {
    for (long long s = Tn - 1; s >= 0; --s) {
      const std::uint8_t* mk = MK != nullptr ? MK + s * B : nullptr;
      RNNFAST_LAUNCH(Sum2<T>, blocks, m.stream, dHt, dH, DY != nullptr ? DY + s * BU : nullptr, BU);
      m.Launched();
      const T* g = XW + s * B * GU;
      const T* hp = H + s * BU;
      T* dg = DG + s * B * GU;
      // Each body writes the direct part of dL/dh_{t-1} into dH; the GEMMs add
      // the recurrent part.
      if (cell == Cell::kSimpleRNN) {
        RNNFAST_LAUNCH(SimpleBwd<T>, blocks, m.stream, B, U, act, g, dHt, dg, dH, mk);
        m.Launched();
        recurrent_back(dg, GU, 0, 1);
      } else if (cell == Cell::kLSTM) {
        RNNFAST_LAUNCH(LSTMBwd<T>, blocks, m.stream, B, U, act, rec, g, Cs + (s + 1) * BU,
                       Cs + s * BU, dHt, dC, dg, dH, mk);
        m.Launched();
        recurrent_back(dg, GU, 0, 4);
      } else if (after) {
        T* drg = DG2 + s * B * GU;
        RNNFAST_LAUNCH(GRUBwd<T>, blocks, m.stream, B, U, act, rec, g, RG + s * B * GU, hp, dHt,
                       dg, drg, dH, mk);
        m.Launched();
        recurrent_back(drg, GU, 0, 3);
      } else {
        T* dgh = DGH + s * BU;
        RNNFAST_LAUNCH(GRUBeforeBwd1<T>, blocks, m.stream, B, U, act, rec, g, hp, dHt, dg, dgh, dH,
                       mk);
        m.Launched();
        m.Gemm(false, true, B, U, U, dgh, U, R + 2 * U, GU, T(0), DRH, U);
        if (n_rec == 0) {
          RNNFAST_LAUNCH(GRUBeforeBwd2<T>, blocks, m.stream, B, U, rec, g, hp, DRH, dg, dH, mk);
          m.Launched();
        } else {
          // rh = r * (h_{t-1} * mask_h): dr from the masked state, and the
          // state's share (drh * r) masked on its way into dH.
          const T* mh = RM + (n_rec > 1 ? 2 * BU : 0);
          RNNFAST_LAUNCH(MaskRows<T>, blocks, m.stream, HM, hp, mh, 1, BU);
          Check(cudaMemsetAsync(CARRY, 0, BU * sizeof(T), m.stream), "memset");
          RNNFAST_LAUNCH(GRUBeforeBwd2<T>, blocks, m.stream, B, U, rec, g, HM, DRH, dg, CARRY, mk);
          RNNFAST_LAUNCH(AddMasked<T>, blocks, m.stream, dH, CARRY, mh, 1, BU);
          m.Launched();
        }
        recurrent_back(dg, GU, 0, 2);
      }
    }
    // Weight, bias and input gradients: one GEMM each over all steps (one per
    // gate where the gates have their own dropout masks).
    if (copies == 1) {
      m.Gemm(true, false, I, GU, TB, X, I, DG, GU, beta, dW, GU);
    } else {
      for (int k = 0; k < G; ++k)
        m.Gemm(true, false, I, U, TB, X + k * TB * I, I, DG + k * U, GU, beta, dW + k * U, GU);
    }
    if (n_rec > 0) {
      RNNFAST_LAUNCH(MaskSteps<T>, Blocks(TB * U), m.stream, HMALL, H, RM, n_rec, Tn, BU);
      m.Launched();
    }
    if (!gru || after) {
      recurrent_weight_grad(after ? DG2 : DG, 0, G);
    } else {
      recurrent_weight_grad(DG, 0, 2);
      m.Gemm(true, false, U, U, TB, RHs, U, DGH, U, beta, dR + 2 * U, GU);
    }
    if (dB != nullptr) {
      RNNFAST_LAUNCH(ColumnSums<T>, Blocks(GU), m.stream, DG, TB, GU, GU, dB, add);
      if (after) RNNFAST_LAUNCH(ColumnSums<T>, Blocks(GU), m.stream, DG2, TB, GU, GU, dB + GU, add);
      m.Launched();
    }
    if (DX != nullptr) {
      if (copies == 1) {
        m.Gemm(false, true, TB, I, GU, DG, GU, W, GU, T(0), DX, I);
      } else {
        for (int k = 0; k < G; ++k)
          m.Gemm(false, true, TB, I, U, DG + k * U, GU, W + k * U, GU, T(0), DX + k * TB * I, I);
      }
    }
  });
  if (!grads_on_device) {
    m.Download(dkernel, dW, I * GU);
    m.Download(drecurrent_kernel, dR, U * GU);
    if (dB != nullptr && dbias != nullptr) m.Download(dbias, dB, after ? 2 * GU : GU);
  }
  if (dh0 != nullptr) m.Download(dh0, dH, BU);
  if (dc0 != nullptr && dC != nullptr) m.Download(dc0, dC, BU);
  if (DX != nullptr) {
    // dx = sum over the input masks k of (dL/d(x * mask_k)) * mask_k, back in
    // batch-major, original time order.
    std::vector<T> xt(static_cast<std::size_t>(copies * TB * I));
    m.Download(xt.data(), DX, xt.size());
    m.Sync();
    const bool drop = !m.in_drop.empty();
    for (long long s = 0; s < Tn; ++s) {
      const long long t = m.o.go_backwards ? Tn - 1 - s : s;
      for (long long b = 0; b < B; ++b) {
        T* dst = dx + (b * Tn + t) * I;
        for (long long k = 0; k < copies; ++k) {
          const T* src = xt.data() + k * TB * I + (s * B + b) * I;
          const T* d = drop ? m.in_drop.data() + (k * B + b) * I : nullptr;
          for (long long i = 0; i < I; ++i) {
            const T v = d != nullptr ? src[i] * d[i] : src[i];
            dst[i] = k == 0 ? v : dst[i] + v;
          }
        }
      }
    }
  }
  m.Sync();
}

template class DeviceRNN<float>;
template class DeviceRNN<double>;

}  // namespace cuda
}  // namespace rnnfast
