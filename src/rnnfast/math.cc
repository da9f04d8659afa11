#include "rnnfast/math.h"

#include <stdexcept>

namespace rnnfast {

Activation ParseActivation(const std::string& name) {
  if (name == "tanh") return Activation::kTanh;
  if (name == "sigmoid") return Activation::kSigmoid;
  if (name == "hard_sigmoid") return Activation::kHardSigmoid;
  if (name == "relu") return Activation::kRelu;
  if (name == "linear" || name.empty()) return Activation::kLinear;
  throw std::invalid_argument("unknown activation '" + name +
                              "': expected one of 'tanh', 'sigmoid', 'hard_sigmoid', "
                              "'relu', 'linear'");
}

const char* ActivationName(Activation a) {
  switch (a) {
    case Activation::kTanh:
      return "tanh";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kHardSigmoid:
      return "hard_sigmoid";
    case Activation::kRelu:
      return "relu";
    case Activation::kLinear:
      return "linear";
  }
  return "?";
}

namespace detail {
namespace {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMat = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using Mat = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename T, typename LhsT, typename RhsT>
void Product(const LhsT& lhs, const RhsT& rhs, Mat<T>& c, bool accumulate) {
  if (accumulate) {
    c.noalias() += lhs * rhs;
  } else {
    c.noalias() = lhs * rhs;
  }
}

}  // namespace

template <typename T>
void Gemm(bool trans_a, bool trans_b, Index M, Index N, Index K, const T* A, Index lda,
          const T* B, Index ldb, T* C, Index ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  Mat<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K <= 0) {
    if (!accumulate) c.setZero();
    return;
  }
  // A transposed row-major operand is a column-major one: Eigen's GEMM takes
  // either without copying.
  const ConstMat<T> a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  const ConstMat<T> b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  if (!trans_a && !trans_b) {
    Product<T>(a, b, c, accumulate);
  } else if (!trans_a && trans_b) {
    Product<T>(a, b.transpose(), c, accumulate);
  } else if (trans_a && !trans_b) {
    Product<T>(a.transpose(), b, c, accumulate);
  } else {
    Product<T>(a.transpose(), b.transpose(), c, accumulate);
  }
}

template void Gemm<float>(bool, bool, Index, Index, Index, const float*, Index, const float*,
                          Index, float*, Index, bool);
template void Gemm<double>(bool, bool, Index, Index, Index, const double*, Index,
                           const double*, Index, double*, Index, bool);

}  // namespace detail
}  // namespace rnnfast
