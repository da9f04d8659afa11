// rnnfast._core.conv_forward / conv_backward: argument checks, GIL release.
#include <pybind11/stl.h>

#include <array>

#include "bindings/common.h"
#include "rnnfast/conv.h"

namespace rnnfast {
namespace bindings {
namespace {

using Pair = std::array<Index, 2>;
using Pads = std::array<Pair, 2>;

struct Geometry {
  Pair strides{1, 1}, dilation{1, 1};
  Pads padding{};
  Index groups = 1;
};

// Strides, dilations and paddings beyond 2**40 are refused: near 2**63 the
// size arithmetic wrapped around (a dilation of 2**62 gave a small span and
// silently wrong outputs), and no input is that large.
constexpr Index kMaxGeometry = Index{1} << 40;

void CheckGeometry(const Geometry& g) {
  for (int i = 0; i < 2; ++i) {
    if (g.strides[i] <= 0 || g.strides[i] > kMaxGeometry)
      throw py::value_error("strides must be positive and at most 2**40, got " +
                            std::to_string(g.strides[i]));
    if (g.dilation[i] <= 0 || g.dilation[i] > kMaxGeometry)
      throw py::value_error("dilation must be positive and at most 2**40, got " +
                            std::to_string(g.dilation[i]));
    if (g.padding[i][0] < 0 || g.padding[i][1] < 0 || g.padding[i][0] > kMaxGeometry ||
        g.padding[i][1] > kMaxGeometry)
      throw py::value_error("padding must be non-negative and at most 2**40, got " +
                            std::to_string(g.padding[i][0]) + ", " + std::to_string(g.padding[i][1]));
  }
  if (g.groups <= 0) throw py::value_error("groups must be positive, got " + std::to_string(g.groups));
}

// The dimensions of a convolution of x [N, H, W, C] with kernel [KH, KW, Cg, F].
ConvDims MakeDims(const py::array& x, const py::array& kernel, const Geometry& g) {
  CheckGeometry(g);
  if (x.ndim() != 4)
    throw py::value_error("x must be a 4-D array (batch, height, width, channels), got shape " +
                          ShapeStr(x));
  if (kernel.ndim() != 4)
    throw py::value_error(
        "kernel must be a 4-D array (kernel_h, kernel_w, channels/groups, filters), got shape " +
        ShapeStr(kernel));
  ConvDims d;
  d.batch = x.shape(0);
  d.in_h = x.shape(1);
  d.in_w = x.shape(2);
  d.channels = x.shape(3);
  d.kernel_h = kernel.shape(0);
  d.kernel_w = kernel.shape(1);
  d.filters = kernel.shape(3);
  d.stride_h = g.strides[0];
  d.stride_w = g.strides[1];
  d.dilation_h = g.dilation[0];
  d.dilation_w = g.dilation[1];
  d.pad_top = g.padding[0][0];
  d.pad_left = g.padding[1][0];
  d.groups = g.groups;
  if (d.batch <= 0 || d.in_h <= 0 || d.in_w <= 0 || d.channels <= 0)
    throw py::value_error("x must not be empty, got shape " + ShapeStr(x));
  if (d.channels % d.groups || d.filters % d.groups)
    throw py::value_error("channels (" + std::to_string(d.channels) + ") and filters (" +
                          std::to_string(d.filters) + ") must be multiples of groups (" +
                          std::to_string(d.groups) + ")");
  if (kernel.shape(2) != d.channels / d.groups || d.kernel_h <= 0 || d.kernel_w <= 0 || d.filters <= 0)
    throw py::value_error("kernel must have shape (kernel_h, kernel_w, " +
                          std::to_string(d.channels / d.groups) +
                          ", filters) for inputs with " + std::to_string(d.channels) +
                          " channels in " + std::to_string(d.groups) + " group(s), got " +
                          ShapeStr(kernel));
  // Saturated at 2**62 (larger than any input) instead of overflowing.
  const auto span = [](Index dilation, Index k) {
    return k - 1 > (Index{1} << 62) / dilation ? Index{1} << 62 : dilation * (k - 1) + 1;
  };
  const Index span_h = span(d.dilation_h, d.kernel_h), span_w = span(d.dilation_w, d.kernel_w);
  const Index ph = d.in_h + g.padding[0][0] + g.padding[0][1];
  const Index pw = d.in_w + g.padding[1][0] + g.padding[1][1];
  if (span_h > ph || span_w > pw)
    throw py::value_error("kernel_size (dilated: " + std::to_string(span_h) + "x" +
                          std::to_string(span_w) + ") is larger than the padded input (" +
                          std::to_string(ph) + "x" + std::to_string(pw) + ")");
  d.out_h = (ph - span_h) / d.stride_h + 1;
  d.out_w = (pw - span_w) / d.stride_w + 1;
  return d;
}

template <typename T>
py::array ForwardT(const py::array& xa, py::handle kernel, py::handle bias, const Geometry& g,
                   Activation act) {
  py::array k0 = AsArray(kernel, "kernel");
  const ConvDims d = MakeDims(xa, k0, g);
  auto x = Input<T>(xa, "x", Shape{d.batch, d.in_h, d.in_w, d.channels}, "batch, height, width, channels");
  auto k = Input<T>(k0, "kernel", Shape{d.kernel_h, d.kernel_w, d.channels / d.groups, d.filters},
                    "kernel_h, kernel_w, channels/groups, filters");
  Opt<T> b;
  if (!bias.is_none()) b = Input<T>(bias, "bias", Shape{d.filters}, "filters");
  py::array_t<T, py::array::c_style> y(Shape{d.batch, d.out_h, d.out_w, d.filters});
  {
    py::gil_scoped_release release;
    ConvForward<T>(d, act, x.data(), k.data(), Data(b), y.mutable_data());
  }
  return y;
}

template <typename T>
py::tuple BackwardT(const py::array& xa, py::handle kernel, py::handle dy_obj, py::handle y_obj,
                    const Geometry& g, Activation act, bool compute_dx, bool compute_dbias) {
  py::array k0 = AsArray(kernel, "kernel");
  const ConvDims d = MakeDims(xa, k0, g);
  auto x = Input<T>(xa, "x", Shape{d.batch, d.in_h, d.in_w, d.channels}, "batch, height, width, channels");
  auto k = Input<T>(k0, "kernel", Shape{d.kernel_h, d.kernel_w, d.channels / d.groups, d.filters},
                    "kernel_h, kernel_w, channels/groups, filters");
  const Shape out{d.batch, d.out_h, d.out_w, d.filters};
  auto dy = Input<T>(dy_obj, "dy", out, "batch, out_height, out_width, filters");
  Opt<T> y;
  if (act != Activation::kLinear) {
    if (y_obj.is_none()) throw py::value_error("y (the forward's output) is needed for activation " +
                                               std::string(ActivationName(act)));
    y = Input<T>(y_obj, "y", out, "batch, out_height, out_width, filters");
  }
  Opt<T> dx, db;
  if (compute_dx) dx = py::array_t<T, py::array::c_style>(Shape{d.batch, d.in_h, d.in_w, d.channels});
  if (compute_dbias) db = py::array_t<T, py::array::c_style>(Shape{d.filters});
  py::array_t<T, py::array::c_style> dk(
      Shape{d.kernel_h, d.kernel_w, d.channels / d.groups, d.filters});
  {
    py::gil_scoped_release release;
    ConvBackward<T>(d, act, x.data(), k.data(), Data(y), dy.data(), MutableData(dx),
                    dk.mutable_data(), MutableData(db));
  }
  py::object dxo = py::none(), dbo = py::none();
  if (dx) dxo = *dx;
  if (db) dbo = *db;
  return py::make_tuple(dxo, dk, dbo);
}

Activation ActivationArg(const std::string& name) {
  try {
    return ParseActivation(name);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(std::string("activation: ") + e.what());
  }
}

}  // namespace

void BindConv(py::module_& m) {
  m.def(
      "conv_forward",
      [](py::object x, py::object kernel, py::object bias, Pair strides, Pair dilation, Pads padding,
         Index groups, const std::string& activation) {
        const Geometry g{strides, dilation, padding, groups};
        const Activation act = ActivationArg(activation);
        const py::array xa = AsArray(x, "x");
        if (py::array_t<float>::check_(xa)) return ForwardT<float>(xa, kernel, bias, g, act);
        if (py::array_t<double>::check_(xa)) return ForwardT<double>(xa, kernel, bias, g, act);
        throw py::type_error("x has dtype " + py::str(xa.dtype()).cast<std::string>() +
                             ", expected float32 or float64");
      },
      py::arg("x"), py::arg("kernel"), py::arg("bias") = py::none(), py::kw_only(),
      py::arg("strides") = Pair{1, 1}, py::arg("dilation") = Pair{1, 1},
      py::arg("padding") = Pads{}, py::arg("groups") = 1, py::arg("activation") = "linear",
      R"(conv_forward(x, kernel, bias=None, *, strides=(1, 1), dilation=(1, 1), padding=((0, 0), (0, 0)), groups=1, activation='linear')

y = act(conv(x, kernel) + bias), channels_last. x: [N, H, W, C] float32 or
float64; kernel: [KH, KW, C/groups, F] (Keras layout); bias: [F] or None.
padding: ((top, bottom), (left, right)) zeros around the input. A 1-D
convolution is H = KH = 1. Returns y [N, OH, OW, F] with
OH = (H + top + bottom - dilation_h*(KH-1) - 1) // stride_h + 1.)");
  m.def(
      "conv_backward",
      [](py::object x, py::object kernel, py::object dy, py::object y, Pair strides, Pair dilation,
         Pads padding, Index groups, const std::string& activation, bool compute_dx,
         bool compute_dbias) {
        const Geometry g{strides, dilation, padding, groups};
        const Activation act = ActivationArg(activation);
        const py::array xa = AsArray(x, "x");
        if (py::array_t<float>::check_(xa))
          return BackwardT<float>(xa, kernel, dy, y, g, act, compute_dx, compute_dbias);
        if (py::array_t<double>::check_(xa))
          return BackwardT<double>(xa, kernel, dy, y, g, act, compute_dx, compute_dbias);
        throw py::type_error("x has dtype " + py::str(xa.dtype()).cast<std::string>() +
                             ", expected float32 or float64");
      },
      py::arg("x"), py::arg("kernel"), py::arg("dy"), py::arg("y") = py::none(), py::kw_only(),
      py::arg("strides") = Pair{1, 1}, py::arg("dilation") = Pair{1, 1},
      py::arg("padding") = Pads{}, py::arg("groups") = 1, py::arg("activation") = "linear",
      py::arg("compute_dx") = true, py::arg("compute_dbias") = true,
      R"(conv_backward(x, kernel, dy, y=None, *, strides, dilation, padding, groups, activation='linear', compute_dx=True, compute_dbias=True)

Gradients of conv_forward with the same arguments: dy [N, OH, OW, F] is
dL/dy; y, the forward's output, is needed when activation is not linear.
Returns (dx [N, H, W, C] or None, dkernel [KH, KW, C/groups, F], dbias [F] or None).)");
}

}  // namespace bindings
}  // namespace rnnfast
