#include "bindings/kernel_binding.h"
#include "rnnfast/lstm.h"

namespace rnnfast {
namespace bindings {
namespace {

struct LSTMTraits {
  static constexpr const char* kName = "LSTMKernel";
  static constexpr int kGates = 4;
  static constexpr int kStates = 2;
  static Shape BiasShape(const CellConfig& c) { return {4 * c.units}; }
  static LSTMOptions MakeOptions(const CellConfig& c) {
    LSTMOptions o;
    o.activation = c.activation;
    o.recurrent_activation = c.recurrent_activation;
    o.go_backwards = c.go_backwards;
    o.bf16 = c.bf16;
    return o;
  }
};

}  // namespace

void BindLSTM(py::module_& m) {
  using K = KernelObject<LSTM, LSTMTraits>;
  BindKernel<LSTM, LSTMTraits>(m, "LSTM over whole sequences (Keras 3 gates i, f, c, o).")
      .def(py::init([](Index units, const std::string& activation,
                       const std::string& recurrent_activation, bool go_backwards, bool bf16) {
             CellConfig c;
             c.units = units;
             c.activation = ParseActivation(activation);
             c.recurrent_activation = ParseActivation(recurrent_activation);
             c.go_backwards = go_backwards;
             c.bf16 = bf16;
             return new K(c);
           }),
           py::arg("units"), py::arg("activation") = "tanh",
           py::arg("recurrent_activation") = "sigmoid", py::arg("go_backwards") = false,
           py::arg("bf16") = false)
      .def_property_readonly("recurrent_activation", [](const K& k) {
        return std::string(ActivationName(k.config().recurrent_activation));
      });
}

}  // namespace bindings
}  // namespace rnnfast
