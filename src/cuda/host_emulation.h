// A host stand-in for the CUDA runtime and cuBLAS, for testing rnn_cuda.cu's
// orchestration on machines without a GPU (RNNFAST_CUDA_EMULATE; built as the
// test module rnnfast._cuda_emulated): device memory is host memory (filled
// with NaN bytes on allocation, so a read of something never written shows),
// a kernel launch runs every thread of the grid in turn (in reverse order
// with RNNFAST_EMULATE_REVERSE set, to catch order dependence), and the GEMM
// is a plain column-major loop that checks BLAS's leading-dimension rules.
// It says nothing about real GPUs: timing, memory model, cuBLAS itself.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>

using cudaError_t = int;
constexpr cudaError_t cudaSuccess = 0;
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
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::free(s);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
template <typename P>
cudaError_t cudaMalloc(P** p, std::size_t n) {
  *p = static_cast<P*>(std::malloc(n));
  std::memset(static_cast<void*>(*p), 0xFF, n);  // NaN in every float type
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, std::size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, std::size_t n, cudaStream_t) {
  std::memset(d, v, n);
  return cudaSuccess;
}

struct EmulatedDim {
  unsigned x = 0;
};
inline thread_local EmulatedDim blockIdx, threadIdx, blockDim;
#define __global__

namespace rnnfast {
namespace emulation {

inline void Launch(int grid, int threads, const std::function<void()>& body) {
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

// cublas<T>gemm: column-major C = alpha op(A) op(B) + beta C (C not read when
// beta is 0); 7 (CUBLAS_STATUS_INVALID_VALUE) on bad sizes.
template <typename T>
int Gemm(void* handle, int ta, int tb, int m, int n, int k, const T* alpha, const T* A, int lda,
         const T* B, int ldb, const T* beta, T* C, int ldc) {
  auto at_least = [](int v) { return v > 1 ? v : 1; };
  if (handle == nullptr || m < 0 || n < 0 || k < 0 || lda < (ta ? at_least(k) : at_least(m)) ||
      ldb < (tb ? at_least(n) : at_least(k)) || ldc < at_least(m))
    return 7;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      long double s = 0;
      for (int l = 0; l < k; ++l)
        s += static_cast<long double>(ta ? A[l + static_cast<long>(i) * lda] : A[i + static_cast<long>(l) * lda]) *
             (tb ? B[j + static_cast<long>(l) * ldb] : B[l + static_cast<long>(j) * ldb]);
      T& c = C[i + static_cast<long>(j) * ldc];
      c = static_cast<T>(*alpha * static_cast<T>(s) + (*beta == T(0) ? T(0) : *beta * c));
    }
  return 0;
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
  ::rnnfast::emulation::Launch(blocks, kThreads, [&] { kernel(__VA_ARGS__); })
