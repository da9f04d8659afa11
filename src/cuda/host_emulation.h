// A host stand-in for the CUDA runtime and cuBLAS, for testing rnn_cuda.cu's
// orchestration on machines without a GPU (RNNFAST_CUDA_EMULATE; built as the
// test module rnnfast._cuda_emulated): device memory is host memory (filled
// with NaN bytes on allocation, so a read of something never written shows),
// a kernel launch runs every thread of the grid in turn (in reverse order
// with RNNFAST_EMULATE_REVERSE set, to catch order dependence), and the GEMM
// is a plain column-major loop that checks BLAS's leading-dimension rules.
// Stream capture is emulated too: between cudaStreamBeginCapture and
// cudaStreamEndCapture, launches, GEMMs, memsets and device-to-device copies
// are recorded (their arguments by value) and run only when the graph is
// launched, and what a real capture forbids (a copy to or from host memory,
// a synchronize, an allocation) invalidates it, so that a graph that would
// replay stale host data shows in the tests. RNNFAST_EMULATE_NO_CAPTURE makes
// every capture fail (the fallback path).
// It says nothing about real GPUs: timing, memory model, cuBLAS itself.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

using cudaError_t = int;
constexpr cudaError_t cudaSuccess = 0;
constexpr cudaError_t cudaErrorStreamCaptureUnsupported = 900;
constexpr cudaError_t cudaErrorStreamCaptureInvalidated = 901;

namespace rnnfast {
namespace emulation {
// What a capture in progress has recorded (null: not capturing).
struct Recording {
  std::vector<std::function<void()>> ops;
  bool invalid = false;
};
inline thread_local Recording* capturing = nullptr;
// Device allocations, to tell device pointers from host ones during capture.
inline std::map<const char*, std::size_t>& Allocations() {
  static std::map<const char*, std::size_t> a;
  return a;
}
inline std::mutex& AllocationsMutex() {
  static std::mutex m;
  return m;
}
inline bool OnDevice(const void* p, std::size_t n) {
  std::lock_guard<std::mutex> lock(AllocationsMutex());
  const char* c = static_cast<const char*>(p);
  auto it = Allocations().upper_bound(c);
  if (it == Allocations().begin()) return false;
  --it;
  return c >= it->first && c + n <= it->first + it->second;
}
// Records op while capturing, else runs it.
inline void Do(std::function<void()> op) {
  if (capturing != nullptr)
    capturing->ops.push_back(std::move(op));
  else
    op();
}
// An operation a real capture rejects: it invalidates the capture.
inline cudaError_t Forbidden() {
  if (capturing == nullptr) return cudaSuccess;
  capturing->invalid = true;
  return cudaErrorStreamCaptureUnsupported;
}
}  // namespace emulation
}  // namespace rnnfast

struct EmulatedGraph {
  std::vector<std::function<void()>> ops;
};
using cudaGraph_t = EmulatedGraph*;
using cudaGraphExec_t = EmulatedGraph*;
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
                             cudaStreamCaptureModeRelaxed = 2 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };
using cudaStream_t = struct EmulatedStream*;
struct cudaDeviceProp {
  char name[256];
};
inline const char* cudaGetErrorString(cudaError_t) { return "emulated CUDA error"; }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::snprintf(p->name, sizeof(p->name), "host emulation");
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaStreamCreate(cudaStream_t* s) {
  *s = static_cast<cudaStream_t>(std::malloc(8));
  return cudaSuccess;
}
constexpr unsigned cudaStreamNonBlocking = 1;
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return cudaStreamCreate(s); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::free(s);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return ::rnnfast::emulation::Forbidden(); }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
template <typename P>
cudaError_t cudaMalloc(P** p, std::size_t n) {
  namespace e = ::rnnfast::emulation;
  if (e::capturing != nullptr) return e::Forbidden();
  *p = static_cast<P*>(std::malloc(n));
  std::memset(static_cast<void*>(*p), 0xFF, n);  // NaN in every float type
  std::lock_guard<std::mutex> lock(e::AllocationsMutex());
  e::Allocations()[reinterpret_cast<const char*>(*p)] = n;
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  namespace e = ::rnnfast::emulation;
  {
    std::lock_guard<std::mutex> lock(e::AllocationsMutex());
    e::Allocations().erase(static_cast<const char*>(p));
  }
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, std::size_t n, cudaMemcpyKind, cudaStream_t) {
  namespace e = ::rnnfast::emulation;
  // A captured copy would replay host memory that has changed since.
  if (e::capturing != nullptr && !(e::OnDevice(d, n) && e::OnDevice(s, n))) return e::Forbidden();
  e::Do([=] { std::memcpy(d, s, n); });
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, std::size_t n, cudaStream_t) {
  ::rnnfast::emulation::Do([=] { std::memset(d, v, n); });
  return cudaSuccess;
}
inline cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
  namespace e = ::rnnfast::emulation;
  const bool refuse = std::getenv("RNNFAST_EMULATE_NO_CAPTURE") != nullptr;
  if (refuse || e::capturing != nullptr) return cudaErrorStreamCaptureUnsupported;
  e::capturing = new e::Recording;
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* graph) {
  namespace e = ::rnnfast::emulation;
  e::Recording* r = e::capturing;
  e::capturing = nullptr;
  *graph = nullptr;
  if (r == nullptr) return cudaErrorStreamCaptureInvalidated;
  const bool invalid = r->invalid;
  if (!invalid) *graph = new EmulatedGraph{std::move(r->ops)};
  delete r;
  return invalid ? cudaErrorStreamCaptureInvalidated : cudaSuccess;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = new EmulatedGraph{graph->ops};
  return cudaSuccess;
}
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t) {
  for (auto& op : exec->ops) ::rnnfast::emulation::Do(op);
  return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t g) {
  delete g;
  return cudaSuccess;
}

