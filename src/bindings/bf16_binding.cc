// Mixed precision's switches: whether the bf16 GEMMs run here, and turning
// them off (the kernels' bf16 option then runs float32 GEMMs).
#include "bindings/common.h"
#include "rnnfast/bf16.h"

namespace rnnfast {
namespace bindings {

void BindBf16(py::module_& m) {
  m.def(
      "bf16_status",
      []() {
        py::dict d;
        d["supported"] = Bf16Supported();
        d["enabled"] = Bf16Enabled();
        d["reason"] = std::string(Bf16Unsupported());
        d["amx_supported"] = AmxSupported();
        d["amx_enabled"] = AmxEnabled();
        d["amx_reason"] = std::string(AmxUnsupported());
        d["path"] = AmxEnabled() ? "amx_bf16" : Bf16Enabled() ? "avx512_bf16" : "float32";
        return d;
      },
      "Whether the kernels' bf16 option runs bf16 GEMMs: supported (this build has them and "
      "the CPU has AVX512_BF16; reason says why not), enabled (supported and not switched off), "
      "amx_supported, amx_enabled and amx_reason likewise for AMX tiles, path ('amx_bf16', "
      "'avx512_bf16' or 'float32').");
  m.def("set_amx_enabled", &SetAmxEnabled, py::arg("enabled"),
        "Turns AMX on or off for the bf16 GEMMs of later forwards (off: they run on VDPBF16PS "
        "as elsewhere). RNNFAST_AMX=0 in the environment starts it off.");
  m.def("set_bf16_enabled", &SetBf16Enabled, py::arg("enabled"),
        "Turns the bf16 GEMMs on or off for later forwards (off: the bf16 option runs float32 "
        "GEMMs). RNNFAST_BF16=0 in the environment starts it off.");
}

}  // namespace bindings
}  // namespace rnnfast
