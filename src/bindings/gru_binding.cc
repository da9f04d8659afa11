#include "bindings/kernel_binding.h"
#include "rnnfast/gru.h"

namespace rnnfast {
namespace bindings {
namespace {

struct GRUTraits {
  static constexpr const char* kName = "GRUKernel";
  static constexpr int kGates = 3;
  static constexpr int kStates = 1;
  static Shape BiasShape(const CellConfig& c) {
    if (c.reset_after) return {2, 3 * c.units};
    return {3 * c.units};
  }
  static GRUOptions MakeOptions(const CellConfig& c) {
    GRUOptions o;
    o.activation = c.activation;
    o.recurrent_activation = c.recurrent_activation;
    o.reset_after = c.reset_after;
    o.go_backwards = c.go_backwards;
    o.bf16 = c.bf16;
    return o;
  }
};

}  // namespace

void BindGRU(py::module_& m) {
  using K = KernelObject<GRU, GRUTraits>;
  BindKernel<GRU, GRUTraits>(m, "GRU over whole sequences (Keras 3 gates z, r, h; both reset_after forms).")
      .def(py::init([](Index units, const std::string& activation,
                       const std::string& recurrent_activation, bool reset_after, bool go_backwards,
                       bool bf16) {
             CellConfig c;
             c.units = units;
             c.activation = ParseActivation(activation);
             c.recurrent_activation = ParseActivation(recurrent_activation);
             c.reset_after = reset_after;
             c.go_backwards = go_backwards;
             c.bf16 = bf16;
             return new K(c);
           }),
           py::arg("units"), py::arg("activation") = "tanh",
           py::arg("recurrent_activation") = "sigmoid", py::arg("reset_after") = true,
           py::arg("go_backwards") = false, py::arg("bf16") = false)
      .def_property_readonly("recurrent_activation",
                             [](const K& k) {
                               return std::string(ActivationName(k.config().recurrent_activation));
                             })
      .def_property_readonly("reset_after", [](const K& k) { return k.config().reset_after; });
}

}  // namespace bindings
}  // namespace rnnfast
