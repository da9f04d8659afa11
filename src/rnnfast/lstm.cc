#include "rnnfast/lstm.h"

#include <algorithm>
#include <type_traits>

#include "rnnfast/sequence.h"

namespace rnnfast {

using detail::Range;

template <typename T>
struct LSTMOptions::Impl {
  detail::Sequence<T> seq;
  detail::Buffer<T> cs;  // cell state entering each step, [slots, B, U]
  // Per-lane constants of WholeRowGates: scale, mul, add, [3, 4U + packet].
  detail::Buffer<T> lanes;
  T* C(Index s) const { return cs.data() + seq.Slot(s) * seq.B * seq.U; }
  void Forward(const LSTMOptions& o, bool training, const ForwardArgs<T>& a);
  void Backward(const LSTMOptions& o, const BackwardArgs<T>& a);
};

namespace {

// A member that owns all U units (one thread) has a row's four gates side by
// side, [i f c o] over 4U contiguous values, in the gates and in Scratch. When
// U is not a multiple of the packet size (W1: U = 20, packets of 16), the
// gate pass per gate wastes lanes: 8 packets of activations per row for 80
// values, instead of the 5 it takes to activate the row as a whole. A packet
// that straddles a sigmoid and a tanh gate computes both with one tanh:
// sigmoid(x) = 0.5 tanh(x / 2) + 0.5 (per-lane scale, mul and add).
// Float with the default activations only (tanh, sigmoid).
template <typename T>
bool WholeRowGates(Index up, Index U, Activation act, Activation ract) {
  return std::is_same<T, float>::value && up == U && U % detail::kPacket<T> != 0 &&
         act == Activation::kTanh && ract == Activation::kSigmoid;
}

// Fills the lanes table (see WholeRowGates) for 4U values.
template <typename T>
void FillLanes(Index U, T* lanes) {
  const Index n = 4 * U + detail::kPacket<T>;
  for (Index k = 0; k < n; ++k) {
    const bool tanh_lane = k >= 2 * U && k < 3 * U;
    lanes[k] = tanh_lane ? T(1) : T(0.5);          // scale of x
    lanes[n + k] = tanh_lane ? T(1) : T(0.5);      // times tanh
    lanes[2 * n + k] = tanh_lane ? T(0) : T(0.5);  // plus
  }
}

// Activates rows [0, 4U) of pre-activations g[r] + sc[r] into g[r], for NR
// rows at once (see WholeRowGates). The activations are long chains of
// dependent multiply-adds (a tanh is ~15 in a row); interleaving the
// independent chains of two rows keeps the FMA units busy where one row
// alone would wait on latency.
template <int NR, typename T>
EIGEN_ALWAYS_INLINE void ActivateWholeRows(Index U, T* const* g, const T* const* sc,
                                           const T* lanes) {
  using detail::LoadN;
  namespace pk = detail::pk;
  constexpr Index P = detail::kPacket<T>;
  const Index n4 = 4 * U, stride = n4 + P;
  for (Index j = 0; j < n4; j += P) {
    const Index n = std::min(P, n4 - j);
    detail::Packet<T> x[NR];
    for (int r = 0; r < NR; ++r) x[r] = pk::padd(LoadN(g[r] + j, n), LoadN(sc[r] + j, n));
    const Index last = j + n - 1;
    const bool all_tanh = j >= 2 * U && last < 3 * U;
    const bool no_tanh = last < 2 * U || j >= 3 * U;
    if (no_tanh) {
      for (int r = 0; r < NR; ++r)
        detail::StoreN(g[r] + j, detail::PActivate<T>(Activation::kSigmoid, x[r]), n);
    } else if (all_tanh) {
      for (int r = 0; r < NR; ++r) detail::StoreN(g[r] + j, detail::PTanh<T>(x[r]), n);
    } else {
      const auto scale = LoadN(lanes + j, n), mul = LoadN(lanes + stride + j, n),
                 add = LoadN(lanes + 2 * stride + j, n);
      for (int r = 0; r < NR; ++r)
        detail::StoreN(g[r] + j, pk::pmadd(detail::PTanh<T>(pk::pmul(x[r], scale)), mul, add), n);
    }
  }
}

}  // namespace

template <typename T>
void LSTMOptions::Impl<T>::Forward(const LSTMOptions& o, bool training, const ForwardArgs<T>& a) {
  Impl& m = *this;
  detail::Sequence<T>& q = m.seq;
  q.Begin(a, kGates, training, o.go_backwards, o.bf16);
  m.cs.Reserve(static_cast<std::size_t>(q.Slots() * q.B * q.U));
  const Activation act = o.activation, ract = o.recurrent_activation;
  const Index U = q.U, GU = q.GU;

  if (WholeRowGates<T>(U, U, act, ract)) {  // a member may own all units
    m.lanes.Reserve(static_cast<std::size_t>(3 * (4 * U + detail::kPacket<T>)));
    FillLanes<T>(U, m.lanes.data());
  }

  ParallelRun(q.ForwardThreads(), [&](const Team& team) {
    const Range own = q.Units(team), rows = q.Rows(team);
    const Index up = own.size(), ob = own.begin, ls = kGates * up;
    const bool whole = WholeRowGates<T>(up, U, act, ract);
    // The whole-row pass for rows [b, b + NR) of step s (this member owns all
    // U units): gates, then c and h, each of the NR rows' chains interleaved.
    auto whole_rows = [&](Index s, Index b, auto nr) {
      using detail::LoadN;
      using detail::StoreN;
      namespace pk = detail::pk;
      constexpr int NR = decltype(nr)::value;
      T* g[NR];
      const T* sc[NR];
      const T* cp[NR];
      T* cn[NR];
      typename detail::Sequence<T>::StateRow row[NR];
      for (int r = 0; r < NR; ++r) {
        g[r] = q.Gates(s) + (b + r) * GU;
        sc[r] = q.Scratch(own) + (b + r) * ls;
        cp[r] = m.C(s) + (b + r) * U;
        cn[r] = m.C(s + 1) + (b + r) * U;
        q.FillRow(a, s, b + r, own, row[r]);
      }
      ActivateWholeRows<NR, T>(U, g, sc, m.lanes.data());
      detail::ForEachPacket<T>(U, [&](Index j, Index n) {
        detail::Packet<T> c_prev[NR], c[NR];
        for (int r = 0; r < NR; ++r) {
          c_prev[r] = LoadN(cp[r] + j, n);
          c[r] = pk::pmadd(LoadN(g[r] + U + j, n), c_prev[r],
                           pk::pmul(LoadN(g[r] + j, n), LoadN(g[r] + 2 * U + j, n)));
        }
        detail::Packet<T> h[NR];
        for (int r = 0; r < NR; ++r)
          h[r] = pk::pmul(LoadN(g[r] + 3 * U + j, n), detail::PTanh<T>(c[r]));
        for (int r = 0; r < NR; ++r) {
          if (row[r].on) {
            StoreN(cn[r] + j, c[r], n);
            q.StoreState(row[r], j, n, h[r]);
          } else {  // a masked row carries h and c
            StoreN(cn[r] + j, c_prev[r], n);
            q.StoreState(row[r], j, n, LoadN(row[r].prev + j, n));
          }
        }
      });
    };
    // The per-gate pass for rows [b, b + NR) of step s over this member's
    // units: each packet's five activations are chains of dependent
    // multiply-adds, and two rows' independent chains interleaved keep the
    // FMA units busy where one row waits on latency (the gate pass was 22%
    // of W2's LSTM inference, at about 3x the activations' throughput cost).
    auto gate_rows = [&](Index s, Index b, auto nr) {
      using detail::LoadN;
      using detail::PActivate;
      using detail::StoreN;
      namespace pk = detail::pk;
      constexpr int NR = decltype(nr)::value;
      T* g[NR];
      const T* sc[NR];
      const T* cp[NR];
      T* cn[NR];
      typename detail::Sequence<T>::StateRow row[NR];
      for (int r = 0; r < NR; ++r) {
        g[r] = q.Gates(s) + (b + r) * GU + ob;
        sc[r] = q.Scratch(own) + (b + r) * ls;
        cp[r] = m.C(s) + (b + r) * U + ob;
        cn[r] = m.C(s + 1) + (b + r) * U + ob;
        q.FillRow(a, s, b + r, own, row[r]);
      }
      detail::ForEachPacket<T>(up, [&](Index j, Index n) {
        detail::Packet<T> i[NR], f[NR], cc[NR], og[NR], c_prev[NR], c[NR];
        for (int r = 0; r < NR; ++r) {
          i[r] = PActivate<T>(ract, pk::padd(LoadN(g[r] + j, n), LoadN(sc[r] + j, n)));
          f[r] = PActivate<T>(ract, pk::padd(LoadN(g[r] + U + j, n), LoadN(sc[r] + up + j, n)));
          cc[r] = PActivate<T>(act, pk::padd(LoadN(g[r] + 2 * U + j, n), LoadN(sc[r] + 2 * up + j, n)));
          og[r] = PActivate<T>(ract, pk::padd(LoadN(g[r] + 3 * U + j, n), LoadN(sc[r] + 3 * up + j, n)));
        }
        if (training) {  // the backward's cache; inference needs only c and h
          for (int r = 0; r < NR; ++r) {
            StoreN(g[r] + j, i[r], n);
            StoreN(g[r] + U + j, f[r], n);
            StoreN(g[r] + 2 * U + j, cc[r], n);
            StoreN(g[r] + 3 * U + j, og[r], n);
          }
        }
        for (int r = 0; r < NR; ++r) {
          c_prev[r] = LoadN(cp[r] + j, n);
          c[r] = pk::pmadd(f[r], c_prev[r], pk::pmul(i[r], cc[r]));
        }
        detail::Packet<T> h[NR];
        for (int r = 0; r < NR; ++r) h[r] = pk::pmul(og[r], PActivate<T>(act, c[r]));
        for (int r = 0; r < NR; ++r) {
          if (row[r].on) {
            StoreN(cn[r] + j, c[r], n);
            q.StoreState(row[r], j, n, h[r]);
          } else {  // a masked row carries h and c
            StoreN(cn[r] + j, c_prev[r], n);
            q.StoreState(row[r], j, n, LoadN(row[r].prev + j, n));
          }
        }
      });
    };
    q.Prologue(team, a, own, a.bias);
    q.CopyOrZero(a.c0, own, m.C(0), rows);  // c0 (or zeros) for this member's units
    for (Index s = 0; s < q.Tn; ++s) {
      if (up > 0) {
        q.RecurrentProduct(s, own, 0, kGates, rows);
        // One pass per row over this member's units: gates, c and h, the
        // output and the dropout copies (a masked row carries h and c).
        if (whole) {  // rows in pairs (see ActivateWholeRows), then the odd one
          Index b = rows.begin;
          for (; b + 1 < rows.end; b += 2) whole_rows(s, b, std::integral_constant<int, 2>{});
          if (b < rows.end) whole_rows(s, b, std::integral_constant<int, 1>{});
        } else {  // per gate, rows in pairs too (see gate_rows)
          Index b = rows.begin;
          for (; b + 1 < rows.end; b += 2) gate_rows(s, b, std::integral_constant<int, 2>{});
          if (b < rows.end) gate_rows(s, b, std::integral_constant<int, 1>{});
        }
      }
      q.StepSync(team);
    }
    q.WriteLast(a.h_last, q.H(q.Tn), own, rows);
    q.WriteLast(a.c_last, m.C(q.Tn), own, rows);
  });
  q.cache_valid = training;
}

template <typename T>
void LSTMOptions::Impl<T>::Backward(const LSTMOptions& o, const BackwardArgs<T>& a) {
  Impl& m = *this;
  detail::Sequence<T>& q = m.seq;
  q.BeginBackward(a, 4);
  const Activation act = o.activation, ract = o.recurrent_activation;
  const Index U = q.U, GU = q.GU;
  const auto rg = q.DefaultRecGrads();

  ParallelRun(q.BackwardThreads(), [&](const Team& team) {
    const Range own = q.Units(team), rows = q.Rows(team);
    const Index up = own.size(), ob = own.begin;
    // dh_rec: dL/dh entering from later steps; dh_tot adds this step's dy.
    T *dh_rec = q.Work(0), *dh_tot = q.Work(1), *dc = q.Work(2), *tmp = q.Work(3);
    q.PrepareBackward(team, a, own, false);
    q.CopyOrZero(a.dh_last, own, dh_rec, rows);
    q.CopyOrZero(a.dc_last, own, dc, rows);
    for (Index s = q.Tn - 1; s >= 0; --s) {
      // One pass per row: dL/dh, the gate gradients (in place of the gate
      // values) and dL/dc_{s-1}. A masked step has no gate gradient and
      // passes dL/dh and dL/dc through.
      for (Index b = rows.begin; b < rows.end && up > 0; ++b) {
        T* g = q.Gates(s) + b * GU + ob;
        const T* dy = q.OutputGradRow(a, s, b, own);
        const T* dhr = dh_rec + b * U + ob;
        T* dht = dh_tot + b * U + ob;
        T* dcr = dc + b * U + ob;
        const T* c_s = m.C(s + 1) + b * U + ob;
        const T* cp = m.C(s) + b * U + ob;
        const bool on = q.StepOn(s, b);
        detail::ForEachPacket<T>(up, [&](Index j, Index n) {
          using detail::LoadN;
          using detail::PMulActGrad;
          using detail::StoreN;
          namespace pk = detail::pk;
          auto dh = LoadN(dhr + j, n);
          if (dy != nullptr) dh = pk::padd(dh, LoadN(dy + j, n));
          StoreN(dht + j, dh, n);
          if (!on) {
            const auto zero = pk::pzero(dh);
            for (int k = 0; k < kGates; ++k) StoreN(g + k * U + j, zero, n);
            return;
          }
          const auto i = LoadN(g + j, n), f = LoadN(g + U + j, n), cc = LoadN(g + 2 * U + j, n),
                     og = LoadN(g + 3 * U + j, n);
          const auto ac = detail::PActivate<T>(act, LoadN(c_s + j, n));
          const auto dct = pk::padd(LoadN(dcr + j, n), PMulActGrad<T>(act, pk::pmul(dh, og), ac));
          StoreN(g + j, PMulActGrad<T>(ract, pk::pmul(dct, cc), i), n);
          StoreN(g + U + j, PMulActGrad<T>(ract, pk::pmul(dct, LoadN(cp + j, n)), f), n);
          StoreN(g + 2 * U + j, PMulActGrad<T>(act, pk::pmul(dct, i), cc), n);
          StoreN(g + 3 * U + j, PMulActGrad<T>(ract, pk::pmul(dh, ac), og), n);
          StoreN(dcr + j, pk::pmul(dct, f), n);
        });
      }
      q.StepSync(team);
      q.StepWeightGrads(team, s, own, a, rg, false);
      q.StepInputGrads(team, s, a);
      q.RecurrentGrad(s, own, rg, 0, kGates, dh_rec, tmp, false, rows);
      q.CarryMasked(s, own, dh_tot, dh_rec, rows);
    }
    q.WriteLast(a.dc0, dc, own, rows);
    q.Epilogue(team, a, rg, own, dh_rec, false);
  });
  q.EndBackward();
}

template class RecurrentKernel<float, LSTMOptions>;
template class RecurrentKernel<double, LSTMOptions>;

}  // namespace rnnfast
