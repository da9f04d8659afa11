// Argument checking and conversion for rnnfast._core. The binding layer is
// thin: it turns Python objects into checked, C-contiguous arrays (or raises a
// Python exception naming the argument and the expected shape), releases the
// GIL and calls the kernels. No math here.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rnnfast/common.h"

namespace rnnfast {
namespace bindings {

namespace py = pybind11;
using Shape = std::vector<Index>;

// An optional argument or output.
template <typename T>
using Opt = std::optional<py::array_t<T, py::array::c_style>>;
template <typename T>
const T* Data(const Opt<T>& a) {
  return a ? a->data() : nullptr;
}
template <typename T>
T* MutableData(Opt<T>& a) {
  return a ? a->mutable_data() : nullptr;
}
template <typename T>
const py::array* Ptr(const Opt<T>& a) {
  return a ? &*a : nullptr;
}

std::string ShapeStr(const Shape& shape);
std::string ShapeStr(const py::array& a);

// obj as an ndarray (lists and other sequences are converted by NumPy).
py::array AsArray(py::handle obj, const char* name);

template <typename T>
const char* DTypeName();

// Largest `units` of a recurrent kernel object. Its recurrent kernel
// [units, G*units] would hold 2**58 values at this bound, far beyond any
// memory; larger values could overflow the size arithmetic (G*units, the
// workspace sizes) instead of failing cleanly.
constexpr Index kMaxUnits = Index{1} << 28;

// Byte counts are computed saturated: a product or sum above kMaxBytes (more
// than any allocation can hold) comes out as kMaxBytes + 1 instead of
// wrapping to a small, wrong size.
constexpr Index kMaxBytes = Index{1} << 62;
Index SatMul(Index a, Index b);
Index SatAdd(Index a, Index b);

// Raises MemoryError with this message (a std::bad_alloc from the kernels
// would otherwise read just "std::bad_alloc"). Needs the GIL.
[[noreturn]] void RaiseMemoryError(const std::string& message);

// Raises ValueError unless a has exactly this shape; `meaning` names the axes.
void CheckShape(const py::array& a, const char* name, const Shape& shape, const std::string& meaning);

// obj as a C-contiguous array of T with the given shape. A different dtype is
// rejected with TypeError (never cast silently); a non-contiguous array is
// copied.
template <typename T>
py::array_t<T, py::array::c_style> Input(py::handle obj, const char* name, const Shape& shape,
                                         const std::string& meaning) {
  py::array a = AsArray(obj, name);
  if (!py::array_t<T>::check_(a)) {
    throw py::type_error(std::string(name) + " has dtype " + py::str(a.dtype()).cast<std::string>() +
                         ", expected " + DTypeName<T>() + " (the dtype of x)");
  }
  CheckShape(a, name, shape, meaning);
  return py::array_t<T, py::array::c_style>::ensure(a);
}

// An output buffer: a new array when obj is None, else obj itself, which must
// be a writeable C-contiguous ndarray of T with exactly this shape.
template <typename T>
py::array_t<T, py::array::c_style> Output(py::handle obj, const char* name, const Shape& shape) {
  if (obj.is_none()) return py::array_t<T, py::array::c_style>(shape);
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray or None");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!py::array_t<T>::check_(a)) {
    throw py::type_error(std::string(name) + " has dtype " + py::str(a.dtype()).cast<std::string>() +
                         ", expected " + DTypeName<T>());
  }
  CheckShape(a, name, shape, "output");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
  return py::reinterpret_borrow<py::array_t<T, py::array::c_style>>(a);
}

// An argument and its name for the overlap checks (a null array is skipped).
using Named = std::pair<const py::array*, const char*>;

// Raises ValueError when the output's memory overlaps one of the inputs'.
void CheckNoOverlap(const py::array& out, const char* out_name, const std::vector<Named>& inputs);

// Raises ValueError naming both arguments when an output overlaps another
// output or an input: a kernel writes each output while it reads the others
// (overlap gave silently wrong gradients). Byte ranges are compared, as
// numpy.may_share_memory does, so interleaved views of one buffer are
// refused too.
void CheckDisjoint(const std::vector<Named>& outputs, const std::vector<Named>& inputs);

// [B, T] mask of any dtype (bool, integer, float) as 0/1 bytes.
py::array_t<std::uint8_t, py::array::c_style> MaskInput(py::handle obj, Index batch, Index time);

// A dropout mask of shape [n, B, width] (n = 1 or gates) or [B, width]; sets
// count to n. Returns nothing (count 0) for None.
template <typename T>
Opt<T> DropoutInput(py::handle obj, const char* name, int gates,
                                                Index batch, Index width, int* count) {
  *count = 0;
  if (obj.is_none()) return std::nullopt;
  py::array a = AsArray(obj, name);
  const std::string meaning = "(batch, features) shared by all gates, or (" +
                              std::to_string(gates) + ", batch, features) one per gate";
  if (a.ndim() == 2) {
    *count = 1;
    return Input<T>(a, name, Shape{batch, width}, meaning);
  }
  if (a.ndim() == 3 && (a.shape(0) == 1 || a.shape(0) == gates)) {
    *count = static_cast<int>(a.shape(0));
    return Input<T>(a, name, Shape{a.shape(0), batch, width}, meaning);
  }
  throw py::value_error(std::string(name) + " must have shape " + ShapeStr(Shape{batch, width}) +
                        " or " + ShapeStr(Shape{gates, batch, width}) + ", got " + ShapeStr(a));
}

// Splits a state argument: None, an array, or a list/tuple of `n` entries
// (entries may be None). Returns n handles (None where absent).
std::vector<py::object> StateList(py::handle obj, const char* name, int n);

}  // namespace bindings
}  // namespace rnnfast
