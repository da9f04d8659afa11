#include "rnnfast/conv.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "rnnfast/math.h"
#include "rnnfast/sequence.h"
#include "rnnfast/threading.h"

namespace rnnfast {

using detail::Range;
using detail::Split;

void CheckConvDims(const ConvDims& d) {
  auto positive = [](Index v, const char* what) {
    if (v <= 0) throw std::invalid_argument(std::string(what) + " must be positive, got " + std::to_string(v));
  };
  positive(d.batch, "batch");
  positive(d.in_h, "in_h");
  positive(d.in_w, "in_w");
  positive(d.channels, "channels");
  positive(d.out_h, "out_h");
  positive(d.out_w, "out_w");
  positive(d.filters, "filters");
  positive(d.kernel_h, "kernel_h");
  positive(d.kernel_w, "kernel_w");
  positive(d.stride_h, "stride_h");
  positive(d.stride_w, "stride_w");
  positive(d.dilation_h, "dilation_h");
  positive(d.dilation_w, "dilation_w");
  positive(d.groups, "groups");
  if (d.pad_top < 0 || d.pad_left < 0) throw std::invalid_argument("padding must be >= 0");
  if (d.channels % d.groups || d.filters % d.groups)
    throw std::invalid_argument("channels and filters must be multiples of groups");
}

namespace {

struct Geometry {
  Index OHW, KK, Cg, Fg, KKCg, KKC;
  explicit Geometry(const ConvDims& d)
      : OHW(d.out_h * d.out_w),
        KK(d.kernel_h * d.kernel_w),
        Cg(d.channels / d.groups),
        Fg(d.filters / d.groups),
        KKCg(KK * (d.channels / d.groups)),
        KKC(KK * d.channels) {}
};

// A 1x1 convolution with unit strides and no padding is a product of the
// input rows with the kernel: no columns to build.
bool IsPointwise(const ConvDims& d) {
  return d.kernel_h == 1 && d.kernel_w == 1 && d.stride_h == 1 && d.stride_w == 1 &&
         d.pad_top == 0 && d.pad_left == 0 && d.groups == 1 && d.out_h == d.in_h &&
         d.out_w == d.in_w;
}

// Output positions per block of columns: the block ([rows, KKC]) stays within
// about 256 KiB, so that it is still in the L2 cache when the GEMM reads it.
template <typename T>
Index BlockRows(const Geometry& g) {
  const Index rows = static_cast<Index>(256 * 1024 / sizeof(T)) / std::max<Index>(g.KKC, 1);
  return std::max<Index>(rows, 8);
}

// dst[0, n) = src[0, n) (kAdd: +=), in SIMD packets: the rows are short
// (a tap's channels), where a call to memcpy costs more than the copy.
// dst[0, n) = src[0, n) (kAdd: +=): full SIMD packets, then scalars. The
// rows are short (a tap's channels): a call to memcpy costs more than the
// copy, and masked stores for the remainder are slow on some CPUs (AMD).
template <typename T, bool kAdd>
EIGEN_ALWAYS_INLINE void CopyRow(T* dst, const T* src, Index n) {
  constexpr Index P = detail::kPacket<T>;
  Index j = 0;
  for (; j + P <= n; j += P) {
    auto v = detail::pk::ploadu<detail::Packet<T>>(src + j);
    if constexpr (kAdd) v = detail::pk::padd(v, detail::pk::ploadu<detail::Packet<T>>(dst + j));
    detail::pk::pstoreu(dst + j, v);
  }
  for (; j < n; ++j) dst[j] = kAdd ? dst[j] + src[j] : src[j];
}
template <typename T>
EIGEN_ALWAYS_INLINE void ZeroRow(T* dst, Index n) {
  std::fill(dst, dst + n, T(0));
}

// One row of the im2col matrix (output position n, oh, ow), laid out
// [group][kh][kw][channel in group], KKC wide. kAdd: the reverse, adding
// the row (column gradients) into dx; padding cells are skipped.
template <typename T, bool kAdd>
void ColumnsOf(const ConvDims& d, const Geometry& g, Index n, Index oh, Index ow, const T* x, T* dx,
               T* col) {
  const Index W = d.in_w, C = d.channels;
  const Index sample = n * d.in_h * W * C;
  const Index iw0 = ow * d.stride_w - d.pad_left;
  for (Index kh = 0; kh < d.kernel_h; ++kh) {
    const Index ih = oh * d.stride_h - d.pad_top + kh * d.dilation_h;
    const bool row_in = ih >= 0 && ih < d.in_h;
    // One group, adjacent taps all inside: KW*C consecutive values.
    if (d.groups == 1 && d.dilation_w == 1 && row_in && iw0 >= 0 && iw0 + d.kernel_w <= W) {
      T* c = col + kh * d.kernel_w * C;
      const Index off = sample + (ih * W + iw0) * C;
      if constexpr (kAdd)
        CopyRow<T, true>(dx + off, c, d.kernel_w * C);
      else
        CopyRow<T, false>(c, x + off, d.kernel_w * C);
      continue;
    }
    for (Index kw = 0; kw < d.kernel_w; ++kw) {
      const Index iw = iw0 + kw * d.dilation_w;
      const bool in = row_in && iw >= 0 && iw < W;
      const Index off = sample + (ih * W + iw) * C;
      for (Index gr = 0; gr < d.groups; ++gr) {
        T* c = col + gr * g.KKCg + (kh * d.kernel_w + kw) * g.Cg;
        if constexpr (kAdd) {
          if (in) CopyRow<T, true>(dx + off + gr * g.Cg, c, g.Cg);
        } else if (in) {
          CopyRow<T, false>(c, x + off + gr * g.Cg, g.Cg);
        } else {
          ZeroRow(c, g.Cg);
        }
      }
    }
  }
}

// Calls f(r, n, oh, ow) for rows r = 0.. of output positions [p0, p0 + rows),
// counting the position's coordinates instead of dividing for each.
template <typename F>
EIGEN_ALWAYS_INLINE void ForEachPosition(const ConvDims& d, const Geometry& g, Index p0, Index rows,
                                         F&& f) {
  Index n = p0 / g.OHW, rem = p0 % g.OHW, oh = rem / d.out_w, ow = rem % d.out_w;
  for (Index r = 0; r < rows; ++r) {
    f(r, n, oh, ow);
    if (++ow == d.out_w) {
      ow = 0;
      if (++oh == d.out_h) {
        oh = 0;
        ++n;
      }
    }
  }
}

// Rows [p0, p0 + rows) of the im2col matrix, [rows, KKC].
template <typename T>
void Im2Col(const ConvDims& d, const Geometry& g, const T* x, Index p0, Index rows, T* col) {
  ForEachPosition(d, g, p0, rows, [&](Index r, Index n, Index oh, Index ow) {
    ColumnsOf<T, false>(d, g, n, oh, ow, x, nullptr, col + r * g.KKC);
  });
}

// dx += the scatter of those rows' column gradients.
template <typename T>
void Col2Im(const ConvDims& d, const Geometry& g, T* col, Index p0, Index rows, T* dx) {
  ForEachPosition(d, g, p0, rows, [&](Index r, Index n, Index oh, Index ow) {
    ColumnsOf<T, true>(d, g, n, oh, ow, nullptr, dx, col + r * g.KKC);
  });
}

// Element-wise passes over a block of rows [rows, F] stored contiguously. The
// bias repeats every F values; tiled to L = lcm(F, packet) values (a whole
// number of packets and of rows), the pass runs on full packets without a
// per-row remainder (F = 20 is 2.5 packets of 8).
template <typename T>
struct BiasTile {
  Index L = 0;  // 0: no tiling (bias absent, or the tile would be too long)
  std::vector<T> tile;
  BiasTile(const T* bias, Index F) {
    const Index P = detail::kPacket<T>;
    Index l = F;
    while (l % P) l += F;
    if (l > 4096) return;
    L = l;
    tile.resize(static_cast<std::size_t>(L));
    for (Index i = 0; i < L; ++i) tile[static_cast<std::size_t>(i)] = bias ? bias[i % F] : T(0);
  }
};

// y = act(y + bias) over `rows` rows of F.
template <typename T>
void BiasActivate(T* y, Index rows, Index F, const BiasTile<T>& t, const T* bias, Activation act) {
  const Index total = rows * F;
  if (t.L > 0) {
    for (Index off = 0; off < total; off += t.L) {
      detail::ForEachPacket<T>(std::min(t.L, total - off), [&](Index j, Index m) {
        auto v = detail::LoadN(y + off + j, m);
        if (bias != nullptr) v = detail::pk::padd(v, detail::pk::ploadu<detail::Packet<T>>(t.tile.data() + j));
        detail::StoreN(y + off + j, detail::PActivate<T>(act, v), m);
      });
    }
    return;
  }
  for (Index r = 0; r < rows; ++r) {
    T* row = y + r * F;
    detail::ForEachPacket<T>(F, [&](Index j, Index m) {
      auto v = detail::LoadN(row + j, m);
      if (bias != nullptr) v = detail::pk::padd(v, detail::LoadN(bias + j, m));
      detail::StoreN(row + j, detail::PActivate<T>(act, v), m);
    });
  }
}

// dz = dy * act'(y) over `total` values (null y for linear: not called).
template <typename T>
void ActivationGrad(const T* dy, const T* y, T* dz, Index total, Activation act) {
  detail::ForEachPacket<T>(total, [&](Index j, Index m) {
    detail::StoreN(dz + j,
                   detail::PMulActGrad<T>(act, detail::LoadN(dy + j, m), detail::LoadN(y + j, m)), m);
  });
}

// db[F] += column sums of dz [rows, F]; acc (L values) is scratch when tiled.
template <typename T>
void AddColumnSums(const T* dz, Index rows, Index F, const BiasTile<T>& t, T* acc, T* db) {
  if (t.L == 0) {
    detail::Row<T>(db, F) += detail::CBlk(dz, rows, F, F).colwise().sum();
    return;
  }
  const Index total = rows * F;
  std::fill(acc, acc + t.L, T(0));
  Index off = 0;
  for (; off + t.L <= total; off += t.L)
    detail::ForEachPacket<T>(t.L, [&](Index j, Index) {
      detail::pk::pstoreu(acc + j, detail::pk::padd(detail::pk::ploadu<detail::Packet<T>>(acc + j),
                                                    detail::pk::ploadu<detail::Packet<T>>(dz + off + j)));
    });
  for (Index i = off; i < total; ++i) acc[i - off] += dz[i];
  for (Index i = 0; i < t.L; ++i) db[i % F] += acc[i];
}

// 1-D convolutions (one input row, one kernel row, one group) run tap by
// tap, without columns: tap k of output t reads input row
// t*stride + k*dilation - pad_left, so the outputs whose input is inside form
// one range and their input rows are evenly spaced (stride*C apart): one GEMM
// per sample and tap, reading x in place. Measured against im2col (README,
// design): faster with 8+ channels, with dilation, and for 2-tap kernels;
// im2col wins for few channels and wider undilated kernels (its contiguous
// copies make one product with a longer inner dimension than the taps' C).
// RNNFAST_CONV_IM2COL=1 forces im2col (for that measurement).
bool UseTaps(const ConvDims& d) {
  static const bool forced = [] {
    const char* v = std::getenv("RNNFAST_CONV_IM2COL");
    return v != nullptr && v[0] == '1';
  }();
  // pad_top == 0: the taps read input row 0 (with top padding, the one output
  // row of a 1-row input may lie in the padding: zeros, not row 0).
  return !forced && d.in_h == 1 && d.kernel_h == 1 && d.out_h == 1 && d.pad_top == 0 &&
         d.groups == 1 && (d.channels >= 8 || d.dilation_w > 1 || d.kernel_w == 2) &&
         !IsPointwise(d);
}

// The outputs [t0, t1) whose tap k reads inside the input, and the first
// one's input row.
struct TapRange {
  Index t0, t1, i0;
  TapRange(const ConvDims& d, Index k) {
    const Index shift = k * d.dilation_w - d.pad_left;  // input row of output 0
    t0 = shift >= 0 ? 0 : (-shift + d.stride_w - 1) / d.stride_w;
    const Index last = d.in_w - 1 - shift;  // the last output t with t*stride <= last
    t1 = last < 0 ? 0 : std::min(d.out_w, last / d.stride_w + 1);
    i0 = t0 * d.stride_w + shift;
  }
};

template <typename T>
int ConvThreads(const ConvDims& d, const Geometry& g) {
  const double flops = 2.0 * static_cast<double>(d.batch * g.OHW) * static_cast<double>(g.KKCg) *
                       static_cast<double>(d.filters);
  if (flops < 1e6 || RecentlyContended()) return 1;
  return static_cast<int>(std::min<Index>(GetNumThreads(), d.batch));
}

}  // namespace

template <typename T>
void ConvForward(const ConvDims& d, Activation act, const T* x, const T* kernel, const T* bias,
                 T* y) {
  CheckConvDims(d);
  const Geometry g(d);
  const Index F = d.filters;
  const bool pointwise = IsPointwise(d);
  const Index R = BlockRows<T>(g);
  const BiasTile<T> tile(bias, F);
  if (UseTaps(d)) {
    const Index C = d.channels, OW = d.out_w;
    ParallelRun(ConvThreads<T>(d, g), [&](const Team& team) {
      const Range s = Split(d.batch, team.size, team.rank);
      for (Index n = s.begin; n < s.end; ++n) {
        T* yn = y + n * OW * F;
        const T* xn = x + n * d.in_w * C;
        // Outputs start at the bias (zero); every tap adds in.
        if (bias != nullptr && tile.L > 0) {
          for (Index off = 0; off < OW * F; off += tile.L)
            std::copy_n(tile.tile.data(), std::min(tile.L, OW * F - off), yn + off);
        } else if (bias != nullptr) {
          for (Index t = 0; t < OW; ++t) std::copy_n(bias, F, yn + t * F);
        } else {
          std::fill(yn, yn + OW * F, T(0));
        }
        for (Index k = 0; k < d.kernel_w; ++k) {
          const TapRange r(d, k);
          if (r.t1 > r.t0)
            detail::Gemm<T>(false, false, r.t1 - r.t0, F, C, xn + r.i0 * C, d.stride_w * C,
                            kernel + k * C * F, F, yn + r.t0 * F, F, true);
        }
        if (act != Activation::kLinear) BiasActivate<T>(yn, OW, F, tile, nullptr, act);
      }
    });
    return;
  }
  ParallelRun(ConvThreads<T>(d, g), [&](const Team& team) {
    const Range s = Split(d.batch, team.size, team.rank);
    thread_local detail::Buffer<T> col_buf;
    T* col = pointwise ? nullptr : col_buf.Reserve(static_cast<std::size_t>(R * g.KKC));
    for (Index p0 = s.begin * g.OHW; p0 < s.end * g.OHW; p0 += R) {
      const Index rows = std::min(R, s.end * g.OHW - p0);
      T* yb = y + p0 * F;
      if (pointwise) {
        detail::Gemm<T>(false, false, rows, F, d.channels, x + p0 * d.channels, d.channels, kernel, F,
                        yb, F, false);
      } else {
        Im2Col(d, g, x, p0, rows, col);
        for (Index gr = 0; gr < d.groups; ++gr)
          detail::Gemm<T>(false, false, rows, g.Fg, g.KKCg, col + gr * g.KKCg, g.KKC,
                          kernel + gr * g.Fg, F, yb + gr * g.Fg, F, false);
      }
      if (bias != nullptr || act != Activation::kLinear) BiasActivate(yb, rows, F, tile, bias, act);
    }
  });
}

template <typename T>
void ConvBackward(const ConvDims& d, Activation act, const T* x, const T* kernel, const T* y,
                  const T* dy, T* dx, T* dkernel, T* dbias) {
  CheckConvDims(d);
  if (act != Activation::kLinear && y == nullptr)
    throw std::invalid_argument("ConvBackward needs the forward's output y for a nonlinear activation");
  const Geometry g(d);
  const Index F = d.filters;
  const bool pointwise = IsPointwise(d);
  const Index R = BlockRows<T>(g);
  const int want = ConvThreads<T>(d, g);
  const Index kn = g.KKCg * F;
  const BiasTile<T> tile(nullptr, F);
  // Rank 0 sums into the outputs, the others into their own partial sums.
  std::vector<T> partial(static_cast<std::size_t>((want - 1) * (kn + F)));
  ParallelRun(want, [&](const Team& team) {
    const Range s = Split(d.batch, team.size, team.rank);
    T* dk = team.rank == 0 ? dkernel : partial.data() + (team.rank - 1) * (kn + F);
    T* db = team.rank == 0 ? dbias : dk + kn;
    std::fill(dk, dk + kn, T(0));
    if (db != nullptr) std::fill(db, db + F, T(0));
    thread_local detail::Buffer<T> col_buf, dz_buf, acc_buf;
    T* acc = acc_buf.Reserve(static_cast<std::size_t>(std::max<Index>(tile.L, 1)));
    T* col = pointwise || UseTaps(d) ? nullptr : col_buf.Reserve(static_cast<std::size_t>(R * g.KKC));
    T* dzb = act == Activation::kLinear ? nullptr : dz_buf.Reserve(static_cast<std::size_t>(R * F));
    const Index sample = d.in_h * d.in_w * d.channels;
    if (UseTaps(d)) {
      const Index C = d.channels, OW = d.out_w;
      T* dzs = act == Activation::kLinear ? nullptr : dz_buf.Reserve(static_cast<std::size_t>(OW * F));
      for (Index n = s.begin; n < s.end; ++n) {
        const T* dz = dy + n * OW * F;
        if (dzs != nullptr) {
          ActivationGrad(dz, y + n * OW * F, dzs, OW * F, act);
          dz = dzs;
        }
        if (db != nullptr) AddColumnSums(dz, OW, F, tile, acc, db);
        const T* xn = x + n * d.in_w * C;
        T* dxn = dx != nullptr ? dx + n * sample : nullptr;
        if (dxn != nullptr) std::fill(dxn, dxn + sample, T(0));
        for (Index k = 0; k < d.kernel_w; ++k) {
          const TapRange r(d, k);
          if (r.t1 <= r.t0) continue;
          detail::Gemm<T>(true, false, C, F, r.t1 - r.t0, xn + r.i0 * C, d.stride_w * C,
                          dz + r.t0 * F, F, dk + k * C * F, F, true);
          if (dxn != nullptr)
            detail::Gemm<T>(false, true, r.t1 - r.t0, C, F, dz + r.t0 * F, F, kernel + k * C * F, F,
                            dxn + r.i0 * C, d.stride_w * C, true);
        }
      }
    } else {
    if (dx != nullptr && !pointwise)
      std::fill(dx + s.begin * sample, dx + s.end * sample, T(0));
    for (Index p0 = s.begin * g.OHW; p0 < s.end * g.OHW; p0 += R) {
      const Index rows = std::min(R, s.end * g.OHW - p0);
      const T* dz = dy + p0 * F;
      if (dzb != nullptr) {
        ActivationGrad(dz, y + p0 * F, dzb, rows * F, act);
        dz = dzb;
      }
      if (db != nullptr) AddColumnSums(dz, rows, F, tile, acc, db);
      if (pointwise) {
        const T* xb = x + p0 * d.channels;
        detail::Gemm<T>(true, false, d.channels, F, rows, xb, d.channels, dz, F, dk, F, true);
        if (dx != nullptr)
          detail::Gemm<T>(false, true, rows, d.channels, F, dz, F, kernel, F, dx + p0 * d.channels,
                          d.channels, false);
        continue;
      }
      Im2Col(d, g, x, p0, rows, col);
      for (Index gr = 0; gr < d.groups; ++gr)
        detail::Gemm<T>(true, false, g.KKCg, g.Fg, rows, col + gr * g.KKCg, g.KKC, dz + gr * g.Fg, F,
                        dk + gr * g.Fg, F, true);
      if (dx == nullptr) continue;
      // The column block is free again: it takes the columns' gradient.
      for (Index gr = 0; gr < d.groups; ++gr)
        detail::Gemm<T>(false, true, rows, g.KKCg, g.Fg, dz + gr * g.Fg, F, kernel + gr * g.Fg, F,
                        col + gr * g.KKCg, g.KKC, false);
      Col2Im(d, g, col, p0, rows, dx);
    }
    }
    team.Sync();
    if (team.rank != 0) return;
    for (int r = 1; r < team.size; ++r) {
      const T* pk = partial.data() + (r - 1) * (kn + F);
      for (Index i = 0; i < kn; ++i) dkernel[i] += pk[i];
      if (dbias != nullptr)
        for (Index i = 0; i < F; ++i) dbias[i] += pk[kn + i];
    }
  });
}

template void ConvForward<float>(const ConvDims&, Activation, const float*, const float*,
                                 const float*, float*);
template void ConvForward<double>(const ConvDims&, Activation, const double*, const double*,
                                  const double*, double*);
template void ConvBackward<float>(const ConvDims&, Activation, const float*, const float*,
                                  const float*, const float*, float*, float*, float*);
template void ConvBackward<double>(const ConvDims&, Activation, const double*, const double*,
                                   const double*, const double*, double*, double*, double*);

}  // namespace rnnfast
