// Costs of rnnfast's thread pool that bound how far the kernels scale
// (issue 21, item 4): a barrier among the members of a run (the unit split
// meets at one per time step) and a whole run posted and joined (each kernel
// call, and the row split's only meeting). Prints microseconds per event,
// median of 9 batches.
//
//   g++ -O3 -std=c++17 -Isrc benchmarks/pool_bench.cc src/rnnfast/threading.cc -lpthread -o pool_bench
//   ./pool_bench [THREADS...]       # default: 2
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "rnnfast/threading.h"

using Clock = std::chrono::steady_clock;

template <typename F> double MedianMicros(F f, int per_batch) {
  std::vector<double> us;
  for (int b = 0; b < 9; ++b) {
    const auto a = Clock::now();
    f();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count() / per_batch);
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

int main(int argc, char** argv) {
  std::vector<int> counts;
  for (int i = 1; i < argc; ++i) counts.push_back(std::atoi(argv[i]));
  if (counts.empty()) counts.push_back(2);
  std::printf("threads,barrier_us,run_us\n");
  for (int n : counts) {
    rnnfast::SetNumThreads(n);
    const int steps = 20000, runs = 5000;
    // Warm the pool (workers started and spinning) before timing.
    rnnfast::ParallelRun(n, [](const rnnfast::Team& t) { t.Sync(); });
    const double barrier = MedianMicros([&] {
      rnnfast::ParallelRun(n, [&](const rnnfast::Team& t) {
        for (int s = 0; s < steps; ++s) t.Sync();
      });
    }, steps);
    const double run = MedianMicros([&] {
      for (int r = 0; r < runs; ++r) rnnfast::ParallelRun(n, [](const rnnfast::Team&) {});
    }, runs);
    std::printf("%d,%.3f,%.3f\n", n, barrier, run);
  }
}
