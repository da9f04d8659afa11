// Private math shared by the cells: GEMM on raw row-major pointers, Eigen maps
// for element-wise passes, activations and their derivatives, aligned
// buffers. Only the kernels' .cc files include this (it pulls in Eigen).
#pragma once

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <type_traits>

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

// ---- Packet-level element-wise code ----------------------------------------
// The fused gate passes work one row at a time on SIMD packets (Eigen's
// packet math), so that every gate of a step is read and written once; a
// row's last, partial packet goes through a zero-padded buffer, so that
// sizes that are not a multiple of the SIMD width (U = 20, ...) stay
// vectorised.

namespace pk = Eigen::internal;
template <typename T>
using Packet = typename pk::packet_traits<T>::type;
template <typename T>
constexpr Index kPacket = pk::unpacket_traits<Packet<T>>::size;

// A right operand multiplied many times (a recurrent kernel: once per time
// step) is packed once into panels of kPanel<T> columns: panel p holds
// columns [p*W, p*W + W) of all K rows as a contiguous row-major [K, W] block,
// zero-padded past column N. The products then read B sequentially, a
// [KC, W] slice of a panel staying in the L1 cache while the rows of A stream
// by, and never repack it (Eigen's GEMM repacks B at every call).
// Bytes of L2 cache per core (sysconf; 512 KiB where it cannot say).
std::size_t L2CacheBytes();

// Widest column block of the register-blocked kernels, in packets: its
// accumulator tile (rows x packets) plus the B packets must fit in the vector
// registers, 32 with AVX-512 (6 x 4 tiles) but 16 with AVX2/SSE (6 x 2).
constexpr int kMaxPackets = EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS >= 32 ? 4 : 2;
template <typename T>
constexpr Index kPanel = kMaxPackets * kPacket<T>;
template <typename T>
constexpr Index PackedSize(Index K, Index N) {
  return (N + kPanel<T> - 1) / kPanel<T> * K * kPanel<T>;
}
// out (PackedSize(K, N) elements) = the panels of the [K, N] matrix whose
// element (k, n) is at(k, n).
template <typename T, typename At>
void PackPanels(Index K, Index N, At&& at, T* out) {
  constexpr Index W = kPanel<T>;
  for (Index p = 0; p * W < N; ++p) {
    T* dst = out + p * K * W;
    const Index cols = N - p * W < W ? N - p * W : W;
    for (Index k = 0; k < K; ++k) {
      for (Index j = 0; j < cols; ++j) dst[k * W + j] = at(k, p * W + j);
      for (Index j = cols; j < W; ++j) dst[k * W + j] = T(0);
    }
  }
}
// C[M, N] (+)= A[M, K] @ B[K, N], B packed by PackPanels; Bp points at row k0
// of panel 0 (packed + k0 * kPanel) for products over rows [k0, k0 + K) of a
// packed matrix with Kp rows, whose panels are panel_stride = Kp * kPanel
// apart. A and C row-major with row strides lda, ldc. Single-threaded.
template <typename T>
void GemmPacked(Index M, Index N, Index K, const T* A, Index lda, const T* Bp, Index panel_stride,
                T* C, Index ldc, bool accumulate);
// y[N] = x[K] @ B[K, N], B row-major with row stride ldb, read in place:
// the matrix-vector products of a one-row (batch-1) inference step. Column
// blocks of up to 16 packets (8 with 16 registers) are accumulated in
// registers over all of K, each y[n] the chain of multiply-adds over k in
// ascending order. Such a product streams B once and is bound by the L2's
// bandwidth (Zen 4: ~95 GB/s per core for B in the L2, ~80 from the L3).
// Single-threaded.
template <typename T>
void Gemv(Index K, Index N, const T* x, const T* B, Index ldb, T* y);
// True where GemmPacked beats the in-place kernels that Gemm uses for small
// products (B of [K, N] too big to stay in cache).
template <typename T>
bool PreferPacked(Index N, Index K);


// Masked loads and stores where the ISA has them (AVX-512 and AVX for float):
// a partial packet then costs one instruction instead of a copy through a
// buffer; the masked-off lanes are never touched (no fault past an array).
template <typename T>
struct MaskedIO {
  static constexpr bool kHas = false;
};
#if defined(EIGEN_VECTORIZE_AVX512)
template <>
struct MaskedIO<float> {
  static constexpr bool kHas = true;
  using Mask = std::uint16_t;
};
#elif defined(EIGEN_VECTORIZE_AVX)
template <>
struct MaskedIO<float> {
  static constexpr bool kHas = true;
  using Mask = std::uint8_t;
};
#endif

