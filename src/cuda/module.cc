// rnnfast._cuda: device discovery, cuBLAS loading and the recurrent kernel
// objects on the GPU (argument checks, GIL release; math in rnn_cuda.cu).
// Built only with -DRNNFAST_CUDA=ON/AUTO and nvcc; the CPU module never
// depends on it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cuda/rnn_cuda.h"

namespace py = pybind11;
using rnnfast::cuda::Cell;
using rnnfast::cuda::CellOptions;
using rnnfast::cuda::DeviceRNN;

namespace {

using Shape = std::vector<py::ssize_t>;

std::string ShapeStr(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

template <typename T>
py::array_t<T, py::array::c_style> In(py::handle obj, const char* name, const Shape& shape) {
  py::array a = py::array::ensure(obj);
  if (!a) throw py::type_error(std::string(name) + " must be an array");
  if (!py::array_t<T>::check_(a))
    throw py::type_error(std::string(name) + " has dtype " + py::str(a.dtype()).cast<std::string>() +
                         ", expected the dtype of x");
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (std::size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok) {
    std::string want = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    throw py::value_error(std::string(name) + " must have shape " + want + "), got " + ShapeStr(a));
  }
  return py::array_t<T, py::array::c_style>::ensure(a);
}

int ActivationCode(const std::string& name) {
  if (name == "tanh") return 0;
  if (name == "sigmoid") return 1;
  if (name == "hard_sigmoid") return 2;
  if (name == "relu") return 3;
  if (name == "linear") return 4;
  throw py::value_error("unknown activation '" + name +
                        "': expected 'tanh', 'sigmoid', 'hard_sigmoid', 'relu' or 'linear'");
}

// One Python class for the three cells; float32 and float64 objects inside.
class Kernel {
 public:
  Kernel(Cell cell, long long units, const std::string& activation,
         const std::string& recurrent_activation, bool go_backwards, bool reset_after, int device)
      : units_(units), device_(device) {
    if (units <= 0) throw py::value_error("units must be a positive integer");
    o_.cell = cell;
    o_.activation = ActivationCode(activation);
    o_.recurrent_activation = ActivationCode(recurrent_activation);
    o_.go_backwards = go_backwards;
    o_.reset_after = reset_after;
  }

  py::tuple Forward(py::object x, py::object kernel, py::object recurrent_kernel, py::object bias,
                    py::object initial_state, py::object mask, py::object input_dropout_mask,
                    bool training, bool return_sequences) {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) throw std::runtime_error(kBusy);
    py::array xa = py::array::ensure(x);
    if (xa && py::array_t<float>::check_(xa))
      return ForwardT<float>(xa, kernel, recurrent_kernel, bias, initial_state, mask,
                             input_dropout_mask, training, return_sequences, f32_);
    if (xa && py::array_t<double>::check_(xa))
      return ForwardT<double>(xa, kernel, recurrent_kernel, bias, initial_state, mask,
                              input_dropout_mask, training, return_sequences, f64_);
    throw py::type_error("x must be a float32 or float64 array");
  }

  py::tuple Backward(py::object doutputs, py::object dfinal_state, bool compute_dx) {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) throw std::runtime_error(kBusy);
    if (cache_ == 4) return BackwardT<float>(doutputs, dfinal_state, compute_dx, f32_);
    if (cache_ == 8) return BackwardT<double>(doutputs, dfinal_state, compute_dx, f64_);
    throw std::logic_error("backward() needs the cache of a forward(..., training=True)");
  }

 private:
  static constexpr const char* kBusy =
      "this kernel object is already running in another thread; use one object per thread";
  int G() const { return static_cast<int>(o_.cell); }
  std::vector<py::object> States(py::object s) const {
    const int n = o_.cell == Cell::kLSTM ? 2 : 1;
    std::vector<py::object> out(n, py::none());
    if (s.is_none()) return out;
    if (py::isinstance<py::list>(s) || py::isinstance<py::tuple>(s)) {
      py::sequence seq = s;
      if (static_cast<int>(seq.size()) != n)
        throw py::value_error("the state must hold " + std::to_string(n) + " arrays");
      for (int i = 0; i < n; ++i) out[i] = seq[i];
      return out;
    }
    if (n != 1) throw py::type_error("an LSTM state must be a pair (h, c)");  // as the CPU kernels
    out[0] = s;
    return out;
  }

