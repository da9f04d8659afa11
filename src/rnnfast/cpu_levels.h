// CPU instruction-set levels and features, read from CPUID and XGETBV. Shared
// by the loader's probe (src/bindings/cpu.cc), the CMake configure check that
// picks the host variant for the C++ targets, and the bf16 dispatch (bf16.cc).
// Plain C, header-only, no runtime library: __builtin_cpu_supports needs
// libgcc's or compiler-rt's CPU model, which some toolchains (zig's, used to
// check the glibc 2.28 wheel) leave empty, so that every level read as absent.
#pragma once
#include <string.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// CPUID leaf (subleaf) registers; all zero when the leaf does not exist.
static inline void rnnfast_cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
  r[0] = r[1] = r[2] = r[3] = 0;
  if (__get_cpuid_max(leaf & 0x80000000u, 0) < leaf) return;  // basic or extended range
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}

// XCR0: the register states the OS saves on a context switch (0 without
// OSXSAVE). AVX needs SSE and AVX state (bits 1, 2), AVX-512 also the opmask
// and both halves of zmm (bits 5, 6, 7).
static inline unsigned long long rnnfast_xcr0(void) {
  unsigned r[4];
  rnnfast_cpuid(1, 0, r);
  if ((r[2] & (1u << 27)) == 0) return 0;  // CPUID.1:ECX.OSXSAVE
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
}

static inline int rnnfast_cpu_avx_state(void) { return (rnnfast_xcr0() & 0x6) == 0x6; }
static inline int rnnfast_cpu_avx512_state(void) { return (rnnfast_xcr0() & 0xe6) == 0xe6; }

// AVX512_BF16 (CPUID.(7,1):EAX[5]) with AVX-512F and the OS saving zmm.
static inline int rnnfast_cpu_has_avx512_bf16(void) {
  unsigned r[4];
  rnnfast_cpuid(7, 0, r);
  if ((r[1] & (1u << 16)) == 0 || !rnnfast_cpu_avx512_state()) return 0;  // EBX[16] AVX512F
  rnnfast_cpuid(7, 1, r);
  return (r[0] & (1u << 5)) != 0;
}

// AMX-TILE and AMX-BF16 (CPUID.(7,0):EDX[24], EDX[22]) with the OS saving the
// tile configuration and data (XCR0 bits 17, 18). Linux also wants a
// per-process request before the first tile instruction (bf16.cc makes it).
static inline int rnnfast_cpu_has_amx_bf16(void) {
  unsigned r[4];
  rnnfast_cpuid(7, 0, r);
  if ((r[3] & (1u << 24)) == 0 || (r[3] & (1u << 22)) == 0) return 0;
  return (rnnfast_xcr0() & 0x60000ull) == 0x60000ull;
}
#endif

// True when this CPU (and its OS, which must save the wider registers) can run
// code built with -march=<level>. Levels: "generic", "x86-64", "x86-64-v2",
// "x86-64-v3", "x86-64-v4". Feature lists follow the x86-64 psABI levels.
static inline int rnnfast_cpu_supports_level(const char* level) {
  if (strcmp(level, "generic") == 0) return 1;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (strcmp(level, "x86-64") == 0) return 1;
  unsigned l1[4], l7[4], x1[4];
  rnnfast_cpuid(1, 0, l1);
  rnnfast_cpuid(7, 0, l7);
  rnnfast_cpuid(0x80000001u, 0, x1);
  const unsigned c1 = l1[2], b7 = l7[1];
#define RNNFAST_BIT(reg, n) (((reg) >> (n)) & 1u)
  // SSE3, SSSE3, CMPXCHG16B, SSE4.1, SSE4.2, POPCNT; LAHF/SAHF (0x80000001:ECX[0]).
  const int v2 = RNNFAST_BIT(c1, 0) && RNNFAST_BIT(c1, 9) && RNNFAST_BIT(c1, 13) &&
                 RNNFAST_BIT(c1, 19) && RNNFAST_BIT(c1, 20) && RNNFAST_BIT(c1, 23) &&
                 RNNFAST_BIT(x1[2], 0);
  if (strcmp(level, "x86-64-v2") == 0) return v2;
  // AVX, FMA, F16C, MOVBE; AVX2, BMI1, BMI2; LZCNT (0x80000001:ECX[5]); OS AVX state.
  const int v3 = v2 && RNNFAST_BIT(c1, 28) && RNNFAST_BIT(c1, 12) && RNNFAST_BIT(c1, 29) &&
                 RNNFAST_BIT(c1, 22) && RNNFAST_BIT(b7, 5) && RNNFAST_BIT(b7, 3) &&
                 RNNFAST_BIT(b7, 8) && RNNFAST_BIT(x1[2], 5) && rnnfast_cpu_avx_state();
  if (strcmp(level, "x86-64-v3") == 0) return v3;
  // AVX512F, DQ, CD, BW, VL; OS zmm and opmask state.
  const int v4 = v3 && RNNFAST_BIT(b7, 16) && RNNFAST_BIT(b7, 17) && RNNFAST_BIT(b7, 28) &&
                 RNNFAST_BIT(b7, 30) && RNNFAST_BIT(b7, 31) && rnnfast_cpu_avx512_state();
#undef RNNFAST_BIT
  if (strcmp(level, "x86-64-v4") == 0) return v4;
#endif
  return 0;
}
