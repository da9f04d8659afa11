#include "rnnfast/optim.h"

#include <cmath>

#include "rnnfast/threading.h"

// Built with -ffp-contract=off (CMakeLists.txt): no multiply-add fusion, so
// that every operation rounds as NumPy's does.

namespace rnnfast {
namespace {

template <typename T>
void AdamRange(const AdamArray<T>& a, Index begin, Index end, T alpha, T c1, T c2, T eps) {
  for (Index i = begin; i < end; ++i) {
    const T g = a.g[i];
    T m = a.m[i], v = a.v[i];
    m = m + (g - m) * c1;
    v = v + (g * g - v) * c2;
    a.m[i] = m;
    a.v[i] = v;
    T vv = v;
    if (a.vhat != nullptr) {
      const T h = a.vhat[i];
      vv = (std::isnan(h) || h > v) ? h : v;  // np.maximum: NaN wins
      a.vhat[i] = vv;
    }
    a.w[i] = a.w[i] - (m * alpha) / (std::sqrt(vv) + eps);
  }
}

}  // namespace

template <typename T>
void AdamStep(const std::vector<AdamArray<T>>& arrays, T alpha, T c1, T c2, T eps) {
  Index total = 0;
  for (const auto& a : arrays) total += a.n;
  // Memory-bound: a second thread only pays off on larger models.
  const int want = total >= (1 << 18) ? GetNumThreads() : 1;
  ParallelRun(want, [&](const Team& team) {
    // This member's slice of the concatenated arrays.
    const Index chunk = (total + team.size - 1) / team.size;
    const Index lo = chunk * team.rank, hi = lo + chunk < total ? lo + chunk : total;
    Index offset = 0;
    for (const auto& a : arrays) {
      const Index b = lo > offset ? lo - offset : 0, e = hi - offset < a.n ? hi - offset : a.n;
      if (b < e) AdamRange(a, b, e, alpha, c1, c2, eps);
      offset += a.n;
    }
  });
}

template void AdamStep<float>(const std::vector<AdamArray<float>>&, float, float, float, float);
template void AdamStep<double>(const std::vector<AdamArray<double>>&, double, double, double,
                               double);

}  // namespace rnnfast