  template <typename T>
  py::tuple ForwardT(const py::array& xa, py::object kernel, py::object recurrent_kernel,
                     py::object bias, py::object initial_state, py::object mask,
                     py::object input_dropout_mask, bool training, bool return_sequences,
                     std::unique_ptr<DeviceRNN<T>>& obj) {
    if (xa.ndim() != 3) throw py::value_error("x must be a 3-D array (batch, time, features), got shape " + ShapeStr(xa));
    const long long B = xa.shape(0), Tn = xa.shape(1), I = xa.shape(2), U = units_, GU = G() * U;
    if (B <= 0 || Tn <= 0 || I <= 0) throw py::value_error("x must not be empty");
    auto x = In<T>(xa, "x", {B, Tn, I});
    auto k = In<T>(kernel, "kernel", {I, GU});
    auto r = In<T>(recurrent_kernel, "recurrent_kernel", {U, GU});
    std::optional<py::array_t<T, py::array::c_style>> b, h0, c0;
    const bool two = o_.cell == Cell::kGRU && o_.reset_after;
    if (!bias.is_none()) b = two ? In<T>(bias, "bias", {2, GU}) : In<T>(bias, "bias", {GU});
    const auto st = States(initial_state);
    if (!st[0].is_none()) h0 = In<T>(st[0], "initial_state", {B, U});
    if (st.size() > 1 && !st[1].is_none()) c0 = In<T>(st[1], "initial_state[1]", {B, U});
    std::optional<py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>> m;
    if (!mask.is_none()) {
      // As the CPU kernels: bool, integer or float masks, nonzero = step.
      py::object np = py::module_::import("numpy");
      py::array ma = np.attr("asarray")(mask);
      const char kind = ma.dtype().kind();
      if (kind != 'b' && kind != 'i' && kind != 'u' && kind != 'f')
        throw py::type_error("mask must hold booleans or numbers, got dtype " +
                             py::str(ma.dtype()).cast<std::string>());
      m = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>::ensure(
          np.attr("not_equal")(ma, 0));
      if (m->ndim() != 2 || m->shape(0) != B || m->shape(1) != Tn)
        throw py::value_error("mask must have shape (batch, time)");
    }
    std::optional<py::array_t<T, py::array::c_style>> din;
    if (!input_dropout_mask.is_none()) {
      py::array d = py::array::ensure(input_dropout_mask);
      if (d && d.ndim() == 3 && d.shape(0) == 1) d = d.attr("reshape")(B, I);
      if (d && d.ndim() == 3)
        throw py::value_error("per-gate input dropout masks ([G, batch, features]) are not "
                              "supported on the GPU; pass one [batch, features] mask");
      din = In<T>(d, "input_dropout_mask", {B, I});
    }
    std::optional<py::array_t<T, py::array::c_style>> y;
    if (return_sequences) y = py::array_t<T, py::array::c_style>(Shape{B, Tn, U});
    py::array_t<T, py::array::c_style> h(Shape{B, U});
    std::optional<py::array_t<T, py::array::c_style>> c;
    if (o_.cell == Cell::kLSTM) c = py::array_t<T, py::array::c_style>(Shape{B, U});
    if (!obj) obj.reset(new DeviceRNN<T>(o_, device_));
    if (cache_ == static_cast<int>(sizeof(T))) cache_ = 0;  // this dtype's cache is overwritten
    {
      py::gil_scoped_release release;
      obj->Forward(training, B, Tn, I, U, x.data(), k.data(), r.data(), b ? b->data() : nullptr,
                   h0 ? h0->data() : nullptr, c0 ? c0->data() : nullptr, m ? m->data() : nullptr,
                   din ? din->data() : nullptr, y ? y->mutable_data() : nullptr, h.mutable_data(), c ? c->mutable_data() : nullptr);
    }
    if (training) {
      cache_ = sizeof(T);
      dims_[sizeof(T) / 8] = {B, Tn, I, b.has_value()};
    }
    py::object fs = h;
    if (c) fs = py::make_tuple(h, *c);
    return py::make_tuple(y ? py::object(*y) : py::object(py::none()), fs);
  }

