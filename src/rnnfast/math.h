// Private math shared by the cells: GEMM on raw row-major pointers, Eigen maps
// for element-wise passes, activations and their derivatives, aligned
// buffers. Only the kernels' .cc files include this (it pulls in Eigen).
#pragma once

#include <Eigen/Core>

#include <cstddef>
#include <cstdlib>
#include <new>

#include "rnnfast/common.h"

namespace rnnfast {
namespace detail {

template <typename T>
using RowArray = Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// A [rows, cols] block of a row-major buffer whose rows are `stride` apart.
template <typename T>
using Block = Eigen::Map<RowArray<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using ConstBlock = Eigen::Map<const RowArray<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using ConstRow = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;
template <typename T>
using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;

template <typename T>
inline Block<T> Blk(T* p, Index rows, Index cols, Index stride) {
  return Block<T>(p, rows, cols, Eigen::OuterStride<>(stride));
}
template <typename T>
inline ConstBlock<T> CBlk(const T* p, Index rows, Index cols, Index stride) {
  return ConstBlock<T>(p, rows, cols, Eigen::OuterStride<>(stride));
}

// C[M, N] = op(A) * op(B), or C += op(A) * op(B) with accumulate. All
// row-major; op(A) is [M, K] (A is [K, M] when trans_a), op(B) is [K, N]
// (B is [N, K] when trans_b); lda/ldb/ldc are the row strides. Single-threaded.
template <typename T>
void Gemm(bool trans_a, bool trans_b, Index M, Index N, Index K, const T* A, Index lda,
          const T* B, Index ldb, T* C, Index ldc, bool accumulate);

// out = act(in), element-wise; out may alias in.
template <typename T, typename In, typename Out>
inline void Activate(Activation a, const In& in, Out&& out) {
  switch (a) {
    case Activation::kTanh:
      out = in.tanh();
      return;
    case Activation::kSigmoid:
      out = in.logistic();
      return;
    case Activation::kHardSigmoid:  // Keras 3: relu6(x + 3) / 6
      out = (in + T(3)).max(T(0)).min(T(6)) / T(6);
      return;
    case Activation::kRelu:
      out = in.max(T(0));
      return;
    case Activation::kLinear:
      out = in;
      return;
  }
}

// out = g * act'(x), with the derivative computed from the activation's
// output y = act(x) (every supported activation allows it; at kinks the
// derivative is taken as 0). out may alias g or y.
template <typename T, typename G, typename Y, typename Out>
inline void MulActGrad(Activation a, const G& g, const Y& y, Out&& out) {
  switch (a) {
    case Activation::kTanh:
      out = g * (T(1) - y.square());
      return;
    case Activation::kSigmoid:
      out = g * (y * (T(1) - y));
      return;
    case Activation::kHardSigmoid:
      out = ((y > T(0)) && (y < T(1))).select(g / T(6), T(0));
      return;
    case Activation::kRelu:
      out = (y > T(0)).select(g, T(0));
      return;
    case Activation::kLinear:
      out = g;
      return;
  }
}

// Growable 64-byte aligned storage, reused across calls (never shrinks, never
// zeroed): the kernels allocate nothing once warm.
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(data_); }

  T* Reserve(std::size_t n) {
    if (n > capacity_) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      const std::size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
      data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
      if (data_ == nullptr) throw std::bad_alloc();
      capacity_ = n;
    }
    return data_;
  }
  T* data() const { return data_; }

 private:
  T* data_ = nullptr;
  std::size_t capacity_ = 0;
};

}  // namespace detail
}  // namespace rnnfast
