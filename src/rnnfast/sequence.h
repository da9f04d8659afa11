// Private plumbing shared by the three cells: the workspace (caches kept by a
// training forward for the backward), the phases before and after the time
// loop, and the per-step recurrent products. Every function that takes a Team
// runs inside a ParallelRun, on the slice of work that belongs to that member.
//
// Work split: inside the time loop each member owns a contiguous range of
// units (all gates of those units), so a step needs one barrier: the recurrent
// product of step s reads every unit of h_{s-1}. Before and after the loop,
// members split rows (time steps) or weight columns instead. Small problems
// split the batch's rows instead (see ForwardThreads): no barrier per step;
// a row-split backward accumulates each member's weight gradients apart and
// sums them after the loop.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "rnnfast/bf16.h"
#include "rnnfast/math.h"
#include "rnnfast/threading.h"

namespace rnnfast {
namespace detail {

struct Range {
  Index begin = 0;
  Index end = 0;
  Index size() const { return end - begin; }
};

// Piece `i` of `parts` of [0, n); inner boundaries are multiples of `align`.
inline Range Split(Index n, int parts, int i, Index align = 1) {
  Index chunk = (n + parts - 1) / parts;
  chunk = ((chunk + align - 1) / align) * align;
  const Index b = std::min(n, chunk * i);
  return Range{b, std::min(n, b + chunk)};
}

// Sequence<T>'s bridges to the float-only bf16 routines (bf16.h): bf16_ is
// never set for double, for which they do nothing.
template <typename T>
void ToBf16Rows(Index M, Index K, const T* src, Index ld, Pair* out, Index ldo, Index segs = 1) {
  if constexpr (std::is_same<T, float>::value) ConvertBf16Rows(M, K, src, ld, out, ldo, segs);
}
template <typename T>
void ToBf16Cols(Index K, Index M, const T* src, Index ld, Pair* out, Index ldo, Index q0,
                Index q1) {
  if constexpr (std::is_same<T, float>::value) ConvertBf16Cols(K, M, src, ld, out, ldo, q0, q1);
}
template <typename T>
void ToBf16ColsT(Index K, Index M, const T* src, Index ld, Pair* out, Index ldo, Index q0,
                 Index q1) {
  if constexpr (std::is_same<T, float>::value) ConvertBf16ColsT(K, M, src, ld, out, ldo, q0, q1);
}
template <typename T>
void PackBf16(Index K, Index N, const T* src, Index ld, bool trans, Pair* out, Index segs = 1,
              T* colsum = nullptr) {
  if constexpr (std::is_same<T, float>::value)
    PackBf16Panels(K, N, src, ld, trans, out, segs, colsum);
}
template <typename T>
void MulBf16(Index M, Index N, Index Kq, bool a_cols, const Pair* A, Index lda, const Pair* Bp,
             Index panel_stride, T* C, Index ldc, bool accumulate) {
  if constexpr (std::is_same<T, float>::value)
    GemmBf16(M, N, Kq, a_cols, A, lda, Bp, panel_stride, C, ldc, accumulate);
}

// Threads for one call: a step's recurrent product must be big enough to pay
// for a barrier per step (about a microsecond).
inline bool StepTooSmallToSplit(Index batch, Index units, int gates) {
  const double step_flops = 2.0 * static_cast<double>(batch) * static_cast<double>(units) *
                            static_cast<double>(gates) * static_cast<double>(units);
  return step_flops < 2.0e5;
}
inline int ChooseThreads(Index batch, Index units, int gates) {
  if (StepTooSmallToSplit(batch, units, gates) || RecentlyContended()) return 1;
  return static_cast<int>(std::min<Index>(GetNumThreads(), std::max<Index>(1, units / 8)));
}

// An inference forward whose weights are small splits the batch's rows
// instead of the units among members: rows are independent, so the time loop
// then needs no barrier at all (each member reads all of the weights), and a
// member stalled by the host no longer stalls the other at every step. Each
// member gets at least kMinRows rows, and the forward must be big enough to
// pay for waking the workers.
constexpr Index kMinRows = 4;
constexpr double kRowSplitFlops = 1.0e6;

template <typename T>
class Sequence {
 public:
  // Sizes and flags of the current (or cached) forward.
  Index B = 0, Tn = 0, I = 0, U = 0, GU = 0;
  int G = 1;
  bool training = false, go_backwards = false, has_bias = false, has_mask = false;
  int n_in = 0;   // input dropout masks: 0, 1 or G
  int n_rec = 0;  // recurrent dropout masks: 0, 1 or G
  bool cache_valid = false;

  // Units are split on multiples of a cache line.
  static constexpr Index kAlign = static_cast<Index>(64 / sizeof(T));

  // The workspace's sizes below are products of the dimensions: refuses
  // dimensions whose products would overflow (a wrapped size gave a small
  // buffer that the kernel wrote past). The bound, 2**62 bytes, is beyond any
  // memory (the Python binding checks the same before copying anything).
  static void CheckSizes(const Dims& d, int gates) {
    constexpr Index kMax = (Index{1} << 62) / static_cast<Index>(sizeof(T));
    bool overflow = false;
    auto mul = [&](Index a, Index b) {
      Index r = 0;
      overflow = overflow || __builtin_mul_overflow(a, b, &r) || r > kMax;
      return r;
    };
    auto add = [&](Index a, Index b) {
      Index r = 0;
      overflow = overflow || __builtin_add_overflow(a, b, &r) || r > kMax;
      return r;
    };
    const Index gu = mul(gates, d.units);
    // Per row and step: gates, states and masked copies, G input copies.
    const Index per = add(add(mul(gates, d.input), mul(2, gu)), mul(3, d.units));
    const Index rows = mul(d.batch, add(d.time, 1));
    // Besides: the weights' packed copies, [U + I, G*U].
    add(mul(rows, per), mul(add(d.units, d.input), gu));
    if (overflow)
      throw std::length_error("batch, time, input and units are too large: the workspace would "
                              "exceed 2**62 bytes");
  }

  // Checks the forward's arguments and sizes the workspace. bf16: the cell's
  // bf16 option (used for float where Bf16Enabled()).
  void Begin(const ForwardArgs<T>& a, int gates, bool train, bool backwards, bool bf16 = false) {
    const Dims& d = a.dims;
    if (d.batch <= 0 || d.time <= 0 || d.input <= 0 || d.units <= 0)
      throw std::invalid_argument("batch, time, input and units must all be positive");
    if (a.x == nullptr || a.kernel == nullptr || a.recurrent_kernel == nullptr)
      throw std::invalid_argument("x, kernel and recurrent_kernel are required");
    CheckSizes(d, gates);
    auto check_count = [gates](int n, const void* p, const char* what) {
      if (p == nullptr) return 0;
      if (n != 1 && n != gates)
        throw std::invalid_argument(std::string(what) + " count must be 1 or " +
                                    std::to_string(gates));
      return n;
    };
    cache_valid = false;
    B = d.batch;
    Tn = d.time;
    I = d.input;
    U = d.units;
    G = gates;
    GU = G * U;
    training = train;
    go_backwards = backwards;
    has_bias = a.bias != nullptr;
    has_mask = a.mask != nullptr;
    n_in = check_count(a.input_dropout_count, a.input_dropout, "input_dropout");
    n_rec = check_count(a.recurrent_dropout_count, a.recurrent_dropout, "recurrent_dropout");

    xs_.Reserve(static_cast<std::size_t>(XsCopies() * Tn * B * I));
    hs_.Reserve(static_cast<std::size_t>(Slots() * B * U));
    if (n_rec > 0) hd_.Reserve(static_cast<std::size_t>(n_rec * Slots() * B * U));
    if (n_in > 0) in_mask_.Reserve(static_cast<std::size_t>(n_in * B * I));
    if (n_rec > 0) rec_mask_.Reserve(static_cast<std::size_t>(n_rec * B * U));
    if (has_mask) step_mask_.Reserve(static_cast<std::size_t>(Tn * B));
    // Big recurrent kernels are multiplied from panels packed once per call
    // (GemmPacked); members then own whole panels of units. The bf16 GEMMs
    // always read packed panels (of bf16 pairs).
    bf16_ = std::is_same<T, float>::value && bf16 && Bf16Enabled();
    // A one-row inference forward (batch-1 serving, a streamed step) reads R
    // where it lies (Gemv): its products are matrix-vector ones, which reuse
    // nothing that packing or reordering would lay out, so a copy of R per
    // call only costs (LSTM U=256, one step: ~1 MiB copied per call). Over
    // many steps split between members, packed panels (each member's
    // columns contiguous) still won: in place, a member's four gate
    // segments of R's rows stream slower from the L2 (Zen 4, C++, T=100,
    // U=256, 2 threads: 0.68 ms packed vs 0.95 in place; 1 thread: 1.39 in
    // place). So only short forwards or ones that run on one thread (by
    // the size rule alone: the choice must not depend on the host's load,
    // or the same call would give other bits when the machine is busy).
    direct_ = !train && !bf16_ && B == 1 &&
              (Tn <= 8 || GetNumThreads() == 1 || StepTooSmallToSplit(B, U, G));
    r_direct_ = direct_ ? a.recurrent_kernel : nullptr;
    packed_ = !direct_ && (bf16_ || PreferPacked<T>(GU, U));
    // With packed kernels the input projection runs inside the loop, step by
    // step (ProjectStep): its [B, G*U] result is then read by the gate pass
    // from L1/L2 instead of from a [T, B, G*U] array in memory, and W's
    // panels stay in L2 (W3 LSTM inference forward, Zen 3: ~70 -> ~53 ms).
    // Not for one row: each step would re-read W's panels (I x G*U) for one
    // row of output, while a projection before the loop leaves only [G*U]
    // per step to read (Zen 4, C++, T=100, I=32, U=256, 2 threads: LSTM
    // 0.69-0.72 -> 0.62-0.65 ms, GRU 0.51-0.53 -> 0.47-0.48). bf16 keeps it:
    // its projection before the loop serves per-gate input copies only.
    fused_ = packed_ && XsCopies() == 1 && (B > 1 || bf16_);
    // An inference forward that projects step by step needs two steps' gates,
    // not T: each step's gates are then written to memory that is still in
    // cache instead of to fresh memory, which evicted the panels from L2.
    gate_slots_ = (training || !fused_) ? Tn : 2;
    gates_.Reserve(static_cast<std::size_t>(gate_slots_ * B * GU));
    if (bf16_) {
      if (fused_) wpb_.Reserve(static_cast<std::size_t>(G * Bf16PanelPairs(Pairs(I), U)));
      rpb_.Reserve(static_cast<std::size_t>(G * Bf16PanelPairs(Pairs(U), U)));
    }
    // Up to one panel of units, each gate's panel is mostly padding (W1,
    // U = 20: 2 of its 4 packets computed, 20 columns used) and a step made
    // G small products (each an AMX tile configuration): the step's
    // products then read all gates side by side from one set of panels.
    // (At U = 64 no padding, but one product instead of G: W2 LSTM training,
    // C++, 2 threads, 2.05-2.08 -> 1.93-1.97 ms.) One member owns all the
    // units here (bf16 members split units in whole panels).
    joint_ = bf16_ && U <= kBf16Panel;
    if (joint_) {
      if (fused_) wpj_.Reserve(static_cast<std::size_t>(Bf16PanelPairs(Pairs(I), GU)));
      rpj_.Reserve(static_cast<std::size_t>(Bf16PanelPairs(Pairs(U), GU)));
    }
    if (!bf16_) {
      if (fused_) wpp_.Reserve(static_cast<std::size_t>(G * PackedSize<T>(I, U)));
      if (packed_) {
        rpp_.Reserve(static_cast<std::size_t>(G * PackedSize<T>(U, U)));
      } else if (!direct_) {
        rp_.Reserve(static_cast<std::size_t>(U * GU));
      }
    }
    scratch_.Reserve(static_cast<std::size_t>(B * GU));
    bias_work_.Reserve(static_cast<std::size_t>(GU));
  }

