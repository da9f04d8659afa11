#include "rnnfast/conv.h"

#include <algorithm>
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

// The cell of x that tap (kh, kw) of output position p reads, or null
// (padding). Calls f(row offset into col, pointer or null) per tap and group.
// col row layout: [group][kh][kw][c in group], KKC wide.
template <typename T, bool kAdd>
void ColumnsOf(const ConvDims& d, const Geometry& g, Index p, const T* x, T* xw, T* col) {
  const Index n = p / g.OHW, rem = p % g.OHW, oh = rem / d.out_w, ow = rem % d.out_w;
  const Index W = d.in_w, C = d.channels;
  const Index sample = n * d.in_h * W * C;
  const Index iw0 = ow * d.stride_w - d.pad_left;
  for (Index kh = 0; kh < d.kernel_h; ++kh) {
    const Index ih = oh * d.stride_h - d.pad_top + kh * d.dilation_h;
    const bool row_in = ih >= 0 && ih < d.in_h;
    // Common case: one group, contiguous taps, all inside: KW*C adjacent values.
    if (d.groups == 1 && d.dilation_w == 1 && row_in && iw0 >= 0 && iw0 + d.kernel_w <= W) {
      T* c = col + kh * d.kernel_w * C;
      const Index off = sample + (ih * W + iw0) * C;
      const Index len = d.kernel_w * C;
      if constexpr (kAdd) {
        T* dst = xw + off;
        for (Index i = 0; i < len; ++i) dst[i] += c[i];
      } else {
        std::memcpy(c, x + off, static_cast<std::size_t>(len) * sizeof(T));
      }
      continue;
    }
    for (Index kw = 0; kw < d.kernel_w; ++kw) {
      const Index iw = iw0 + kw * d.dilation_w;
      const bool in = row_in && iw >= 0 && iw < W;
      const Index off = sample + (ih * W + iw) * C;
      for (Index gr = 0; gr < d.groups; ++gr) {
        T* c = col + gr * g.KKCg + (kh * d.kernel_w + kw) * g.Cg;
        if constexpr (kAdd) {
          if (!in) continue;
          T* dst = xw + off + gr * g.Cg;
          for (Index i = 0; i < g.Cg; ++i) dst[i] += c[i];
        } else if (in) {
          std::memcpy(c, x + off + gr * g.Cg, static_cast<std::size_t>(g.Cg) * sizeof(T));
        } else {
          std::fill(c, c + g.Cg, T(0));
        }
      }
    }
  }
}

// Rows [p0, p0 + rows) of the im2col matrix, [rows, KKC].
template <typename T>
void Im2Col(const ConvDims& d, const Geometry& g, const T* x, Index p0, Index rows, T* col) {
  for (Index r = 0; r < rows; ++r) ColumnsOf<T, false>(d, g, p0 + r, x, nullptr, col + r * g.KKC);
}

// dx += the scatter of those rows' column gradients.
template <typename T>
void Col2Im(const ConvDims& d, const Geometry& g, const T* col, Index p0, Index rows, T* dx) {
  for (Index r = 0; r < rows; ++r)
    ColumnsOf<T, true>(d, g, p0 + r, nullptr, dx, const_cast<T*>(col + r * g.KKC));
}

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
      if (bias == nullptr && act == Activation::kLinear) continue;
      for (Index r = 0; r < rows; ++r) {
        T* row = yb + r * F;
        detail::ForEachPacket<T>(F, [&](Index j, Index n) {
          auto v = detail::LoadN(row + j, n);
          if (bias != nullptr) v = detail::pk::padd(v, detail::LoadN(bias + j, n));
          detail::StoreN(row + j, detail::PActivate<T>(act, v), n);
        });
      }
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
  // Rank 0 sums into the outputs, the others into their own partial sums.
  std::vector<T> partial(static_cast<std::size_t>((want - 1) * (kn + F)));
  ParallelRun(want, [&](const Team& team) {
    const Range s = Split(d.batch, team.size, team.rank);
    T* dk = team.rank == 0 ? dkernel : partial.data() + (team.rank - 1) * (kn + F);
    T* db = team.rank == 0 ? dbias : dk + kn;
    std::fill(dk, dk + kn, T(0));
    if (db != nullptr) std::fill(db, db + F, T(0));
    thread_local detail::Buffer<T> col_buf, dz_buf;
    T* col = pointwise ? nullptr : col_buf.Reserve(static_cast<std::size_t>(R * g.KKC));
    T* dzb = act == Activation::kLinear ? nullptr : dz_buf.Reserve(static_cast<std::size_t>(R * F));
    const Index sample = d.in_h * d.in_w * d.channels;
    if (dx != nullptr && !pointwise)
      std::fill(dx + s.begin * sample, dx + s.end * sample, T(0));
    for (Index p0 = s.begin * g.OHW; p0 < s.end * g.OHW; p0 += R) {
      const Index rows = std::min(R, s.end * g.OHW - p0);
      const T* dz = dy + p0 * F;
      if (dzb != nullptr) {
        const T* yb = y + p0 * F;
        for (Index r = 0; r < rows; ++r) {
          detail::ForEachPacket<T>(F, [&](Index j, Index n) {
            detail::StoreN(dzb + r * F + j,
                           detail::PMulActGrad<T>(act, detail::LoadN(dz + r * F + j, n),
                                                  detail::LoadN(yb + r * F + j, n)),
                           n);
          });
        }
        dz = dzb;
      }
      if (db != nullptr) detail::Row<T>(db, F) += detail::CBlk(dz, rows, F, F).colwise().sum();
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
