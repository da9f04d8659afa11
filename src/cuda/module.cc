// rnnfast._cuda: device discovery, cuBLAS loading and the recurrent kernel
// objects on the GPU (argument checks, GIL release; math in rnn_cuda.cu).
// Built only with -DRNNFAST_CUDA=ON/AUTO and nvcc; the CPU module never
// depends on it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <memory>
#include <set>
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

// Device memory owned by Python: a weight, its gradient or an optimizer slot
// kept on the GPU during fit (rnnfast._device moves them there).
class DeviceArray {
 public:
  DeviceArray(std::vector<py::ssize_t> shape, py::dtype dtype, int device)
      : shape_(std::move(shape)), dtype_(dtype), device_(device) {
    if (!dtype.is(py::dtype::of<float>()) && !dtype.is(py::dtype::of<double>()))
      throw py::type_error("DeviceArray: dtype must be float32 or float64, got " +
                           py::str(dtype).cast<std::string>());
    count_ = 1;
    for (py::ssize_t d : shape_) {
      if (d < 0) throw py::value_error("DeviceArray: negative dimension");
      count_ *= static_cast<std::size_t>(d);
    }
    p_ = rnnfast::cuda::DeviceAlloc(nbytes(), device_);
  }
  ~DeviceArray() { rnnfast::cuda::DeviceFree(p_, device_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  std::size_t size() const { return count_; }
  std::size_t nbytes() const { return count_ * static_cast<std::size_t>(dtype_.itemsize()); }
  const std::vector<py::ssize_t>& shape() const { return shape_; }
  py::dtype dtype() const { return dtype_; }
  int device() const { return device_; }
  void* data() const { return p_; }
  bool is_double() const { return dtype_.itemsize() == 8; }
  std::string describe() const {
    std::string s = "(";
    for (std::size_t i = 0; i < shape_.size(); ++i) s += (i ? ", " : "") + std::to_string(shape_[i]);
    return s + (shape_.size() == 1 ? ",)" : ")") + " " + py::str(dtype_).cast<std::string>();
  }

  void Upload(py::handle value) {
    py::array a = py::array::ensure(value);
    if (!a || !a.dtype().is(dtype_))
      throw py::type_error("DeviceArray.upload: expected a " + py::str(dtype_).cast<std::string>() +
                           " array");
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape_.size());
    for (std::size_t i = 0; ok && i < shape_.size(); ++i) ok = a.shape(i) == shape_[i];
    if (!ok) throw py::value_error("DeviceArray.upload: expected shape " + describe() + ", got " + ShapeStr(a));
    py::array c = py::array::ensure(a, py::array::c_style);
    const void* src = c.data();
    py::gil_scoped_release release;
    rnnfast::cuda::CopyToDevice(p_, src, nbytes(), device_);
  }
  py::array Download() const {
    py::array out(dtype_, shape_);
    void* dst = out.mutable_data();
    {
      py::gil_scoped_release release;
      rnnfast::cuda::CopyToHost(dst, p_, nbytes(), device_);
    }
    return out;
  }
  void Zero() { rnnfast::cuda::DeviceZero(p_, nbytes(), device_); }

 private:
  std::vector<py::ssize_t> shape_;
  py::dtype dtype_;
  int device_;
  std::size_t count_ = 0;
  void* p_ = nullptr;
};

// A DeviceArray argument of the given shape and element type, or a clear error.
template <typename T>
DeviceArray* DeviceIn(py::handle obj, const char* name, const Shape& shape, int device) {
  DeviceArray* d = obj.cast<DeviceArray*>();
  bool ok = d->shape().size() == shape.size() && d->dtype().itemsize() == static_cast<py::ssize_t>(sizeof(T));
  for (std::size_t i = 0; ok && i < shape.size(); ++i) ok = d->shape()[i] == shape[i];
  if (!ok) {
    std::string want = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    throw py::value_error(std::string(name) + " must be a device array of shape " + want + ") " +
                          (sizeof(T) == 4 ? "float32" : "float64") + ", got " + d->describe());
  }
  if (d->device() != device)
    throw py::value_error(std::string(name) + " lives on gpu:" + std::to_string(d->device()) +
                          ", the kernel on gpu:" + std::to_string(device));
  return d;
}

// One Python class for the three cells; float32 and float64 objects inside.
class Kernel {
 public:
  Kernel(Cell cell, long long units, const std::string& activation,
         const std::string& recurrent_activation, bool go_backwards, bool reset_after, int device)
      : units_(units), device_(device) {
    if (units <= 0) throw py::value_error("units must be a positive integer");
    // As the CPU kernels (bindings/common.h, kMaxUnits): beyond it the
    // recurrent kernel could not be held and the size arithmetic could overflow.
    if (units > (1LL << 28))
      throw py::value_error("units must be at most 2**28 (its recurrent kernel [units, G*units] "
                            "could not be held in memory), got " + std::to_string(units));
    o_.cell = cell;
    o_.activation = ActivationCode(activation);
    o_.recurrent_activation = ActivationCode(recurrent_activation);
    o_.go_backwards = go_backwards;
    o_.reset_after = reset_after;
  }