  // Checks that a training forward left a cache, and sizes the backward's
  // scratch: `per_unit` arrays of [B, U].
  void BeginBackward(const BackwardArgs<T>& a, int per_unit) {
    // rows_ stays as the cached forward chose it: the backward splits the
    // same way, so that each member finds its rows' caches in its own L2.
    if (!cache_valid)
      throw std::logic_error(
          "backward() needs the cache of a forward() with training=True (each cache "
          "serves one backward)");
    if (a.kernel == nullptr || a.recurrent_kernel == nullptr || a.dkernel == nullptr ||
        a.drecurrent_kernel == nullptr)
      throw std::invalid_argument("kernel, recurrent_kernel, dkernel, drecurrent_kernel are required");
    if (has_bias && a.dbias == nullptr)
      throw std::invalid_argument("dbias is required: the forward had a bias");
    work_.Reserve(static_cast<std::size_t>(per_unit * B * U));
    if (bf16_) {
      rtpb_.Reserve(static_cast<std::size_t>(Bf16PanelPairs(G * Pairs(U), U)));
    } else if (packed_) {
      rtp_.Reserve(static_cast<std::size_t>(PackedSize<T>(GU, U)));
    } else {
      rt_.Reserve(static_cast<std::size_t>(GU * U));
    }
    // Small and medium weights: their gradients are accumulated at every step,
    // while that step's gate gradients are still in the cache, instead of by
    // GEMMs over all steps after the loop (which re-read them from memory).
    // Only while each thread's slice of them fits in half its L2 cache: past
    // that, every step streams the accumulators through L3 (W3's LSTM on
    // Zen 3, 512 KiB of L2: 768 KiB per thread, 20-30% slower than the GEMMs
    // after the loop; the 2 MiB L2 of Sapphire Rapids holds them).
    // (Members that split rows each hold all of them: ForwardThreads checked.)
    const double slice = static_cast<double>(I + U) * static_cast<double>(GU) * sizeof(T) /
                         ChooseThreads(B, U, G);
    // bf16: the weight gradients are always GEMMs after the loop (also when
    // members split rows: the GEMMs split columns).
    // Read once here, before the members start: they must agree on it.
    wg_rows_layout_ = bf16_ && AmxEnabled();
    stream_ = !bf16_ && (rows_ || (XsCopies() == 1 &&
                                   slice <= 0.5 * static_cast<double>(L2CacheBytes())));
    if (rows_ && row_threads_ > 1)
      part_.Reserve(static_cast<std::size_t>((row_threads_ - 1) * PartSize()));
    // Staging pays only where the accumulators leave the L2 (W1's and W2's,
    // in L1 and L2, ran 3-5% slower with it).
    staged_ = rows_ && stream_ && !bf16_ &&
              static_cast<double>(I + U) * static_cast<double>(GU) * sizeof(T) >
                  0.5 * static_cast<double>(L2CacheBytes());
    if (staged_) stage_.Reserve(static_cast<std::size_t>(kStageSteps * B * StageWidth()));
    if (a.dx != nullptr) {  // null: no input gradient wanted
      if (bf16_) {  // W^T's panels (gate blocks padded to pairs); dx by steps (StepInputGrads)
        wtb_.Reserve(static_cast<std::size_t>(Bf16PanelPairs(G * Pairs(U), I)));
        if (XsCopies() > 1) dxt_.Reserve(static_cast<std::size_t>(Tn * B * I));
      } else if (stream_) {
        wt_.Reserve(static_cast<std::size_t>(GU * I));
      } else {
        dxt_.Reserve(static_cast<std::size_t>(Tn * B * I));
      }
    }
  }

  // Threads for the backward of the cached forward.
  int BackwardThreads() const { return rows_ ? row_threads_ : UnitThreads(); }
  // Threads that split units: bf16 members own whole panels (64 units), so
  // no more members than panels.
  int UnitThreads() const {
    const int n = ChooseThreads(B, U, G);
    if (!bf16_) return n;
    return static_cast<int>(std::min<Index>(n, (U + kBf16Panel - 1) / kBf16Panel));
  }

  // Where a member accumulates streamed weight gradients: the outputs, or
  // with rows_ for members other than the first, their own part_ slot
  // (summed into the outputs by Epilogue). dk [I, G*U], dr [U, G*U], db
  // [G*U] then the recurrent bias's [G*U]; row stride G*U.
  struct Acc {
    T* dk;
    T* dr;
    T* db;
  };
  Index PartSize() const { return (I + U + 2) * GU; }
  Acc Accumulators(const Team& team, const BackwardArgs<T>& a) const {
    if (!rows_ || team.rank == 0) return Acc{a.dkernel, a.drecurrent_kernel, a.dbias};
    T* p = part_.data() + (team.rank - 1) * PartSize();
    return Acc{p, p + I * GU, p + (I + U) * GU};
  }

  // R^T ([G*U, U]) for the backward's per-step products, which then read
  // their right operand row by row (packed: this member's panels of it), and
  // when streaming W^T ([G*U, I]) for dx; also zeroes this member's columns
  // of the streamed gradients (with rows_: all of its accumulators). The
  // loop's first Sync precedes any use (with rows_, which has none, this
  // function ends with one).
  void PrepareBackward(const Team& team, const BackwardArgs<T>& a, Range own, bool rec_bias) {
    const Range rows = Split(GU, team.size, team.rank);
    if (rows.size() > 0) {
      if (!packed_)
        Blk(rt_.data() + rows.begin * U, rows.size(), U, U) =
            CBlk(a.recurrent_kernel + rows.begin, U, rows.size(), GU).transpose();
      if (stream_ && a.dx != nullptr)
        Blk(wt_.data() + rows.begin * I, rows.size(), I, I) =
            CBlk(a.kernel + rows.begin, I, rows.size(), GU).transpose();
    }
    const Range cols = PanelShare(team, own);
    if (bf16_) {
      // R^T and W^T with each gate's block padded to whole pairs (see
      // RecTMul); members pack a share of W^T's panels.
      const Index kq = G * Pairs(U);
      if (cols.size() > 0)
        PackBf16(GU, cols.size(), a.recurrent_kernel + cols.begin * GU, GU, true,
                 rtpb_.data() + cols.begin / kBf16Panel * kq * kBf16Panel, G);
      const Range ip = Split(I, team.size, team.rank, kBf16Panel);
      if (a.dx != nullptr && ip.size() > 0)
        PackBf16(GU, ip.size(), a.kernel + ip.begin * GU, GU, true,
                 wtb_.data() + ip.begin / kBf16Panel * kq * kBf16Panel, G);
    } else if (packed_ && cols.size() > 0) {
      const T* r = a.recurrent_kernel + cols.begin * GU;
      PackPanels<T>(GU, cols.size(), [&](Index k, Index j) { return r[j * GU + k]; },
                    rtp_.data() + cols.begin / kPanel<T> * GU * kPanel<T>);
    }
    if (StepBias() && own.size() > 0) {  // summed step by step from here (StepWeightGrads)
      for (int g = 0; g < G; ++g) {
        const Index c = g * U + own.begin;
        Row<T>(a.dbias + c, own.size()).setZero();
        if (rec_bias) Row<T>(a.dbias + GU + c, own.size()).setZero();
      }
    }
    if (stream_ && own.size() > 0) {
      const Acc acc = Accumulators(team, a);
      for (int g = 0; g < G; ++g) {
        const Index c = g * U + own.begin;
        Blk(acc.dk + c, I, own.size(), GU).setZero();
        Blk(acc.dr + c, U, own.size(), GU).setZero();
        if (has_bias) {
          Row<T>(acc.db + c, own.size()).setZero();
          if (rec_bias) Row<T>(acc.db + GU + c, own.size()).setZero();
        }
      }
    }
    if (rows_) team.Sync();
  }

