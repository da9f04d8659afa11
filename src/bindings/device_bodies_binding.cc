// rnnfast._core.device_bodies: the CUDA kernels' per-element bodies
// (src/cuda/device_cells.h) run on the host over the same (row, unit) grid as
// the device kernels, so that the CPU test suite checks the device gate math
// and indexing on machines without a GPU. Test support only; float64, fresh
// output arrays. Nothing here links CUDA.
#include <tuple>

#include "bindings/common.h"
#include "cuda/device_cells.h"

namespace rnnfast {
namespace bindings {
namespace {

using Arr = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Mask = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>;
namespace dc = rnnfast::cuda;

Arr Copy(const Arr& a) {
  Arr out(Shape(a.shape(), a.shape() + a.ndim()));
  std::copy(a.data(), a.data() + a.size(), out.mutable_data());
  return out;
}
// Zeros: a phase leaves the slots of another unwritten (gru_before_backward1
// the r gate's, which gru_before_backward2 fills), and those were returned
// uninitialized.
Arr Like(Index B, Index W) {
  Arr out(Shape{B, W});
  std::fill(out.mutable_data(), out.mutable_data() + out.size(), 0.0);
  return out;
}
const std::uint8_t* MaskPtr(const std::optional<Mask>& m) { return m ? m->data() : nullptr; }
std::optional<Mask> MaskArg(py::object mask, Index B) {
  if (mask.is_none()) return std::nullopt;
  Mask m = py::cast<Mask>(mask);
  if (m.ndim() != 1 || m.shape(0) != B) throw py::value_error("mask must have shape (batch,)");
  return m;
}
void Check(const Arr& a, const char* name, Index B, Index W) {
  if (a.ndim() != 2 || a.shape(0) != B || a.shape(1) != W)
    throw py::value_error(std::string(name) + " must have shape " + ShapeStr(Shape{B, W}) +
                          ", got " + ShapeStr(a));
}
int ActArg(const std::string& name) { return static_cast<int>(ParseActivation(name)); }

// The device kernels' grid: one point per (row, unit).
template <typename F>
void Grid(Index B, Index U, F&& f) {
  for (Index b = 0; b < B; ++b)
    for (Index u = 0; u < U; ++u) f(b, u);
}

}  // namespace

void BindDeviceBodies(py::module_& parent) {
  py::module_ m = parent.def_submodule(
      "device_bodies", "The CUDA kernels' per-element bodies run on the host (test support).");
  m.def("simple_rnn_forward", [](Arr gates, Arr h_prev, py::object mask, const std::string& act) {
    const Index B = gates.shape(0), U = gates.shape(1);
    Check(h_prev, "h_prev", B, U);
    auto mk = MaskArg(mask, B);
    Arr g = Copy(gates), h = Like(B, U);
    const int a = ActArg(act);
    Grid(B, U, [&](Index b, Index u) {
      dc::SimpleRNNForwardPoint<double>(b, u, U, a, g.mutable_data(), h_prev.data(), h.mutable_data(),
                                        nullptr, MaskPtr(mk));
    });
    return py::make_tuple(g, h);
  }, py::arg("gates"), py::arg("h_prev"), py::arg("mask") = py::none(), py::arg("activation") = "tanh");
  m.def("simple_rnn_backward", [](Arr gates, Arr dh, py::object mask, const std::string& act) {
    const Index B = gates.shape(0), U = gates.shape(1);
    Check(dh, "dh", B, U);
    auto mk = MaskArg(mask, B);
    Arr dg = Like(B, U), carry = Like(B, U);
    const int a = ActArg(act);
    Grid(B, U, [&](Index b, Index u) {
      dc::SimpleRNNBackwardPoint<double>(b, u, U, a, gates.data(), dh.data(), dg.mutable_data(),
                                         carry.mutable_data(), MaskPtr(mk));
    });
    return py::make_tuple(dg, carry);
  }, py::arg("gates"), py::arg("dh"), py::arg("mask") = py::none(), py::arg("activation") = "tanh");
  m.def("lstm_forward", [](Arr gates, Arr h_prev, Arr c_prev, py::object mask, const std::string& act,
                           const std::string& rec) {
    const Index B = gates.shape(0), U = gates.shape(1) / 4;
    Check(gates, "gates", B, 4 * U);
    Check(h_prev, "h_prev", B, U);
    Check(c_prev, "c_prev", B, U);
    auto mk = MaskArg(mask, B);
    Arr g = Copy(gates), h = Like(B, U), c = Like(B, U);
    const int a = ActArg(act), r = ActArg(rec);
    Grid(B, U, [&](Index b, Index u) {
      dc::LSTMForwardPoint<double>(b, u, U, a, r, g.mutable_data(), h_prev.data(), c_prev.data(),
                                   h.mutable_data(), c.mutable_data(), nullptr, MaskPtr(mk));
    });
    return py::make_tuple(g, h, c);
  }, py::arg("gates"), py::arg("h_prev"), py::arg("c_prev"), py::arg("mask") = py::none(),
     py::arg("activation") = "tanh", py::arg("recurrent_activation") = "sigmoid");
  m.def("lstm_backward", [](Arr gates, Arr c, Arr c_prev, Arr dh, Arr dcell, py::object mask,
                            const std::string& act, const std::string& rec) {
    const Index B = gates.shape(0), U = gates.shape(1) / 4;
    Check(gates, "gates", B, 4 * U);
    for (const auto& [arr, name] : {std::pair<const Arr*, const char*>{&c, "c"}, {&c_prev, "c_prev"},
                                    {&dh, "dh"}, {&dcell, "dc"}})
      Check(*arr, name, B, U);
    auto mk = MaskArg(mask, B);
    Arr dg = Like(B, 4 * U), dcp = Like(B, U), carry = Like(B, U);
    const int a = ActArg(act), r = ActArg(rec);
    Grid(B, U, [&](Index b, Index u) {
      dc::LSTMBackwardPoint<double>(b, u, U, a, r, gates.data(), c.data(), c_prev.data(), dh.data(),
                                    dcell.data(), dg.mutable_data(), dcp.mutable_data(),
                                    carry.mutable_data(), MaskPtr(mk));
    });
    return py::make_tuple(dg, dcp, carry);
  }, py::arg("gates"), py::arg("c"), py::arg("c_prev"), py::arg("dh"), py::arg("dc"),
     py::arg("mask") = py::none(), py::arg("activation") = "tanh",
     py::arg("recurrent_activation") = "sigmoid");
  m.def("gru_forward", [](Arr xg, Arr rg, Arr h_prev, py::object mask, const std::string& act,
                          const std::string& rec) {
    const Index B = xg.shape(0), U = xg.shape(1) / 3;
    Check(xg, "xg", B, 3 * U);
    Check(rg, "rg", B, 3 * U);
    Check(h_prev, "h_prev", B, U);
    auto mk = MaskArg(mask, B);
    Arr x = Copy(xg), r3 = Copy(rg), h = Like(B, U);
    const int a = ActArg(act), r = ActArg(rec);
    Grid(B, U, [&](Index b, Index u) {
      dc::GRUForwardPoint<double>(b, u, U, a, r, x.mutable_data(), r3.mutable_data(), h_prev.data(),
                                  h.mutable_data(), nullptr, MaskPtr(mk));
    });
    return py::make_tuple(x, h);
  }, py::arg("xg"), py::arg("rg"), py::arg("h_prev"), py::arg("mask") = py::none(),
     py::arg("activation") = "tanh", py::arg("recurrent_activation") = "sigmoid");
  m.def("gru_backward", [](Arr xg, Arr rg, Arr h_prev, Arr dh, py::object mask,
                           const std::string& act, const std::string& rec) {
    const Index B = xg.shape(0), U = xg.shape(1) / 3;
    Check(xg, "xg", B, 3 * U);
    Check(rg, "rg", B, 3 * U);
    Check(h_prev, "h_prev", B, U);
    Check(dh, "dh", B, U);
    auto mk = MaskArg(mask, B);
    Arr dx = Like(B, 3 * U), dr = Like(B, 3 * U), carry = Like(B, U);
    const int a = ActArg(act), r = ActArg(rec);
    Grid(B, U, [&](Index b, Index u) {
      dc::GRUBackwardPoint<double>(b, u, U, a, r, xg.data(), rg.data(), h_prev.data(), dh.data(),
                                   dx.mutable_data(), dr.mutable_data(), carry.mutable_data(),
                                   MaskPtr(mk));
    });
    return py::make_tuple(dx, dr, carry);
  }, py::arg("xg"), py::arg("rg"), py::arg("h_prev"), py::arg("dh"), py::arg("mask") = py::none(),
     py::arg("activation") = "tanh", py::arg("recurrent_activation") = "sigmoid");
  m.def("gru_before_forward1", [](Arr xg, Arr rzg, Arr h_prev, const std::string& rec) {
    const Index B = xg.shape(0), U = xg.shape(1) / 3;
    Check(xg, "xg", B, 3 * U);
    Check(rzg, "rzg", B, 2 * U);
    Check(h_prev, "h_prev", B, U);
    Arr x = Copy(xg), rh = Like(B, U);
    const int r = ActArg(rec);
    Grid(B, U, [&](Index b, Index u) {
      dc::GRUBeforeForwardPoint1<double>(b, u, U, r, x.mutable_data(), rzg.data(), h_prev.data(),
                                         rh.mutable_data());
    });
    return py::make_tuple(x, rh);
  }, py::arg("xg"), py::arg("rzg"), py::arg("h_prev"), py::arg("recurrent_activation") = "sigmoid");
  m.def("gru_before_forward2", [](Arr xg, Arr hg, Arr h_prev, py::object mask, const std::string& act) {
    const Index B = xg.shape(0), U = xg.shape(1) / 3;
    Check(xg, "xg", B, 3 * U);
    Check(hg, "hg", B, U);
    Check(h_prev, "h_prev", B, U);
    auto mk = MaskArg(mask, B);
    Arr x = Copy(xg), h = Like(B, U);
    const int a = ActArg(act);
    Grid(B, U, [&](Index b, Index u) {
      dc::GRUBeforeForwardPoint2<double>(b, u, U, a, x.mutable_data(), hg.data(), h_prev.data(),
                                         h.mutable_data(), nullptr, MaskPtr(mk));
    });
    return py::make_tuple(x, h);
  }, py::arg("xg"), py::arg("hg"), py::arg("h_prev"), py::arg("mask") = py::none(),
     py::arg("activation") = "tanh");
  m.def("gru_before_backward1", [](Arr xg, Arr h_prev, Arr dh, py::object mask, const std::string& act,
                                   const std::string& rec) {
    const Index B = xg.shape(0), U = xg.shape(1) / 3;
    Check(xg, "xg", B, 3 * U);
    Check(h_prev, "h_prev", B, U);
    Check(dh, "dh", B, U);
    auto mk = MaskArg(mask, B);
    Arr d = Like(B, 3 * U), dhg = Like(B, U), carry = Like(B, U);
    const int a = ActArg(act), r = ActArg(rec);
    Grid(B, U, [&](Index b, Index u) {
      dc::GRUBeforeBackwardPoint1<double>(b, u, U, a, r, xg.data(), h_prev.data(), dh.data(),
                                          d.mutable_data(), dhg.mutable_data(), carry.mutable_data(),
                                          MaskPtr(mk));
    });
    return py::make_tuple(d, dhg, carry);
  }, py::arg("xg"), py::arg("h_prev"), py::arg("dh"), py::arg("mask") = py::none(),
     py::arg("activation") = "tanh", py::arg("recurrent_activation") = "sigmoid");
  m.def("gru_before_backward2", [](Arr xg, Arr h_prev, Arr drh, Arr dgates, Arr dh_carry,
                                   py::object mask, const std::string& rec) {
    const Index B = xg.shape(0), U = xg.shape(1) / 3;
    Check(xg, "xg", B, 3 * U);
    Check(h_prev, "h_prev", B, U);
    Check(drh, "drh", B, U);
    Check(dgates, "dgates", B, 3 * U);
    Check(dh_carry, "dh_carry", B, U);
    auto mk = MaskArg(mask, B);
    Arr d = Copy(dgates), carry = Copy(dh_carry);
    const int r = ActArg(rec);
    Grid(B, U, [&](Index b, Index u) {
      dc::GRUBeforeBackwardPoint2<double>(b, u, U, r, xg.data(), h_prev.data(), drh.data(),
                                          d.mutable_data(), carry.mutable_data(), MaskPtr(mk));
    });
    return py::make_tuple(d, carry);
  }, py::arg("xg"), py::arg("h_prev"), py::arg("drh"), py::arg("dgates"), py::arg("dh_carry"),
     py::arg("mask") = py::none(), py::arg("recurrent_activation") = "sigmoid");
}

}  // namespace bindings
}  // namespace rnnfast
