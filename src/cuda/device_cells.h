// The per-element bodies of the CUDA recurrent kernels: one call computes
// one (batch row b, unit u) point of one time step. They are plain C++ marked
// __host__ __device__, so that the CUDA kernels (rnn_cuda.cu) and a host
// runner over the same index grid (bindings/device_bodies_binding.cc, in
// the CPU module, which never links CUDA) run the same code: the CPU test
// suite checks the gate math and the indexing on every machine, against the
// NumPy references.
//
// Layouts (Keras 3, as the CPU kernels; B batch, U units, G gates):
//   gates  [B, G*U]  pre-activations of one step, gate g of unit u at
//                    column g*U + u: x_t @ kernel + bias (+ the recurrent part,
//                    see each cell). The forward overwrites them with the
//                    activated gates, which the backward reads.
//   h, c   [B, U]    states; mask [B] (null: every row steps).
// LSTM gates i, f, c, o; GRU z, r, h; SimpleRNN one.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define RNNFAST_HD __host__ __device__ inline
#else
#define RNNFAST_HD inline
#endif

namespace rnnfast {
namespace cuda {

using Index = long long;

// Keras's activations, by the same numbers as rnnfast::Activation.
enum ActivationCode : int { kTanh = 0, kSigmoid = 1, kHardSigmoid = 2, kRelu = 3, kLinear = 4 };

template <typename T>
RNNFAST_HD T Act(int a, T x) {
  switch (a) {
    case kTanh:
      return tanh(x);
    case kSigmoid:
      return T(1) / (T(1) + exp(-x));
    case kHardSigmoid: {  // relu6(x + 3) / 6
      T v = x + T(3);
      v = v < T(0) ? T(0) : (v > T(6) ? T(6) : v);
      return v / T(6);
    }
    case kRelu:
      return x > T(0) ? x : T(0);
    default:
      return x;
  }
}

// act'(x) from y = act(x) (0 at kinks, as the CPU kernels).
template <typename T>
RNNFAST_HD T ActGrad(int a, T y) {
  switch (a) {
    case kTanh:
      return T(1) - y * y;
    case kSigmoid:
      return y * (T(1) - y);
    case kHardSigmoid:
      return (y > T(0) && y < T(1)) ? T(1) / T(6) : T(0);
    case kRelu:
      return y > T(0) ? T(1) : T(0);
    default:
      return T(1);
  }
}

RNNFAST_HD bool Steps(const std::uint8_t* mask, Index b) { return mask == nullptr || mask[b] != 0; }

// ---- SimpleRNN: h = act(gates) ---------------------------------------------------
// gates [B, U] holds x_t W + b + h_{t-1} R; h_prev, h_out [B, U]; y [B, U]
// (this step's output, may be null).
template <typename T>
RNNFAST_HD void SimpleRNNForwardPoint(Index b, Index u, Index U, int act, T* gates, const T* h_prev,
                                      T* h_out, T* y, const std::uint8_t* mask) {
  const Index i = b * U + u;
  const T h = Act(act, gates[i]);
  gates[i] = h;  // the backward's cache
  const T out = Steps(mask, b) ? h : h_prev[i];
  h_out[i] = out;
  if (y != nullptr) y[i] = out;
}

// dh [B, U]: dL/dh_t (the step's output gradient plus the next step's
// recurrent gradient). Writes dgates [B, U] (zero for a masked row) and
// dh_carry [B, U]: the part of dL/dh_{t-1} that bypasses the recurrent
// product (all of dh for a masked row, else 0); the caller adds dgates @ R^T.
template <typename T>
RNNFAST_HD void SimpleRNNBackwardPoint(Index b, Index u, Index U, int act, const T* gates,
                                       const T* dh, T* dgates, T* dh_carry,
                                       const std::uint8_t* mask) {
  const Index i = b * U + u;
  if (!Steps(mask, b)) {
    dgates[i] = T(0);
    dh_carry[i] = dh[i];
    return;
  }
  dgates[i] = dh[i] * ActGrad(act, gates[i]);
  dh_carry[i] = T(0);
}

// ---- LSTM ----------------------------------------------------------------------
// gates [B, 4U] (i, f, c, o pre-activations, recurrent part included);
// c_prev, h_prev, c_out, h_out [B, U]; y [B, U] or null.
template <typename T>
RNNFAST_HD void LSTMForwardPoint(Index b, Index u, Index U, int act, int rec_act, T* gates,
                                 const T* h_prev, const T* c_prev, T* h_out, T* c_out, T* y,
                                 const std::uint8_t* mask) {
  T* g = gates + b * 4 * U;
  const Index i = b * U + u;
  const T ig = Act(rec_act, g[u]);
  const T fg = Act(rec_act, g[U + u]);
  const T cg = Act(act, g[2 * U + u]);
  const T og = Act(rec_act, g[3 * U + u]);
  const T c = fg * c_prev[i] + ig * cg;
  const T h = og * Act(act, c);
  g[u] = ig;
  g[U + u] = fg;
  g[2 * U + u] = cg;
  g[3 * U + u] = og;
  const bool on = Steps(mask, b);
  c_out[i] = on ? c : c_prev[i];
  h_out[i] = on ? h : h_prev[i];
  if (y != nullptr) y[i] = h_out[i];
}

// gates: the forward's activated gates; c [B, U]: this step's cell state (the
// forward's c_out), c_prev [B, U]; dh, dc [B, U]: dL/dh_t, dL/dc_t.
// Writes dgates [B, 4U] (pre-activation gradients), dc_prev [B, U] and
// dh_carry [B, U] (as SimpleRNN).
template <typename T>
RNNFAST_HD void LSTMBackwardPoint(Index b, Index u, Index U, int act, int rec_act, const T* gates,
                                  const T* c, const T* c_prev, const T* dh, const T* dc, T* dgates,
                                  T* dc_prev, T* dh_carry, const std::uint8_t* mask) {
  const T* g = gates + b * 4 * U;
  T* dg = dgates + b * 4 * U;
  const Index i = b * U + u;
  if (!Steps(mask, b)) {
    dg[u] = dg[U + u] = dg[2 * U + u] = dg[3 * U + u] = T(0);
    dc_prev[i] = dc[i];
    dh_carry[i] = dh[i];
    return;
  }
  const T ig = g[u], fg = g[U + u], cg = g[2 * U + u], og = g[3 * U + u];
  const T tc = Act(act, c[i]);
  const T dcell = dc[i] + dh[i] * og * ActGrad(act, tc);
  dg[u] = dcell * cg * ActGrad(rec_act, ig);
  dg[U + u] = dcell * c_prev[i] * ActGrad(rec_act, fg);
  dg[2 * U + u] = dcell * ig * ActGrad(act, cg);
  dg[3 * U + u] = dh[i] * tc * ActGrad(rec_act, og);
  dc_prev[i] = dcell * fg;
  dh_carry[i] = T(0);
}

// ---- GRU, reset_after=True (Keras 3's default, cuDNN's and torch's) ---------------
// xg [B, 3U]: x_t W + input bias (z, r, h); rg [B, 3U]: h_{t-1} R + recurrent
// bias. Overwrites xg with z, r, hh; rg is left as it is (its h block, the
// pre-reset value, is what the backward needs).
template <typename T>
RNNFAST_HD void GRUForwardPoint(Index b, Index u, Index U, int act, int rec_act, T* xg, T* rg,
                                const T* h_prev, T* h_out, T* y, const std::uint8_t* mask) {
  T* x = xg + b * 3 * U;
  const T* r3 = rg + b * 3 * U;
  const Index i = b * U + u;
  const T z = Act(rec_act, x[u] + r3[u]);
  const T r = Act(rec_act, x[U + u] + r3[U + u]);
  const T hh = Act(act, x[2 * U + u] + r * r3[2 * U + u]);
  const T h = z * h_prev[i] + (T(1) - z) * hh;
  x[u] = z;
  x[U + u] = r;
  x[2 * U + u] = hh;
  const T out = Steps(mask, b) ? h : h_prev[i];
  h_out[i] = out;
  if (y != nullptr) y[i] = out;
}

// From the forward's xg (z, r, hh), rg (the recurrent pre-activations, h
// block = (h_{t-1} R_h + b_rh)), h_prev and dh: dxg [B, 3U] (the gradient of
// the input pre-activations), drg [B, 3U] (of the recurrent ones), dh_carry
// [B, U]: the direct part of dL/dh_{t-1} (z * dh; all of dh when masked).
template <typename T>
RNNFAST_HD void GRUBackwardPoint(Index b, Index u, Index U, int act, int rec_act, const T* xg,
                                 const T* rg, const T* h_prev, const T* dh, T* dxg, T* drg,
                                 T* dh_carry, const std::uint8_t* mask) {
  const T* x = xg + b * 3 * U;
  const T* r3 = rg + b * 3 * U;
  T* dx = dxg + b * 3 * U;
  T* dr = drg + b * 3 * U;
  const Index i = b * U + u;
  if (!Steps(mask, b)) {
    dx[u] = dx[U + u] = dx[2 * U + u] = dr[u] = dr[U + u] = dr[2 * U + u] = T(0);
    dh_carry[i] = dh[i];
    return;
  }
  const T z = x[u], r = x[U + u], hh = x[2 * U + u];
  const T dhh = dh[i] * (T(1) - z) * ActGrad(act, hh);
  // dh h_{t-1} - dh hh: autodiff's order, as the CPU kernels (gru.cc)
  const T dz = (dh[i] * h_prev[i] - dh[i] * hh) * ActGrad(rec_act, z);
  const T dr_ = dhh * r3[2 * U + u] * ActGrad(rec_act, r);
  dx[u] = dz;
  dx[U + u] = dr_;
  dx[2 * U + u] = dhh;
  dr[u] = dz;
  dr[U + u] = dr_;
  dr[2 * U + u] = dhh * r;
  dh_carry[i] = dh[i] * z;
}

// ---- GRU, reset_after=False (Keras 2's default) --------------------------------------
// Two passes per step: the first computes z and r from xg + h_{t-1} R[:, :2U]
// (rzg [B, 2U]) and writes rh = r * h_{t-1} [B, U], which the caller
// multiplies by R[:, 2U:] into hg [B, U]; the second finishes h.
template <typename T>
RNNFAST_HD void GRUBeforeForwardPoint1(Index b, Index u, Index U, int rec_act, T* xg, const T* rzg,
                                       const T* h_prev, T* rh) {
  T* x = xg + b * 3 * U;
  const T* rz = rzg + b * 2 * U;
  const Index i = b * U + u;
  const T z = Act(rec_act, x[u] + rz[u]);
  const T r = Act(rec_act, x[U + u] + rz[U + u]);
  x[u] = z;
  x[U + u] = r;
  rh[i] = r * h_prev[i];
}
template <typename T>
RNNFAST_HD void GRUBeforeForwardPoint2(Index b, Index u, Index U, int act, T* xg, const T* hg,
                                       const T* h_prev, T* h_out, T* y, const std::uint8_t* mask) {
  T* x = xg + b * 3 * U;
  const Index i = b * U + u;
  const T z = x[u];
  const T hh = Act(act, x[2 * U + u] + hg[i]);
  x[2 * U + u] = hh;
  const T h = z * h_prev[i] + (T(1) - z) * hh;
  const T out = Steps(mask, b) ? h : h_prev[i];
  h_out[i] = out;
  if (y != nullptr) y[i] = out;
}
// Backward, first pass: from dh, dgates [B, 3U] for the input pre-activations
// except r's (dz, -, dhh), dhg [B, U] = dhh (to multiply by R_h^T into
// drh [B, U]), dh_carry = z * dh. Second pass, after drh = dhg @ R_h^T: dr
// into dgates' r block and dh_carry += drh * r.
template <typename T>
RNNFAST_HD void GRUBeforeBackwardPoint1(Index b, Index u, Index U, int act, int rec_act,
                                        const T* xg, const T* h_prev, const T* dh, T* dgates,
                                        T* dhg, T* dh_carry, const std::uint8_t* mask) {
  const T* x = xg + b * 3 * U;
  T* d = dgates + b * 3 * U;
  const Index i = b * U + u;
  if (!Steps(mask, b)) {
    d[u] = d[U + u] = d[2 * U + u] = T(0);
    dhg[i] = T(0);
    dh_carry[i] = dh[i];
    return;
  }
  const T z = x[u], hh = x[2 * U + u];
  const T dhh = dh[i] * (T(1) - z) * ActGrad(act, hh);
  d[u] = (dh[i] * h_prev[i] - dh[i] * hh) * ActGrad(rec_act, z);
  d[2 * U + u] = dhh;
  dhg[i] = dhh;
  dh_carry[i] = dh[i] * z;
}
template <typename T>
RNNFAST_HD void GRUBeforeBackwardPoint2(Index b, Index u, Index U, int rec_act, const T* xg,
                                        const T* h_prev, const T* drh, T* dgates, T* dh_carry,
                                        const std::uint8_t* mask) {
  const Index i = b * U + u;
  T* d = dgates + b * 3 * U;
  if (!Steps(mask, b)) {
    d[U + u] = T(0);
    return;
  }
  const T r = xg[b * 3 * U + U + u];
  d[U + u] = drh[i] * h_prev[i] * ActGrad(rec_act, r);
  dh_carry[i] += drh[i] * r;
}

// ---- Optimizer updates of one element i (the fused update kernels) -------------
// The arithmetic of the CPU optimizers, in the same order (Keras 3's
// order), so results agree with them to rounding (the device may fuse a
// multiply and an add). Decoupled weight decay first, when decay != 0:
// w - (w * decay) * lr, as Optimizer._apply_weight_decay.

template <typename T>
RNNFAST_HD T WeightDecayPoint(T w, T decay, T lr) {
  return decay != T(0) ? w - (w * decay) * lr : w;
}

// Adam (rnnfast::AdamStep): alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t),
// c1 = 1 - beta_1, c2 = 1 - beta_2; vhat null without amsgrad.
template <typename T>
RNNFAST_HD void AdamPoint(Index i, T* w, const T* g, T* m, T* v, T* vhat, T alpha, T c1, T c2,
                          T eps, T decay, T lr) {
  const T gi = g[i];
  T mi = m[i], vi = v[i];
  mi = mi + (gi - mi) * c1;
  vi = vi + (gi * gi - vi) * c2;
  m[i] = mi;
  v[i] = vi;
  T vv = vi;
  if (vhat != nullptr) {
    const T h = vhat[i];
    vv = (h != h || h > vi) ? h : vi;  // np.maximum: NaN wins
    vhat[i] = vv;
  }
  const T wi = WeightDecayPoint(w[i], decay, lr);
  w[i] = wi - (mi * alpha) / (sqrt(vv) + eps);
}

// SGD (optimizers/sgd.py): without momentum (m null) w -= lr * g; with it
// m = momentum * m - lr * g and w += m, or w += momentum * m - lr * g (nesterov).
template <typename T>
RNNFAST_HD void SGDPoint(Index i, T* w, const T* g, T* m, T lr, T momentum, bool nesterov, T decay) {
  const T t = g[i] * lr;
  const T wi = WeightDecayPoint(w[i], decay, lr);
  if (m == nullptr) {
    w[i] = wi - t;
    return;
  }
  const T mi = m[i] * momentum - t;
  m[i] = mi;
  w[i] = nesterov ? wi + (mi * momentum - t) : wi + mi;
}

}  // namespace cuda
}  // namespace rnnfast