  // out[B, up] (+)= A[B, k] @ rows [c, c + k) of R^T, this member's columns;
  // rows: only rows [rows.begin, rows.end) of A and out (default: all B).
  void RecTMul(Index c, Index k, Range own, const T* A, Index lda, T* out, Index ldo,
               bool accumulate, Range rows = {0, -1}) const {
    if (rows.end < 0) rows.end = B;
    A += rows.begin * lda;
    out += rows.begin * ldo;
    if (bf16_) {  // c and k are whole gates: pairs of gate blocks padded to even
      const Index uq = Pairs(U), kq = k / U * uq, la = Bf16RowStride(kq);
      Pair* a16 = Bf16Scratch(0, static_cast<std::size_t>(rows.size() * la));
      ToBf16Rows(rows.size(), k, A, lda, a16, la, k / U);
      MulBf16(rows.size(), own.size(), kq, false, a16, la,
              rtpb_.data() + own.begin / kBf16Panel * G * uq * kBf16Panel + c / U * uq * kBf16Panel,
              G * uq * kBf16Panel, out, ldo, accumulate);
    } else if (packed_) {
      GemmPacked<T>(rows.size(), own.size(), k, A, lda,
                    rtp_.data() + own.begin / kPanel<T> * GU * kPanel<T> + c * kPanel<T>,
                    GU * kPanel<T>, out, ldo, accumulate);
    } else {
      Gemm<T>(false, false, rows.size(), own.size(), k, A, lda, rt_.data() + c * U + own.begin, U,
              out, ldo, accumulate);
    }
  }
  // out[B, up] (+)= A[B, U] @ R[:, gate g's columns of this member's units].
  // rows: only rows [rows.begin, rows.end) of A and out (default: all B).
  void RecMul(int g, Range own, const T* A, Index lda, T* out, Index ldo, bool accumulate,
              Range rows = {0, -1}) const {
    const Index up = own.size();
    if (rows.end < 0) rows.end = B;
    A += rows.begin * lda;
    out += rows.begin * ldo;
    if (bf16_) {
      const Index la = Bf16RowStride(Pairs(U));
      Pair* a16 = Bf16Scratch(0, static_cast<std::size_t>(rows.size() * la));
      ToBf16Rows(rows.size(), U, A, lda, a16, la);
      RecMulBf16(g, own, a16, la, rows.size(), out, ldo, accumulate);
    } else if (packed_) {
      GemmPacked<T>(rows.size(), up, U, A, lda,
                    rpp_.data() + g * PackedSize<T>(U, U) + own.begin / kPanel<T> * U * kPanel<T>,
                    U * kPanel<T>, out, ldo, accumulate);
    } else {
      if (direct_ && !accumulate) return DirectMul(g, g + 1, own, A, out);
      if (direct_)
        return Gemm<T>(false, false, rows.size(), up, U, A, lda, r_direct_ + g * U + own.begin, GU,
                       out, ldo, true);
      Gemm<T>(false, false, rows.size(), up, U, A, lda, Rp(own) + g * up, G * up, out, ldo,
              accumulate);
    }
  }

  // One row's out[(g1 - g0) * up] = a[U] @ R[:, gates [g0, g1) of this
  // member's units], R read where it lies (direct_), gate blocks in `out`
  // up apart. A member that owns all units reads gates [g0, g1) as one span
  // of columns (wider blocks of Gemv: more of R's lines in flight).
  void DirectMul(int g0, int g1, Range own, const T* a, T* out) const {
    const Index up = own.size();
    if (up == U) return Gemv<T>(U, (g1 - g0) * U, a, r_direct_ + g0 * U, GU, out);
    for (int g = g0; g < g1; ++g)
      Gemv<T>(U, up, a, r_direct_ + g * U + own.begin, GU, out + (g - g0) * up);
  }

  // RecMul from A already in bf16 pairs ([nr, Pairs(U)], rows layout, rows
  // la pairs apart).
  void RecMulBf16(int g, Range own, const Pair* a16, Index la, Index nr, T* out, Index ldo,
                  bool accumulate) const {
    const Index uq = Pairs(U);
    MulBf16(nr, own.size(), uq, false, a16, la,
            rpb_.data() + g * Bf16PanelPairs(uq, U) + own.begin / kBf16Panel * uq * kBf16Panel,
            uq * kBf16Panel, out, ldo, accumulate);
  }

  // ---- layout ----
  Index Slots() const { return training ? Tn + 1 : 2; }
  Index Slot(Index s) const { return training ? s : (s & 1); }
  // State entering step s (s = 0: the initial state), [B, U].
  T* H(Index s) const { return hs_.data() + Slot(s) * B * U; }
  // H(s) times recurrent dropout mask k.
  T* Hd(int k, Index s) const { return hd_.data() + (k * Slots() + Slot(s)) * B * U; }
  // Gate values of step s, [B, G*U]; the backward overwrites them with dL/d(pre-activation).
  T* Gates(Index s) const { return gates_.data() + (gate_slots_ == Tn ? s : (s & 1)) * B * GU; }
  T* Work(int k) const { return work_.data() + k * B * U; }
  T* BiasWork() const { return bias_work_.data(); }  // [G*U] scratch for a cell's bias
  Index XsCopies() const { return (n_in == G && G > 1) ? G : 1; }
  int InIdx(int g) const { return n_in == G ? g : 0; }
  int RecIdx(int g) const { return n_rec == G ? g : 0; }
  // Input of step s, time-major, with gate g's dropout mask applied: [B, I].
  const T* Xs(int g, Index s = 0) const {
    return xs_.data() + ((XsCopies() > 1 ? g : 0) * Tn + s) * B * I;
  }
  // Left operand of gate g's recurrent product at step s, [B, U].
  const T* RecSource(int g, Index s) const { return n_rec > 0 ? Hd(RecIdx(g), s) : H(s); }
  const T* RecMask(int g) const { return rec_mask_.data() + RecIdx(g) * B * U; }
  const T* InMask(int g) const { return in_mask_.data() + InIdx(g) * B * I; }
  bool StepOn(Index s, Index b) const { return !has_mask || step_mask_.data()[s * B + b] != 0; }
  Index Orig(Index s) const { return go_backwards ? Tn - 1 - s : s; }
  Range Units(const Team& team) const {
    if (rows_) return Range{0, U};
    return Split(U, team.size, team.rank, packed_ ? PanelWidth() : kAlign);
  }
  Index PanelWidth() const { return bf16_ ? kBf16Panel : kPanel<T>; }
  // The units whose panels this member packs: its own, or with rows_ (all
  // members share every panel) a share of them.
  Range PanelShare(const Team& team, Range own) const {
    return rows_ ? Split(U, team.size, team.rank, PanelWidth()) : own;
  }
  // The batch rows this member runs the time loop for (all without rows_).
  Range Rows(const Team& team) const {
    return rows_ ? Split(B, team.size, team.rank) : Range{0, B};
  }
  // The end of a forward step: members that split units wait for each other
  // (the next product reads every unit of h); members that split rows do not.
  void StepSync(const Team& team) const {
    if (!rows_) team.Sync();
  }

  // Threads for the forward just begun, and whether they split rows (see
  // kMinRows). Call after Begin, before ParallelRun.
  int ForwardThreads() {
    rows_ = false;
    row_threads_ = 1;
    const int by_units = UnitThreads();
    const double l2 = static_cast<double>(L2CacheBytes());
    const double weights = static_cast<double>(G) * static_cast<double>(I + U) *
                           static_cast<double>(U) * sizeof(T);
    if (training) {
      // Training splits rows only when the backward can too: each member
      // then reads all the weights and streams its own weight-gradient
      // accumulators (one input copy): no barrier at any step, forward or
      // backward, and no gate cache re-read after the loop (Sapphire Rapids,
      // 2 MiB L2, C++ paired runs: W3 training steps SimpleRNN 36-42 ->
      // 27-33 ms, LSTM 146-155 -> 130, GRU 109-112 -> 92-97). While the
      // weights fit in twice the L2 (as for inference below): on Zen 4 (1
      // MiB L2), W3's LSTM (1.5 MiB) and GRU (1.2 MiB) layers trained
      // 0-20% and 7-10% faster split by rows, the most where the host's
      // memory was contended; float32 and bf16 alike. From about 3x the L2
      // on, the streamed accumulators cost more than the barriers saved
      // (Zen 4, U = 512 LSTM, 5 MiB: 261 -> 294 ms; U = 768, 12 MiB: 298 ->
      // 318; at W4 on Sapphire Rapids, 12 MiB for SimpleRNN, 1.4x slower).
      // Splitting rows in the forward alone left the caches in the other
      // core's L2 for a backward that splits units (C++, 2 threads, Zen 4:
      // W1 training steps 20-40% slower).
      if (XsCopies() != 1 || weights > 2.0 * l2) return by_units;
    } else if (packed_ && weights > 2.0 * l2) {
      // Packed kernels too, while all their panels fit in twice the L2 (each
      // member then reads all of them at every step, not half): W3 (1.5 MiB
      // of panels) inference 11-18% faster on Zen 4, W4 (24 MiB) no faster.
      return by_units;
    }
    const Index by_rows = std::min<Index>(GetNumThreads(), B / kMinRows);
    const double flops = 2.0 * static_cast<double>(B * Tn) * static_cast<double>(I + U) *
                         static_cast<double>(GU);
    if (by_rows >= 2 && flops >= kRowSplitFlops && !RecentlyContended()) {
      rows_ = true;
      row_threads_ = static_cast<int>(by_rows);
      return row_threads_;
    }
    return by_units;
  }
  T* Scratch(Range own) const { return scratch_.data() + B * G * own.begin; }  // [B, G*Up]
  const T* Rp(Range own) const { return rp_.data() + U * G * own.begin; }       // [U, G*Up]

