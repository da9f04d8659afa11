#include "rnnfast/math.h"

#include <memory>
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

// Eigen's GEMM packs its operands into blocking buffers; through the
// high-level API it allocates them on every call once they pass
// EIGEN_STACK_ALLOCATION_LIMIT, i.e. at every time step. Calling the GEMM
// routine itself with blocking buffers cached per thread and per shape keeps
// the kernels' loops free of allocation. (Eigen 3.4's internal API; the build
// pins Eigen to 3.4.)
template <typename T>
using Blocking = Eigen::internal::gemm_blocking_space<Eigen::RowMajor, T, T, Eigen::Dynamic,
                                                      Eigen::Dynamic, Eigen::Dynamic, 1, false>;

template <typename T>
Blocking<T>& CachedBlocking(Index M, Index N, Index K) {
  struct Entry {
    Index m = -1, n = -1, k = -1;
    std::unique_ptr<Blocking<T>> blocking;
  };
  // A time loop uses a few shapes per thread; 8 entries, replaced in turn.
  thread_local Entry cache[8];
  thread_local unsigned next = 0;
  for (Entry& e : cache)
    if (e.m == M && e.n == N && e.k == K) return *e.blocking;
  Entry& e = cache[next++ % 8];
  e.blocking.reset(new Blocking<T>(M, N, K, 1, true));
  e.blocking->allocateAll();
  e.m = M;
  e.n = N;
  e.k = K;
  return *e.blocking;
}

template <typename T, int OrderA, int OrderB>
void RunGemm(Index M, Index N, Index K, const T* A, Index lda, const T* B, Index ldb, T* C,
             Index ldc) {
  Eigen::internal::general_matrix_matrix_product<Index, T, OrderA, false, T, OrderB, false,
                                                 Eigen::RowMajor, 1>::run(M, N, K, A, lda, B, ldb,
                                                                          C, 1, ldc, T(1),
                                                                          CachedBlocking<T>(M, N, K));
}

}  // namespace

template <typename T>
void Gemm(bool trans_a, bool trans_b, Index M, Index N, Index K, const T* A, Index lda,
          const T* B, Index ldb, T* C, Index ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  Mat<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (!accumulate) c.setZero();  // the GEMM routine accumulates
  if (K <= 0) return;
  if (M == 1 || N == 1) {
    // Matrix-vector products: Eigen's GEMV, which allocates nothing here.
    const ConstMat<T> a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
    const ConstMat<T> b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
    if (!trans_a && !trans_b) c.noalias() += a * b;
    if (!trans_a && trans_b) c.noalias() += a * b.transpose();
    if (trans_a && !trans_b) c.noalias() += a.transpose() * b;
    if (trans_a && trans_b) c.noalias() += a.transpose() * b.transpose();
    return;
  }
  // A row-major operand transposed is a column-major one, with the same stride.
  constexpr int R = Eigen::RowMajor, Cm = Eigen::ColMajor;
  if (!trans_a && !trans_b) {
    RunGemm<T, R, R>(M, N, K, A, lda, B, ldb, C, ldc);
  } else if (!trans_a && trans_b) {
    RunGemm<T, R, Cm>(M, N, K, A, lda, B, ldb, C, ldc);
  } else if (trans_a && !trans_b) {
    RunGemm<T, Cm, R>(M, N, K, A, lda, B, ldb, C, ldc);
  } else {
    RunGemm<T, Cm, Cm>(M, N, K, A, lda, B, ldb, C, ldc);
  }
}

template void Gemm<float>(bool, bool, Index, Index, Index, const float*, Index, const float*,
                          Index, float*, Index, bool);
template void Gemm<double>(bool, bool, Index, Index, Index, const double*, Index,
                           const double*, Index, double*, Index, bool);

}  // namespace detail
}  // namespace rnnfast
