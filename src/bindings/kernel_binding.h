// One Python class per cell (SimpleRNNKernel, LSTMKernel, GRUKernel), all
// built from this template: the cell's float32 and float64 C++ objects, the
// argument checks, and GIL release around the kernels.
#pragma once

#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bindings/common.h"

namespace rnnfast {
namespace bindings {

// What the Python constructor of a kernel object receives.
struct CellConfig {
  Index units = 0;
  Activation activation = Activation::kTanh;
  Activation recurrent_activation = Activation::kSigmoid;
  bool go_backwards = false;
  bool reset_after = true;
  bool bf16 = false;  // mixed precision: bf16 GEMMs where the CPU has AVX512-BF16
};

// Traits (see rnn_binding.cc and friends) supply: kName, kGates, kStates
// (1, or 2 for LSTM), BiasShape(config) and MakeOptions(config).
template <template <typename> class Cell, typename Traits>
class KernelObject {
 public:
  explicit KernelObject(const CellConfig& config) : config_(config) {
    if (config.units <= 0)
      throw py::value_error("units must be a positive integer, got " + std::to_string(config.units));
    if (config.units > kMaxUnits)
      throw py::value_error("units must be at most 2**28 (its recurrent kernel [units, " +
                            std::to_string(Traits::kGates) +
                            "*units] could not be held in memory), got " +
                            std::to_string(config.units));
  }

  const CellConfig& config() const { return config_; }
  bool has_cache() const { return cache_dtype_ != 0; }

  py::tuple Forward(py::object x, py::object kernel, py::object recurrent_kernel, py::object bias,
                    py::object initial_state, py::object mask, py::object input_dropout_mask,
                    py::object recurrent_dropout_mask, bool training, py::object out,
                    bool return_sequences) {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) throw std::runtime_error(kBusy);
    py::array xa = AsArray(x, "x");
    if (py::array_t<float>::check_(xa))
      return ForwardT<float>(xa, kernel, recurrent_kernel, bias, initial_state, mask,
                             input_dropout_mask, recurrent_dropout_mask, training, out,
                             return_sequences);
    if (py::array_t<double>::check_(xa))
      return ForwardT<double>(xa, kernel, recurrent_kernel, bias, initial_state, mask,
                              input_dropout_mask, recurrent_dropout_mask, training, out,
                             return_sequences);
    throw py::type_error("x has dtype " + py::str(xa.dtype()).cast<std::string>() +
                         ", expected float32 or float64");
  }

  py::tuple Backward(py::object kernel, py::object recurrent_kernel, py::object doutputs,
                     py::object dfinal_state, py::object dx_out, py::object dkernel_out,
                     py::object drecurrent_kernel_out, py::object dbias_out, bool compute_dx) {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) throw std::runtime_error(kBusy);
    if (!compute_dx && !dx_out.is_none())
      throw py::value_error("dx_out was given but compute_dx is False");
    if (cache_dtype_ == 4)
      return BackwardT<float>(kernel, recurrent_kernel, doutputs, dfinal_state, dx_out, dkernel_out,
                              drecurrent_kernel_out, dbias_out, compute_dx);
    if (cache_dtype_ == 8)
      return BackwardT<double>(kernel, recurrent_kernel, doutputs, dfinal_state, dx_out, dkernel_out,
                               drecurrent_kernel_out, dbias_out, compute_dx);
    throw std::logic_error(kNoCache);
  }

 private:
  static constexpr const char* kBusy =
      "this kernel object is already running in another thread; use one object per thread";
  static constexpr const char* kNoCache =
      "backward() needs the cache of a forward(..., training=True) on this object; each "
      "training forward serves one backward, and an inference forward of the same dtype "
      "discards it";

  template <typename T>
  Cell<T>& Get() {
    auto& slot = std::get<std::unique_ptr<Cell<T>>>(cells_);
    if (!slot) slot.reset(new Cell<T>(Traits::MakeOptions(config_)));
    return *slot;
  }

