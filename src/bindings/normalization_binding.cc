// rnnfast._core layer_norm_* and batch_norm_*: argument checks, GIL release.
#include "bindings/common.h"
#include "rnnfast/normalization.h"

namespace rnnfast {
namespace bindings {
namespace {


void Check2D(const py::array& x, const char* name) {
  if (x.ndim() != 2 || x.shape(0) <= 0 || x.shape(1) <= 0)
    throw py::value_error(std::string(name) + " must be a non-empty 2-D array (rows, features), got shape " +
                          ShapeStr(x));
}

template <typename T>
Opt<T> OptInput(py::handle obj, const char* name, Index C) {
  if (obj.is_none()) return std::nullopt;
  return Input<T>(obj, name, Shape{C}, "features");
}

// A fresh output of this shape when wanted, else nothing; and back to Python.
template <typename T>
Opt<T> OutputIf(bool wanted, const Shape& shape) {
  if (!wanted) return std::nullopt;
  return py::array_t<T, py::array::c_style>(shape);
}
template <typename T>
py::object OrNone(const Opt<T>& a) {
  return a ? py::object(*a) : py::object(py::none());
}

void CheckEpsilon(double eps) {
  if (!(eps > 0)) throw py::value_error("epsilon must be positive, got " + std::to_string(eps));
}

template <typename T>
py::object LayerNormForwardT(const py::array& xa, py::handle gamma, py::handle beta, double eps,
                             bool return_stats) {
  Check2D(xa, "x");
  const Index R = xa.shape(0), C = xa.shape(1);
  auto x = Input<T>(xa, "x", Shape{R, C}, "rows, features");
  auto g = OptInput<T>(gamma, "gamma", C);
  auto b = OptInput<T>(beta, "beta", C);
  py::array_t<T, py::array::c_style> y(Shape{R, C});
  Opt<T> mean, rstd;
  if (return_stats) {
    mean = py::array_t<T, py::array::c_style>(Shape{R});
    rstd = py::array_t<T, py::array::c_style>(Shape{R});
  }
  {
    py::gil_scoped_release release;
    LayerNormForward<T>(R, C, static_cast<T>(eps), x.data(), Data(g), Data(b), y.mutable_data(),
                        MutableData(mean), MutableData(rstd));
  }
  if (!return_stats) return y;
  return py::make_tuple(y, *mean, *rstd);
}

template <typename T>
py::tuple LayerNormBackwardT(const py::array& xa, py::handle mean_o, py::handle rstd_o,
                             py::handle gamma, py::handle dy_o, bool compute_dx, bool compute_dgamma,
                             bool compute_dbeta) {
  Check2D(xa, "x");
  const Index R = xa.shape(0), C = xa.shape(1);
  auto x = Input<T>(xa, "x", Shape{R, C}, "rows, features");
  auto mean = Input<T>(mean_o, "mean", Shape{R}, "rows");
  auto rstd = Input<T>(rstd_o, "rstd", Shape{R}, "rows");
  auto g = OptInput<T>(gamma, "gamma", C);
  auto dy = Input<T>(dy_o, "dy", Shape{R, C}, "rows, features");
  Opt<T> dx = OutputIf<T>(compute_dx, Shape{R, C}), dg = OutputIf<T>(compute_dgamma, Shape{C}),
         db = OutputIf<T>(compute_dbeta, Shape{C});
  {
    py::gil_scoped_release release;
    LayerNormBackward<T>(R, C, x.data(), mean.data(), rstd.data(), Data(g), dy.data(), MutableData(dx),
                         MutableData(dg), MutableData(db));
  }
  return py::make_tuple(OrNone(dx), OrNone(dg), OrNone(db));
}

template <typename T>
py::tuple MomentsT(const py::array& xa) {
  Check2D(xa, "x");
  const Index R = xa.shape(0), C = xa.shape(1);
  auto x = Input<T>(xa, "x", Shape{R, C}, "rows, features");
  py::array_t<T, py::array::c_style> mean(Shape{C}), var(Shape{C});
  {
    py::gil_scoped_release release;
    ColumnMoments<T>(R, C, x.data(), mean.mutable_data(), var.mutable_data());
  }
  return py::make_tuple(mean, var);
}

template <typename T>
py::array ApplyT(const py::array& xa, py::handle mean_o, py::handle var_o, py::handle gamma,
                 py::handle beta, double eps) {
  Check2D(xa, "x");
  const Index R = xa.shape(0), C = xa.shape(1);
  auto x = Input<T>(xa, "x", Shape{R, C}, "rows, features");
  auto mean = Input<T>(mean_o, "mean", Shape{C}, "features");
  auto var = Input<T>(var_o, "variance", Shape{C}, "features");
  auto g = OptInput<T>(gamma, "gamma", C);
  auto b = OptInput<T>(beta, "beta", C);
  py::array_t<T, py::array::c_style> y(Shape{R, C});
  {
    py::gil_scoped_release release;
    BatchNormApply<T>(R, C, static_cast<T>(eps), x.data(), mean.data(), var.data(), Data(g), Data(b),
                      y.mutable_data());
  }
  return y;
}

template <typename T>
py::tuple BatchNormBackwardT(const py::array& xa, py::handle mean_o, py::handle var_o,
                             py::handle gamma, py::handle dy_o, double eps, bool compute_dx,
                             bool compute_dgamma, bool compute_dbeta) {
  Check2D(xa, "x");
  const Index R = xa.shape(0), C = xa.shape(1);
  auto x = Input<T>(xa, "x", Shape{R, C}, "rows, features");
  auto mean = Input<T>(mean_o, "mean", Shape{C}, "features");
  auto var = Input<T>(var_o, "variance", Shape{C}, "features");
  auto g = OptInput<T>(gamma, "gamma", C);
  auto dy = Input<T>(dy_o, "dy", Shape{R, C}, "rows, features");
  Opt<T> dx = OutputIf<T>(compute_dx, Shape{R, C}), dg = OutputIf<T>(compute_dgamma, Shape{C}),
         db = OutputIf<T>(compute_dbeta, Shape{C});
  {
    py::gil_scoped_release release;
    BatchNormBackward<T>(R, C, static_cast<T>(eps), x.data(), mean.data(), var.data(), Data(g),
                         dy.data(), MutableData(dx), MutableData(dg), MutableData(db));
  }
  return py::make_tuple(OrNone(dx), OrNone(dg), OrNone(db));
}

// Calls f.template operator()<T>() for x's float dtype.
template <typename F>
auto Dispatch(const py::array& xa, F&& f) {
  if (py::array_t<float>::check_(xa)) return f(float{});
  if (py::array_t<double>::check_(xa)) return f(double{});
  throw py::type_error("x has dtype " + py::str(xa.dtype()).cast<std::string>() +
                       ", expected float32 or float64");
}

}  // namespace

void BindNormalization(py::module_& m) {
  m.def(
      "layer_norm_forward",
      [](py::object x, py::object gamma, py::object beta, double epsilon, bool return_stats) {
        CheckEpsilon(epsilon);
        const py::array xa = AsArray(x, "x");
        return Dispatch(xa, [&](auto t) {
          return LayerNormForwardT<decltype(t)>(xa, gamma, beta, epsilon, return_stats);
        });
      },
      py::arg("x"), py::arg("gamma") = py::none(), py::arg("beta") = py::none(), py::kw_only(),
      py::arg("epsilon"), py::arg("return_stats") = false,
      R"(layer_norm_forward(x, gamma=None, beta=None, *, epsilon, return_stats=False)

Each row of x [R, C] normalized: (x - mean) / sqrt(var + epsilon) * gamma + beta
(biased variance; gamma, beta [C] or None). Returns y, or (y, mean [R], rstd [R])
with return_stats (what layer_norm_backward needs).)");
  m.def(
      "layer_norm_backward",
      [](py::object x, py::object mean, py::object rstd, py::object gamma, py::object dy,
         bool compute_dx, bool compute_dgamma, bool compute_dbeta) {
        const py::array xa = AsArray(x, "x");
        return Dispatch(xa, [&](auto t) {
          return LayerNormBackwardT<decltype(t)>(xa, mean, rstd, gamma, dy, compute_dx, compute_dgamma,
                                                 compute_dbeta);
        });
      },
      py::arg("x"), py::arg("mean"), py::arg("rstd"), py::arg("gamma"), py::arg("dy"), py::kw_only(),
      py::arg("compute_dx") = true, py::arg("compute_dgamma") = true, py::arg("compute_dbeta") = true,
      "Gradients of layer_norm_forward: (dx [R, C], dgamma [C], dbeta [C]), None where not computed.");
  m.def(
      "batch_norm_moments",
      [](py::object x) {
        const py::array xa = AsArray(x, "x");
        return Dispatch(xa, [&](auto t) { return MomentsT<decltype(t)>(xa); });
      },
      py::arg("x"), "(mean [C], biased variance [C]) of the columns of x [R, C].");
  m.def(
      "batch_norm_apply",
      [](py::object x, py::object mean, py::object variance, py::object gamma, py::object beta,
         double epsilon) {
        CheckEpsilon(epsilon);
        const py::array xa = AsArray(x, "x");
        return Dispatch(xa, [&](auto t) {
          return ApplyT<decltype(t)>(xa, mean, variance, gamma, beta, epsilon);
        });
      },
      py::arg("x"), py::arg("mean"), py::arg("variance"), py::arg("gamma") = py::none(),
      py::arg("beta") = py::none(), py::kw_only(), py::arg("epsilon"),
      "(x - mean) * rsqrt(variance + epsilon) * gamma + beta per column of x [R, C].");
  m.def(
      "batch_norm_backward",
      [](py::object x, py::object mean, py::object variance, py::object gamma, py::object dy,
         double epsilon, bool compute_dx, bool compute_dgamma, bool compute_dbeta) {
        CheckEpsilon(epsilon);
        const py::array xa = AsArray(x, "x");
        return Dispatch(xa, [&](auto t) {
          return BatchNormBackwardT<decltype(t)>(xa, mean, variance, gamma, dy, epsilon, compute_dx,
                                                 compute_dgamma, compute_dbeta);
        });
      },
      py::arg("x"), py::arg("mean"), py::arg("variance"), py::arg("gamma"), py::arg("dy"),
      py::kw_only(), py::arg("epsilon"), py::arg("compute_dx") = true,
      py::arg("compute_dgamma") = true, py::arg("compute_dbeta") = true,
      "Gradients of a training batch normalization (statistics of this batch, from "
      "batch_norm_moments): (dx [R, C], dgamma [C], dbeta [C]), None where not computed.");
}

}  // namespace bindings
}  // namespace rnnfast