struct EmulatedDim {
  unsigned x = 0;
};
inline thread_local EmulatedDim blockIdx, threadIdx, blockDim;
#define __global__

namespace rnnfast {
namespace emulation {

inline void LaunchNow(int grid, int threads, const std::function<void()>& body) {
  if (grid <= 0 || threads <= 0 || threads > 1024) {
    std::fprintf(stderr, "emulated launch with grid %d, block %d\n", grid, threads);
    std::abort();
  }
  static const bool reverse = std::getenv("RNNFAST_EMULATE_REVERSE") != nullptr;
  const long long n = static_cast<long long>(grid) * threads;
  blockDim.x = static_cast<unsigned>(threads);
  for (long long q = 0; q < n; ++q) {
    const long long p = reverse ? n - 1 - q : q;
    blockIdx.x = static_cast<unsigned>(p / threads);
    threadIdx.x = static_cast<unsigned>(p % threads);
    body();
  }
}

// A kernel launch: the grid now, or recorded (the body holds its arguments by value).
inline void Launch(int grid, int threads, std::function<void()> body) {
  Do([=] { LaunchNow(grid, threads, body); });
}

template <typename T>
void GemmNow(int ta, int tb, int m, int n, int k, T alpha, const T* A, int lda, const T* B, int ldb,
             T beta, T* C, int ldc);

// cublas<T>gemm: column-major C = alpha op(A) op(B) + beta C (C not read when
// beta is 0); 7 (CUBLAS_STATUS_INVALID_VALUE) on bad sizes. alpha and beta are
// read at the call, as cuBLAS's host pointer mode does, also when captured.
template <typename T>
int Gemm(void* handle, int ta, int tb, int m, int n, int k, const T* alpha, const T* A, int lda,
         const T* B, int ldb, const T* beta, T* C, int ldc) {
  auto at_least = [](int v) { return v > 1 ? v : 1; };
  if (handle == nullptr || m < 0 || n < 0 || k < 0 || lda < (ta ? at_least(k) : at_least(m)) ||
      ldb < (tb ? at_least(n) : at_least(k)) || ldc < at_least(m))
    return 7;
  const T a = *alpha, b = *beta;
  Do([=] { GemmNow<T>(ta, tb, m, n, k, a, A, lda, B, ldb, b, C, ldc); });
  return 0;
}

template <typename T>
void GemmNow(int ta, int tb, int m, int n, int k, T alpha_v, const T* A, int lda, const T* B,
             int ldb, T beta_v, T* C, int ldc) {
  const T* alpha = &alpha_v;
  const T* beta = &beta_v;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      long double s = 0;
      for (int l = 0; l < k; ++l)
        s += static_cast<long double>(ta ? A[l + static_cast<long>(i) * lda] : A[i + static_cast<long>(l) * lda]) *
             (tb ? B[j + static_cast<long>(l) * ldb] : B[l + static_cast<long>(j) * ldb]);
      T& c = C[i + static_cast<long>(j) * ldc];
      c = static_cast<T>(*alpha * static_cast<T>(s) + (*beta == T(0) ? T(0) : *beta * c));
    }
}
inline int Create(void** h) {
  *h = std::malloc(8);
  return 0;
}
inline int Destroy(void* h) {
  std::free(h);
  return 0;
}
inline int SetStream(void*, cudaStream_t) { return 0; }

}  // namespace emulation
}  // namespace rnnfast

#define RNNFAST_LAUNCH(kernel, blocks, stream, ...) \
  ::rnnfast::emulation::Launch(blocks, kThreads, [=] { kernel(__VA_ARGS__); })
