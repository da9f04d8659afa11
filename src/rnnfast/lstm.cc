#include "rnnfast/lstm.h"

#include "rnnfast/sequence.h"

namespace rnnfast {

using detail::Blk;
using detail::CBlk;
using detail::ConstRow;
using detail::Range;

template <typename T>
struct LSTMOptions::Impl {
  detail::Sequence<T> seq;
  detail::Buffer<T> cs;  // cell state entering each step, [slots, B, U]
  T* C(Index s) const { return cs.data() + seq.Slot(s) * seq.B * seq.U; }
  void Forward(const LSTMOptions& o, bool training, const ForwardArgs<T>& a);
  void Backward(const LSTMOptions& o, const BackwardArgs<T>& a);
};

template <typename T>
void LSTMOptions::Impl<T>::Forward(const LSTMOptions& o, bool training, const ForwardArgs<T>& a) {
  Impl& m = *this;
  detail::Sequence<T>& q = m.seq;
  q.Begin(a, kGates, training, o.go_backwards);
  m.cs.Reserve(static_cast<std::size_t>(q.Slots() * q.B * q.U));
  const Activation act = o.activation, ract = o.recurrent_activation;
  const Index B = q.B, U = q.U, GU = q.GU;

  ParallelRun(detail::ChooseThreads(B, U, kGates), [&](const Team& team) {
    const Range own = q.Units(team);
    const Index up = own.size(), ob = own.begin;
    q.Prologue(team, a, own, a.bias);
    q.CopyOrZero(a.c0, own, m.C(0));  // c0 (or zeros) for this member's units
    for (Index s = 0; s < q.Tn; ++s) {
      if (up > 0) {
        q.RecurrentProduct(s, own, 0, kGates);
        T* g = q.Gates(s) + ob;
        const T* sc = q.Scratch(own);
        auto gi = Blk(g, B, up, GU), gf = Blk(g + U, B, up, GU), gc = Blk(g + 2 * U, B, up, GU),
             go = Blk(g + 3 * U, B, up, GU);
        const Index ls = kGates * up;
        detail::Activate<T>(ract, gi + CBlk(sc, B, up, ls), gi);
        detail::Activate<T>(ract, gf + CBlk(sc + up, B, up, ls), gf);
        detail::Activate<T>(act, gc + CBlk(sc + 2 * up, B, up, ls), gc);
        detail::Activate<T>(ract, go + CBlk(sc + 3 * up, B, up, ls), go);
        auto c = Blk(m.C(s + 1) + ob, B, up, U);
        c = gf * CBlk(m.C(s) + ob, B, up, U) + gi * gc;
        auto h = Blk(q.H(s + 1) + ob, B, up, U);
        detail::Activate<T>(act, c, h);
        h *= go;
        q.CarryMasked(s, own, m.C(s), m.C(s + 1));
        q.FinishStep(a, s, own);
      }
      team.Sync();
    }
    q.WriteLast(a.h_last, q.H(q.Tn), own);
    q.WriteLast(a.c_last, m.C(q.Tn), own);
  });
  q.cache_valid = training;
}

template <typename T>
void LSTMOptions::Impl<T>::Backward(const LSTMOptions& o, const BackwardArgs<T>& a) {
  Impl& m = *this;
  detail::Sequence<T>& q = m.seq;
  q.BeginBackward(a, 6);
  const Activation act = o.activation, ract = o.recurrent_activation;
  const Index B = q.B, U = q.U, GU = q.GU;
  const auto rg = q.DefaultRecGrads();

  ParallelRun(detail::ChooseThreads(B, U, kGates), [&](const Team& team) {
    const Range own = q.Units(team);
    const Index up = own.size(), ob = own.begin;
    // dh_rec: dL/dh entering from later steps; dh_tot adds this step's dy.
    T *dh_rec = q.Work(0), *dh_tot = q.Work(1), *dc = q.Work(2), *t1 = q.Work(3),
      *t2 = q.Work(4), *tmp = q.Work(5);
    q.CopyOrZero(a.dh_last, own, dh_rec);
    q.CopyOrZero(a.dc_last, own, dc);
    for (Index s = q.Tn - 1; s >= 0; --s) {
      if (up > 0) {
        q.GatherOutputGrad(a, s, own, dh_rec, dh_tot);
        T* g = q.Gates(s) + ob;
        auto gi = Blk(g, B, up, GU), gf = Blk(g + U, B, up, GU), gc = Blk(g + 2 * U, B, up, GU),
             go = Blk(g + 3 * U, B, up, GU);
        const auto dh = CBlk(dh_tot + ob, B, up, U);
        const auto c_prev = CBlk(m.C(s) + ob, B, up, U);
        auto dcb = Blk(dc + ob, B, up, U), a1 = Blk(t1 + ob, B, up, U), a2 = Blk(t2 + ob, B, up, U);
        detail::Activate<T>(act, CBlk(m.C(s + 1) + ob, B, up, U), a1);  // act(c_s)
        detail::MulActGrad<T>(act, dh * go, a1, a2);
        a2 += dcb;                                                    // dL/dc_s
        detail::MulActGrad<T>(ract, dh * a1, go, go);                 // d o
        detail::MulActGrad<T>(ract, a2 * gc, gi, a1);                 // d i
        detail::MulActGrad<T>(act, a2 * gi, gc, gc);                  // d c~
        gi = a1;
        a1 = a2 * gf;                                                 // dL/dc_{s-1}
        detail::MulActGrad<T>(ract, a2 * c_prev, gf, gf);             // d f
        if (!q.has_mask) {
          dcb = a1;
        } else {
          for (Index b = 0; b < B; ++b) {
            if (q.StepOn(s, b)) {
              dcb.row(b) = a1.row(b);
            } else {  // a masked step passes dL/dc through and has no gate gradient
              for (int k = 0; k < kGates; ++k) Blk(g + k * U, B, up, GU).row(b).setZero();
            }
          }
        }
      }
      team.Sync();
      q.RecurrentGrad(s, own, a.recurrent_kernel, rg, 0, kGates, dh_rec, tmp, false);
      q.CarryMasked(s, own, dh_tot, dh_rec);
    }
    q.WriteLast(a.dc0, dc, own);
    q.Epilogue(team, a, rg, own, dh_rec, false);
  });
  q.EndBackward();
}

template class RecurrentKernel<float, LSTMOptions>;
template class RecurrentKernel<double, LSTMOptions>;

}  // namespace rnnfast
