// Module-level functions of rnnfast._core and the shared argument helpers.
#include <pybind11/stl.h>

#include <algorithm>
#include <sstream>

#include "bindings/common.h"
#include "rnnfast/build_info.h"
#include "rnnfast/bf16.h"
#include "rnnfast/gemm_bench.h"
#include "rnnfast/matmul.h"
#include "rnnfast/optim.h"
#include "rnnfast/threading.h"

namespace rnnfast {
namespace bindings {

void BindSimpleRNN(py::module_& m);
void BindLSTM(py::module_& m);
void BindGRU(py::module_& m);
void BindConv(py::module_& m);
void BindPooling(py::module_& m);
void BindNormalization(py::module_& m);
void BindDeviceBodies(py::module_& m);
void BindBf16(py::module_& m);

std::string ShapeStr(const Shape& shape) {
  std::ostringstream os;
  os << "(";
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << (shape.size() == 1 ? ",)" : ")");
  return os.str();
}

std::string ShapeStr(const py::array& a) {
  return ShapeStr(Shape(a.shape(), a.shape() + a.ndim()));
}

py::array AsArray(py::handle obj, const char* name) {
  if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj);
  if (obj.is_none()) throw py::type_error(std::string(name) + " must be an array, got None");
  py::object np = py::module_::import("numpy");
  try {
    return np.attr("asarray")(obj);
  } catch (py::error_already_set& e) {
    // Only errors about the value: a KeyboardInterrupt (or SystemExit) that
    // arrived during the conversion must reach the caller as itself.
    if (!e.matches(PyExc_Exception)) throw;
    throw py::type_error(std::string(name) + " must be an array-like of numbers: " + e.what());
  }
}

template <>
const char* DTypeName<float>() {
  return "float32";
}
template <>
const char* DTypeName<double>() {
  return "float64";
}

Index SatMul(Index a, Index b) {
  Index r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r) || r > kMaxBytes) return kMaxBytes + 1;
  return r;
}

Index SatAdd(Index a, Index b) {
  Index r = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r) || r > kMaxBytes) return kMaxBytes + 1;
  return r;
}

void RaiseMemoryError(const std::string& message) {
  py::set_error(PyExc_MemoryError, message.c_str());
  throw py::error_already_set();
}

void CheckShape(const py::array& a, const char* name, const Shape& shape, const std::string& meaning) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (std::size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok)
    throw py::value_error(std::string(name) + " must have shape " + ShapeStr(shape) + " (" + meaning +
                          "), got " + ShapeStr(a));
}

namespace {

// Whether the byte ranges of a and b intersect (false for absent or empty arrays).
bool Overlaps(const py::array* a, const py::array* b) {
  if (a == nullptr || b == nullptr || !*a || !*b || a->nbytes() == 0 || b->nbytes() == 0)
    return false;
  const char* a0 = static_cast<const char*>(a->data());
  const char* b0 = static_cast<const char*>(b->data());
  return a0 < b0 + b->nbytes() && b0 < a0 + a->nbytes();
}

}  // namespace

void CheckNoOverlap(const py::array& out, const char* out_name, const std::vector<Named>& inputs) {
  for (const auto& [in, name] : inputs)
    if (Overlaps(&out, in))
      throw py::value_error(std::string(out_name) + " must not share memory with " + name);
}

void CheckDisjoint(const std::vector<Named>& outputs, const std::vector<Named>& inputs) {
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const auto& [out, out_name] = outputs[i];
    if (out == nullptr) continue;
    CheckNoOverlap(*out, out_name, inputs);
    for (std::size_t j = 0; j < i; ++j)
      if (Overlaps(out, outputs[j].first))
        throw py::value_error(std::string(out_name) + " must not share memory with " +
                              outputs[j].second + " (each output needs its own array)");
  }
}

py::array_t<std::uint8_t, py::array::c_style> MaskInput(py::handle obj, Index batch, Index time) {
  py::array a = AsArray(obj, "mask");
  CheckShape(a, "mask", Shape{batch, time}, "batch, time");
  const char kind = a.dtype().kind();
  if (kind != 'b' && kind != 'i' && kind != 'u' && kind != 'f')
    throw py::type_error("mask has dtype " + py::str(a.dtype()).cast<std::string>() +
                         ", expected bool or a number type");
  // Nonzero means "process this step", as Keras's boolean masks.
  py::object np = py::module_::import("numpy");
  py::array nonzero = np.attr("not_equal")(a, 0);
  return py::array_t<std::uint8_t, py::array::c_style>::ensure(nonzero.attr("view")("uint8"));
}