  template <typename T>
  py::tuple BackwardT(py::object doutputs, py::object dfinal_state, bool compute_dx,
                      std::unique_ptr<DeviceRNN<T>>& obj) {
    const Dims& d = dims_[sizeof(T) / 8];
    const long long B = d.B, Tn = d.T, I = d.I, U = units_, GU = G() * U;
    std::optional<py::array_t<T, py::array::c_style>> dy, dh, dc, dx, db, dc0;
    if (!doutputs.is_none()) dy = In<T>(doutputs, "doutputs", {B, Tn, U});
    const auto st = States(dfinal_state);
    if (!st[0].is_none()) dh = In<T>(st[0], "dfinal_state", {B, U});
    if (st.size() > 1 && !st[1].is_none()) dc = In<T>(st[1], "dfinal_state[1]", {B, U});
    if (compute_dx) dx = py::array_t<T, py::array::c_style>(Shape{B, Tn, I});
    const bool two = o_.cell == Cell::kGRU && o_.reset_after;
    if (d.bias) db = py::array_t<T, py::array::c_style>(two ? Shape{2, GU} : Shape{GU});
    py::array_t<T, py::array::c_style> dh0(Shape{B, U}), dk(Shape{I, GU}), dr(Shape{U, GU});
    if (o_.cell == Cell::kLSTM) dc0 = py::array_t<T, py::array::c_style>(Shape{B, U});
    cache_ = 0;
    {
      py::gil_scoped_release release;
      obj->Backward(dy ? dy->data() : nullptr, dh ? dh->data() : nullptr, dc ? dc->data() : nullptr,
                    dx ? dx->mutable_data() : nullptr, dh0.mutable_data(),
                    dc0 ? dc0->mutable_data() : nullptr, dk.mutable_data(), dr.mutable_data(),
                    db ? db->mutable_data() : nullptr);
    }
    py::object dinit = dh0;
    if (dc0) dinit = py::make_tuple(dh0, *dc0);
    return py::make_tuple(dx ? py::object(*dx) : py::object(py::none()), dinit, dk, dr,
                          db ? py::object(*db) : py::object(py::none()));
  }

  CellOptions o_;
  long long units_;
  int device_;
  int cache_ = 0;  // sizeof(T) of the cached training forward, 0: none
  struct Dims {
    long long B = 0, T = 0, I = 0;
    bool bias = false;
  };
  Dims dims_[2];  // of the last training forward per dtype: [0] float32, [1] float64
  std::mutex mutex_;
  std::unique_ptr<DeviceRNN<float>> f32_;
  std::unique_ptr<DeviceRNN<double>> f64_;
};

}  // namespace

#ifndef RNNFAST_CUDA_MODULE_NAME
#define RNNFAST_CUDA_MODULE_NAME _cuda
#endif

PYBIND11_MODULE(RNNFAST_CUDA_MODULE_NAME, m) {
  m.doc() = "rnnfast's CUDA kernels (SimpleRNN, LSTM, GRU forward and backward on a GPU).";
  m.def("device_count", []() {
    std::string why;
    const int n = rnnfast::cuda::DeviceCount(&why);
    return py::make_tuple(n, why);
  }, "(number of visible CUDA devices, why none: '' when there are some).");
  m.def("device_name", &rnnfast::cuda::DeviceName, py::arg("device") = 0);
  m.def("load_cublas", [](const std::string& path) {
    std::string why;
    const bool ok = rnnfast::cuda::LoadCublas(path, &why);
    return py::make_tuple(ok, why);
  }, py::arg("path"), "dlopen()s cuBLAS from path (a file or a library name); (ok, why).");
  m.def("cublas_loaded", &rnnfast::cuda::CublasLoaded);
  py::class_<Kernel>(m, "RecurrentKernel", py::module_local(),
                     "SimpleRNN (gates=1), LSTM (4) or GRU (3) over whole sequences on a GPU; the "
                     "arguments and results of the CPU kernel objects (rnnfast._core), with one "
                     "shared input dropout mask and no recurrent dropout.")
      .def(py::init([](int gates, long long units, const std::string& activation,
                       const std::string& recurrent_activation, bool go_backwards, bool reset_after,
                       int device) {
             if (gates != 1 && gates != 3 && gates != 4)
               throw py::value_error("gates must be 1 (SimpleRNN), 3 (GRU) or 4 (LSTM)");
             return new Kernel(static_cast<Cell>(gates), units, activation, recurrent_activation,
                               go_backwards, reset_after, device);
           }),
           py::arg("gates"), py::arg("units"), py::arg("activation") = "tanh",
           py::arg("recurrent_activation") = "sigmoid", py::arg("go_backwards") = false,
           py::arg("reset_after") = true, py::arg("device") = 0)
      .def("forward", &Kernel::Forward, py::arg("x"), py::arg("kernel"), py::arg("recurrent_kernel"),
           py::arg("bias") = py::none(), py::kw_only(), py::arg("initial_state") = py::none(),
           py::arg("mask") = py::none(), py::arg("input_dropout_mask") = py::none(),
           py::arg("training") = false,
           py::arg("return_sequences") = true)
      .def("backward", &Kernel::Backward, py::kw_only(), py::arg("doutputs") = py::none(),
           py::arg("dfinal_state") = py::none(), py::arg("compute_dx") = true);
}
