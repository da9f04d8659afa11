// C++ checks of the kernels without Python (run by CTest): for each cell, the
// forward against a scalar loop written from the equations, and every
// gradient of the backward against central finite differences, in double.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "rnnfast/gru.h"
#include "rnnfast/lstm.h"
#include "rnnfast/rnn.h"
#include "rnnfast/threading.h"

namespace {

using rnnfast::Index;
using Vec = std::vector<double>;

struct Problem {
  std::string cell;  // "rnn", "lstm", "gru", "gru_before"
  Index B = 3, T = 4, I = 3, U = 4;
  int G = 1;
  bool go_backwards = false;
  Vec x, W, R, b, h0, c0;
  std::vector<std::uint8_t> mask;  // [B, T]
};

double Sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

Problem MakeProblem(const std::string& cell, bool go_backwards, unsigned seed, Index B = 3,
                    Index T = 4, Index I = 3, Index U = 4) {
  Problem p;
  p.cell = cell;
  p.B = B;
  p.T = T;
  p.I = I;
  p.U = U;
  p.G = cell == "rnn" ? 1 : cell == "lstm" ? 4 : 3;
  p.go_backwards = go_backwards;
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-0.6, 0.6);
  auto fill = [&](Vec& v, Index n) {
    v.resize(static_cast<std::size_t>(n));
    for (auto& e : v) e = u(gen);
  };
  const Index GU = p.G * p.U;
  fill(p.x, p.B * p.T * p.I);
  fill(p.W, p.I * GU);
  fill(p.R, p.U * GU);
  fill(p.b, (cell == "gru" ? 2 : 1) * GU);
  fill(p.h0, p.B * p.U);
  fill(p.c0, p.B * p.U);
  p.mask.assign(static_cast<std::size_t>(p.B * p.T), 1);
  p.mask[0] = 0;               // row 0 starts masked
  p.mask[1 * p.T + 2] = 0;     // row 1 masked in the middle
  return p;
}

// The equations, one scalar at a time. Returns y [B, T, U] then the final
// states [B, U] (h, and c for LSTM) appended.
Vec Naive(const Problem& p) {
  const Index B = p.B, T = p.T, I = p.I, U = p.U, GU = p.G * p.U;
  Vec y(static_cast<std::size_t>(B * T * U)), h = p.h0, c = p.c0;
  for (Index s = 0; s < T; ++s) {
    const Index t = p.go_backwards ? T - 1 - s : s;
    Vec hn = h, cn = c;
    for (Index bi = 0; bi < B; ++bi) {
      if (!p.mask[static_cast<std::size_t>(bi * T + t)]) continue;
      const double* xt = &p.x[static_cast<std::size_t>((bi * T + t) * I)];
      const double* hp = &h[static_cast<std::size_t>(bi * U)];
      auto xw = [&](Index col) {
        double a = p.b[static_cast<std::size_t>(col)];
        for (Index i = 0; i < I; ++i) a += xt[i] * p.W[static_cast<std::size_t>(i * GU + col)];
        return a;
      };
      auto hr = [&](Index col, const double* hv) {
        double a = 0;
        for (Index k = 0; k < U; ++k) a += hv[k] * p.R[static_cast<std::size_t>(k * GU + col)];
        return a;
      };
      for (Index j = 0; j < U; ++j) {
        const std::size_t o = static_cast<std::size_t>(bi * U + j);
        if (p.cell == "rnn") {
          hn[o] = std::tanh(xw(j) + hr(j, hp));
        } else if (p.cell == "lstm") {
          const double ig = Sigmoid(xw(j) + hr(j, hp)), fg = Sigmoid(xw(U + j) + hr(U + j, hp));
          const double cc = std::tanh(xw(2 * U + j) + hr(2 * U + j, hp));
          const double og = Sigmoid(xw(3 * U + j) + hr(3 * U + j, hp));
          cn[o] = fg * c[o] + ig * cc;
          hn[o] = og * std::tanh(cn[o]);
        } else if (p.cell == "gru") {  // reset_after, bias rows: input, recurrent
          const double* rb = &p.b[static_cast<std::size_t>(GU)];
          const double z = Sigmoid(xw(j) + hr(j, hp) + rb[j]);
          const double r = Sigmoid(xw(U + j) + hr(U + j, hp) + rb[U + j]);
          const double hh = std::tanh(xw(2 * U + j) + r * (hr(2 * U + j, hp) + rb[2 * U + j]));
          hn[o] = z * hp[j] + (1 - z) * hh;
        } else {  // gru_before
          Vec rh(static_cast<std::size_t>(U));
          for (Index k = 0; k < U; ++k) rh[static_cast<std::size_t>(k)] = Sigmoid(xw(U + k) + hr(U + k, hp)) * hp[k];
          const double z = Sigmoid(xw(j) + hr(j, hp));
          const double hh = std::tanh(xw(2 * U + j) + hr(2 * U + j, rh.data()));
          hn[o] = z * hp[j] + (1 - z) * hh;
        }
      }
    }
    h = hn;
    c = cn;
    for (Index bi = 0; bi < B; ++bi)
      for (Index j = 0; j < U; ++j)
        y[static_cast<std::size_t>((bi * T + s) * U + j)] = h[static_cast<std::size_t>(bi * U + j)];
  }
  y.insert(y.end(), h.begin(), h.end());
  if (p.cell == "lstm") y.insert(y.end(), c.begin(), c.end());
  return y;
}

