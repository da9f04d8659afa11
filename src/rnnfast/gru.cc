#include "rnnfast/gru.h"

#include "rnnfast/sequence.h"

namespace rnnfast {

using detail::Range;

// The new state z * h_{t-1} + (1 - z) * hh, in Keras's order. The cheaper
// looking hh + z * (h_{t-1} - hh) is equal for finite values, but not where
// unbounded activations (relu, linear) overflow: hh = inf with 0 < z < 1 gave
// inf - inf = NaN there, where Keras gives inf. Same cost: one subtraction,
// one product and one multiply-add.
template <typename T>
inline detail::Packet<T> Blend(const detail::Packet<T>& z, const detail::Packet<T>& h_prev,
                               const detail::Packet<T>& hh) {
  namespace pk = detail::pk;
  const auto one = pk::pset1<detail::Packet<T>>(T(1));
  return pk::pmadd(z, h_prev, pk::pmul(pk::psub(one, z), hh));
}

template <typename T>
struct GRUOptions::Impl {
  detail::Sequence<T> seq;
  // Per step [B, U]: reset_after: h_{t-1} R_h + br_h (the backward turns it
  // into its gradient); reset_before: r * h_{t-1} (masked), the left operand
  // of the h-gate product.
  detail::Buffer<T> ra_buf;
  T* RA(Index s) const { return ra_buf.data() + (seq.training ? s : 0) * seq.B * seq.U; }
  void Forward(const GRUOptions& o, bool training, const ForwardArgs<T>& a);
  void Backward(const GRUOptions& o, const BackwardArgs<T>& a);
};

template <typename T>
void GRUOptions::Impl<T>::Forward(const GRUOptions& o, bool training, const ForwardArgs<T>& a) {
  Impl& m = *this;
  detail::Sequence<T>& q = m.seq;
  const bool after = o.reset_after;
  q.Begin(a, kGates, training, o.go_backwards, o.bf16);
  m.ra_buf.Reserve(static_cast<std::size_t>((training ? q.Tn : 1) * q.B * q.U));
  const Activation act = o.activation, ract = o.recurrent_activation;
  const Index U = q.U, GU = q.GU;
  // Biases folded into the input projection: all of them, except (with
  // reset_after) the recurrent h bias, which sits inside r * (...).
  const T* fold = a.bias;
  const T* rbias_h = nullptr;
  if (after && a.bias != nullptr) {
    T* f = q.BiasWork();
    detail::Row<T>(f, GU) = detail::ConstRow<T>(a.bias, GU);
    detail::Row<T>(f, 2 * U) += detail::ConstRow<T>(a.bias + GU, 2 * U);
    fold = f;
    rbias_h = a.bias + GU + 2 * U;
  }

  ParallelRun(q.ForwardThreads(), [&](const Team& team) {
    const Range own = q.Units(team), rows = q.Rows(team);
    const Index up = own.size(), ob = own.begin, ls = kGates * up;
    q.Prologue(team, a, own, fold);
    for (Index s = 0; s < q.Tn; ++s) {
      if (up > 0) q.RecurrentProduct(s, own, 0, after ? kGates : 2, rows);
      // Pass 1, per row: z and r; with reset_after also h_{t-1} R_h + br_h
      // (kept for the backward), hh and h.
      for (Index b = rows.begin; b < rows.end && up > 0; ++b) {
        T* g = q.Gates(s) + b * GU + ob;
        const T* sc = q.Scratch(own) + b * ls;
        T* ra = m.RA(s) + b * U + ob;
        const T* hsrc = q.RecSource(2, s) + b * U + ob;
        const auto row = q.RowOf(a, s, b, own);
        detail::ForEachPacket<T>(up, [&](Index j, Index n) {
          using detail::LoadN;
          using detail::PActivate;
          using detail::StoreN;
          namespace pk = detail::pk;
          const auto z = PActivate<T>(ract, pk::padd(LoadN(g + j, n), LoadN(sc + j, n)));
          const auto r = PActivate<T>(ract, pk::padd(LoadN(g + U + j, n), LoadN(sc + up + j, n)));
          StoreN(g + j, z, n);
          StoreN(g + U + j, r, n);
          if (!after) {
            StoreN(ra + j, pk::pmul(r, LoadN(hsrc + j, n)), n);  // r * h_{t-1}, masked
            return;
          }
          auto rh = LoadN(sc + 2 * up + j, n);
          if (rbias_h != nullptr) rh = pk::padd(rh, LoadN(rbias_h + ob + j, n));
          StoreN(ra + j, rh, n);
          const auto hh = PActivate<T>(act, pk::pmadd(r, rh, LoadN(g + 2 * U + j, n)));
          StoreN(g + 2 * U + j, hh, n);
          const auto hpv = LoadN(row.prev + j, n);
          // z h + (1 - z) hh (Keras's form, see Blend), or the carried state for a masked row
          q.StoreState(row, j, n, row.on ? Blend<T>(z, hpv, hh) : hpv);
        });
      }
      if (!after) {
        q.StepSync(team);  // the h-gate product reads r * h of every unit (of its rows)
        if (up > 0) {
          q.RecMul(2, own, m.RA(s), U, q.Scratch(own) + 2 * up, ls, false, rows);
          for (Index b = rows.begin; b < rows.end; ++b) {
            T* g = q.Gates(s) + b * GU + ob;
            const T* sh = q.Scratch(own) + b * ls + 2 * up;
            const auto row = q.RowOf(a, s, b, own);
            detail::ForEachPacket<T>(up, [&](Index j, Index n) {
              namespace pk = detail::pk;
              const auto hh = detail::PActivate<T>(
                  act, pk::padd(detail::LoadN(g + 2 * U + j, n), detail::LoadN(sh + j, n)));
              const auto z = detail::LoadN(g + j, n), hpv = detail::LoadN(row.prev + j, n);
              detail::StoreN(g + 2 * U + j, hh, n);
              q.StoreState(row, j, n, row.on ? Blend<T>(z, hpv, hh) : hpv);
            });
          }
        }
      }
      q.StepSync(team);
    }
    q.WriteLast(a.h_last, q.H(q.Tn), own, rows);
  });
  q.cache_valid = training;
}

template <typename T>
void GRUOptions::Impl<T>::Backward(const GRUOptions& o, const BackwardArgs<T>& a) {
  Impl& m = *this;
  detail::Sequence<T>& q = m.seq;
  q.BeginBackward(a, 5);
  const bool after = o.reset_after;
  const Activation act = o.activation, ract = o.recurrent_activation;
  const Index U = q.U, GU = q.GU;
  auto rg = q.DefaultRecGrads();
  if (after) {  // the h gate's recurrent gradient is d(h_{t-1} R_h + br_h)
    rg.dg[2] = m.ra_buf.data();
    rg.ld[2] = U;
  } else {  // the h gate's recurrent product has r * h_{t-1} on the left
    rg.src[2] = m.ra_buf.data();
  }

  ParallelRun(q.BackwardThreads(), [&](const Team& team) {
    const Range own = q.Units(team), rows = q.Rows(team);
    const Index up = own.size(), ob = own.begin;
    T *dh_rec = q.Work(0), *dh_tot = q.Work(1), *t1 = q.Work(2), *direct = q.Work(3),
      *tmp = q.Work(4);
    q.PrepareBackward(team, a, own, after);
    q.CopyOrZero(a.dh_last, own, dh_rec, rows);
    for (Index s = q.Tn - 1; s >= 0; --s) {
      // Pass 1, per row: dL/dh, d z, d hh (pre-activation), the direct path
      // z * dh, and with reset_after d r and d(h_{t-1} R_h + br_h). A masked
      // step has no gate gradient and passes dL/dh through.
      for (Index b = rows.begin; b < rows.end && up > 0; ++b) {
        T* g = q.Gates(s) + b * GU + ob;
        T* ra = m.RA(s) + b * U + ob;
        const T* dy = q.OutputGradRow(a, s, b, own);
        const T* dhr = dh_rec + b * U + ob;
        T* dht = dh_tot + b * U + ob;
        T* dir = direct + b * U + ob;
        const T* hp = q.H(s) + b * U + ob;
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
            StoreN(g + j, zero, n);
            StoreN(g + U + j, zero, n);
            StoreN(g + 2 * U + j, zero, n);
            if (after) StoreN(ra + j, zero, n);
            return;
          }
          const auto z = LoadN(g + j, n), r = LoadN(g + U + j, n), hh = LoadN(g + 2 * U + j, n);
          const auto one = pk::pset1<detail::Packet<T>>(T(1));
          const auto dhh = PMulActGrad<T>(act, pk::pmul(dh, pk::psub(one, z)), hh);
          // d z = dh h_{t-1} - dh hh, as autodiff of Blend's form gives it (dh (h_{t-1} - hh)
          // differs where the products overflow: dh = inf gave inf * (h - hh), not inf - inf)
          const auto dz = pk::psub(pk::pmul(dh, LoadN(hp + j, n)), pk::pmul(dh, hh));
          StoreN(g + j, PMulActGrad<T>(ract, dz, z), n);
          StoreN(g + 2 * U + j, dhh, n);
          StoreN(dir + j, pk::pmul(dh, z), n);
          if (after) {
            const auto rh = LoadN(ra + j, n);
            StoreN(g + U + j, PMulActGrad<T>(ract, pk::pmul(dhh, rh), r), n);
            StoreN(ra + j, pk::pmul(dhh, r), n);
          }
        });
      }
      q.StepSync(team);
      if (!after) {
        if (up > 0) {
          // d(r * h_{t-1}) for this member's units needs d hh of all units.
          q.RecTMul(2 * U, U, own, q.Gates(s) + 2 * U, GU, t1 + ob, U, false, rows);
          // Pass 2, per row: d r, and d(r * h_{t-1}) * r into the direct path.
          for (Index b = rows.begin; b < rows.end; ++b) {
            T* g = q.Gates(s) + b * GU + ob;
            const T* drh = t1 + b * U + ob;
            const T* hd = q.RecSource(2, s) + b * U + ob;
            const T* mh = q.n_rec > 0 ? q.RecMask(2) + b * U + ob : nullptr;
            T* dir = direct + b * U + ob;
            const bool on = q.StepOn(s, b);
            detail::ForEachPacket<T>(up, [&](Index j, Index n) {
              using detail::LoadN;
              namespace pk = detail::pk;
              const auto d = LoadN(drh + j, n), r = LoadN(g + U + j, n);
              auto via_h = pk::pmul(d, r);
              if (mh != nullptr) via_h = pk::pmul(via_h, LoadN(mh + j, n));
              detail::StoreN(dir + j, pk::padd(LoadN(dir + j, n), via_h), n);
              detail::StoreN(g + U + j,
                             on ? detail::PMulActGrad<T>(ract, pk::pmul(d, LoadN(hd + j, n)), r)
                                : pk::pzero(d), n);
            });
          }
        }
        q.StepSync(team);  // the next product reads d r of every unit (of its rows)
      }
      q.StepWeightGrads(team, s, own, a, rg, after);
      q.StepInputGrads(team, s, a);
      q.RecurrentGrad(s, own, rg, 0, 2, dh_rec, tmp, false, rows);
      if (after) q.RecurrentGrad(s, own, rg, 2, 3, dh_rec, tmp, true, rows);
      if (up > 0) {
        const Index ro = rows.begin * U + ob;
        const Index nr = rows.size();
        detail::Blk(dh_rec + ro, nr, up, U) += detail::CBlk(direct + ro, nr, up, U);
      }
      q.CarryMasked(s, own, dh_tot, dh_rec, rows);
    }
    q.Epilogue(team, a, rg, own, dh_rec, after);
  });
  q.EndBackward();
}

template class RecurrentKernel<float, GRUOptions>;
template class RecurrentKernel<double, GRUOptions>;

}  // namespace rnnfast
