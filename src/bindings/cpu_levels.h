// CPU instruction-set levels, shared by the loader's probe (cpu.cc) and the
// CMake configure check that picks the host variant for the C++ targets.
#pragma once

#include <string.h>

// True when this CPU (and its OS, which must save the wider registers) can run
// code built with -march=<level>. Levels: "generic", "x86-64", "x86-64-v2",
// "x86-64-v3", "x86-64-v4".
static inline int rnnfast_cpu_supports_level(const char* level) {
  if (strcmp(level, "generic") == 0) return 1;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (strcmp(level, "x86-64") == 0) return 1;
  // libgcc and compiler-rt check XGETBV, so AVX/AVX-512 here means the OS
  // saves those registers too. Feature lists follow the x86-64 psABI levels.
  const int v2 = __builtin_cpu_supports("sse3") && __builtin_cpu_supports("ssse3") &&
                 __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("sse4.2") &&
                 __builtin_cpu_supports("popcnt");
  if (strcmp(level, "x86-64-v2") == 0) return v2;
  const int v3 = v2 && __builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2") &&
                 __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
                 __builtin_cpu_supports("bmi2");
  if (strcmp(level, "x86-64-v3") == 0) return v3;
  const int v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512vl");
  if (strcmp(level, "x86-64-v4") == 0) return v4;
#endif
  return 0;
}
