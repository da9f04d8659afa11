// How this copy of the kernels was built.
#pragma once

#include <string>

namespace rnnfast {

struct BuildInfo {
  std::string isa_level;   // -march level of the kernels ("x86-64-v4", "generic", ...)
  std::string simd;        // Eigen's SIMD instruction sets in use
  std::string eigen;       // Eigen version
  std::string compiler;    // compiler and version
};

BuildInfo GetBuildInfo();

}  // namespace rnnfast