std::vector<py::object> StateList(py::handle obj, const char* name, int n) {
  std::vector<py::object> out(static_cast<std::size_t>(n), py::none());
  if (obj.is_none()) return out;
  if (py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj)) {
    auto seq = py::reinterpret_borrow<py::sequence>(obj);
    if (static_cast<int>(seq.size()) != n)
      throw py::value_error(std::string(name) + " must hold " + std::to_string(n) +
                            (n == 1 ? " array" : " arrays (h, c)") + ", got " +
                            std::to_string(seq.size()));
    for (int i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = seq[static_cast<std::size_t>(i)];
    return out;
  }
  if (n != 1)
    throw py::type_error(std::string(name) + " must be a pair (h, c) of [batch, units] arrays");
  out[0] = py::reinterpret_borrow<py::object>(obj);
  return out;
}

namespace {

// The arrays adam_step writes (weights, ms, vs, vhats) must be disjoint, and
// no gradient may overlap one: each element's update reads them all. Sorted
// byte ranges: O(n log n) for n weights.
template <typename T>
void CheckAdamDisjoint(const std::vector<AdamArray<T>>& arrays) {
  struct Span {
    const char* begin;
    const char* end;
    int kind;  // 0..3 written (kNames), 4 grads (read)
    std::size_t index;
  };
  static const char* const kNames[] = {"weights", "ms", "vs", "vhats", "grads"};
  std::vector<Span> spans;
  spans.reserve(arrays.size() * 5);
  for (std::size_t i = 0; i < arrays.size(); ++i) {
    const AdamArray<T>& a = arrays[i];
    const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(a.n);
    const T* ptrs[] = {a.w, a.m, a.v, a.vhat, a.g};
    for (int k = 0; k < 5; ++k) {
      if (ptrs[k] == nullptr || bytes == 0) continue;
      const char* p = reinterpret_cast<const char*>(ptrs[k]);
      spans.push_back({p, p + bytes, k, i});
    }
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  const Span* any_max = nullptr;      // of the spans so far, the one reaching furthest
  const Span* written_max = nullptr;  // the same among the written ones
  auto label = [](const Span& s) {
    return std::string(kNames[s.kind]) + "[" + std::to_string(s.index) + "]";
  };
  for (const Span& s : spans) {
    const bool written = s.kind != 4;
    const Span* hit = written ? any_max : written_max;
    if (hit != nullptr && hit->end > s.begin)
      throw py::value_error("adam_step: " + label(s) + " must not share memory with " + label(*hit));
    if (any_max == nullptr || s.end > any_max->end) any_max = &s;
    if (written && (written_max == nullptr || s.end > written_max->end)) written_max = &s;
  }
}

// Checked views of the arrays of one fused Adam step (all of x's dtype).
template <typename T>
py::object AdamStepT(const py::list& weights, const py::list& grads, const py::list& ms,
                     const py::list& vs, const py::object& vhats, double alpha, double c1,
                     double c2, double eps) {
  const std::size_t n = weights.size();
  const bool ams = !vhats.is_none();
  const py::list vh = ams ? py::reinterpret_borrow<py::list>(vhats) : py::list();
  if (grads.size() != n || ms.size() != n || vs.size() != n || (ams && vh.size() != n))
    throw py::value_error("adam_step: weights, grads, ms, vs (and vhats) must have the same length");
  std::vector<py::array_t<T, py::array::c_style>> keep;
  std::vector<AdamArray<T>> arrays(n);
  auto writable = [&](py::handle h, const char* what, std::size_t i, Index size) {
    if (!py::isinstance<py::array_t<T, py::array::c_style>>(h) ||
        !(py::reinterpret_borrow<py::array>(h).flags() & py::array::c_style))
      throw py::type_error(std::string("adam_step: ") + what + "[" + std::to_string(i) +
                           "] must be a C-contiguous " + DTypeName<T>() + " array");
    auto a = py::reinterpret_borrow<py::array_t<T, py::array::c_style>>(h);
    if (!a.writeable())
      throw py::value_error(std::string("adam_step: ") + what + "[" + std::to_string(i) +
                            "] must be writeable");
    if (size >= 0 && a.size() != size)
      throw py::value_error(std::string("adam_step: ") + what + "[" + std::to_string(i) +
                            "] has " + std::to_string(a.size()) + " elements, expected " +
                            std::to_string(size));
    keep.push_back(a);
    return a.mutable_data();
  };
  for (std::size_t i = 0; i < n; ++i) {
    AdamArray<T>& a = arrays[i];
    a.w = writable(weights[i], "weights", i, -1);
    a.n = static_cast<Index>(keep.back().size());
    const py::array g0 = AsArray(grads[i], "grads");
    if (!py::array_t<T>::check_(g0))
      throw py::type_error("adam_step: grads[" + std::to_string(i) + "] must have dtype " +
                           DTypeName<T>());
    auto ga = py::array_t<T, py::array::c_style>::ensure(g0);  // copies only if strided
    if (ga.size() != a.n)
      throw py::value_error("adam_step: grads[" + std::to_string(i) + "] has " +
                            std::to_string(ga.size()) + " elements, expected " +
                            std::to_string(a.n));
    keep.push_back(ga);
    a.g = ga.data();
    a.m = writable(ms[i], "ms", i, a.n);
    a.v = writable(vs[i], "vs", i, a.n);
    if (ams) a.vhat = writable(vh[i], "vhats", i, a.n);
  }
  CheckAdamDisjoint(arrays);
  {
    py::gil_scoped_release release;
    AdamStep<T>(arrays, static_cast<T>(alpha), static_cast<T>(c1), static_cast<T>(c2),
                static_cast<T>(eps));
  }
  return py::none();
}

}  // namespace

template <typename T>
py::array MatMulT(const py::array& a0, py::handle b_obj, bool trans_a, bool trans_b,
                  py::handle out_obj, bool accumulate) {
  if (a0.ndim() != 2) throw py::value_error("a must be a 2-D array, got shape " + ShapeStr(a0));
  const Index ar = a0.shape(0), ac = a0.shape(1);
  const Index M = trans_a ? ac : ar, K = trans_a ? ar : ac;
  auto a = Input<T>(a0, "a", Shape{ar, ac}, "rows, columns");
  py::array b0 = AsArray(b_obj, "b");
  if (b0.ndim() != 2) throw py::value_error("b must be a 2-D array, got shape " + ShapeStr(b0));
  const Index N = trans_b ? b0.shape(0) : b0.shape(1);
  auto b = Input<T>(b0, "b", trans_b ? Shape{N, K} : Shape{K, N},
                    trans_b ? "columns of the product, inner dimension"
                            : "inner dimension, columns of the product");
  auto out = Output<T>(out_obj, "out", Shape{M, N});
  CheckNoOverlap(out, "out", {{&a, "a"}, {&b, "b"}});
  {
    py::gil_scoped_release release;
    MatMul<T>(trans_a, trans_b, M, N, K, a.data(), ac, b.data(), b.shape(1), out.mutable_data(), N,
              accumulate && !out_obj.is_none());
  }
  return out;
}

void BindAll(py::module_& m) {
  m.doc() = "rnnfast's compiled kernels (SimpleRNN, LSTM, GRU, convolution, pooling, normalization; forward and backward).";
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw py::value_error("n must be a positive integer, got " + std::to_string(n));
        SetNumThreads(n);
      },
      py::arg("n"), "Sets how many threads the kernels may use (the caller included).");
  m.def("get_num_threads", &GetNumThreads, "Threads the kernels may use.");
  m.def(
      "build_info",
      []() {
        const BuildInfo b = GetBuildInfo();
        py::dict d;
        d["isa_level"] = b.isa_level;
        d["simd"] = b.simd;
        d["eigen"] = b.eigen;
        d["compiler"] = b.compiler;
        return d;
      },
      "How these kernels were built: isa_level, simd, eigen, compiler.");
  m.def(
      "gemm_gflops",
      [](Index m_, Index n, Index k, int threads, int repeats, bool bf16) {
        if (m_ <= 0 || n <= 0 || k <= 0 || threads <= 0 || repeats <= 0)
          throw py::value_error("m, n, k, threads and repeats must be positive");
        if (bf16 && !Bf16Enabled())
          throw py::value_error(std::string("bf16=True: the bf16 GEMMs do not run here (") +
                                (Bf16Supported() ? "switched off" : Bf16Unsupported()) + ")");
        py::gil_scoped_release release;
        return GemmGflops(m_, n, k, threads, repeats, bf16);
      },
      py::arg("m"), py::arg("n"), py::arg("k"), py::kw_only(), py::arg("threads") = 1,
      py::arg("repeats") = 5, py::arg("bf16") = false,
      "FP32 GEMM speed of this build (median GFLOP/s of C[m,n] = A[m,k] B[k,n], columns split "
      "over `threads`): the ceiling the benchmarks compare the kernels with. bf16=True: the "
      "mixed-precision GEMM instead (AMX tiles where bf16_status()['amx_enabled'], else "
      "VDPBF16PS), operands converted before the timing.");
  m.def(
      "fma_peak_gflops",
      [](int threads, int repeats) {
        if (threads <= 0) throw py::value_error("threads must be positive, got " + std::to_string(threads));
        if (repeats <= 0) throw py::value_error("repeats must be positive, got " + std::to_string(repeats));
        py::gil_scoped_release release;
        return FmaPeakGflops(threads, repeats);
      },
      py::kw_only(), py::arg("threads") = 1, py::arg("repeats") = 5,
      "Arithmetic peak of this build's float32 multiply-adds (best GFLOP/s of `repeats` runs of "
      "register-only multiply-add chains on `threads` pool members, nothing loaded or stored): "
      "no float32 kernel of this build computes faster on this machine.");
  m.def(
      "matmul",
      [](py::object a, py::object b, bool trans_a, bool trans_b, py::object out, bool accumulate) {
        const py::array a0 = AsArray(a, "a");
        if (py::array_t<float>::check_(a0)) return MatMulT<float>(a0, b, trans_a, trans_b, out, accumulate);
        if (py::array_t<double>::check_(a0))
          return MatMulT<double>(a0, b, trans_a, trans_b, out, accumulate);
        throw py::type_error("a has dtype " + py::str(a0.dtype()).cast<std::string>() +
                             ", expected float32 or float64");
      },
      py::arg("a"), py::arg("b"), py::kw_only(), py::arg("trans_a") = false,
      py::arg("trans_b") = false, py::arg("out") = py::none(), py::arg("accumulate") = false,
      "op(a) @ op(b) on rnnfast's threads (not NumPy's BLAS, whose threads would compete with "
      "them); op transposes when trans_a / trans_b. With out and accumulate, adds to out.");
  m.def(
      "adam_step",
      [](const py::list& weights, const py::list& grads, const py::list& ms, const py::list& vs,
         const py::object& vhats, double alpha, double c1, double c2, double eps) {
        if (weights.empty()) return py::object(py::none());
        const py::array first = AsArray(weights[0], "weights[0]");
        if (py::array_t<float>::check_(first))
          return AdamStepT<float>(weights, grads, ms, vs, vhats, alpha, c1, c2, eps);
        if (py::array_t<double>::check_(first))
          return AdamStepT<double>(weights, grads, ms, vs, vhats, alpha, c1, c2, eps);
        throw py::type_error("adam_step: weights must be float32 or float64 arrays");
      },
      py::arg("weights"), py::arg("grads"), py::arg("ms"), py::arg("vs"), py::arg("vhats"),
      py::arg("alpha"), py::arg("c1"), py::arg("c2"), py::arg("eps"),
      "One Keras Adam step over lists of arrays, in place, in one call: m += (g - m) * c1; "
      "v += (g*g - v) * c2; [vhat = max(vhat, v)]; w -= m * alpha / (sqrt(v) + eps). Rounds "
      "as the NumPy implementation does (bit-identical). The written arrays must not share memory "
      "with each other or with a gradient (ValueError naming both).");
  BindSimpleRNN(m);
  BindLSTM(m);
  BindGRU(m);
  BindConv(m);
  BindPooling(m);
  BindNormalization(m);
  BindDeviceBodies(m);
  BindBf16(m);
}

}  // namespace bindings
}  // namespace rnnfast
