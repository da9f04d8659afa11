// rnnfast's own small thread pool. Eigen runs single-threaded inside each
// worker (EIGEN_DONT_PARALLELIZE); the kernels split GEMMs and gate passes by
// blocks. Why not OpenMP: its spinning threads were measured to fight NumPy's
// OpenBLAS threads for the cores, and a fork()ed child hangs once the parent
// has used it. This pool spins only briefly before sleeping, runs one caller
// at a time (a second concurrent caller runs serially instead of waiting), and
// rebuilds itself in a forked child.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

namespace rnnfast {

// Threads the kernels may use, the caller included (>= 1). The default is the
// number of CPUs this process may run on, or RNNFAST_NUM_THREADS if set.
void SetNumThreads(int n);
int GetNumThreads();

// A barrier for the members of one parallel run. Spins, then yields.
class SpinBarrier {
 public:
  explicit SpinBarrier(int n);
  void Wait();

 private:
  const int n_;
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> generation_{0};
  std::atomic<std::int64_t> released_;  // steady_clock ticks of the last release
  std::atomic<int> strikes_{0};         // long waits that exceeded the work before them
};

// One member's view of a parallel run.
struct Team {
  int rank = 0;   // 0 .. size-1; the calling thread is rank 0
  int size = 1;
  SpinBarrier* barrier = nullptr;
  // Waits until every member arrives. No-op for a team of one.
  void Sync() const {
    if (size > 1) barrier->Wait();
  }
};

// Runs fn on a team of at most `want` threads (fewer when the pool is busy or
// smaller) and returns when all members have returned. fn must not throw.
void ParallelRun(int want, const std::function<void(const Team&)>& fn);

// True for a while after barriers of one run waited, three times, longer
// than a millisecond and longer than the work their member did since the
// previous barrier: other processes hold the cores, and a team that meets at
// every time step would spend its time waiting for descheduled members, so
// the kernels run on one thread meanwhile. The while is 50 ms, doubled (up to
// a second) each time contention is seen again soon after it ends.
bool RecentlyContended();

}  // namespace rnnfast
