// rnnfast._cpu: reports which instruction-set levels this CPU runs, so that
// rnnfast/_loader.py can import the widest kernel variant. Plain C API and
// built for the baseline: it must import on every machine.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "rnnfast/cpu_levels.h"

namespace {

PyObject* supports(PyObject*, PyObject* arg) {
  const char* level = PyUnicode_AsUTF8(arg);
  if (level == nullptr) return nullptr;
  return PyBool_FromLong(rnnfast_cpu_supports_level(level));
}

PyMethodDef kMethods[] = {
    {"supports", supports, METH_O,
     "supports(level: str) -> bool\n\nWhether this CPU runs code built for the "
     "given level ('generic', 'x86-64', 'x86-64-v2', 'x86-64-v3', 'x86-64-v4')."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "_cpu", "CPU level probe for rnnfast.", -1,
                       kMethods, nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__cpu(void) { return PyModule_Create(&kModule); }
