#include "rnnfast/rnn.h"

#include "rnnfast/sequence.h"

namespace rnnfast {

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
  q.Begin(a, kGates, training, o.go_backwards, o.bf16);
  const Activation act = o.activation;
  const Index U = q.U;

  ParallelRun(q.ForwardThreads(), [&](const Team& team) {
    const Range own = q.Units(team), rows = q.Rows(team);
    const Index up = own.size(), ob = own.begin;
    q.Prologue(team, a, own, a.bias);
    for (Index s = 0; s < q.Tn; ++s) {
      if (up > 0) {
        q.RecurrentProduct(s, own, 0, 1, rows);
        // The gate cache keeps the new h before masking: the backward needs
        // act's output at this step, and H(s + 1) may be a carried state.
        for (Index b = rows.begin; b < rows.end; ++b) {
          T* g = q.Gates(s) + b * U + ob;
          const T* sc = q.Scratch(own) + b * up;
          const auto row = q.RowOf(a, s, b, own);
          detail::ForEachPacket<T>(up, [&](Index j, Index n) {
            const auto h = detail::PActivate<T>(
                act, detail::pk::padd(detail::LoadN(g + j, n), detail::LoadN(sc + j, n)));
            if (training) detail::StoreN(g + j, h, n);  // the backward's cache
            q.StoreState(row, j, n, row.on ? h : detail::LoadN(row.prev + j, n));
          });
        }
      }
      q.StepSync(team);
    }
    q.WriteLast(a.h_last, q.H(q.Tn), own, rows);
  });
  q.cache_valid = training;
}

template <typename T>
void SimpleRNNOptions::Impl<T>::Backward(const SimpleRNNOptions& o, const BackwardArgs<T>& a) {
  detail::Sequence<T>& q = seq;
  q.BeginBackward(a, 3);
  const Activation act = o.activation;
  const Index U = q.U;
  const auto rg = q.DefaultRecGrads();

  ParallelRun(q.BackwardThreads(), [&](const Team& team) {
    const Range own = q.Units(team), rows = q.Rows(team);
    const Index up = own.size(), ob = own.begin;
    T *dh_rec = q.Work(0), *dh_tot = q.Work(1), *tmp = q.Work(2);
    q.PrepareBackward(team, a, own, false);
    q.CopyOrZero(a.dh_last, own, dh_rec, rows);
    for (Index s = q.Tn - 1; s >= 0; --s) {
      for (Index b = rows.begin; b < rows.end && up > 0; ++b) {
        T* g = q.Gates(s) + b * U + ob;
        const T* dy = q.OutputGradRow(a, s, b, own);
        const T* dhr = dh_rec + b * U + ob;
        T* dht = dh_tot + b * U + ob;
        const bool on = q.StepOn(s, b);
        detail::ForEachPacket<T>(up, [&](Index j, Index n) {
          auto dh = detail::LoadN(dhr + j, n);
          if (dy != nullptr) dh = detail::pk::padd(dh, detail::LoadN(dy + j, n));
          detail::StoreN(dht + j, dh, n);
          detail::StoreN(g + j, on ? detail::PMulActGrad<T>(act, dh, detail::LoadN(g + j, n))
                                   : detail::pk::pzero(dh), n);
        });
      }
      q.StepSync(team);
      q.StepWeightGrads(team, s, own, a, rg, false);
      q.StepInputGrads(team, s, a);
      q.RecurrentGrad(s, own, rg, 0, 1, dh_rec, tmp, false, rows);
      q.CarryMasked(s, own, dh_tot, dh_rec, rows);
    }
    q.Epilogue(team, a, rg, own, dh_rec, false);
  });
  q.EndBackward();
}

template class RecurrentKernel<float, SimpleRNNOptions>;
template class RecurrentKernel<double, SimpleRNNOptions>;

}  // namespace rnnfast
