#include "rnnfast/pooling.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "rnnfast/sequence.h"
#include "rnnfast/threading.h"

namespace rnnfast {

using detail::Range;
using detail::Split;

void CheckPoolDims(const PoolDims& d) {
  const Index vals[] = {d.batch, d.in_h, d.in_w, d.channels, d.out_h, d.out_w,
                        d.pool_h, d.pool_w, d.stride_h, d.stride_w};
  for (Index v : vals)
    if (v <= 0) throw std::invalid_argument("pooling dimensions must be positive");
  if (d.pad_top < 0 || d.pad_left < 0 || d.pad_top >= d.pool_h || d.pad_left >= d.pool_w)
    throw std::invalid_argument("pooling padding must be in [0, pool size)");
  // Every window must hold an input cell: the last one starts inside the input.
  if ((d.out_h - 1) * d.stride_h - d.pad_top >= d.in_h ||
      (d.out_w - 1) * d.stride_w - d.pad_left >= d.in_w)
    throw std::invalid_argument("pooling output larger than the input allows");
}

namespace {

// The input cells [h0, h1) x [w0, w1) of output (oh, ow).
struct Window {
  Index h0, h1, w0, w1;
  Window(const PoolDims& d, Index oh, Index ow) {
    h0 = oh * d.stride_h - d.pad_top;
    w0 = ow * d.stride_w - d.pad_left;
    h1 = std::min(h0 + d.pool_h, d.in_h);
    w1 = std::min(w0 + d.pool_w, d.in_w);
    h0 = std::max<Index>(h0, 0);
    w0 = std::max<Index>(w0, 0);
  }
  Index count() const { return (h1 - h0) * (w1 - w0); }
};

int PoolThreads(const PoolDims& d) {
  const double work = static_cast<double>(d.batch * d.out_h * d.out_w * d.channels) *
                      static_cast<double>(d.pool_h * d.pool_w);
  if (work < 2e5 || RecentlyContended()) return 1;
  return static_cast<int>(std::min<Index>(GetNumThreads(), d.batch));
}

// Calls f(n, oh, ow, window) for every output of the calling member's samples.
template <typename F>
void ForEachOutput(const PoolDims& d, const Team& team, F&& f) {
  const Range s = Split(d.batch, team.size, team.rank);
  for (Index n = s.begin; n < s.end; ++n)
    for (Index oh = 0; oh < d.out_h; ++oh)
      for (Index ow = 0; ow < d.out_w; ++ow) f(n, oh, ow, Window(d, oh, ow));
}

}  // namespace

template <typename T>
void MaxPoolForward(const PoolDims& d, const T* x, T* y, std::int32_t* argmax) {
  CheckPoolDims(d);
  if (d.in_h * d.in_w > std::numeric_limits<std::int32_t>::max())
    throw std::invalid_argument("pooling input too large for 32-bit argmax indices");
  const Index C = d.channels, HW = d.in_h * d.in_w;
  ParallelRun(PoolThreads(d), [&](const Team& team) {
    ForEachOutput(d, team, [&](Index n, Index oh, Index ow, const Window& w) {
      const Index o = ((n * d.out_h + oh) * d.out_w + ow) * C;
      T* yo = y + o;
      std::int32_t* ao = argmax ? argmax + o : nullptr;
      const T* xn = x + n * HW * C;
      bool first = true;
      for (Index ih = w.h0; ih < w.h1; ++ih)
        for (Index iw = w.w0; iw < w.w1; ++iw) {
          const T* xc = xn + (ih * d.in_w + iw) * C;
          const auto cell = static_cast<std::int32_t>(ih * d.in_w + iw);
          if (first) {
            std::copy(xc, xc + C, yo);
            if (ao) std::fill(ao, ao + C, cell);
            first = false;
            continue;
          }
          // A NaN wins, wherever it sits in the window (as np.max, XLA and
          // torch propagate it; comparisons alone dropped a NaN after the
          // first cell); the argmax keeps the first NaN.
          if (ao) {
            // Branch-free selects, which the compiler vectorizes.
            for (Index c = 0; c < C; ++c) {
              const bool gt = xc[c] > yo[c] || (xc[c] != xc[c] && yo[c] == yo[c]);
              yo[c] = gt ? xc[c] : yo[c];
              ao[c] = gt ? cell : ao[c];
            }
          } else {
            for (Index c = 0; c < C; ++c) yo[c] = xc[c] > yo[c] || xc[c] != xc[c] ? xc[c] : yo[c];
          }
        }
    });
  });
}

template <typename T>
void MaxPoolBackward(const PoolDims& d, const T* dy, const std::int32_t* argmax, T* dx) {
  CheckPoolDims(d);
  const Index C = d.channels, HW = d.in_h * d.in_w;
  ParallelRun(PoolThreads(d), [&](const Team& team) {
    const Range s = Split(d.batch, team.size, team.rank);
    std::fill(dx + s.begin * HW * C, dx + s.end * HW * C, T(0));
    ForEachOutput(d, team, [&](Index n, Index oh, Index ow, const Window&) {
      const Index o = ((n * d.out_h + oh) * d.out_w + ow) * C;
      T* dxn = dx + n * HW * C;
      for (Index c = 0; c < C; ++c) dxn[argmax[o + c] * C + c] += dy[o + c];
    });
  });
}

template <typename T>
void AvgPoolForward(const PoolDims& d, const T* x, T* y) {
  CheckPoolDims(d);
  const Index C = d.channels, HW = d.in_h * d.in_w;
  ParallelRun(PoolThreads(d), [&](const Team& team) {
    ForEachOutput(d, team, [&](Index n, Index oh, Index ow, const Window& w) {
      T* yo = y + ((n * d.out_h + oh) * d.out_w + ow) * C;
      const T* xn = x + n * HW * C;
      std::fill(yo, yo + C, T(0));
      for (Index ih = w.h0; ih < w.h1; ++ih)
        for (Index iw = w.w0; iw < w.w1; ++iw) {
          const T* xc = xn + (ih * d.in_w + iw) * C;
          for (Index c = 0; c < C; ++c) yo[c] += xc[c];
        }
      const T inv = T(1) / static_cast<T>(w.count());
      for (Index c = 0; c < C; ++c) yo[c] *= inv;
    });
  });
}

template <typename T>
void AvgPoolBackward(const PoolDims& d, const T* dy, T* dx) {
  CheckPoolDims(d);
  const Index C = d.channels, HW = d.in_h * d.in_w;
  ParallelRun(PoolThreads(d), [&](const Team& team) {
    const Range s = Split(d.batch, team.size, team.rank);
    std::fill(dx + s.begin * HW * C, dx + s.end * HW * C, T(0));
    ForEachOutput(d, team, [&](Index n, Index oh, Index ow, const Window& w) {
      const T* g = dy + ((n * d.out_h + oh) * d.out_w + ow) * C;
      T* dxn = dx + n * HW * C;
      const T inv = T(1) / static_cast<T>(w.count());
      for (Index ih = w.h0; ih < w.h1; ++ih)
        for (Index iw = w.w0; iw < w.w1; ++iw) {
          T* dc = dxn + (ih * d.in_w + iw) * C;
          for (Index c = 0; c < C; ++c) dc[c] += g[c] * inv;
        }
    });
  });
}

template void MaxPoolForward<float>(const PoolDims&, const float*, float*, std::int32_t*);
template void MaxPoolForward<double>(const PoolDims&, const double*, double*, std::int32_t*);
template void MaxPoolBackward<float>(const PoolDims&, const float*, const std::int32_t*, float*);
template void MaxPoolBackward<double>(const PoolDims&, const double*, const std::int32_t*, double*);
template void AvgPoolForward<float>(const PoolDims&, const float*, float*);
template void AvgPoolForward<double>(const PoolDims&, const double*, double*);
template void AvgPoolBackward<float>(const PoolDims&, const float*, float*);
template void AvgPoolBackward<double>(const PoolDims&, const double*, double*);

}  // namespace rnnfast