  // ---- forward phases ----

  // Time-major copies of x (reversed with go_backwards, times the input
  // dropout masks), the step mask in processing order, the dropout masks,
  // the initial state of this member's units, and this member's packed slice
  // of the recurrent kernel. Needs a Sync before ProjectInputs.
  void PrepareInputs(const Team& team, const ForwardArgs<T>& a, Range own) {
    // Rows outside, steps inside: a row's steps are contiguous in x, so the
    // reads stream (steps outside read B lines Tn * I apart per step: W2's
    // inference spent 5% of its time in these copies).
    const Range steps = Split(Tn, team.size, team.rank);
    for (Index b = 0; b < B; ++b) {
      for (Index s = steps.begin; s < steps.end; ++s) {
        const Index t = Orig(s);
        const T* src = a.x + (b * Tn + t) * I;
        for (Index k = 0; k < XsCopies(); ++k) {
          T* dst = xs_.data() + ((k * Tn + s) * B + b) * I;
          if (n_in > 0) {
            Row<T>(dst, I) = ConstRow<T>(src, I) * ConstRow<T>(a.input_dropout + (k * B + b) * I, I);
          } else {
            Row<T>(dst, I) = ConstRow<T>(src, I);
          }
        }
        if (has_mask) step_mask_.data()[s * B + b] = a.mask[b * Tn + t] != 0;
      }
    }
    if (team.rank == 0 && n_in > 0)
      std::memcpy(in_mask_.data(), a.input_dropout, sizeof(T) * static_cast<std::size_t>(n_in * B * I));
    const Index up = own.size();
    if (up == 0) return;
    const Range rows = Rows(team);
    const Index r0 = rows.begin, nr = rows.size(), o = r0 * U + own.begin;
    CopyOrZero(a.h0, own, H(0), rows);
    const auto h0 = CBlk(H(0) + o, nr, up, U);
    for (int k = 0; k < n_rec; ++k) {
      Blk(rec_mask_.data() + k * B * U + o, nr, up, U) =
          CBlk(a.recurrent_dropout + k * B * U + o, nr, up, U);
      Blk(Hd(k, 0) + o, nr, up, U) = h0 * CBlk(RecMask(k) + o, nr, up, U);
    }
    // Packed recurrent kernel: this member's columns of every gate, side by
    // side, so that a step's product is one GEMM; or, for big kernels, each
    // gate's panels of this member's units.
    if (bf16_) {  // the same, as panels of bf16 pairs
      const Range cols = PanelShare(team, own);
      const Index pu = cols.size(), p0 = cols.begin / kBf16Panel, uq = Pairs(U), iq = Pairs(I);
      for (int g = 0; g < G && pu > 0; ++g) {
        PackBf16(U, pu, a.recurrent_kernel + g * U + cols.begin, GU, false,
                 rpb_.data() + g * Bf16PanelPairs(uq, U) + p0 * uq * kBf16Panel);
        if (fused_)
          PackBf16(I, pu, a.kernel + g * U + cols.begin, GU, false,
                   wpb_.data() + g * Bf16PanelPairs(iq, U) + p0 * iq * kBf16Panel);
      }
      if (joint_ && team.rank == 0) {  // small: one member packs them (Prologue syncs)
        PackBf16(U, GU, a.recurrent_kernel, GU, false, rpj_.data());
        if (fused_) PackBf16(I, GU, a.kernel, GU, false, wpj_.data());
      }
      return;
    }
    if (packed_) {
      const Range cols = PanelShare(team, own);
      const Index pu = cols.size(), p0 = cols.begin / kPanel<T>;
      for (int g = 0; g < G && pu > 0; ++g) {
        const T* r = a.recurrent_kernel + g * U + cols.begin;
        PackPanels<T>(U, pu, [&](Index k, Index j) { return r[k * GU + j]; },
                      rpp_.data() + g * PackedSize<T>(U, U) + p0 * U * kPanel<T>);
        if (!fused_) continue;
        const T* w = a.kernel + g * U + cols.begin;
        PackPanels<T>(I, pu, [&](Index k, Index j) { return w[k * GU + j]; },
                      wpp_.data() + g * PackedSize<T>(I, U) + p0 * I * kPanel<T>);
      }
      return;
    }
    if (direct_) return;  // R is read where it lies
    // Members that split rows share one copy of R: each copies some of its rows.
    const Range k = rows_ ? Split(U, team.size, team.rank) : Range{0, U};
    T* rp = rp_.data() + U * G * own.begin + k.begin * G * up;
    const T* r = a.recurrent_kernel + k.begin * GU + own.begin;
    for (int g = 0; g < G; ++g)
      Blk(rp + g * up, k.size(), up, G * up) = CBlk(r + g * U, k.size(), up, GU);
  }

  // Everything before the time loop: PrepareInputs, then ProjectInputs.
  // bias: [G*U] added to every step's projection, or null.
  void Prologue(const Team& team, const ForwardArgs<T>& a, Range own, const T* bias) {
    if (team.rank == 0) step_bias_ = bias;  // for ProjectStep, after the Sync below
    PrepareInputs(team, a, own);
    team.Sync();
    if (fused_) return;  // ProjectStep projects each step in the loop
    if (FewDirectRows()) {
      // Each member projects its own units' columns: the loop reads no
      // other member's, so no Sync.
      ProjectOwnColumns(own, a.kernel, bias);
      return;
    }
    ProjectInputs(team, a.kernel, bias);
    team.Sync();
  }

  // A one-row forward of a few steps (direct_: a streamed step, batch-1
  // serving of a short sequence) projects its inputs column-wise, with Gemv:
  // split by rows, the whole projection of one step fell to one member (the
  // other waiting at the barrier), and RowBlocks' 6-row tiles computed one
  // row (LSTM, U=256, I=32, one step: 3 of 18 us on one thread). Gemv sums
  // over k in order for every column, so the bits do not depend on how the
  // members split the columns (nor does the recurrent product's, DirectMul).
  bool FewDirectRows() const { return direct_ && Tn * B <= kFewDirectRows; }
  static constexpr Index kFewDirectRows = 8;

  // Gates(s)[:, own units of every gate] = Xs(s) @ kernel + bias for every
  // step (FewDirectRows): W's columns read where they lie.
  void ProjectOwnColumns(Range own, const T* kernel, const T* bias) const {
    const Index up = own.size();
    if (up == 0) return;
    for (Index row = 0; row < Tn * B; ++row) {
      T* out = gates_.data() + row * GU;
      if (up == U && XsCopies() == 1) {  // all gates as one span of columns
        Gemv<T>(I, GU, Xs(0) + row * I, kernel, GU, out);
      } else {
        for (int g = 0; g < G; ++g)
          Gemv<T>(I, up, Xs(g) + row * I, kernel + g * U + own.begin, GU, out + g * U + own.begin);
      }
      if (bias == nullptr) continue;
      for (int g = 0; g < G; ++g)
        Row<T>(out + g * U + own.begin, up) += ConstRow<T>(bias + g * U + own.begin, up);
    }
  }

  // Gates(s)[:, this member's units of every gate] = Xs(s) @ kernel + bias,
  // from W's packed panels (fused_ only).
  void ProjectStep(Index s, Range own, Range rows) const {
    const Index up = own.size(), iq = Pairs(I), lx = Bf16RowStride(iq);
    Pair* x16 = nullptr;
    if (bf16_) {  // the step's inputs as bf16 pairs once, for every gate
      x16 = Bf16Scratch(0, static_cast<std::size_t>(rows.size() * lx));
      ToBf16Rows(rows.size(), I, Xs(0, s) + rows.begin * I, I, x16, lx);
    }
    const bool joint = joint_ && up == U;
    if (joint)  // every gate in one product (see joint_)
      MulBf16(rows.size(), GU, iq, false, x16, lx, wpj_.data(), iq * kBf16Panel,
              Gates(s) + rows.begin * GU, GU, false);
    for (int g = 0; g < G; ++g) {
      T* out = Gates(s) + rows.begin * GU + g * U + own.begin;
      if (bf16_ && !joint) {
        MulBf16(rows.size(), up, iq, false, x16, lx,
                wpb_.data() + g * Bf16PanelPairs(iq, U) + own.begin / kBf16Panel * iq * kBf16Panel,
                iq * kBf16Panel, out, GU, false);
      } else if (!bf16_) {
        GemmPacked<T>(rows.size(), up, I, Xs(0, s) + rows.begin * I, I,
                      wpp_.data() + g * PackedSize<T>(I, U) + own.begin / kPanel<T> * I * kPanel<T>,
                      I * kPanel<T>, out, GU, false);
      }
      if (step_bias_ == nullptr || joint) continue;
      const ConstRow<T> b(step_bias_ + g * U + own.begin, up);
      for (Index r = 0; r < rows.size(); ++r) Row<T>(out + r * GU, up) += b;
    }
    if (joint && step_bias_ != nullptr) {  // whole rows of every gate
      const ConstRow<T> b(step_bias_, GU);
      for (Index r = rows.begin; r < rows.end; ++r) Row<T>(Gates(s) + r * GU, GU) += b;
    }
  }

