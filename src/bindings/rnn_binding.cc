#include "bindings/kernel_binding.h"
#include "rnnfast/rnn.h"

namespace rnnfast {
namespace bindings {
namespace {

struct SimpleRNNTraits {
  static constexpr const char* kName = "SimpleRNNKernel";
  static constexpr int kGates = 1;
  static constexpr int kStates = 1;
  static Shape BiasShape(const CellConfig& c) { return {c.units}; }
  static SimpleRNNOptions MakeOptions(const CellConfig& c) {
    SimpleRNNOptions o;
    o.activation = c.activation;
    o.go_backwards = c.go_backwards;
    o.bf16 = c.bf16;
    return o;
  }
};

}  // namespace

void BindSimpleRNN(py::module_& m) {
  using K = KernelObject<SimpleRNN, SimpleRNNTraits>;
  BindKernel<SimpleRNN, SimpleRNNTraits>(
      m, "SimpleRNN over whole sequences: h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias).")
      .def(py::init([](Index units, const std::string& activation, bool go_backwards, bool bf16) {
             CellConfig c;
             c.units = units;
             c.activation = ParseActivation(activation);
             c.go_backwards = go_backwards;
             c.bf16 = bf16;
             return new K(c);
           }),
           py::arg("units"), py::arg("activation") = "tanh", py::arg("go_backwards") = false,
           py::arg("bf16") = false);
}

}  // namespace bindings
}  // namespace rnnfast
