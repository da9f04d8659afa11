#include "rnnfast/rnn.h"

#include "rnnfast/sequence.h"

namespace rnnfast {

using detail::Blk;
using detail::CBlk;
using detail::ConstRow;
using detail::Range;

template <typename T>
struct SimpleRNNOptions::Impl {
  detail::Sequence<T> seq;
  void Forward(const SimpleRNNOptions& o, bool training, const ForwardArgs<T>& a);
  void Backward(const SimpleRNNOptions& o, const BackwardArgs<T>& a);
};

template <typename T>
void SimpleRNNOptions::Impl<T>::Forward(const SimpleRNNOptions& o, bool training, const ForwardArgs<T>& a) {
  detail::Sequence<T>& q = seq;
  q.Begin(a, kGates, training, o.go_backwards);
  const Activation act = o.activation;
  const Index B = q.B, U = q.U;

  ParallelRun(detail::ChooseThreads(B, U, kGates), [&](const Team& team) {
    const Range own = q.Units(team);
    const Index up = own.size(), ob = own.begin;
    q.Prologue(team, a, own, a.bias);
    for (Index s = 0; s < q.Tn; ++s) {
      if (up > 0) {
        q.RecurrentProduct(s, own, 0, 1);
        // The gate cache keeps the new h before masking: the backward needs
        // act's output at this step, and H(s + 1) may be a carried state.
        auto g = Blk(q.Gates(s) + ob, B, up, U);
        detail::Activate<T>(act, g + CBlk(q.Scratch(own), B, up, up), g);
        Blk(q.H(s + 1) + ob, B, up, U) = g;
        q.FinishStep(a, s, own);
      }
      team.Sync();
    }
    q.WriteLast(a.h_last, q.H(q.Tn), own);
  });
  q.cache_valid = training;
}

template <typename T>
void SimpleRNNOptions::Impl<T>::Backward(const SimpleRNNOptions& o, const BackwardArgs<T>& a) {
  detail::Sequence<T>& q = seq;
  q.BeginBackward(a, 3);
  const Activation act = o.activation;
  const Index B = q.B, U = q.U;
  const auto rg = q.DefaultRecGrads();

  ParallelRun(detail::ChooseThreads(B, U, kGates), [&](const Team& team) {
    const Range own = q.Units(team);
    const Index up = own.size(), ob = own.begin;
    T *dh_rec = q.Work(0), *dh_tot = q.Work(1), *tmp = q.Work(2);
    q.CopyOrZero(a.dh_last, own, dh_rec);
    for (Index s = q.Tn - 1; s >= 0; --s) {
      if (up > 0) {
        q.GatherOutputGrad(a, s, own, dh_rec, dh_tot);
        auto g = Blk(q.Gates(s) + ob, B, up, U);
        detail::MulActGrad<T>(act, CBlk(dh_tot + ob, B, up, U), g, g);
        for (Index b = 0; b < B && q.has_mask; ++b)
          if (!q.StepOn(s, b)) g.row(b).setZero();
      }
      team.Sync();
      q.RecurrentGrad(s, own, a.recurrent_kernel, rg, 0, 1, dh_rec, tmp, false);
      q.CarryMasked(s, own, dh_tot, dh_rec);
    }
    q.Epilogue(team, a, rg, own, dh_rec, false);
  });
  q.EndBackward();
}

template class RecurrentKernel<float, SimpleRNNOptions>;
template class RecurrentKernel<double, SimpleRNNOptions>;

}  // namespace rnnfast
