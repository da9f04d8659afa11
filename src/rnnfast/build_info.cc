#include "rnnfast/build_info.h"

#include <Eigen/Core>

#ifndef RNNFAST_ISA_LEVEL
#define RNNFAST_ISA_LEVEL "unknown"
#endif

namespace rnnfast {

BuildInfo GetBuildInfo() {
  BuildInfo info;
  info.isa_level = RNNFAST_ISA_LEVEL;
  info.simd = Eigen::SimdInstructionSetsInUse();
  info.eigen = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) +
               "." + std::to_string(EIGEN_MINOR_VERSION);
#if defined(__clang__)
  info.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  info.compiler = "gcc " __VERSION__;
#else
  info.compiler = "unknown";
#endif
  return info;
}

}  // namespace rnnfast