  // Gates(s) = Xs(s) @ kernel + bias for every step: one GEMM per member
  // (per gate with per-gate input masks), split by rows. Adding the bias here,
  // row by row, keeps the per-step gate pass free of broadcasts. (Members
  // that split the batch's rows too: projecting only their own rows, a GEMM
  // per step, was no faster, C++ paired runs on Zen 4.)
  void ProjectInputs(const Team& team, const T* kernel, const T* bias) {
    const Range r = Split(Tn * B, team.size, team.rank);
    if (r.size() == 0) return;
    if (bf16_) {  // per-gate input masks (otherwise fused_): every member packs all of W
      const Index iq = Pairs(I), lx = Bf16RowStride(iq);
      Pair* w16 = Bf16Scratch(2, static_cast<std::size_t>(Bf16PanelPairs(iq, U)));
      Pair* x16 = Bf16Scratch(1, static_cast<std::size_t>(r.size() * lx));
      for (int g = 0; g < XsCopies(); ++g) {
        PackBf16(I, U, kernel + g * U, GU, false, w16);
        ToBf16Rows(r.size(), I, Xs(g) + r.begin * I, I, x16, lx);
        MulBf16(r.size(), U, iq, false, x16, lx, w16, iq * kBf16Panel,
                gates_.data() + r.begin * GU + g * U, GU, false);
      }
    } else if (XsCopies() > 1) {
      for (int g = 0; g < G; ++g)
        Gemm<T>(false, false, r.size(), U, I, Xs(g) + r.begin * I, I, kernel + g * U, GU,
                gates_.data() + r.begin * GU + g * U, GU, false);
    } else {
      Gemm<T>(false, false, r.size(), GU, I, Xs(0) + r.begin * I, I, kernel, GU,
              gates_.data() + r.begin * GU, GU, false);
    }
    if (bias == nullptr) return;
    const ConstRow<T> b(bias, GU);
    for (Index row = r.begin; row < r.end; ++row) Row<T>(gates_.data() + row * GU, GU) += b;
  }

  // Scratch(own)[:, g-th block] = RecSource(g, s) @ packed kernel, for gates
  // [g0, g1) of this member's units.
  // Called once per step by every cell, before its gate pass (which reads
  // Gates(s)); with fused_ it also projects the step's input first.
  // rows: this member's rows (Rows(team)).
  void RecurrentProduct(Index s, Range own, int g0, int g1, Range rows) const {
    const Index up = own.size();
    if (up == 0) return;
    if (fused_) ProjectStep(s, own, rows);
    const Index r0 = rows.begin, nr = rows.size();
    T* out = Scratch(own) + r0 * G * up;
    if (bf16_) {  // h_{s-1} as bf16 pairs once for the gates that share it
      const Index lh = Bf16RowStride(Pairs(U));
      Pair* h16 = Bf16Scratch(0, static_cast<std::size_t>(nr * lh));
      bool joint = joint_ && up == U && g0 == 0;  // gates [0, g1) side by side in one product
      for (int g = g0; g < g1 && joint; ++g) joint = RecSource(g, s) == RecSource(g0, s);
      if (joint) {
        ToBf16Rows(nr, U, RecSource(0, s) + r0 * U, U, h16, lh);
        MulBf16(nr, g1 * U, Pairs(U), false, h16, lh, rpj_.data(), Pairs(U) * kBf16Panel, out,
                GU, false);
        return;
      }
      const T* converted = nullptr;
      for (int g = g0; g < g1; ++g) {
        if (RecSource(g, s) != converted) {
          converted = RecSource(g, s);
          ToBf16Rows(nr, U, converted + r0 * U, U, h16, lh);
        }
        RecMulBf16(g, own, h16, lh, nr, out + g * up, G * up, false);
      }
    } else if (direct_ && (n_rec != G || G == 1)) {
      // Every gate multiplies the same h: one pass over R's columns.
      DirectMul(g0, g1, own, RecSource(g0, s) + r0 * U, out + g0 * up);
    } else if (packed_ || direct_) {
      for (int g = g0; g < g1; ++g)
        RecMul(g, own, RecSource(g, s), U, Scratch(own) + g * up, G * up, false, rows);
    } else if (n_rec == G && G > 1) {
      for (int g = g0; g < g1; ++g)
        Gemm<T>(false, false, nr, up, U, RecSource(g, s) + r0 * U, U, Rp(own) + g * up, G * up,
                out + g * up, G * up, false);
    } else {
      Gemm<T>(false, false, nr, (g1 - g0) * up, U, RecSource(g0, s) + r0 * U, U,
              Rp(own) + g0 * up, G * up, out + g0 * up, G * up, false);
    }
  }

  // Where row b of step s's new state goes, for the fused per-row passes:
  // H(s + 1), the output y, the recurrent-dropout copies; `on` is false for a
  // masked row, whose state the caller carries from `prev` (H(s)).
  struct StateRow {
    T* h;
    T* y;
    const T* prev;
    T* hd[4];
    const T* mask[4];
    int n_rec;
    bool on;
  };
  StateRow RowOf(const ForwardArgs<T>& a, Index s, Index b, Range own) const {
    StateRow r;
    FillRow(a, s, b, own, r);
    return r;
  }
  // RowOf into an existing StateRow: field by field, so that a row kept in an
  // array is not copied as a whole (a copy read 16-byte pairs of fields just
  // stored 8 bytes at a time: store-forwarding stalls, W1 LSTM ~1.5 us/step).
  EIGEN_ALWAYS_INLINE void FillRow(const ForwardArgs<T>& a, Index s, Index b, Range own,
                                   StateRow& r) const {
    const Index o = b * U + own.begin;
    r.h = H(s + 1) + o;
    r.y = a.y == nullptr ? nullptr : a.y + (b * Tn + s) * U + own.begin;
    r.prev = H(s) + o;
    r.n_rec = n_rec;
    for (int k = 0; k < n_rec; ++k) {
      r.hd[k] = Hd(k, s + 1) + o;
      r.mask[k] = RecMask(k) + o;
    }
    r.on = StepOn(s, b);
  }
  // Stores units [j, j + n) of a row's new state h.
  static EIGEN_ALWAYS_INLINE void StoreState(const StateRow& r, Index j, Index n,
                                             const Packet<T>& h) {
    StoreN(r.h + j, h, n);
    if (r.y != nullptr) StoreN(r.y + j, h, n);
    for (int k = 0; k < r.n_rec; ++k) StoreN(r.hd[k] + j, pk::pmul(h, LoadN(r.mask[k] + j, n)), n);
  }

  // Rows masked at step s get `from` instead of `to` for this member's units
  // (and rows).
  void CarryMasked(Index s, Range own, const T* from, T* to, Range rows) const {
    if (!has_mask) return;
    for (Index b = rows.begin; b < rows.end; ++b)
      if (!StepOn(s, b))
        std::memcpy(to + b * U + own.begin, from + b * U + own.begin,
                    sizeof(T) * static_cast<std::size_t>(own.size()));
  }

  void WriteLast(T* dst, const T* state, Range own, Range rows) const {
    const Index o = rows.begin * U + own.begin;
    if (dst != nullptr && own.size() > 0)
      Blk(dst + o, rows.size(), own.size(), U) = CBlk(state + o, rows.size(), own.size(), U);
  }
  void WriteLast(T* dst, const T* state, Range own) const { WriteLast(dst, state, own, {0, B}); }

  // ---- backward phases ----

  // dst[:, own] = src[:, own], or zeros without src: initial states, and the
  // gradients entering the last step.
  void CopyOrZero(const T* src, Range own, T* dst, Range rows) const {
    if (own.size() == 0) return;
    const Index o = rows.begin * U + own.begin;
    auto d = Blk(dst + o, rows.size(), own.size(), U);
    if (src != nullptr) {
      d = CBlk(src + o, rows.size(), own.size(), U);
    } else {
      d.setZero();
    }
  }
  void CopyOrZero(const T* src, Range own, T* dst) const { CopyOrZero(src, own, dst, {0, B}); }

  // Row b of dy at step s, this member's units (null without dy).
  const T* OutputGradRow(const BackwardArgs<T>& a, Index s, Index b, Range own) const {
    return a.dy == nullptr ? nullptr : a.dy + (b * Tn + s) * U + own.begin;
  }

  // dh_tot[:, own] = dy[:, s, own] + dh_rec[:, own].
  void GatherOutputGrad(const BackwardArgs<T>& a, Index s, Range own, const T* dh_rec,
                        T* dh_tot) const {
    const Index up = own.size();
    auto out = Blk(dh_tot + own.begin, B, up, U);
    const auto rec = CBlk(dh_rec + own.begin, B, up, U);
    if (a.dy != nullptr) {
      out = CBlk(a.dy + s * U + own.begin, B, up, Tn * U) + rec;
    } else {
      out = rec;
    }
  }