  template <typename T>
  py::tuple ForwardT(const py::array& xa, py::object kernel, py::object recurrent_kernel,
                     py::object bias, py::object initial_state, py::object mask,
                     py::object input_dropout_mask, py::object recurrent_dropout_mask, bool training,
                     py::object out, bool return_sequences) {
    constexpr int G = Traits::kGates;
    if (xa.ndim() != 3)
      throw py::value_error("x must be a 3-D array (batch, time, features), got shape " + ShapeStr(xa));
    const Index B = xa.shape(0), Tn = xa.shape(1), I = xa.shape(2), U = config_.units;
    if (B <= 0 || Tn <= 0 || I <= 0)
      throw py::value_error("x must have at least one batch row, time step and feature, got shape " +
                            ShapeStr(xa));
    // What a training forward keeps, per row and step: the G*U gates, the
    // states and dropped copies (at most (G + 3)*U more) and G copies of the
    // input; the outputs and packed weights besides. Checked before x is
    // copied or anything allocated: sizes whose byte count overflowed gave
    // small buffers (a broadcast x can claim any shape).
    const Index per_step = SatAdd(SatMul(2 * G + 3, U), SatMul(G, I));
    const Index bytes = SatMul(SatAdd(SatMul(SatMul(B, SatAdd(Tn, 1)), per_step),
                                      SatMul(SatMul(2 * G, U), SatAdd(U, I))),
                               static_cast<Index>(sizeof(T)));
    if (bytes > kMaxBytes)
      throw py::value_error("x of shape " + ShapeStr(xa) + " with units=" + std::to_string(U) +
                            " needs a workspace of more than 2**62 bytes; use fewer batch rows or "
                            "time steps per call");
    const std::string g = std::to_string(G);
    auto x = Input<T>(xa, "x", Shape{B, Tn, I}, "batch, time, features");
    auto k = Input<T>(kernel, "kernel", Shape{I, G * U}, "features, " + g + "*units");
    auto r = Input<T>(recurrent_kernel, "recurrent_kernel", Shape{U, G * U}, "units, " + g + "*units");
    // Optional arguments stay empty optionals: a default-constructed
    // py::array is a real (empty) array, not "absent".
    Opt<T> b, h0, c0;
    if (!bias.is_none()) b = Input<T>(bias, "bias", Traits::BiasShape(config_), "bias of this cell");
    const auto states = StateList(initial_state, "initial_state", Traits::kStates);
    if (!states[0].is_none()) h0 = Input<T>(states[0], "initial_state", Shape{B, U}, "batch, units");
    if (Traits::kStates > 1 && !states[1].is_none())
      c0 = Input<T>(states[1], "initial_state[1]", Shape{B, U}, "batch, units");
    std::optional<py::array_t<std::uint8_t, py::array::c_style>> m;
    if (!mask.is_none()) m = MaskInput(mask, B, Tn);
    int n_in = 0, n_rec = 0;
    auto din = DropoutInput<T>(input_dropout_mask, "input_dropout_mask", G, B, I, &n_in);
    auto drec = DropoutInput<T>(recurrent_dropout_mask, "recurrent_dropout_mask", G, B, U, &n_rec);
    if (!return_sequences && !out.is_none())
      throw py::value_error("out was given but return_sequences is False (no outputs are written)");
    // Without return_sequences no step's output is written, only the final
    // state: no [B, T, U] array to allocate and fill.
    Opt<T> y;
    if (return_sequences) y = Output<T>(out, "out", Shape{B, Tn, U});
    if (y) CheckNoOverlap(*y, "out", {{&x, "x"}, {&k, "kernel"}, {&r, "recurrent_kernel"}, {Ptr(b), "bias"},
                              {Ptr(h0), "initial_state"}, {Ptr(c0), "initial_state[1]"},
                              {Ptr(din), "input_dropout_mask"}, {Ptr(drec), "recurrent_dropout_mask"}});
    py::array_t<T, py::array::c_style> h_last(Shape{B, U});
    Opt<T> c_last;
    if (Traits::kStates > 1) c_last = py::array_t<T, py::array::c_style>(Shape{B, U});

    ForwardArgs<T> a;
    a.dims = Dims{B, Tn, I, U};
    a.x = x.data();
    a.kernel = k.data();
    a.recurrent_kernel = r.data();
    a.bias = Data(b);
    a.h0 = Data(h0);
    a.c0 = Data(c0);
    a.mask = m ? m->data() : nullptr;
    a.input_dropout = Data(din);
    a.input_dropout_count = n_in;
    a.recurrent_dropout = Data(drec);
    a.recurrent_dropout_count = n_rec;
    a.y = MutableData(y);
    a.h_last = h_last.mutable_data();
    a.c_last = MutableData(c_last);
    Cell<T>& cell = Get<T>();
    // Begin() discards this dtype's cache, whatever happens next.
    if (cache_dtype_ == static_cast<int>(sizeof(T))) cache_dtype_ = 0;
    try {
      py::gil_scoped_release release;
      cell.Forward(training, a);
    } catch (const std::bad_alloc&) {
      RaiseMemoryError(std::string(Traits::kName) + ".forward: could not allocate the workspace "
                       "for x of shape " + ShapeStr(xa) + " with units=" + std::to_string(U) +
                       " (up to " + std::to_string(bytes) + " bytes)");
    }
    if (training) cache_dtype_ = static_cast<int>(sizeof(T));
    py::object final_state = h_last;
    if (Traits::kStates > 1) final_state = py::make_tuple(h_last, *c_last);
    py::object outputs = py::none();
    if (y) outputs = *y;
    return py::make_tuple(outputs, final_state);
  }

