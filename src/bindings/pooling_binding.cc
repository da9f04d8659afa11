// rnnfast._core.pool_forward / pool_backward: argument checks, GIL release.
#include <pybind11/stl.h>

#include <array>

#include "bindings/common.h"
#include "rnnfast/pooling.h"

namespace rnnfast {
namespace bindings {
namespace {

using Pair = std::array<Index, 2>;
using Pads = std::array<Pair, 2>;

bool IsMax(const std::string& mode) {
  if (mode == "max") return true;
  if (mode == "average") return false;
  throw py::value_error("mode must be 'max' or 'average', got '" + mode + "'");
}

PoolDims MakeDims(const Shape& in, Pair pool, Pair strides, Pads padding) {
  if (in.size() != 4)
    throw py::value_error("x must be a 4-D array (batch, height, width, channels), got shape " +
                          ShapeStr(in));
  // Sizes beyond 2**40 are refused: near 2**63 the size arithmetic below
  // (padded input, window positions) would overflow.
  constexpr Index kMax = Index{1} << 40;
  for (int i = 0; i < 2; ++i) {
    if (pool[i] <= 0 || pool[i] > kMax)
      throw py::value_error("pool_size must be positive and at most 2**40, got " + std::to_string(pool[i]));
    if (strides[i] <= 0 || strides[i] > kMax)
      throw py::value_error("strides must be positive and at most 2**40, got " + std::to_string(strides[i]));
    if (padding[i][0] < 0 || padding[i][1] < 0 || padding[i][0] >= pool[i] || padding[i][1] >= pool[i])
      throw py::value_error("padding must be in [0, pool_size)");
  }
  PoolDims d;
  d.batch = in[0];
  d.in_h = in[1];
  d.in_w = in[2];
  d.channels = in[3];
  if (d.batch <= 0 || d.in_h <= 0 || d.in_w <= 0 || d.channels <= 0)
    throw py::value_error("x must not be empty, got shape " + ShapeStr(in));
  if (d.in_h > kMax || d.in_w > kMax)  // pool_backward's input_shape is only numbers
    throw py::value_error("x's height and width must be at most 2**40, got shape " + ShapeStr(in));
  d.pool_h = pool[0];
  d.pool_w = pool[1];
  d.stride_h = strides[0];
  d.stride_w = strides[1];
  d.pad_top = padding[0][0];
  d.pad_left = padding[1][0];
  const Index ph = d.in_h + padding[0][0] + padding[0][1], pw = d.in_w + padding[1][0] + padding[1][1];
  if (pool[0] > ph || pool[1] > pw)
    throw py::value_error("pool_size (" + std::to_string(pool[0]) + "x" + std::to_string(pool[1]) +
                          ") is larger than the padded input (" + std::to_string(ph) + "x" +
                          std::to_string(pw) + ")");
  d.out_h = (ph - pool[0]) / strides[0] + 1;
  d.out_w = (pw - pool[1]) / strides[1] + 1;
  return d;
}

template <typename T>
py::object ForwardT(const py::array& xa, Pair pool, Pair strides, Pads padding, bool is_max,
                    bool return_argmax) {
  const PoolDims d = MakeDims(Shape(xa.shape(), xa.shape() + xa.ndim()), pool, strides, padding);
  auto x = Input<T>(xa, "x", Shape{d.batch, d.in_h, d.in_w, d.channels}, "batch, height, width, channels");
  py::array_t<T, py::array::c_style> y(Shape{d.batch, d.out_h, d.out_w, d.channels});
  std::optional<py::array_t<std::int32_t, py::array::c_style>> am;
  if (is_max && return_argmax)
    am = py::array_t<std::int32_t, py::array::c_style>(Shape{d.batch, d.out_h, d.out_w, d.channels});
  {
    py::gil_scoped_release release;
    if (is_max)
      MaxPoolForward<T>(d, x.data(), y.mutable_data(), am ? am->mutable_data() : nullptr);
    else
      AvgPoolForward<T>(d, x.data(), y.mutable_data());
  }
  if (!return_argmax) return y;
  py::object a = py::none();
  if (am) a = *am;
  return py::make_tuple(y, a);
}

template <typename T>
py::array BackwardT(const py::array& dya, const Shape& input_shape, Pair pool, Pair strides,
                    Pads padding, bool is_max, py::handle argmax) {
  const PoolDims d = MakeDims(input_shape, pool, strides, padding);
  const Shape out{d.batch, d.out_h, d.out_w, d.channels};
  auto dy = Input<T>(dya, "dy", out, "batch, out_height, out_width, channels");
  py::array_t<T, py::array::c_style> dx(input_shape);
  std::optional<py::array_t<std::int32_t, py::array::c_style>> am;
  if (is_max) {
    if (argmax.is_none()) throw py::value_error("argmax (from pool_forward(..., return_argmax=True)) is needed for max pooling");
    py::array a = AsArray(argmax, "argmax");
    if (!py::array_t<std::int32_t>::check_(a))
      throw py::type_error("argmax must be an int32 array (from pool_forward)");
    CheckShape(a, "argmax", out, "batch, out_height, out_width, channels");
    am = py::array_t<std::int32_t, py::array::c_style>::ensure(a);
    // A corrupted index would write outside dx: check them all once.
    const std::int32_t* p = am->data();
    const Index cells = d.in_h * d.in_w;
    for (Index i = 0, n = am->size(); i < n; ++i)
      if (p[i] < 0 || p[i] >= cells) throw py::value_error("argmax holds an index outside the input");
  }
  {
    py::gil_scoped_release release;
    if (is_max)
      MaxPoolBackward<T>(d, dy.data(), am->data(), dx.mutable_data());
    else
      AvgPoolBackward<T>(d, dy.data(), dx.mutable_data());
  }
  return dx;
}

}  // namespace

void BindPooling(py::module_& m) {
  m.def(
      "pool_forward",
      [](py::object x, Pair pool_size, Pair strides, Pads padding, const std::string& mode,
         bool return_argmax) {
        const bool is_max = IsMax(mode);
        const py::array xa = AsArray(x, "x");
        if (py::array_t<float>::check_(xa))
          return ForwardT<float>(xa, pool_size, strides, padding, is_max, return_argmax);
        if (py::array_t<double>::check_(xa))
          return ForwardT<double>(xa, pool_size, strides, padding, is_max, return_argmax);
        throw py::type_error("x has dtype " + py::str(xa.dtype()).cast<std::string>() +
                             ", expected float32 or float64");
      },
      py::arg("x"), py::kw_only(), py::arg("pool_size"), py::arg("strides"),
      py::arg("padding") = Pads{}, py::arg("mode") = "max", py::arg("return_argmax") = false,
      R"(pool_forward(x, *, pool_size, strides, padding=((0, 0), (0, 0)), mode='max', return_argmax=False)

Max or average pooling of x [N, H, W, C] (channels_last). padding:
((top, bottom), (left, right)) cells outside the input that windows may
cover; max ignores them, average divides by the cells inside only (Keras's
'same'). Returns y [N, OH, OW, C], or (y, argmax) with return_argmax (argmax:
int32 [N, OH, OW, C] flat input cell ih*W + iw of each max; None for average).)");
  m.def(
      "pool_backward",
      [](py::object dy, Shape input_shape, Pair pool_size, Pair strides, Pads padding,
         const std::string& mode, py::object argmax) {
        const bool is_max = IsMax(mode);
        const py::array dya = AsArray(dy, "dy");
        if (py::array_t<float>::check_(dya))
          return BackwardT<float>(dya, input_shape, pool_size, strides, padding, is_max, argmax);
        if (py::array_t<double>::check_(dya))
          return BackwardT<double>(dya, input_shape, pool_size, strides, padding, is_max, argmax);
        throw py::type_error("dy has dtype " + py::str(dya.dtype()).cast<std::string>() +
                             ", expected float32 or float64");
      },
      py::arg("dy"), py::kw_only(), py::arg("input_shape"), py::arg("pool_size"), py::arg("strides"),
      py::arg("padding") = Pads{}, py::arg("mode") = "max", py::arg("argmax") = py::none(),
      R"(pool_backward(dy, *, input_shape, pool_size, strides, padding, mode='max', argmax=None)

dx [input_shape] from dy [N, OH, OW, C]; max pooling needs the forward's argmax.)");
}

}  // namespace bindings
}  // namespace rnnfast
