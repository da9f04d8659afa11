#include "rnnfast/lstm.h"

#include "rnnfast/sequence.h"

namespace rnnfast {

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
    const Index up = own.size(), ob = own.begin, ls = kGates * up;
    q.Prologue(team, a, own, a.bias);
    q.CopyOrZero(a.c0, own, m.C(0));  // c0 (or zeros) for this member's units
    for (Index s = 0; s < q.Tn; ++s) {
      if (up > 0) {
        q.RecurrentProduct(s, own, 0, kGates);
        // One pass per row over this member's units: gates, c and h, the
        // output and the dropout copies (a masked row carries h and c).
        for (Index b = 0; b < B; ++b) {
          T* g = q.Gates(s) + b * GU + ob;
          const T* sc = q.Scratch(own) + b * ls;
          const T* cp = m.C(s) + b * U + ob;
          T* cn = m.C(s + 1) + b * U + ob;
          const auto row = q.RowOf(a, s, b, own);
          detail::ForEachPacket<T>(up, [&](Index j, Index n) {
            using detail::LoadN;
            using detail::PActivate;
            namespace pk = detail::pk;
            const auto i = PActivate<T>(ract, pk::padd(LoadN(g + j, n), LoadN(sc + j, n)));
            const auto f = PActivate<T>(ract, pk::padd(LoadN(g + U + j, n), LoadN(sc + up + j, n)));
            const auto cc =
                PActivate<T>(act, pk::padd(LoadN(g + 2 * U + j, n), LoadN(sc + 2 * up + j, n)));
            const auto og =
                PActivate<T>(ract, pk::padd(LoadN(g + 3 * U + j, n), LoadN(sc + 3 * up + j, n)));
            if (training) {  // the backward's cache; inference needs only c and h
              detail::StoreN(g + j, i, n);
              detail::StoreN(g + U + j, f, n);
              detail::StoreN(g + 2 * U + j, cc, n);
              detail::StoreN(g + 3 * U + j, og, n);
            }
            const auto c_prev = LoadN(cp + j, n);
            if (!row.on) {
              detail::StoreN(cn + j, c_prev, n);
              q.StoreState(row, j, n, LoadN(row.prev + j, n));
              return;
            }
            const auto c = pk::pmadd(f, c_prev, pk::pmul(i, cc));
            detail::StoreN(cn + j, c, n);
            q.StoreState(row, j, n, pk::pmul(og, PActivate<T>(act, c)));
          });
        }
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
  q.BeginBackward(a, 4);
  const Activation act = o.activation, ract = o.recurrent_activation;
  const Index B = q.B, U = q.U, GU = q.GU;
  const auto rg = q.DefaultRecGrads();

  ParallelRun(detail::ChooseThreads(B, U, kGates), [&](const Team& team) {
    const Range own = q.Units(team);
    const Index up = own.size(), ob = own.begin;
    // dh_rec: dL/dh entering from later steps; dh_tot adds this step's dy.
    T *dh_rec = q.Work(0), *dh_tot = q.Work(1), *dc = q.Work(2), *tmp = q.Work(3);
    q.PrepareBackward(team, a, own, false);
    q.CopyOrZero(a.dh_last, own, dh_rec);
    q.CopyOrZero(a.dc_last, own, dc);
    for (Index s = q.Tn - 1; s >= 0; --s) {
      // One pass per row: dL/dh, the gate gradients (in place of the gate
      // values) and dL/dc_{s-1}. A masked step has no gate gradient and
      // passes dL/dh and dL/dc through.
      for (Index b = 0; b < B && up > 0; ++b) {
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
      team.Sync();
      q.StepWeightGrads(s, own, a, rg, false);
      q.StepInputGrads(team, s, a);
      q.RecurrentGrad(s, own, rg, 0, kGates, dh_rec, tmp, false);
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
