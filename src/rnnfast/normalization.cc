#include "rnnfast/normalization.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "rnnfast/math.h"
#include "rnnfast/sequence.h"
#include "rnnfast/threading.h"

namespace rnnfast {

using detail::ConstRow;
using detail::Range;
using detail::Row;
using detail::Split;

namespace {

int NormThreads(Index R, Index C) {
  if (static_cast<double>(R) * static_cast<double>(C) < 1e5 || RecentlyContended()) return 1;
  return static_cast<int>(std::min<Index>(GetNumThreads(), R));
}

// Column sums over the team's rows of f(row block) into out [C]: each member
// sums its rows into its own slot of `slots` ([team size, C]), then member 0
// adds them up. Every member must call it (it synchronizes).
template <typename T, typename F>
void TeamColumnSum(const Team& team, Index R, Index C, std::vector<T>& slots, T* out, F&& f) {
  const Range rows = Split(R, team.size, team.rank);
  T* mine = slots.data() + team.rank * C;
  Row<T> acc(mine, C);
  acc.setZero();
  if (rows.size() > 0) f(rows, acc);
  team.Sync();
  if (team.rank == 0) {
    Row<T> o(out, C);
    o = ConstRow<T>(slots.data(), C);
    for (int r = 1; r < team.size; ++r) o += ConstRow<T>(slots.data() + r * C, C);
  }
  team.Sync();
}

// Sums in one fixed order, packet by packet from the first element (the last
// packet zero-padded): Eigen's reductions start their packets at the first
// aligned address, so the same row summed at another address rounded
// differently, and two calls on equal data could differ in the last bit.
template <typename T>
T RowDot(const T* p, const T* q, Index n) {
  using detail::LoadN;
  namespace pk = detail::pk;
  detail::Packet<T> acc = pk::pset1<detail::Packet<T>>(T(0));
  detail::ForEachPacket<T>(n, [&](Index j, Index c) {
    acc = pk::padd(acc, pk::pmul(LoadN(p + j, c), LoadN(q + j, c)));
  });
  return pk::predux(acc);
}
template <typename T>
T RowSum(const T* p, Index n) {
  using detail::LoadN;
  namespace pk = detail::pk;
  detail::Packet<T> acc = pk::pset1<detail::Packet<T>>(T(0));
  detail::ForEachPacket<T>(n, [&](Index j, Index c) { acc = pk::padd(acc, LoadN(p + j, c)); });
  return pk::predux(acc);
}
// out[c] = 1 / sqrt(var[c] + epsilon), correctly rounded: Eigen's packet
// rsqrt (AVX-512: an estimate refined by Newton steps) rounds otherwise than
// its scalar one, so the result depended on the buffer's alignment.
template <typename T>
void InvSqrt(const T* var, T epsilon, Index C, T* out) {
  for (Index c = 0; c < C; ++c) out[c] = T(1) / std::sqrt(var[c] + epsilon);
}
// acc += rows [rows) of the row-major [*, C] array p, one row at a time
// (element-wise: the same at any address, unlike colwise().sum()).
template <typename T>
void AddRows(const T* p, Index C, const Range& rows, Row<T>& acc) {
  for (Index r = rows.begin; r < rows.end; ++r) acc += ConstRow<T>(p + r * C, C);
}

}  // namespace

template <typename T>
void LayerNormForward(Index R, Index C, T epsilon, const T* x, const T* gamma, const T* beta, T* y,
                      T* mean, T* rstd) {
  ParallelRun(NormThreads(R, C), [&](const Team& team) {
    const Range rows = Split(R, team.size, team.rank);
    for (Index r = rows.begin; r < rows.end; ++r) {
      const ConstRow<T> xr(x + r * C, C);
      const T m = RowSum(x + r * C, C) / static_cast<T>(C);
      Row<T> yr(y + r * C, C);
      yr = xr - m;
      const T var = RowDot(y + r * C, y + r * C, C) / static_cast<T>(C);
      const T s = T(1) / std::sqrt(var + epsilon);
      yr *= s;
      if (gamma != nullptr) yr *= ConstRow<T>(gamma, C);
      if (beta != nullptr) yr += ConstRow<T>(beta, C);
      if (mean != nullptr) mean[r] = m;
      if (rstd != nullptr) rstd[r] = s;
    }
  });
}

template <typename T>
void LayerNormBackward(Index R, Index C, const T* x, const T* mean, const T* rstd, const T* gamma,
                       const T* dy, T* dx, T* dgamma, T* dbeta) {
  const int want = NormThreads(R, C);
  std::vector<T> slots(static_cast<std::size_t>(want * C));
  ParallelRun(want, [&](const Team& team) {
    const Range rows = Split(R, team.size, team.rank);
    thread_local detail::Buffer<T> buf;
    T* xh = buf.Reserve(static_cast<std::size_t>(2 * C));
    Row<T> xhat(xh, C), g(xh + C, C);
    for (Index r = rows.begin; r < rows.end && dx != nullptr; ++r) {
      const ConstRow<T> dyr(dy + r * C, C);
      xhat = (ConstRow<T>(x + r * C, C) - mean[r]) * rstd[r];
      g = gamma != nullptr ? (dyr * ConstRow<T>(gamma, C)).eval() : dyr.eval();
      const T mg = RowSum(xh + C, C) / static_cast<T>(C);
      const T mgx = RowDot(xh + C, xh, C) / static_cast<T>(C);
      Row<T>(dx + r * C, C) = (g - mg - xhat * mgx) * rstd[r];
    }
    if (dgamma != nullptr)
      TeamColumnSum<T>(team, R, C, slots, dgamma, [&](const Range& rr, Row<T>& acc) {
        for (Index r = rr.begin; r < rr.end; ++r)
          acc += ConstRow<T>(dy + r * C, C) * (ConstRow<T>(x + r * C, C) - mean[r]) * rstd[r];
      });
    if (dbeta != nullptr)
      TeamColumnSum<T>(team, R, C, slots, dbeta, [&](const Range& rr, Row<T>& acc) {
        AddRows(dy, C, rr, acc);
      });
  });
}

template <typename T>
void ColumnMoments(Index R, Index C, const T* x, T* mean, T* var) {
  const int want = NormThreads(R, C);
  std::vector<T> slots(static_cast<std::size_t>(want * C));
  const T inv = T(1) / static_cast<T>(R);
  ParallelRun(want, [&](const Team& team) {
    TeamColumnSum<T>(team, R, C, slots, mean, [&](const Range& rr, Row<T>& acc) {
      AddRows(x, C, rr, acc);
    });
    if (team.rank == 0) Row<T>(mean, C) *= inv;
    team.Sync();
    TeamColumnSum<T>(team, R, C, slots, var, [&](const Range& rr, Row<T>& acc) {
      const ConstRow<T> m(mean, C);
      for (Index r = rr.begin; r < rr.end; ++r) acc += (ConstRow<T>(x + r * C, C) - m).square();
    });
    if (team.rank == 0) Row<T>(var, C) *= inv;
  });
}

template <typename T>
void BatchNormApply(Index R, Index C, T epsilon, const T* x, const T* mean, const T* var,
                    const T* gamma, const T* beta, T* y) {
  // Keras: (x - mean) * (rsqrt(var + eps) * gamma) + beta.
  std::vector<T> scale(static_cast<std::size_t>(C));
  Row<T> s(scale.data(), C);
  InvSqrt(var, epsilon, C, scale.data());
  if (gamma != nullptr) s *= ConstRow<T>(gamma, C);
  ParallelRun(NormThreads(R, C), [&](const Team& team) {
    const Range rows = Split(R, team.size, team.rank);
    const ConstRow<T> m(mean, C), sc(scale.data(), C);
    for (Index r = rows.begin; r < rows.end; ++r) {
      Row<T> yr(y + r * C, C);
      yr = (ConstRow<T>(x + r * C, C) - m) * sc;
      if (beta != nullptr) yr += ConstRow<T>(beta, C);
    }
  });
}

template <typename T>
void BatchNormBackward(Index R, Index C, T epsilon, const T* x, const T* mean, const T* var,
                       const T* gamma, const T* dy, T* dx, T* dgamma, T* dbeta) {
  const int want = NormThreads(R, C);
  std::vector<T> slots(static_cast<std::size_t>(want * C));
  // sum(dy) and sum(dy * xhat) per column: dbeta and dgamma, and the two
  // corrections of dx for the batch statistics' dependence on x.
  std::vector<T> sums(static_cast<std::size_t>(3 * C));
  T* sdy = sums.data();
  T* sdyx = sums.data() + C;
  T* rs = sums.data() + 2 * C;
  InvSqrt(var, epsilon, C, rs);
  const T inv = T(1) / static_cast<T>(R);
  ParallelRun(want, [&](const Team& team) {
    const ConstRow<T> m(mean, C), s(rs, C);
    TeamColumnSum<T>(team, R, C, slots, sdy, [&](const Range& rr, Row<T>& acc) {
      AddRows(dy, C, rr, acc);
    });
    TeamColumnSum<T>(team, R, C, slots, sdyx, [&](const Range& rr, Row<T>& acc) {
      for (Index r = rr.begin; r < rr.end; ++r)
        acc += ConstRow<T>(dy + r * C, C) * (ConstRow<T>(x + r * C, C) - m) * s;
    });
    if (dx == nullptr) return;
    const Range rows = Split(R, team.size, team.rank);
    const ConstRow<T> mdy(sdy, C), mdyx(sdyx, C);
    for (Index r = rows.begin; r < rows.end; ++r) {
      Row<T> d(dx + r * C, C);
      d = ((ConstRow<T>(dy + r * C, C) - mdy * inv) -
           (ConstRow<T>(x + r * C, C) - m) * s * mdyx * inv) *
          s;
      if (gamma != nullptr) d *= ConstRow<T>(gamma, C);
    }
  });
  if (dgamma != nullptr) std::copy(sdyx, sdyx + C, dgamma);
  if (dbeta != nullptr) std::copy(sdy, sdy + C, dbeta);
}

#define RNNFAST_NORM_INSTANTIATE(T)                                                              \
  template void LayerNormForward<T>(Index, Index, T, const T*, const T*, const T*, T*, T*, T*); \
  template void LayerNormBackward<T>(Index, Index, const T*, const T*, const T*, const T*,      \
                                     const T*, T*, T*, T*);                                     \
  template void ColumnMoments<T>(Index, Index, const T*, T*, T*);                               \
  template void BatchNormApply<T>(Index, Index, T, const T*, const T*, const T*, const T*,      \
                                  const T*, T*);                                                \
  template void BatchNormBackward<T>(Index, Index, T, const T*, const T*, const T*, const T*,   \
                                     const T*, T*, T*, T*);
RNNFAST_NORM_INSTANTIATE(float)
RNNFAST_NORM_INSTANTIATE(double)
#undef RNNFAST_NORM_INSTANTIATE

}  // namespace rnnfast
