// C++ checks of the convolution, pooling and normalization kernels without
// Python: forwards against naive loops written from the definitions, every
// gradient against central finite differences (double), float against double
// on a size that runs on several threads.
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "rnnfast/conv.h"
#include "rnnfast/normalization.h"
#include "rnnfast/pooling.h"
#include "rnnfast/threading.h"

using rnnfast::Activation;
using rnnfast::ConvDims;
using rnnfast::Index;
using rnnfast::PoolDims;
using Vec = std::vector<double>;

namespace {

int failures = 0;

void Expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

Vec Random(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> d;
  Vec v(n);
  for (double& x : v) x = d(gen);
  return v;
}

double MaxRel(const Vec& a, const Vec& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::fabs(a[i] - b[i]) / (1.0 + std::fabs(b[i])));
  return m;
}

// d/dv of loss() at every element of v (central differences).
Vec Numeric(Vec& v, const std::function<double()>& loss) {
  Vec g(v.size());
  const double h = 1e-6;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double old = v[i];
    v[i] = old + h;
    const double up = loss();
    v[i] = old - h;
    const double down = loss();
    v[i] = old;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

double Dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

Vec NaiveConv(const ConvDims& d, const Vec& x, const Vec& k, const Vec* b, bool relu) {
  const Index Cg = d.channels / d.groups, Fg = d.filters / d.groups;
  Vec y(static_cast<std::size_t>(d.batch * d.out_h * d.out_w * d.filters));
  for (Index n = 0; n < d.batch; ++n)
    for (Index oh = 0; oh < d.out_h; ++oh)
      for (Index ow = 0; ow < d.out_w; ++ow)
        for (Index f = 0; f < d.filters; ++f) {
          double s = b ? (*b)[f] : 0.0;
          const Index g = f / Fg;
          for (Index kh = 0; kh < d.kernel_h; ++kh)
            for (Index kw = 0; kw < d.kernel_w; ++kw) {
              const Index ih = oh * d.stride_h - d.pad_top + kh * d.dilation_h;
              const Index iw = ow * d.stride_w - d.pad_left + kw * d.dilation_w;
              if (ih < 0 || ih >= d.in_h || iw < 0 || iw >= d.in_w) continue;
              for (Index c = 0; c < Cg; ++c)
                s += x[((n * d.in_h + ih) * d.in_w + iw) * d.channels + g * Cg + c] *
                     k[((kh * d.kernel_w + kw) * Cg + c) * d.filters + f];
            }
          y[((n * d.out_h + oh) * d.out_w + ow) * d.filters + f] = relu ? std::max(s, 0.0) : s;
        }
  return y;
}

void CheckConv(const std::string& name, ConvDims d, bool relu) {
  const Index Cg = d.channels / d.groups;
  Vec x = Random(static_cast<std::size_t>(d.batch * d.in_h * d.in_w * d.channels), 1);
  Vec k = Random(static_cast<std::size_t>(d.kernel_h * d.kernel_w * Cg * d.filters), 2);
  Vec b = Random(static_cast<std::size_t>(d.filters), 3);
  const std::size_t ny = static_cast<std::size_t>(d.batch * d.out_h * d.out_w * d.filters);
  const Activation act = relu ? Activation::kRelu : Activation::kLinear;
  Vec y(ny);
  rnnfast::ConvForward<double>(d, act, x.data(), k.data(), b.data(), y.data());
  Expect(MaxRel(y, NaiveConv(d, x, k, &b, relu)) < 1e-12, name + ": forward");
  const Vec w = Random(ny, 4);
  Vec dx(x.size()), dk(k.size()), db(b.size());
  rnnfast::ConvBackward<double>(d, act, x.data(), k.data(), y.data(), w.data(), dx.data(), dk.data(),
                                db.data());
  auto loss = [&] { return Dot(w, NaiveConv(d, x, k, &b, relu)); };
  Expect(MaxRel(dx, Numeric(x, loss)) < 1e-6, name + ": dx");
  Expect(MaxRel(dk, Numeric(k, loss)) < 1e-6, name + ": dkernel");
  Expect(MaxRel(db, Numeric(b, loss)) < 1e-6, name + ": dbias");
}

// Float against double on a batch large enough for the pool's threads.
void CheckConvFloat() {
  ConvDims d;
  d.batch = 16;
  d.in_w = 200;
  d.channels = 20;
  d.out_w = 200;
  d.filters = 20;
  d.kernel_w = 2;
  d.dilation_w = 4;
  d.pad_left = 4;
  const Vec x = Random(16 * 200 * 20, 5), k = Random(2 * 20 * 20, 6), dy = Random(16 * 200 * 20, 7);
  std::vector<float> xf(x.begin(), x.end()), kf(k.begin(), k.end()), dyf(dy.begin(), dy.end());
  std::vector<float> yf(dy.size()), dxf(x.size()), dkf(k.size()), dbf(20);
  Vec y(dy.size()), dx(x.size()), dk(k.size()), db(20);
  rnnfast::ConvForward<float>(d, Activation::kLinear, xf.data(), kf.data(), nullptr, yf.data());
  rnnfast::ConvForward<double>(d, Activation::kLinear, x.data(), k.data(), nullptr, y.data());
  rnnfast::ConvBackward<float>(d, Activation::kLinear, xf.data(), kf.data(), nullptr, dyf.data(),
                               dxf.data(), dkf.data(), dbf.data());
  rnnfast::ConvBackward<double>(d, Activation::kLinear, x.data(), k.data(), nullptr, dy.data(),
                                dx.data(), dk.data(), db.data());
  auto rel = [](const std::vector<float>& a, const Vec& b) {
    double m = 0, s = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
      m = std::max(m, std::fabs(a[i] - b[i]));
      s = std::max(s, std::fabs(b[i]));
    }
    return m / s;
  };
  Expect(rel(yf, y) < 1e-5, "conv float forward");
  Expect(rel(dxf, dx) < 1e-5, "conv float dx");
  Expect(rel(dkf, dk) < 1e-5, "conv float dkernel");
  Expect(rel(dbf, db) < 1e-5, "conv float dbias");
}