  // Where gate g's recurrent-side gradient and its left operand live (for
  // the recurrent products and dL/drecurrent_kernel).
  struct RecGrads {
    const T* dg[4];   // [Tn*B, U] blocks, row stride ld[g]
    Index ld[4];
    const T* src[4];  // left operand of gate g's recurrent product, [Tn*B, U]
  };
  // Default: gradients in the gate cache, operands the (masked) states.
  RecGrads DefaultRecGrads() const {
    RecGrads r{};
    for (int g = 0; g < G; ++g) {
      r.dg[g] = gates_.data() + g * U;
      r.ld[g] = GU;
      r.src[g] = RecSource(g, 0);
    }
    return r;
  }

  // Streaming: step s's share of dL/dkernel, dL/drecurrent_kernel and dL/dbias
  // for this member's units (their columns only: no Sync needed), or with
  // rows_ this member's rows' share, into its Accumulators.
  void StepWeightGrads(const Team& team, Index s, Range own, const BackwardArgs<T>& a,
                       const RecGrads& rg, bool rec_bias) const {
    const Index up = own.size();
    if (up == 0) return;
    if (!stream_) {
      if (StepBias()) StepBiasGrads(s, own, a, rg, rec_bias);
      return;
    }
    const Acc acc = Accumulators(team, a);
    const Range rows = Rows(team);
    const Index r0 = rows.begin, nr = rows.size();
    if (nr == 0) return;
    if (Staged()) return StagedWeightGrads(team, s, a, rg, rec_bias);
    // A member that owns every unit has each gate's columns right after the
    // previous gate's: gates then merge into one wider product (W1, U = 20:
    // N = 80, five full packets, instead of four N = 20 whose second packets
    // are a quarter full), as long as they share a left operand.
    auto run_end = [&](int g0, auto same) {
      int g1 = g0 + 1;
      while (g1 < G && up == U && same(g0, g1)) ++g1;
      return g1;
    };
    for (int g0 = 0, g1; g0 < G; g0 = g1) {
      g1 = run_end(g0, [&](int, int) { return XsCopies() == 1; });
      const Index c = g0 * U + own.begin, n = (g1 - g0) * up;
      const T* dgi = Gates(s) + r0 * GU + c;
      Gemm<T>(true, false, I, n, nr, Xs(g0, s) + r0 * I, I, dgi, GU, acc.dk + c, GU, true);
      if (has_bias) AddColumnSums(dgi, nr, n, GU, acc.db + c);
    }
    for (int g0 = 0, g1; g0 < G; g0 = g1) {
      g1 = run_end(g0, [&](int f, int g) {
        return rg.dg[g] == rg.dg[f] + (g - f) * U && rg.ld[g] == rg.ld[f] && rg.src[g] == rg.src[f];
      });
      const Index c = g0 * U + own.begin, n = (g1 - g0) * up;
      const T* dgr = rg.dg[g0] + (s * B + r0) * rg.ld[g0] + own.begin;
      Gemm<T>(true, false, U, n, nr, rg.src[g0] + (s * B + r0) * U, U, dgr, rg.ld[g0], acc.dr + c,
              GU, true);
      if (has_bias && rec_bias) AddColumnSums(dgr, nr, n, rg.ld[g0], acc.db + GU + c);
    }
  }

  // With rows_, a member's rows of one step are few (W3: 32), so a step's
  // weight-gradient products have K = 32 and read and write the whole
  // accumulators for little arithmetic; past the L2 (W3's LSTM: 1.5 MiB of
  // them per member) that traffic bounds them. So the operands of
  // kStageSteps steps are copied side by side (K = 4 x 32) and multiplied
  // once: C++ microbenchmark of a member's W3 LSTM products, one core,
  // 74 -> 102 GFLOP/s with the copies.
  static constexpr Index kStageSteps = 4;
  bool Staged() const { return staged_; }
  // Floats per staged row: the step's gate gradients (G*U), the left
  // operands of the dW groups (at most G x I) and of the dR groups (at most
  // G x U), and gradients of the dR groups not in the gate cache (at most G*U).
  Index StageWidth() const { return 2 * GU + G * (I + U); }
  // Kept small and out of line (memcpy, not Eigen block copies): with the
  // copies inlined here GCC inlined less in the cells' other code, and W1's
  // LSTM forward, which never stages, ran 3-8% slower.
  EIGEN_DONT_INLINE void StagedWeightGrads(const Team& team, Index s, const BackwardArgs<T>& a,
                                           const RecGrads& rg, bool rec_bias) const {
    const Acc acc = Accumulators(team, a);
    const Range rows = Rows(team);
    const Index r0 = rows.begin, nr = rows.size(), S = kStageSteps;
    // Steps run from Tn - 1 down: step s fills slot j; the last slot, or
    // step 0, multiplies the filled slots.
    const Index j = (Tn - 1 - s) % S;
    const bool flush = j == S - 1 || s == 0;
    const Index K = (j + 1) * nr;
    // This member's stage: regions of [S * nr, width] one after another.
    T* next = stage_.data() + S * r0 * StageWidth();
    auto region = [&](Index width) {
      T* r = next;
      next += S * nr * width;
      return r;
    };
    auto put = [&](T* dst, Index width, const T* src, Index ld) {
      dst += j * nr * width;
      if (ld == width) {  // the rows are contiguous
        std::memcpy(dst, src, sizeof(T) * static_cast<std::size_t>(nr * width));
        return;
      }
      for (Index r = 0; r < nr; ++r)
        std::memcpy(dst + r * width, src + r * ld, sizeof(T) * static_cast<std::size_t>(width));
    };
    T* dg = region(GU);  // the step's gate gradients, all columns
    put(dg, GU, Gates(s) + r0 * GU, GU);
    // As StepWeightGrads: the member owns every unit, so gates sharing a
    // left operand are one product.
    for (int g0 = 0, g1; g0 < G; g0 = g1) {
      g1 = g0 + 1;
      while (g1 < G && XsCopies() == 1) ++g1;
      const Index c = g0 * U, n = (g1 - g0) * U;
      T* x = region(I);
      put(x, I, Xs(g0, s) + r0 * I, I);
      if (has_bias) AddColumnSums(Gates(s) + r0 * GU + c, nr, n, GU, acc.db + c);
      if (flush) Gemm<T>(true, false, I, n, K, x, I, dg + c, GU, acc.dk + c, GU, true);
    }
    for (int g0 = 0, g1; g0 < G; g0 = g1) {
      g1 = g0 + 1;
      while (g1 < G && rg.dg[g1] == rg.dg[g0] + (g1 - g0) * U && rg.ld[g1] == rg.ld[g0] &&
             rg.src[g1] == rg.src[g0])
        ++g1;
      const Index c = g0 * U, n = (g1 - g0) * U;
      const T* dgr = rg.dg[g0] + (s * B + r0) * rg.ld[g0];
      T* h = region(U);
      put(h, U, rg.src[g0] + (s * B + r0) * U, U);
      // Gradients in the gate cache are staged already; others (GRU's
      // recurrent h-gate part) get a region of their own.
      const T* bsrc = dg + c;
      Index ldb = GU;
      if (rg.dg[g0] != gates_.data() + c || rg.ld[g0] != GU) {
        T* own_b = region(n);
        put(own_b, n, dgr, rg.ld[g0]);
        bsrc = own_b;
        ldb = n;
      }
      if (has_bias && rec_bias) AddColumnSums(dgr, nr, n, rg.ld[g0], acc.db + GU + c);
      if (flush) Gemm<T>(true, false, U, n, K, h, U, bsrc, ldb, acc.dr + c, GU, true);
    }
  }

  // Without streaming (the weight gradients are products after the loop),
  // dL/dbias is still summed step by step, this member's units' columns of
  // every gate: their gradients are in its cache now, where after the loop
  // the sums were one more pass over the whole gate cache (W3 LSTM: 26 MB,
  // about 1.7% of a training step).
  bool StepBias() const { return has_bias && !stream_ && !rows_ && !bf16_; }
  void StepBiasGrads(Index s, Range own, const BackwardArgs<T>& a, const RecGrads& rg,
                     bool rec_bias) const {
    const Index up = own.size();
    // A member that owns every unit sums all gates' columns as one row.
    const int groups = up == U ? 1 : G;
    const Index n = up == U ? GU : up;
    for (int g = 0; g < groups; ++g) {
      const Index c = g * U + own.begin;
      AddColumnSums(Gates(s) + c, B, n, GU, a.dbias + c);
    }
    if (!rec_bias) return;
    for (int g = 0; g < G; ++g) {
      const Index c = g * U + own.begin;
      AddColumnSums(rg.dg[g] + s * B * rg.ld[g] + own.begin, B, up, rg.ld[g], a.dbias + GU + c);
    }
  }