  py::tuple Forward(py::object x, py::object kernel, py::object recurrent_kernel, py::object bias,
                    py::object initial_state, py::object mask, py::object input_dropout_mask,
                    py::object recurrent_dropout_mask, bool training, bool return_sequences) {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) throw std::runtime_error(kBusy);
    py::array xa = py::array::ensure(x);
    if (xa && py::array_t<float>::check_(xa))
      return ForwardT<float>(xa, kernel, recurrent_kernel, bias, initial_state, mask,
                             input_dropout_mask, recurrent_dropout_mask, training,
                             return_sequences, f32_);
    if (xa && py::array_t<double>::check_(xa))
      return ForwardT<double>(xa, kernel, recurrent_kernel, bias, initial_state, mask,
                              input_dropout_mask, recurrent_dropout_mask, training,
                              return_sequences, f64_);
    throw py::type_error("x must be a float32 or float64 array");
  }

  py::tuple Backward(py::object doutputs, py::object dfinal_state, bool compute_dx,
                     py::object dkernel_out, py::object drecurrent_kernel_out,
                     py::object dbias_out, bool accumulate) {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) throw std::runtime_error(kBusy);
    const Outs outs{dkernel_out, drecurrent_kernel_out, dbias_out, accumulate};
    if (cache_ == 4) return BackwardT<float>(doutputs, dfinal_state, compute_dx, outs, f32_);
    if (cache_ == 8) return BackwardT<double>(doutputs, dfinal_state, compute_dx, outs, f64_);
    throw std::logic_error("backward() needs the cache of a forward(..., training=True)");
  }

  py::dict GraphStats() const {
    py::dict d;
    long long c = 0, r = 0, f = 0;
    if (f32_) c += f32_->graph_stats().captures, r += f32_->graph_stats().replays, f += f32_->graph_stats().fallbacks;
    if (f64_) c += f64_->graph_stats().captures, r += f64_->graph_stats().replays, f += f64_->graph_stats().fallbacks;
    d["captures"] = c;
    d["replays"] = r;
    d["fallbacks"] = f;
    return d;
  }

 private:
  static constexpr const char* kBusy =
      "this kernel object is already running in another thread; use one object per thread";
  // Device arrays for the weight gradients (all None: host results returned).
  struct Outs {
    py::object dk, dr, db;
    bool accumulate;
  };
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
                     py::object input_dropout_mask, py::object recurrent_dropout_mask,
                     bool training, bool return_sequences,
                     std::unique_ptr<DeviceRNN<T>>& obj) {
    if (xa.ndim() != 3) throw py::value_error("x must be a 3-D array (batch, time, features), got shape " + ShapeStr(xa));
    const long long B = xa.shape(0), Tn = xa.shape(1), I = xa.shape(2), U = units_, GU = G() * U;
    if (B <= 0 || Tn <= 0 || I <= 0) throw py::value_error("x must not be empty");
    {
      // The device buffers hold per row and step the gates, states and the
      // input: refuse sizes whose byte count overflows before anything is
      // copied (a broadcast x can claim any shape).
      long long per = 0, rows = 0, total = 0;  // 2 * GU + 3 * U: at most 2**32 (units bound)
      const bool overflow = __builtin_add_overflow(2 * GU + 3 * U, I, &per) ||
                            __builtin_mul_overflow(B, Tn, &rows) ||
                            __builtin_mul_overflow(rows, per, &total) ||
                            __builtin_mul_overflow(total, static_cast<long long>(sizeof(T)),
                                                   &total);
      if (overflow || total > (1LL << 62))
        throw py::value_error("x of shape " + ShapeStr(xa) + " with units=" + std::to_string(U) +
                              " needs more than 2**62 bytes of workspace; use fewer batch rows or "
                              "time steps per call");
    }
    auto x = In<T>(xa, "x", {B, Tn, I});
    const bool two = o_.cell == Cell::kGRU && o_.reset_after;
    const Shape bshape = two ? Shape{2, GU} : Shape{GU};
    // Weights: host arrays (uploaded each call) or device arrays (used in place).
    const bool on_device = py::isinstance<DeviceArray>(kernel);
    if (on_device != py::isinstance<DeviceArray>(recurrent_kernel) ||
        (!bias.is_none() && on_device != py::isinstance<DeviceArray>(bias)))
      throw py::type_error("kernel, recurrent_kernel and bias must all be device arrays or all "
                           "host arrays");
    std::optional<py::array_t<T, py::array::c_style>> k, r, b, h0, c0;
    const T *kp = nullptr, *rp = nullptr, *bp = nullptr;
    if (on_device) {
      kp = static_cast<const T*>(DeviceIn<T>(kernel, "kernel", {I, GU}, device_)->data());
      rp = static_cast<const T*>(DeviceIn<T>(recurrent_kernel, "recurrent_kernel", {U, GU}, device_)->data());
      if (!bias.is_none()) bp = static_cast<const T*>(DeviceIn<T>(bias, "bias", bshape, device_)->data());
    } else {
      k = In<T>(kernel, "kernel", {I, GU});
      r = In<T>(recurrent_kernel, "recurrent_kernel", {U, GU});
      if (!bias.is_none()) b = In<T>(bias, "bias", bshape);
      kp = k->data(), rp = r->data(), bp = b ? b->data() : nullptr;
    }
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
    // Dropout masks as the CPU kernels take them: [batch, n] for all gates,
    // or [1 or G, batch, n].
    auto dropout = [&](py::object given, const char* name, long long width, int* count) {
      std::optional<py::array_t<T, py::array::c_style>> out;
      *count = 0;
      if (given.is_none()) return out;
      py::array d = py::array::ensure(given);
      if (d && d.ndim() == 3 && (d.shape(0) == 1 || d.shape(0) == G())) {
        *count = static_cast<int>(d.shape(0));
        out = In<T>(d, name, {*count, B, width});
      } else {
        if (d && d.ndim() == 3)
          throw py::value_error(std::string(name) + " must have shape (batch, n), (1, batch, n) or (" +
                                std::to_string(G()) + ", batch, n) with n = " + std::to_string(width) +
                                ", got " + ShapeStr(d));
        *count = 1;
        out = In<T>(d, name, {B, width});
      }
      return out;
    };
    int n_in = 0, n_rec = 0;
    auto din = dropout(input_dropout_mask, "input_dropout_mask", I, &n_in);
    auto drec = dropout(recurrent_dropout_mask, "recurrent_dropout_mask", U, &n_rec);
    std::optional<py::array_t<T, py::array::c_style>> y;
    if (return_sequences) y = py::array_t<T, py::array::c_style>(Shape{B, Tn, U});
    py::array_t<T, py::array::c_style> h(Shape{B, U});
    std::optional<py::array_t<T, py::array::c_style>> c;
    if (o_.cell == Cell::kLSTM) c = py::array_t<T, py::array::c_style>(Shape{B, U});
    if (!obj) obj.reset(new DeviceRNN<T>(o_, device_));
    if (cache_ == static_cast<int>(sizeof(T))) cache_ = 0;  // this dtype's cache is overwritten
    {
      py::gil_scoped_release release;
      obj->Forward(training, B, Tn, I, U, x.data(), kp, rp, bp, h0 ? h0->data() : nullptr,
                   c0 ? c0->data() : nullptr, m ? m->data() : nullptr, din ? din->data() : nullptr,
                   y ? y->mutable_data() : nullptr, h.mutable_data(),
                   c ? c->mutable_data() : nullptr, on_device, n_in,
                   drec ? drec->data() : nullptr, n_rec);
    }
    if (training) {
      cache_ = sizeof(T);
      dims_[sizeof(T) / 8] = {B, Tn, I, bp != nullptr};
      // The backward reads the device weights in place: keep them alive until then.
      held_ = on_device ? py::make_tuple(kernel, recurrent_kernel, bias) : py::tuple();
    }
    py::object fs = h;
    if (c) fs = py::make_tuple(h, *c);
    return py::make_tuple(y ? py::object(*y) : py::object(py::none()), fs);
  }

  template <typename T>
  py::tuple BackwardT(py::object doutputs, py::object dfinal_state, bool compute_dx,
                      const Outs& outs, std::unique_ptr<DeviceRNN<T>>& obj) {
    const Dims& d = dims_[sizeof(T) / 8];
    const long long B = d.B, Tn = d.T, I = d.I, U = units_, GU = G() * U;
    std::optional<py::array_t<T, py::array::c_style>> dy, dh, dc, dx, db, dc0;
    if (!doutputs.is_none()) dy = In<T>(doutputs, "doutputs", {B, Tn, U});
    const auto st = States(dfinal_state);
    if (!st[0].is_none()) dh = In<T>(st[0], "dfinal_state", {B, U});
    if (st.size() > 1 && !st[1].is_none()) dc = In<T>(st[1], "dfinal_state[1]", {B, U});
    if (compute_dx) dx = py::array_t<T, py::array::c_style>(Shape{B, Tn, I});
    const bool two = o_.cell == Cell::kGRU && o_.reset_after;
    const Shape bshape = two ? Shape{2, GU} : Shape{GU};
    // Weight gradients into device arrays (kept on the GPU) or new host arrays.
    const bool on_device = !outs.dk.is_none();
    if (on_device != !outs.dr.is_none() || (d.bias && on_device != !outs.db.is_none()))
      throw py::type_error("dkernel_out, drecurrent_kernel_out (and dbias_out with a bias) must "
                           "be given together");
    std::optional<py::array_t<T, py::array::c_style>> dk, dr;
    T *dkp = nullptr, *drp = nullptr, *dbp = nullptr;
    if (on_device) {
      dkp = static_cast<T*>(DeviceIn<T>(outs.dk, "dkernel_out", {I, GU}, device_)->data());
      drp = static_cast<T*>(DeviceIn<T>(outs.dr, "drecurrent_kernel_out", {U, GU}, device_)->data());
      if (d.bias) dbp = static_cast<T*>(DeviceIn<T>(outs.db, "dbias_out", bshape, device_)->data());
    } else {
      dk = py::array_t<T, py::array::c_style>(Shape{I, GU});
      dr = py::array_t<T, py::array::c_style>(Shape{U, GU});
      if (d.bias) db = py::array_t<T, py::array::c_style>(bshape);
      dkp = dk->mutable_data(), drp = dr->mutable_data(), dbp = db ? db->mutable_data() : nullptr;
    }
    py::array_t<T, py::array::c_style> dh0(Shape{B, U});
    if (o_.cell == Cell::kLSTM) dc0 = py::array_t<T, py::array::c_style>(Shape{B, U});
    cache_ = 0;
    py::tuple held = std::move(held_);  // released when this backward returns
    held_ = py::tuple();
    {
      py::gil_scoped_release release;
      obj->Backward(dy ? dy->data() : nullptr, dh ? dh->data() : nullptr, dc ? dc->data() : nullptr,
                    dx ? dx->mutable_data() : nullptr, dh0.mutable_data(),
                    dc0 ? dc0->mutable_data() : nullptr, dkp, drp, dbp, on_device,
                    outs.accumulate);
    }
    py::object dinit = dh0;
    if (dc0) dinit = py::make_tuple(dh0, *dc0);
    auto opt = [](const std::optional<py::array_t<T, py::array::c_style>>& a) {
      return a ? py::object(*a) : py::object(py::none());
    };
    return py::make_tuple(opt(dx), dinit, opt(dk), opt(dr), opt(db));
  }

  CellOptions o_;
  long long units_;
  int device_;
  int cache_ = 0;  // sizeof(T) of the cached training forward, 0: none
  py::tuple held_;  // the device weights of the cached forward (its backward reads them)
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
                     "arguments and results of the CPU kernel objects (rnnfast._core), dropout "
                     "masks included.")
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
           py::arg("recurrent_dropout_mask") = py::none(),
           py::arg("training") = false,
           py::arg("return_sequences") = true)
      .def("backward", &Kernel::Backward, py::kw_only(), py::arg("doutputs") = py::none(),
           py::arg("dfinal_state") = py::none(), py::arg("compute_dx") = true,
           py::arg("dkernel_out") = py::none(), py::arg("drecurrent_kernel_out") = py::none(),
           py::arg("dbias_out") = py::none(), py::arg("accumulate") = false,
           "Gradients (dx, dinit, dkernel, drecurrent_kernel, dbias). With device arrays "
           "dkernel_out, drecurrent_kernel_out (and dbias_out) the weight gradients are written "
           "there on the GPU (added to what they hold with accumulate=True) and returned as "
           "None.")
      .def("graph_stats", &Kernel::GraphStats,
           "{'captures', 'replays', 'fallbacks'}: CUDA graphs of this object's calls.");

  py::class_<DeviceArray>(m, "DeviceArray", py::module_local(),
                          "GPU memory holding one array (zeros when made): a weight, gradient or "
                          "optimizer slot kept on the device during fit.")
      .def(py::init([](py::object shape, py::object dtype, int device) {
             std::vector<py::ssize_t> sh;
             for (py::handle d : shape) sh.push_back(d.cast<py::ssize_t>());
             return new DeviceArray(sh, py::dtype::from_args(dtype), device);
           }),
           py::arg("shape"), py::arg("dtype"), py::arg("device") = 0)
      .def_property_readonly("shape", [](const DeviceArray& a) {
        py::tuple t(a.shape().size());
        for (std::size_t i = 0; i < a.shape().size(); ++i) t[i] = a.shape()[i];
        return t;
      })
      .def_property_readonly("dtype", &DeviceArray::dtype)
      .def_property_readonly("device", &DeviceArray::device)
      .def_property_readonly("nbytes", &DeviceArray::nbytes)
      .def("upload", &DeviceArray::Upload, py::arg("value"), "Copies a host array of this shape and dtype in.")
      .def("download", &DeviceArray::Download, "A new host array with the contents.")
      .def("zero", &DeviceArray::Zero);

  // Fused optimizer updates, one kernel per weight (device arrays of one dtype).
  m.def("adam_update", [](py::list weights, py::list grads, py::list ms, py::list vs, py::object vhats,
                          double alpha, double c1, double c2, double eps, py::list decays, double lr) {
    const std::size_t n = weights.size();
    if (grads.size() != n || ms.size() != n || vs.size() != n || decays.size() != n ||
        (!vhats.is_none() && py::len(vhats) != n))
      throw py::value_error("adam_update: weights, grads, ms, vs, decays (and vhats) must have the same length");
    // Every argument is checked before anything is launched: no half-done step.
    std::vector<std::array<DeviceArray*, 5>> args(n);
    for (std::size_t i = 0; i < n; ++i) {
      DeviceArray* w = weights[i].cast<DeviceArray*>();
      args[i] = {w, grads[i].cast<DeviceArray*>(), ms[i].cast<DeviceArray*>(),
                 vs[i].cast<DeviceArray*>(),
                 vhats.is_none() ? nullptr : py::list(vhats)[i].cast<DeviceArray*>()};
      for (int j = 1; j < 5; ++j) {
        DeviceArray* p = args[i][j];
        if (p != nullptr && (p->shape() != w->shape() || !p->dtype().is(w->dtype()) || p->device() != w->device()))
          throw py::value_error("adam_update: weights[" + std::to_string(i) + "] is " + w->describe() +
                                " on gpu:" + std::to_string(w->device()) + ", its gradient or slot " +
                                p->describe() + " on gpu:" + std::to_string(p->device()));
      }
    }
    std::set<int> devices;
    for (std::size_t i = 0; i < n; ++i) {
      DeviceArray* w = args[i][0];
      DeviceArray* parts[4] = {args[i][1], args[i][2], args[i][3], args[i][4]};
      devices.insert(w->device());
      const double decay = decays[i].cast<double>();
      const long long count = static_cast<long long>(w->size());
      if (w->is_double())
        rnnfast::cuda::AdamUpdate<double>(w->device(), count, (double*)w->data(), (const double*)parts[0]->data(),
                                          (double*)parts[1]->data(), (double*)parts[2]->data(),
                                          parts[3] ? (double*)parts[3]->data() : nullptr, alpha, c1, c2, eps, decay, lr);
      else
        rnnfast::cuda::AdamUpdate<float>(w->device(), count, (float*)w->data(), (const float*)parts[0]->data(),
                                         (float*)parts[1]->data(), (float*)parts[2]->data(),
                                         parts[3] ? (float*)parts[3]->data() : nullptr, (float)alpha, (float)c1,
                                         (float)c2, (float)eps, (float)decay, (float)lr);
    }
    for (int d : devices) rnnfast::cuda::WaitForUpdates(d);
  }, py::arg("weights"), py::arg("grads"), py::arg("ms"), py::arg("vs"), py::arg("vhats"),
     py::arg("alpha"), py::arg("c1"), py::arg("c2"), py::arg("eps"), py::arg("decays"), py::arg("lr"),
     "One Adam step on the device (rnnfast._core.adam_step's arithmetic; decoupled weight decay "
     "w - (w * decay) * lr first where decay != 0).");
  m.def("sgd_update", [](py::list weights, py::list grads, py::object momentums, double lr,
                         double momentum, bool nesterov, py::list decays) {
    const std::size_t n = weights.size();
    if (grads.size() != n || decays.size() != n || (!momentums.is_none() && py::len(momentums) != n))
      throw py::value_error("sgd_update: weights, grads, decays (and momentums) must have the same length");
    std::vector<std::array<DeviceArray*, 3>> args(n);
    for (std::size_t i = 0; i < n; ++i) {
      DeviceArray* w = weights[i].cast<DeviceArray*>();
      args[i] = {w, grads[i].cast<DeviceArray*>(),
                 momentums.is_none() ? nullptr : py::list(momentums)[i].cast<DeviceArray*>()};
      for (int j = 1; j < 3; ++j) {
        DeviceArray* p = args[i][j];
        if (p != nullptr && (p->shape() != w->shape() || !p->dtype().is(w->dtype()) || p->device() != w->device()))
          throw py::value_error("sgd_update: weights[" + std::to_string(i) + "] is " + w->describe() +
                                " on gpu:" + std::to_string(w->device()) + ", its gradient or slot " +
                                p->describe() + " on gpu:" + std::to_string(p->device()));
      }
    }
    std::set<int> devices;
    for (std::size_t i = 0; i < n; ++i) {
      DeviceArray* w = args[i][0];
      DeviceArray* parts[2] = {args[i][1], args[i][2]};
      devices.insert(w->device());
      const double decay = decays[i].cast<double>();
      const long long count = static_cast<long long>(w->size());
      if (w->is_double())
        rnnfast::cuda::SGDUpdate<double>(w->device(), count, (double*)w->data(), (const double*)parts[0]->data(),
                                         parts[1] ? (double*)parts[1]->data() : nullptr, lr, momentum, nesterov, decay);
      else
        rnnfast::cuda::SGDUpdate<float>(w->device(), count, (float*)w->data(), (const float*)parts[0]->data(),
                                        parts[1] ? (float*)parts[1]->data() : nullptr, (float)lr, (float)momentum,
                                        nesterov, (float)decay);
    }
    for (int d : devices) rnnfast::cuda::WaitForUpdates(d);
  }, py::arg("weights"), py::arg("grads"), py::arg("momentums"), py::arg("lr"), py::arg("momentum"),
     py::arg("nesterov"), py::arg("decays"),
     "One SGD step on the device (optimizers/sgd.py's arithmetic; momentums None: plain SGD).");
}