  template <typename T>
  py::tuple BackwardT(py::object kernel, py::object recurrent_kernel, py::object doutputs,
                      py::object dfinal_state, py::object dx_out, py::object dkernel_out,
                      py::object drecurrent_kernel_out, py::object dbias_out, bool compute_dx) {
    constexpr int G = Traits::kGates;
    Cell<T>& cell = Get<T>();
    const CacheInfo c = cell.cache();
    if (!c.valid) throw std::logic_error(kNoCache);
    const Index B = c.dims.batch, Tn = c.dims.time, I = c.dims.input, U = c.dims.units;
    const std::string g = std::to_string(G);
    auto k = Input<T>(kernel, "kernel", Shape{I, G * U}, "features, " + g + "*units");
    auto r = Input<T>(recurrent_kernel, "recurrent_kernel", Shape{U, G * U}, "units, " + g + "*units");
    Opt<T> dy, dh, dc;
    if (!doutputs.is_none()) dy = Input<T>(doutputs, "doutputs", Shape{B, Tn, U}, "batch, time, units");
    const auto dstates = StateList(dfinal_state, "dfinal_state", Traits::kStates);
    if (!dstates[0].is_none()) dh = Input<T>(dstates[0], "dfinal_state", Shape{B, U}, "batch, units");
    if (Traits::kStates > 1 && !dstates[1].is_none())
      dc = Input<T>(dstates[1], "dfinal_state[1]", Shape{B, U}, "batch, units");
    Opt<T> dx;
    if (compute_dx) dx = Output<T>(dx_out, "dx_out", Shape{B, Tn, I});
    auto dk = Output<T>(dkernel_out, "dkernel_out", Shape{I, G * U});
    auto dr = Output<T>(drecurrent_kernel_out, "drecurrent_kernel_out", Shape{U, G * U});
    Opt<T> db;
    if (c.has_bias) db = Output<T>(dbias_out, "dbias_out", Traits::BiasShape(config_));
    CheckDisjoint({{Ptr(dx), "dx_out"}, {&dk, "dkernel_out"}, {&dr, "drecurrent_kernel_out"},
                   {Ptr(db), "dbias_out"}},
                  {{&k, "kernel"}, {&r, "recurrent_kernel"}, {Ptr(dy), "doutputs"},
                   {Ptr(dh), "dfinal_state"}, {Ptr(dc), "dfinal_state[1]"}});
    py::array_t<T, py::array::c_style> dh0(Shape{B, U});
    Opt<T> dc0;
    if (Traits::kStates > 1) dc0 = py::array_t<T, py::array::c_style>(Shape{B, U});

    BackwardArgs<T> a;
    a.kernel = k.data();
    a.recurrent_kernel = r.data();
    a.dy = Data(dy);
    a.dh_last = Data(dh);
    a.dc_last = Data(dc);
    a.dx = MutableData(dx);
    a.dh0 = dh0.mutable_data();
    a.dc0 = MutableData(dc0);
    a.dkernel = dk.mutable_data();
    a.drecurrent_kernel = dr.mutable_data();
    a.dbias = MutableData(db);
    cache_dtype_ = 0;  // consumed, even if the kernel throws
    try {
      py::gil_scoped_release release;
      cell.Backward(a);
    } catch (const std::bad_alloc&) {
      RaiseMemoryError(std::string(Traits::kName) + ".backward: could not allocate the workspace "
                       "for a batch of " + std::to_string(B) + " over " + std::to_string(Tn) +
                       " steps with units=" + std::to_string(U));
    }
    py::object dinit = dh0;
    if (Traits::kStates > 1) dinit = py::make_tuple(dh0, *dc0);
    py::object dbias = py::none();
    if (db) dbias = *db;
    py::object dxo = py::none();
    if (dx) dxo = *dx;
    return py::make_tuple(dxo, dinit, dk, dr, dbias);
  }

