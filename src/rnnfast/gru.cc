#include "rnnfast/gru.h"

#include "rnnfast/sequence.h"

namespace rnnfast {

using detail::Blk;
using detail::CBlk;
using detail::ConstRow;
using detail::Range;

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
  q.Begin(a, kGates, training, o.go_backwards);
  m.ra_buf.Reserve(static_cast<std::size_t>((training ? q.Tn : 1) * q.B * q.U));
  const Activation act = o.activation, ract = o.recurrent_activation;
  const Index B = q.B, U = q.U, GU = q.GU;
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

  ParallelRun(detail::ChooseThreads(B, U, kGates), [&](const Team& team) {
    const Range own = q.Units(team);
    const Index up = own.size(), ob = own.begin, ls = kGates * up;
    q.Prologue(team, a, own, fold);
    for (Index s = 0; s < q.Tn; ++s) {
      T* g = q.Gates(s) + ob;
      const T* sc = q.Scratch(own);
      auto gz = Blk(g, B, up, GU), gr = Blk(g + U, B, up, GU), gh = Blk(g + 2 * U, B, up, GU);
      const auto h_prev = CBlk(q.H(s) + ob, B, up, U);
      auto ra = Blk(m.RA(s) + ob, B, up, U);
      if (after) {
        if (up > 0) {
          q.RecurrentProduct(s, own, 0, kGates);
          detail::Activate<T>(ract, gz + CBlk(sc, B, up, ls), gz);
          detail::Activate<T>(ract, gr + CBlk(sc + up, B, up, ls), gr);
          ra = CBlk(sc + 2 * up, B, up, ls);
          if (rbias_h != nullptr) q.AddRow(m.RA(s), own, rbias_h + ob);
          detail::Activate<T>(act, gh + gr * ra, gh);
        }
      } else {
        if (up > 0) {
          q.RecurrentProduct(s, own, 0, 2);
          detail::Activate<T>(ract, gz + CBlk(sc, B, up, ls), gz);
          detail::Activate<T>(ract, gr + CBlk(sc + up, B, up, ls), gr);
          ra = gr * CBlk(q.RecSource(2, s) + ob, B, up, U);
        }
        team.Sync();  // the h-gate product reads r * h of every unit
        if (up > 0) {
          detail::Gemm<T>(false, false, B, up, U, m.RA(s), U, q.Rp(own) + 2 * up, ls,
                          q.Scratch(own) + 2 * up, ls, false);
          detail::Activate<T>(act, gh + CBlk(sc + 2 * up, B, up, ls), gh);
        }
      }
      if (up > 0) {
        Blk(q.H(s + 1) + ob, B, up, U) = gz * h_prev + (T(1) - gz) * gh;
        q.FinishStep(a, s, own);
      }
      team.Sync();
    }
    q.WriteLast(a.h_last, q.H(q.Tn), own);
  });
  q.cache_valid = training;
}

template <typename T>
void GRUOptions::Impl<T>::Backward(const GRUOptions& o, const BackwardArgs<T>& a) {
  Impl& m = *this;
  detail::Sequence<T>& q = m.seq;
  q.BeginBackward(a, 6);
  const bool after = o.reset_after;
  const Activation act = o.activation, ract = o.recurrent_activation;
  const Index B = q.B, U = q.U, GU = q.GU;
  auto rg = q.DefaultRecGrads();
  if (after) {  // the h gate's recurrent gradient is d(h_{t-1} R_h + br_h)
    rg.dg[2] = m.ra_buf.data();
    rg.ld[2] = U;
  } else {  // the h gate's recurrent product has r * h_{t-1} on the left
    rg.src[2] = m.ra_buf.data();
  }

  ParallelRun(detail::ChooseThreads(B, U, kGates), [&](const Team& team) {
    const Range own = q.Units(team);
    const Index up = own.size(), ob = own.begin;
    T *dh_rec = q.Work(0), *dh_tot = q.Work(1), *t1 = q.Work(2), *t2 = q.Work(3),
      *direct = q.Work(4), *tmp = q.Work(5);
    q.CopyOrZero(a.dh_last, own, dh_rec);
    // p: a [B, *] block whose columns [ob, ob + up) are this member's.
    auto zero_masked_rows = [&](Index s, T* p, Index ld) {
      for (Index b = 0; b < B && q.has_mask; ++b)
        if (!q.StepOn(s, b)) Blk(p + ob, B, up, ld).row(b).setZero();
    };
    for (Index s = q.Tn - 1; s >= 0; --s) {
      T* g = q.Gates(s) + ob;
      auto gz = Blk(g, B, up, GU), gr = Blk(g + U, B, up, GU), gh = Blk(g + 2 * U, B, up, GU);
      const auto dh = CBlk(dh_tot + ob, B, up, U);
      const auto h_prev = CBlk(q.H(s) + ob, B, up, U);
      auto a1 = Blk(t1 + ob, B, up, U), a2 = Blk(t2 + ob, B, up, U),
           dir = Blk(direct + ob, B, up, U), ra = Blk(m.RA(s) + ob, B, up, U);
      if (up > 0) {
        q.GatherOutputGrad(a, s, own, dh_rec, dh_tot);
        detail::MulActGrad<T>(ract, dh * (h_prev - gh), gz, a2);  // d z
        detail::MulActGrad<T>(act, dh * (T(1) - gz), gh, a1);     // d hh pre-activation
        dir = dh * gz;                                            // via h_{t-1} directly
        gz = a2;
        gh = a1;
        if (after) {
          a2 = a1 * gr;                                        // d(h_{t-1} R_h + br_h)
          detail::MulActGrad<T>(ract, a1 * ra, gr, gr);        // d r
          ra = a2;
          zero_masked_rows(s, m.RA(s), U);
          zero_masked_rows(s, q.Gates(s) + U, GU);
        }
        zero_masked_rows(s, q.Gates(s), GU);
        zero_masked_rows(s, q.Gates(s) + 2 * U, GU);
      }
      team.Sync();
      if (!after) {
        if (up > 0) {
          // d(r * h_{t-1}) for this member's units needs d hh of all units.
          detail::Gemm<T>(false, true, B, up, U, q.Gates(s) + 2 * U, GU,
                          a.recurrent_kernel + ob * GU + 2 * U, GU, t1 + ob, U, false);
          const auto hd = CBlk(q.RecSource(2, s) + ob, B, up, U);
          if (q.n_rec > 0) {
            dir += a1 * gr * CBlk(q.RecMask(2) + ob, B, up, U);
          } else {
            dir += a1 * gr;
          }
          detail::MulActGrad<T>(ract, a1 * hd, gr, gr);  // d r
          zero_masked_rows(s, q.Gates(s) + U, GU);
        }
        team.Sync();  // the next product reads d r of every unit
      }
      q.RecurrentGrad(s, own, a.recurrent_kernel, rg, 0, 2, dh_rec, tmp, false);
      if (after) q.RecurrentGrad(s, own, a.recurrent_kernel, rg, 2, 3, dh_rec, tmp, true);
      if (up > 0) Blk(dh_rec + ob, B, up, U) += dir;
      q.CarryMasked(s, own, dh_tot, dh_rec);
    }
    q.Epilogue(team, a, rg, own, dh_rec, after);
  });
  q.EndBackward();
}

template class RecurrentKernel<float, GRUOptions>;
template class RecurrentKernel<double, GRUOptions>;

}  // namespace rnnfast