Vec NaivePool(const PoolDims& d, const Vec& x, bool is_max) {
  Vec y(static_cast<std::size_t>(d.batch * d.out_h * d.out_w * d.channels));
  for (Index n = 0; n < d.batch; ++n)
    for (Index oh = 0; oh < d.out_h; ++oh)
      for (Index ow = 0; ow < d.out_w; ++ow)
        for (Index c = 0; c < d.channels; ++c) {
          double best = -INFINITY, sum = 0;
          int count = 0;
          for (Index ph = 0; ph < d.pool_h; ++ph)
            for (Index pw = 0; pw < d.pool_w; ++pw) {
              const Index ih = oh * d.stride_h - d.pad_top + ph, iw = ow * d.stride_w - d.pad_left + pw;
              if (ih < 0 || ih >= d.in_h || iw < 0 || iw >= d.in_w) continue;
              const double v = x[((n * d.in_h + ih) * d.in_w + iw) * d.channels + c];
              best = std::max(best, v);
              sum += v;
              ++count;
            }
          y[((n * d.out_h + oh) * d.out_w + ow) * d.channels + c] = is_max ? best : sum / count;
        }
  return y;
}

void CheckPool(const std::string& name, PoolDims d) {
  for (bool is_max : {true, false}) {
    Vec x = Random(static_cast<std::size_t>(d.batch * d.in_h * d.in_w * d.channels), 8);
    const std::size_t ny = static_cast<std::size_t>(d.batch * d.out_h * d.out_w * d.channels);
    Vec y(ny), dx(x.size());
    std::vector<std::int32_t> am(ny);
    const Vec w = Random(ny, 9);
    if (is_max) {
      rnnfast::MaxPoolForward<double>(d, x.data(), y.data(), am.data());
      rnnfast::MaxPoolBackward<double>(d, w.data(), am.data(), dx.data());
    } else {
      rnnfast::AvgPoolForward<double>(d, x.data(), y.data());
      rnnfast::AvgPoolBackward<double>(d, w.data(), dx.data());
    }
    const std::string what = name + (is_max ? " max" : " average");
    Expect(MaxRel(y, NaivePool(d, x, is_max)) < 1e-14, what + ": forward");
    Expect(MaxRel(dx, Numeric(x, [&] { return Dot(w, NaivePool(d, x, is_max)); })) < 1e-6,
           what + ": dx");
  }
}