struct Grads {
  Vec dx, dh0, dc0, dW, dR, db;
};

// Runs the library: outputs in Naive's layout, and (with dout) the gradients
// of sum(dout * outputs).
template <typename Cell>
Vec RunCell(Cell& cell, const Problem& p, const Vec* dout, Grads* g) {
  const Index B = p.B, T = p.T, U = p.U;
  Vec y(static_cast<std::size_t>(B * T * U)), h(static_cast<std::size_t>(B * U)), c(h.size());
  rnnfast::ForwardArgs<double> a;
  a.dims = rnnfast::Dims{B, T, p.I, U};
  a.x = p.x.data();
  a.kernel = p.W.data();
  a.recurrent_kernel = p.R.data();
  a.bias = p.b.data();
  a.h0 = p.h0.data();
  a.c0 = p.cell == "lstm" ? p.c0.data() : nullptr;
  a.mask = p.mask.data();
  a.y = y.data();
  a.h_last = h.data();
  a.c_last = p.cell == "lstm" ? c.data() : nullptr;
  cell.Forward(dout != nullptr, a);
  if (dout != nullptr) {
    g->dx.resize(p.x.size());
    g->dh0.resize(h.size());
    g->dc0.resize(h.size());
    g->dW.resize(p.W.size());
    g->dR.resize(p.R.size());
    g->db.resize(p.b.size());
    rnnfast::BackwardArgs<double> d;
    d.kernel = p.W.data();
    d.recurrent_kernel = p.R.data();
    d.dy = dout->data();
    d.dh_last = dout->data() + B * T * U;
    d.dc_last = p.cell == "lstm" ? dout->data() + B * T * U + B * U : nullptr;
    d.dx = g->dx.data();
    d.dh0 = g->dh0.data();
    d.dc0 = g->dc0.data();
    d.dkernel = g->dW.data();
    d.drecurrent_kernel = g->dR.data();
    d.dbias = g->db.data();
    cell.Backward(d);
  }
  y.insert(y.end(), h.begin(), h.end());
  if (p.cell == "lstm") y.insert(y.end(), c.begin(), c.end());
  return y;
}

Vec Run(const Problem& p, const Vec* dout, Grads* g) {
  if (p.cell == "rnn") {
    rnnfast::SimpleRNN<double>::Options o;
    o.go_backwards = p.go_backwards;
    rnnfast::SimpleRNN<double> cell(o);
    return RunCell(cell, p, dout, g);
  }
  if (p.cell == "lstm") {
    rnnfast::LSTM<double>::Options o;
    o.go_backwards = p.go_backwards;
    rnnfast::LSTM<double> cell(o);
    return RunCell(cell, p, dout, g);
  }
  rnnfast::GRU<double>::Options o;
  o.go_backwards = p.go_backwards;
  o.reset_after = p.cell == "gru";
  rnnfast::GRU<double> cell(o);
  return RunCell(cell, p, dout, g);
}

int failures = 0;

void Expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

double MaxDiff(const Vec& a, const Vec& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::fmax(m, std::fabs(a[i] - b[i]));
  return a.size() == b.size() ? m : INFINITY;
}

void CheckCell(const std::string& cell, bool go_backwards) {
  Problem p = MakeProblem(cell, go_backwards, 7);
  const std::string name = cell + (go_backwards ? " go_backwards" : "");
  const Vec want = Naive(p);
  const double fwd = MaxDiff(Run(p, nullptr, nullptr), want);
  Expect(fwd < 1e-12, name + ": forward differs from the scalar loop by " + Num(fwd));

  std::mt19937 gen(3);
  std::normal_distribution<double> n(0, 1);
  Vec dout(want.size());
  for (auto& e : dout) e = n(gen);
  Grads g;
  Run(p, &dout, &g);
  auto loss = [&](const Problem& q) {
    const Vec out = Run(q, nullptr, nullptr);
    double l = 0;
    for (std::size_t i = 0; i < out.size(); ++i) l += dout[i] * out[i];
    return l;
  };
  struct Param {
    const char* name;
    Vec Problem::*field;
    const Vec* grad;
  };
  std::vector<Param> params = {{"x", &Problem::x, &g.dx},   {"kernel", &Problem::W, &g.dW},
                               {"recurrent_kernel", &Problem::R, &g.dR},
                               {"bias", &Problem::b, &g.db}, {"h0", &Problem::h0, &g.dh0}};
  if (cell == "lstm") params.push_back({"c0", &Problem::c0, &g.dc0});
  for (const Param& prm : params) {
    Problem q = p;
    Vec& v = q.*(prm.field);
    double worst = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double old = v[i], eps = 1e-6;
      v[i] = old + eps;
      const double up = loss(q);
      v[i] = old - eps;
      const double down = loss(q);
      v[i] = old;
      const double num = (up - down) / (2 * eps), got = (*prm.grad)[i];
      // As numpy's assert_allclose(rtol=1e-6, atol=1e-7), the Python tests'
      // criterion: the absolute term covers the differences' own rounding
      // (about 1e-16 * |loss| / eps) on elements near zero.
      worst = std::fmax(worst, std::fabs(num - got) / (1e-7 + 1e-6 * std::fabs(num)));
    }
    Expect(worst <= 1.0, name + ": d" + prm.name + " error " + Num(worst) +
                             " times the tolerance 1e-7 + 1e-6 |numeric|");
  }
}