  // Streaming: rows of dx for step s, a share of the input features (needs
  // every unit's gate gradients: after the step's Sync), or with rows_ all
  // features of this member's rows.
  // bf16: every step's dx this way (one input copy; otherwise after the
  // loop), from dG as bf16 pairs and W^T's panels, a share of the panels.
  void StepInputGrads(const Team& team, Index s, const BackwardArgs<T>& a) const {
    if (a.dx == nullptr || (bf16_ ? XsCopies() > 1 : !stream_)) return;
    const Range f =
        rows_ ? Range{0, I} : Split(I, team.size, team.rank, bf16_ ? kBf16Panel : kAlign);
    const Range rows = Rows(team);
    if (f.size() == 0 || rows.size() == 0) return;
    const Index r0 = rows.begin, nr = rows.size();
    T* dst = a.dx + (r0 * Tn + Orig(s)) * I + f.begin;  // row b at b * Tn * I
    if (bf16_) {
      const Index kq = G * Pairs(U), la = Bf16RowStride(kq);
      Pair* a16 = Bf16Scratch(0, static_cast<std::size_t>(nr * la));
      ToBf16Rows(nr, GU, Gates(s) + r0 * GU, GU, a16, la, G);
      MulBf16(nr, f.size(), kq, false, a16, la,
              wtb_.data() + f.begin / kBf16Panel * kq * kBf16Panel, kq * kBf16Panel, dst, Tn * I,
              false);
    } else {
      Gemm<T>(false, false, nr, f.size(), GU, Gates(s) + r0 * GU, GU, wt_.data() + f.begin, I,
              dst, Tn * I, false);
    }
    if (n_in > 0)
      Blk(dst, nr, f.size(), Tn * I) *= CBlk(InMask(0) + r0 * I + f.begin, nr, f.size(), I);
  }

  // out[rows, own] (+)= sum over g in [g0, g1) of (dG_g(s) @ R[own, g block]^T)
  // times gate g's recurrent dropout mask, with R^T from TransposeRecurrent.
  // tmp: a [B, U] scratch; rows: this member's rows (Rows(team)).
  void RecurrentGrad(Index s, Range own, const RecGrads& rg, int g0, int g1, T* out, T* tmp,
                     bool accumulate, Range rows) const {
    const Index up = own.size(), r0 = rows.begin, nr = rows.size();
    if (up == 0 || nr == 0) return;
    const Index o = r0 * U + own.begin;
    auto dst = Blk(out + o, nr, up, U);
    const bool contiguous = [&] {
      for (int g = g0 + 1; g < g1; ++g)
        if (rg.dg[g] != rg.dg[g0] + (g - g0) * U || rg.ld[g] != rg.ld[g0]) return false;
      return true;
    }();
    if (n_rec <= 1 && contiguous) {
      const Index k = (g1 - g0) * U;
      if (n_rec == 0) {
        RecTMul(g0 * U, k, own, rg.dg[g0] + s * B * rg.ld[g0], rg.ld[g0], out + own.begin, U,
                accumulate, rows);
        return;
      }
      RecTMul(g0 * U, k, own, rg.dg[g0] + s * B * rg.ld[g0], rg.ld[g0], tmp + own.begin, U,
              false, rows);
      const auto m = CBlk(RecMask(0) + o, nr, up, U);
      if (accumulate) {
        dst += CBlk(tmp + o, nr, up, U) * m;
      } else {
        dst = CBlk(tmp + o, nr, up, U) * m;
      }
      return;
    }
    for (int g = g0; g < g1; ++g) {
      RecTMul(g * U, U, own, rg.dg[g] + s * B * rg.ld[g], rg.ld[g], tmp + own.begin, U, false,
              rows);
      const auto t = CBlk(tmp + o, nr, up, U);
      if (n_rec > 0) {
        const auto m = CBlk(RecMask(g) + o, nr, up, U);
        if (accumulate || g > g0) {
          dst += t * m;
        } else {
          dst = t * m;
        }
      } else if (accumulate || g > g0) {
        dst += t;
      } else {
        dst = t;
      }
    }
  }

  // After the time loop: dL/dkernel, dL/drecurrent_kernel and dL/dbias (split
  // by columns), dL/dx (split by time steps). The input-side gradients are
  // the gate cache; rg says where the recurrent side's are.
  // separate_rec_bias: the bias has a second row for the recurrent side (GRU).
  void ParameterGrads(const Team& team, const BackwardArgs<T>& a, const RecGrads& rg,
                      bool separate_rec_bias) {
    const Index rows = Tn * B;
    const Range cols = Split(GU, team.size, team.rank, kAlign);
    if (bf16_) WeightGradsBf16(team, a, rg, separate_rec_bias);
    // Consecutive gates whose operands continue each other's (the same left
    // operand, right operands side by side) are one product: the left
    // operand is packed once instead of once per gate, and the wider product
    // runs faster (perf, W3 GRU, 1 thread: these products were 39% of the
    // step at 83 GFLOP/s, against 99-105 for the per-step ones).
    for (int g = 0; g < G && !bf16_;) {
      int e = g + 1;  // dW: gates [g, e) read the same input copy
      while (e < G && Xs(e) == Xs(g)) ++e;
      const Index c0 = std::max(cols.begin, g * U), c1 = std::min(cols.end, e * U);
      if (c1 > c0) {
        Gemm<T>(true, false, I, c1 - c0, rows, Xs(g), I, gates_.data() + c0, GU,
                a.dkernel + c0, GU, false);
        if (has_bias && !StepBias()) ColumnSums(gates_.data() + c0, rows, c1 - c0, GU, a.dbias + c0);
      }
      g = e;
    }
    for (int g = 0; g < G && !bf16_;) {
      int e = g + 1;  // dR: gates [g, e) with one source and gradients side by side
      while (e < G && rg.src[e] == rg.src[g] && rg.ld[e] == rg.ld[g] &&
             rg.dg[e] == rg.dg[e - 1] + U)
        ++e;
      const Index c0 = std::max(cols.begin, g * U), c1 = std::min(cols.end, e * U);
      if (c1 > c0) {
        const T* dg = rg.dg[g] + (c0 - g * U);
        Gemm<T>(true, false, U, c1 - c0, rows, rg.src[g], U, dg, rg.ld[g],
                a.drecurrent_kernel + c0, GU, false);
        if (has_bias && separate_rec_bias && !StepBias())
          ColumnSums(dg, rows, c1 - c0, rg.ld[g], a.dbias + GU + c0);
      }
      g = e;
    }
    // dx: this member's time steps, then scattered to batch-major order.
    const Range steps = Split(Tn, team.size, team.rank);
    if (steps.size() == 0 || a.dx == nullptr || (bf16_ && XsCopies() == 1)) return;
    const Index r0 = steps.begin * B, nr = steps.size() * B;
    const int groups = XsCopies() > 1 ? G : 1;
    for (int g = 0; g < groups; ++g) {
      const Index k = groups > 1 ? U : GU;
      if (bf16_) {  // W^T's panels from PrepareBackward; dG as bf16 in chunks of rows
        const Index uq = Pairs(U), kq = k / U * uq, la = Bf16RowStride(kq), chunk = 384;
        for (Index r = r0; r < r0 + nr; r += chunk) {
          const Index m = std::min(chunk, r0 + nr - r);
          Pair* a16 = Bf16Scratch(1, static_cast<std::size_t>(m * la));
          ToBf16Rows(m, k, gates_.data() + r * GU + g * U, GU, a16, la, k / U);
          MulBf16(m, I, kq, false, a16, la, wtb_.data() + g * uq * kBf16Panel,
                  G * uq * kBf16Panel, dxt_.data() + r * I, I, false);
        }
      } else {
        Gemm<T>(false, true, nr, I, k, gates_.data() + r0 * GU + g * U, GU, a.kernel + g * U, GU,
                dxt_.data() + r0 * I, I, false);
      }
      for (Index s = steps.begin; s < steps.end; ++s) {
        for (Index b = 0; b < B; ++b) {
          Row<T> dst(a.dx + (b * Tn + Orig(s)) * I, I);
          const ConstRow<T> src(dxt_.data() + (s * B + b) * I, I);
          if (n_in > 0) {
            const ConstRow<T> m(InMask(g) + b * I, I);
            if (g == 0) {
              dst = src * m;
            } else {
              dst += src * m;
            }
          } else {
            dst = src;
          }
        }
      }
    }
  }