// Loads `n` <= packet-size elements (the rest zero) / stores the first `n` lanes.
template <typename T>
EIGEN_ALWAYS_INLINE Packet<T> LoadN(const T* p, Index n) {
  if (n == kPacket<T>) return pk::ploadu<Packet<T>>(p);
  if constexpr (MaskedIO<T>::kHas) {
    using Mask = typename MaskedIO<T>::Mask;
    return pk::ploadu<Packet<T>>(p, static_cast<Mask>((1u << n) - 1u));
  } else {
    alignas(64) T buf[kPacket<T>] = {};
    for (Index i = 0; i < n; ++i) buf[i] = p[i];
    return pk::pload<Packet<T>>(buf);
  }
}
template <typename T>
EIGEN_ALWAYS_INLINE void StoreN(T* p, const Packet<T>& v, Index n) {
  if (n == kPacket<T>) {
    pk::pstoreu(p, v);
    return;
  }
#if defined(EIGEN_VECTORIZE_AVX) && !defined(EIGEN_VECTORIZE_AVX512)
  // AVX2 without AVX-512: VMASKMOVPS stores are microcoded on AMD Zen 1-3
  // (one per ~10 cycles); a partial packet is stored as halves instead
  // (W1's rows of 20 floats end in one: 4 + 2 + 1 lanes at most).
  if constexpr (std::is_same<T, float>::value) {
    __m128 q = _mm256_castps256_ps128(v);
    if (n & 4) {
      _mm_storeu_ps(p, q);
      q = _mm256_extractf128_ps(v, 1);
      p += 4;
    }
    if (n & 2) {
      _mm_storel_pi(reinterpret_cast<__m64*>(p), q);
      q = _mm_movehl_ps(q, q);
      p += 2;
    }
    if (n & 1) _mm_store_ss(p, q);
    return;
  } else if constexpr (std::is_same<T, double>::value) {
    __m128d q = _mm256_castpd256_pd128(v);
    if (n & 2) {
      _mm_storeu_pd(p, q);
      q = _mm256_extractf128_pd(v, 1);
      p += 2;
    }
    if (n & 1) _mm_store_sd(p, q);
    return;
  }
#endif
  if constexpr (MaskedIO<T>::kHas) {
    using Mask = typename MaskedIO<T>::Mask;
    pk::pstoreu(p, v, static_cast<Mask>((1u << n) - 1u));
  } else {
    alignas(64) T buf[kPacket<T>];
    pk::pstore(buf, v);
    for (Index i = 0; i < n; ++i) p[i] = buf[i];
  }
}

// Calls f(j, count) for each packet of a row of n elements (count < packet
// size only for the last one).
template <typename T, typename F>
EIGEN_ALWAYS_INLINE void ForEachPacket(Index n, F&& f) {
  Index j = 0;
  for (; j + kPacket<T> <= n; j += kPacket<T>) f(j, kPacket<T>);
  if (j < n) f(j, n - j);
}

template <typename T>
EIGEN_ALWAYS_INLINE Packet<T> PTanh(const Packet<T>& x) {
  if constexpr (pk::packet_traits<T>::HasTanh) {
    return pk::ptanh(x);
  } else {  // Eigen 3.4 vectorises tanh for float only
    alignas(64) T buf[kPacket<T>];
    pk::pstore(buf, x);
    for (Index i = 0; i < kPacket<T>; ++i) buf[i] = std::tanh(buf[i]);
    return pk::pload<Packet<T>>(buf);
  }
}

// act(x) on a packet; same definitions as Activate.
template <typename T>
EIGEN_ALWAYS_INLINE Packet<T> PActivate(Activation a, const Packet<T>& x) {
  switch (a) {
    case Activation::kTanh:
      return PTanh<T>(x);
    case Activation::kSigmoid:
      return pk::scalar_logistic_op<T>().packetOp(x);
    case Activation::kHardSigmoid: {
      const Packet<T> six = pk::pset1<Packet<T>>(T(6));
      return pk::pdiv(pk::pmin(pk::pmax(pk::padd(x, pk::pset1<Packet<T>>(T(3))),
                                        pk::pzero(x)),
                               six),
                      six);
    }
    case Activation::kRelu:
      return pk::pmax(x, pk::pzero(x));
    case Activation::kLinear:
      return x;
  }
  return x;
}

// g * act'(x) from y = act(x), as MulActGrad.
template <typename T>
EIGEN_ALWAYS_INLINE Packet<T> PMulActGrad(Activation a, const Packet<T>& g, const Packet<T>& y) {
  const Packet<T> one = pk::pset1<Packet<T>>(T(1));
  switch (a) {
    case Activation::kTanh:
      return pk::pmul(g, pk::psub(one, pk::pmul(y, y)));
    case Activation::kSigmoid:
      return pk::pmul(g, pk::pmul(y, pk::psub(one, y)));
    case Activation::kHardSigmoid: {
      const Packet<T> inside = pk::pand(pk::pcmp_lt(pk::pzero(y), y), pk::pcmp_lt(y, one));
      return pk::pand(inside, pk::pdiv(g, pk::pset1<Packet<T>>(T(6))));
    }
    case Activation::kRelu:
      return pk::pand(pk::pcmp_lt(pk::pzero(y), y), g);
    case Activation::kLinear:
      return g;
  }
  return g;
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