// max |a - b| / max(1, max |b|)
double MaxRel(const Vec& a, const Vec& b) {
  double scale = 1;
  for (double v : b) scale = std::fmax(scale, std::fabs(v));
  return MaxDiff(a, b) / scale;
}

// The multi-threaded paths against one thread: a forward that splits the
// batch's rows among the members (small weights), and one that splits the
// units (weights bigger than a core's L2, or several MiB), each with its
// backward and an inference forward. (The sanitizer job runs this under
// ThreadSanitizer.) The pool may fall back to one thread while the machine is
// busy; the results must agree either way.
void CheckThreads(const std::string& cell, Index B, Index T, Index I, Index U) {
  const Problem p = MakeProblem(cell, cell == "gru", 5, B, T, I, U);
  const std::string name = cell + " B=" + std::to_string(B) + " U=" + std::to_string(U);
  Vec dout(static_cast<std::size_t>(B * T * U + (cell == "lstm" ? 2 : 1) * B * U));
  std::mt19937 gen(4);
  std::normal_distribution<double> n(0, 1);
  for (auto& e : dout) e = n(gen);
  const int saved = rnnfast::GetNumThreads();
  Grads g[2];
  Vec y[2], inference[2];
  for (int k = 0; k < 2; ++k) {
    rnnfast::SetNumThreads(k + 1);
    y[k] = Run(p, &dout, &g[k]);
    inference[k] = Run(p, nullptr, nullptr);
  }
  rnnfast::SetNumThreads(saved);
  const double tol = 1e-10;
  Expect(MaxRel(y[1], y[0]) < tol, name + ": threaded training forward differs");
  Expect(MaxRel(inference[1], inference[0]) < tol, name + ": threaded inference forward differs");
  Expect(MaxRel(inference[0], y[0]) < tol, name + ": inference and training forwards differ");
  Expect(MaxRel(g[1].dx, g[0].dx) < tol, name + ": threaded dx differs");
  Expect(MaxRel(g[1].dh0, g[0].dh0) < tol, name + ": threaded dh0 differs");
  Expect(MaxRel(g[1].dW, g[0].dW) < tol, name + ": threaded dkernel differs");
  Expect(MaxRel(g[1].dR, g[0].dR) < tol, name + ": threaded drecurrent_kernel differs");
  Expect(MaxRel(g[1].db, g[0].db) < tol, name + ": threaded dbias differs");
  if (cell == "lstm") Expect(MaxRel(g[1].dc0, g[0].dc0) < tol, name + ": threaded dc0 differs");
}

// Dimensions whose workspace sizes overflow are refused before anything is
// read or allocated (a wrapped product gave a small buffer the kernel wrote past).
void CheckOverflowingSizes() {
  double dummy[8] = {};
  for (const rnnfast::Dims d : {rnnfast::Dims{Index{1} << 40, Index{1} << 40, 1, 4},
                                rnnfast::Dims{1, 1, 1, Index{1} << 62},
                                rnnfast::Dims{2, INT64_MAX, 1, 4},
                                rnnfast::Dims{1, 1, INT64_MAX, 1}}) {
    rnnfast::ForwardArgs<double> a;
    a.dims = d;
    a.x = a.kernel = a.recurrent_kernel = dummy;
    a.h_last = a.c_last = dummy;
    rnnfast::LSTM<double> cell(rnnfast::LSTM<double>::Options{});
    bool refused = false;
    try {
      cell.Forward(false, a);
    } catch (const std::length_error&) {
      refused = true;
    }
    Expect(refused, "dims " + std::to_string(d.batch) + "x" + std::to_string(d.time) + "x" +
                        std::to_string(d.input) + "x" + std::to_string(d.units) +
                        ": overflowing sizes not refused");
  }
}

}  // namespace

int main() {
  CheckOverflowingSizes();
  for (const char* cell : {"rnn", "lstm", "gru", "gru_before"})
    for (bool back : {false, true}) CheckCell(cell, back);
  // Rows split: B >= 8 rows, small weights.
  for (const char* cell : {"rnn", "lstm", "gru", "gru_before"}) CheckThreads(cell, 16, 48, 32, 16);
  // Units split: about 2.5 MiB of weights in double.
  CheckThreads("rnn", 8, 3, 8, 576);
  CheckThreads("lstm", 8, 3, 8, 288);
  CheckThreads("gru", 8, 3, 8, 320);
  if (failures == 0) std::printf("all kernel checks passed\n");
  return failures == 0 ? 0 : 1;
}
