// One of these per instruction-set variant: _core_x86_64, _core_x86_64_v3,
// ... (RNNFAST_MODULE_NAME), each linked with its own build of the kernels.
#include <pybind11/pybind11.h>

namespace rnnfast {
namespace bindings {
void BindAll(pybind11::module_& m);
}
}  // namespace rnnfast

PYBIND11_MODULE(RNNFAST_MODULE_NAME, m) { rnnfast::bindings::BindAll(m); }