  CellConfig config_;
  std::tuple<std::unique_ptr<Cell<float>>, std::unique_ptr<Cell<double>>> cells_;
  int cache_dtype_ = 0;  // sizeof(T) of the cached training forward, 0: none
  std::mutex mutex_;
};

constexpr const char* kForwardDoc = R"(forward(x, kernel, recurrent_kernel, bias=None, *, initial_state=None, mask=None, input_dropout_mask=None, recurrent_dropout_mask=None, training=False, out=None, return_sequences=True)

Runs the cell over whole sequences. G = gates (SimpleRNN 1, LSTM 4, GRU 3).

x: [B, T, I] float32 or float64; every other float argument must share its dtype.
kernel: [I, G*U]; recurrent_kernel: [U, G*U]; bias: [G*U] ([2, 3U] for GRU with
reset_after) or None for no bias. Keras 3 layouts and gate orders.
initial_state: [B, U] (LSTM: a pair (h0, c0)); None means zeros.
mask: [B, T], nonzero = process the step; a masked step carries the state.
input_dropout_mask: [B, I] or [G, B, I]; recurrent_dropout_mask: [B, U] or
[G, B, U]; multiplicative, constant over time.
training: keep what backward() needs (one backward per training forward).
out: optional [B, T, U] array to write the outputs into (not sharing memory
with an input).
return_sequences: False writes no outputs, only the final state (outputs is
then None; out must be None).

Returns (outputs [B, T, U] or None, final_state) with final_state [B, U] (LSTM: (h, c)).
With go_backwards the outputs are in processing order, as in Keras.)";

constexpr const char* kBackwardDoc = R"(backward(kernel, recurrent_kernel, *, doutputs=None, dfinal_state=None, dx_out=None, dkernel_out=None, drecurrent_kernel_out=None, dbias_out=None, compute_dx=True)

Gradients of the last forward(training=True), which it consumes.
doutputs: [B, T, U] dL/doutputs; dfinal_state: [B, U] (LSTM: (dh, dc)); None
means zeros. The *_out arguments are optional preallocated outputs; they must not share
memory with each other or with the inputs (ValueError naming both; byte ranges
are compared, as numpy.may_share_memory).
compute_dx=False skips dL/dx (a model's first layer: its input needs no
gradient; about a ninth of a single-layer training step's FLOPs).

Returns (dx [B, T, I] or None without compute_dx, dinitial_state [B, U]
(LSTM: (dh0, dc0)), dkernel, drecurrent_kernel, dbias or None).)";

// Registers the class with its forward/backward methods and properties; the
// cell's binding file adds the constructor.
template <template <typename> class Cell, typename Traits>
py::class_<KernelObject<Cell, Traits>> BindKernel(py::module_& m, const char* doc) {
  using K = KernelObject<Cell, Traits>;
  py::class_<K> cls(m, Traits::kName, py::module_local(), doc);
  cls.def("forward", &K::Forward, py::arg("x"), py::arg("kernel"), py::arg("recurrent_kernel"),
          py::arg("bias") = py::none(), py::kw_only(), py::arg("initial_state") = py::none(),
          py::arg("mask") = py::none(), py::arg("input_dropout_mask") = py::none(),
          py::arg("recurrent_dropout_mask") = py::none(), py::arg("training") = false,
          py::arg("out") = py::none(), py::arg("return_sequences") = true, kForwardDoc);
  cls.def("backward", &K::Backward, py::arg("kernel"), py::arg("recurrent_kernel"), py::kw_only(),
          py::arg("doutputs") = py::none(), py::arg("dfinal_state") = py::none(),
          py::arg("dx_out") = py::none(), py::arg("dkernel_out") = py::none(),
          py::arg("drecurrent_kernel_out") = py::none(), py::arg("dbias_out") = py::none(),
          py::arg("compute_dx") = true, kBackwardDoc);
  cls.def_property_readonly("units", [](const K& k) { return k.config().units; });
  cls.def_property_readonly("gates", [](const K&) { return Traits::kGates; });
  cls.def_property_readonly("activation",
                            [](const K& k) { return std::string(ActivationName(k.config().activation)); });
  cls.def_property_readonly("go_backwards", [](const K& k) { return k.config().go_backwards; });
  cls.def_property_readonly("bf16", [](const K& k) { return k.config().bf16; },
                            "Whether bf16 GEMMs were asked for (they run where bf16_status() "
                            "says enabled; float32 GEMMs elsewhere).");
  cls.def_property_readonly("has_cache", &K::has_cache,
                            "Whether a training forward left a cache for backward().");
  return cls;
}

}  // namespace bindings
}  // namespace rnnfast