  // ParameterGrads' weight gradients with bf16 GEMMs. First every member
  // converts a share of the left operands X^T and H^T (bf16 pairs along
  // T*B, one per distinct input copy or recurrent source: in the columns
  // layout, or with AMX in the rows layout its tiles load, converted once
  // instead of transposed by every GEMM that reads it); then each member
  // its columns, dG packed in slices of T*B.
  void WeightGradsBf16(const Team& team, const BackwardArgs<T>& a, const RecGrads& rg,
                       bool separate_rec_bias) {
    // Both layouts are right for both GEMM paths (the switch may change
    // before the GEMMs), but all members must use the same: BeginBackward
    // chose it.
    const bool trans = wg_rows_layout_;
    const Index rows = Tn * B, kq = Pairs(rows), lt = trans ? Bf16RowStride(kq) : kq;
    const T* src[8];
    Index width[8], at[8];
    int n = 0, xi[4], ri[4];
    auto find = [&](const T* p, Index w) {
      for (int i = 0; i < n; ++i)
        if (src[i] == p) return i;
      src[n] = p;
      width[n] = w;
      at[n] = n == 0 ? 0 : at[n - 1] + lt * width[n - 1];
      return n++;
    };
    for (int g = 0; g < G; ++g) xi[g] = find(Xs(g), I);
    for (int g = 0; g < G; ++g) ri[g] = find(rg.src[g], U);
    if (team.rank == 0)  // the others wait at the Sync below
      ops_.Reserve(static_cast<std::size_t>(at[n - 1] + lt * width[n - 1]));
    team.Sync();
    const Range qs = Split(kq, team.size, team.rank, trans ? 16 : 1);
    for (int i = 0; i < n; ++i) {
      if (trans) {
        ToBf16ColsT(rows, width[i], src[i], width[i], ops_.data() + at[i], lt, qs.begin, qs.end);
      } else {
        ToBf16Cols(rows, width[i], src[i], width[i], ops_.data() + at[i], width[i], qs.begin,
                   qs.end);
      }
    }
    team.Sync();
    // The left operand of pair rows [k0 / 2, ...) of source i, and its stride.
    auto left = [&](int i, Index k0) {
      return trans ? ops_.data() + at[i] + k0 / 2 : ops_.data() + at[i] + k0 / 2 * width[i];
    };
    const Index ldi = trans ? lt : I, ldr = trans ? lt : U;
    const Range cols = Split(GU, team.size, team.rank, kAlign);
    constexpr Index kSlice = 1024;  // rows of T*B per packed slice of dG (even)
    // Blocks of gates, one product each. With joint_, consecutive gates that
    // share their left operand are one block on the input side, and within
    // it consecutive gates whose recurrent gradients also lie side by side
    // in one array one block on the recurrent side (W1 LSTM made 2 x 4
    // products of 20 columns; GRU's candidate has recurrent gradients of its
    // own). At larger U each gate is a block: a wider one would make the
    // packed slice of dG outgrow the L2.
    for (int g = 0; g < G;) {
      const int gb = g;
      while (++g < G && joint_ && xi[g] == xi[gb]) {
      }
      const Index c0 = std::max(cols.begin, gb * U), c1 = std::min(cols.end, g * U);
      if (c1 <= c0) continue;
      const Index w = c1 - c0;
      const T* dgi = gates_.data() + c0;
      // The recurrent blocks inside [c0, c1): where their gradients are the
      // input side's, at a panel boundary of its pack, they read that pack.
      struct RecBlock {
        int gate;
        Index begin, end;  // columns
        const T* dg;
        Index ld;
        bool shared;
      } rb[4];
      int nrb = 0;
      for (int h = gb; h < g;) {
        const int hb = h;
        while (++h < g && joint_ && ri[h] == ri[hb] && rg.ld[h] == rg.ld[hb] &&
               rg.dg[h] == rg.dg[h - 1] + U) {
        }
        const Index r0 = std::max(c0, hb * U), r1 = std::min(c1, h * U);
        if (r1 <= r0) continue;
        const T* dg = rg.dg[hb] + (r0 - hb * U);
        rb[nrb++] = {hb, r0, r1, dg, rg.ld[hb],
                     dg == dgi + (r0 - c0) && rg.ld[hb] == GU && (r0 - c0) % kBf16Panel == 0};
      }
      // The bias gradients: dG's column sums, added up while the packs read it.
      T* dbi = has_bias ? a.dbias + c0 : nullptr;
      T* dbr = has_bias && separate_rec_bias ? a.dbias + GU + c0 : nullptr;
      if (dbi != nullptr) Row<T>(dbi, w).setZero();
      if (dbr != nullptr) Row<T>(dbr, w).setZero();
      for (Index k0 = 0; k0 < rows; k0 += kSlice) {
        const Index kr = std::min(kSlice, rows - k0), sq = Pairs(kr);
        Pair* bi = Bf16Scratch(1, static_cast<std::size_t>(Bf16PanelPairs(sq, w)));
        PackBf16(kr, w, dgi + k0 * GU, GU, false, bi, 1, dbi);
        MulBf16(I, w, sq, !trans, left(xi[gb], k0), ldi, bi, sq * kBf16Panel, a.dkernel + c0, GU,
                k0 > 0);
        for (int i = 0; i < nrb; ++i) {
          const RecBlock& r = rb[i];
          const Index rw = r.end - r.begin;
          const Pair* br = bi + (r.begin - c0) / kBf16Panel * sq * kBf16Panel;
          if (!r.shared) {
            Pair* b2 = Bf16Scratch(2, static_cast<std::size_t>(Bf16PanelPairs(sq, rw)));
            PackBf16(kr, rw, r.dg + k0 * r.ld, r.ld, false, b2, 1,
                     dbr != nullptr ? dbr + (r.begin - c0) : nullptr);
            br = b2;
          }
          MulBf16(U, rw, sq, !trans, left(ri[r.gate], k0), ldr, br, sq * kBf16Panel,
                  a.drecurrent_kernel + r.begin, GU, k0 > 0);
        }
      }
      for (int i = 0; i < nrb && dbr != nullptr; ++i)
        if (rb[i].shared)
          Row<T>(dbr + (rb[i].begin - c0), rb[i].end - rb[i].begin) =
              ConstRow<T>(dbi + (rb[i].begin - c0), rb[i].end - rb[i].begin);
    }
  }

  // After the backward time loop: dL/dh0, then (all members) ParameterGrads
  // unless they were streamed; with rows_, the members' accumulators summed
  // into the outputs, each member a share of every array.
  void Epilogue(const Team& team, const BackwardArgs<T>& a, const RecGrads& rg, Range own,
                const T* dh_rec, bool separate_rec_bias) {
    WriteLast(a.dh0, dh_rec, own, Rows(team));
    if (stream_ && !(rows_ && team.size > 1)) return;
    team.Sync();
    if (!rows_ || !stream_) {
      ParameterGrads(team, a, rg, separate_rec_bias);
      return;
    }
    auto reduce = [&](T* out, Index offset, Index n) {
      const Range r = Split(n, team.size, team.rank, kAlign);
      if (r.size() == 0) return;
      Row<T> dst(out + r.begin, r.size());
      for (int k = 1; k < team.size; ++k)
        dst += ConstRow<T>(part_.data() + (k - 1) * PartSize() + offset + r.begin, r.size());
    };
    reduce(a.dkernel, 0, I * GU);
    reduce(a.drecurrent_kernel, I * GU, U * GU);
    if (has_bias) reduce(a.dbias, (I + U) * GU, (separate_rec_bias ? 2 : 1) * GU);
  }

  static void ColumnSums(const T* p, Index rows, Index cols, Index ld, T* out) {
    Row<T>(out, cols).setZero();
    AddColumnSums(p, rows, cols, ld, out);
  }
  static void AddColumnSums(const T* p, Index rows, Index cols, Index ld, T* out) {
    Row<T> acc(out, cols);
    for (Index r = 0; r < rows; ++r) acc += ConstRow<T>(p + r * ld, cols);
  }

  // A cache serves one backward: the gate cache now holds gradients.
  void EndBackward() { cache_valid = false; }

  CacheInfo Info() const {
    CacheInfo c;
    c.valid = cache_valid;
    c.dims = Dims{B, Tn, I, U};
    c.has_bias = has_bias;
    c.has_mask = has_mask;
    c.input_dropout_count = n_in;
    c.recurrent_dropout_count = n_rec;
    return c;
  }

 private:
  Buffer<T> xs_, gates_, hs_, hd_, in_mask_, rec_mask_, rp_, scratch_, bias_work_, dxt_, work_, rt_,
      wt_, rpp_, rtp_, wpp_;
  Buffer<T> stage_;  // with Staged(): kStageSteps steps of weight-gradient operands
  bool staged_ = false;  // set by BeginBackward
  bool stream_ = false;
  bool wg_rows_layout_ = false;  // bf16 weight gradients: X^T, H^T in the rows layout (AMX)
  bool rows_ = false;    // this forward's members split rows (ForwardThreads)
  int row_threads_ = 1;  // and how many asked for (the backward asks as many)
  Buffer<T> part_;       // with rows_: members' weight-gradient accumulators (Accumulators)
  bool packed_ = false;  // rpp_ and rtp_ (panels) instead of rp_ and rt_
  bool direct_ = false;  // inference with one row: R read in place (r_direct_), no rp_
  const T* r_direct_ = nullptr;
  // bf16 GEMMs (implies packed_): rpb_, wpb_, rtpb_ instead of rpp_, wpp_,
  // rtp_; ops_ and wtb_ for the weight and input gradients after the loop.
  bool bf16_ = false;
  Buffer<Pair> rpb_, wpb_, rtpb_, ops_, wtb_;
  bool joint_ = false;     // bf16, U <= one panel: rpj_, wpj_ hold all gates side by side
  Buffer<Pair> rpj_, wpj_;  // [U or I, G*U] as bf16 panels
  bool fused_ = false;   // input projection per step from wpp_ (W's panels)
  Index gate_slots_ = 0;  // steps whose gates Gates() keeps: Tn, or 2 (see Begin)
  const T* step_bias_ = nullptr;
  Buffer<std::uint8_t> step_mask_;
};

}  // namespace detail

// RecurrentKernel's members forward to the cell's Impl (defined in its .cc,
// which includes this header and instantiates the class for float and double).
template <typename T, typename Opts>
RecurrentKernel<T, Opts>::RecurrentKernel(const Opts& options)
    : options_(options), impl_(new Impl) {}
template <typename T, typename Opts>
RecurrentKernel<T, Opts>::~RecurrentKernel() = default;
template <typename T, typename Opts>
void RecurrentKernel<T, Opts>::Forward(bool training, const ForwardArgs<T>& args) {
  impl_->Forward(options_, training, args);
}
template <typename T, typename Opts>
void RecurrentKernel<T, Opts>::Backward(const BackwardArgs<T>& args) {
  impl_->Backward(options_, args);
}
template <typename T, typename Opts>
CacheInfo RecurrentKernel<T, Opts>::cache() const {
  return impl_->seq.Info();
}

}  // namespace rnnfast