void CheckNorms() {
  const Index R = 6, C = 5;
  const double eps = 1e-3;
  Vec x = Random(R * C, 10), g = Random(C, 11), b = Random(C, 12);
  const Vec w = Random(R * C, 13);
  auto layer = [&] {
    Vec y(R * C);
    rnnfast::LayerNormForward<double>(R, C, eps, x.data(), g.data(), b.data(), y.data(), nullptr,
                                      nullptr);
    return Dot(w, y);
  };
  Vec y(R * C), mean(R), rstd(R), dx(R * C), dg(C), db(C);
  rnnfast::LayerNormForward<double>(R, C, eps, x.data(), g.data(), b.data(), y.data(), mean.data(),
                                    rstd.data());
  double m0 = 0, v0 = 0;
  for (Index c = 0; c < C; ++c) m0 += x[c] / C;
  for (Index c = 0; c < C; ++c) v0 += (x[c] - m0) * (x[c] - m0) / C;
  Expect(std::fabs(y[0] - ((x[0] - m0) / std::sqrt(v0 + eps) * g[0] + b[0])) < 1e-12,
         "layer norm forward");
  rnnfast::LayerNormBackward<double>(R, C, x.data(), mean.data(), rstd.data(), g.data(), w.data(),
                                     dx.data(), dg.data(), db.data());
  Expect(MaxRel(dx, Numeric(x, layer)) < 1e-6, "layer norm dx");
  Expect(MaxRel(dg, Numeric(g, layer)) < 1e-6, "layer norm dgamma");
  Expect(MaxRel(db, Numeric(b, layer)) < 1e-6, "layer norm dbeta");

  auto batch = [&] {
    Vec mu(C), var(C), out(R * C);
    rnnfast::ColumnMoments<double>(R, C, x.data(), mu.data(), var.data());
    rnnfast::BatchNormApply<double>(R, C, eps, x.data(), mu.data(), var.data(), g.data(), b.data(),
                                    out.data());
    return Dot(w, out);
  };
  Vec mu(C), var(C);
  rnnfast::ColumnMoments<double>(R, C, x.data(), mu.data(), var.data());
  double mc = 0, vc = 0;
  for (Index r = 0; r < R; ++r) mc += x[r * C] / R;
  for (Index r = 0; r < R; ++r) vc += (x[r * C] - mc) * (x[r * C] - mc) / R;
  Expect(std::fabs(mu[0] - mc) < 1e-14 && std::fabs(var[0] - vc) < 1e-14, "column moments");
  rnnfast::BatchNormBackward<double>(R, C, eps, x.data(), mu.data(), var.data(), g.data(), w.data(),
                                     dx.data(), dg.data(), db.data());
  Expect(MaxRel(dx, Numeric(x, batch)) < 1e-6, "batch norm dx");
  Expect(MaxRel(dg, Numeric(g, batch)) < 1e-6, "batch norm dgamma");
  Expect(MaxRel(db, Numeric(b, batch)) < 1e-6, "batch norm dbeta");
}

ConvDims Conv(Index H, Index W, Index C, Index F, Index KH, Index KW, Index sh, Index sw, Index dh,
              Index dw, Index pt, Index pb, Index pl, Index pr, Index groups) {
  ConvDims d;
  d.batch = 2;
  d.in_h = H;
  d.in_w = W;
  d.channels = C;
  d.filters = F;
  d.kernel_h = KH;
  d.kernel_w = KW;
  d.stride_h = sh;
  d.stride_w = sw;
  d.dilation_h = dh;
  d.dilation_w = dw;
  d.pad_top = pt;
  d.pad_left = pl;
  d.groups = groups;
  d.out_h = (H + pt + pb - dh * (KH - 1) - 1) / sh + 1;
  d.out_w = (W + pl + pr - dw * (KW - 1) - 1) / sw + 1;
  return d;
}

PoolDims Pool(Index H, Index W, Index ph, Index pw, Index sh, Index sw, Index pt, Index pb, Index pl,
              Index pr) {
  PoolDims d;
  d.batch = 2;
  d.in_h = H;
  d.in_w = W;
  d.channels = 3;
  d.pool_h = ph;
  d.pool_w = pw;
  d.stride_h = sh;
  d.stride_w = sw;
  d.pad_top = pt;
  d.pad_left = pl;
  d.out_h = (H + pt + pb - ph) / sh + 1;
  d.out_w = (W + pl + pr - pw) / sw + 1;
  return d;
}

}  // namespace

int main() {
  rnnfast::SetNumThreads(2);
  CheckConv("conv1d causal dilated", Conv(1, 9, 3, 4, 1, 3, 1, 1, 1, 2, 0, 0, 4, 0, 1), true);
  CheckConv("conv1d same, few channels", Conv(1, 9, 3, 4, 1, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1), true);
  CheckConv("conv1d strided groups", Conv(1, 10, 4, 6, 1, 3, 1, 2, 1, 1, 0, 0, 1, 1, 2), false);
  CheckConv("conv2d same", Conv(5, 6, 3, 4, 3, 2, 1, 1, 1, 1, 1, 1, 0, 1, 1), true);
  CheckConv("conv2d strided dilated", Conv(7, 7, 2, 3, 2, 3, 2, 1, 1, 2, 0, 1, 2, 2, 1), false);
  // 8+ channels: the tap-by-tap path for 1-D convolutions.
  CheckConv("conv1d taps strided padded", Conv(1, 12, 8, 3, 1, 3, 1, 2, 1, 1, 0, 0, 2, 1, 1), true);
  CheckConv("conv1d taps causal dilated", Conv(1, 10, 9, 3, 1, 2, 1, 1, 1, 3, 0, 0, 3, 0, 1), false);
  CheckConv("conv1d taps kernel past the end", Conv(1, 5, 8, 2, 1, 4, 1, 3, 1, 1, 0, 0, 3, 3, 1), true);
  CheckConv("conv pointwise", Conv(3, 4, 5, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1), false);
  CheckConvFloat();
  CheckPool("pool1d", Pool(1, 9, 1, 3, 1, 2, 0, 0, 1, 1));
  CheckPool("pool2d", Pool(5, 7, 2, 3, 2, 2, 0, 1, 1, 1));
  CheckNorms();
  if (failures == 0) std::printf("all op checks passed\n");
  return failures == 0 ? 0 : 1;
}
