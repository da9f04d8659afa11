// C++ checks of rnnfast's thread pool (src/rnnfast/threading.cc), built on
// its own so that the sanitizer job (.ci/sanitize) can run it under
// ThreadSanitizer cheaply: teams and their barriers, runs of every size,
// workers woken from sleep, concurrent and nested callers, a pool that grows,
// contended barriers, and a forked child.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "rnnfast/threading.h"

#if defined(__SANITIZE_THREAD__)
#define RNNFAST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RNNFAST_TSAN 1
#endif
#endif

namespace {

int failures = 0;

void Expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

// One run of `want` members in three phases separated by barriers: each member
// writes its own slots (plain memory), then reads what the others wrote before
// the barrier. Returns the team size; `ok` says whether every read saw the
// values of the previous phase.
int PhasedRun(int want, int salt, bool& ok) {
  std::vector<long> a(64, -1), b(64, -1);
  std::atomic<int> size{0}, members{0};
  std::atomic<bool> good{true};
  rnnfast::ParallelRun(want, [&](const rnnfast::Team& t) {
    members.fetch_add(1, std::memory_order_relaxed);
    if (t.rank == 0) size.store(t.size, std::memory_order_relaxed);
    if (t.rank < 0 || t.rank >= t.size || t.size > want) good = false;
    a[t.rank] = 1000L * salt + t.rank;
    t.Sync();
    long sum = 0;
    for (int r = 0; r < t.size; ++r) sum += a[r];
    b[t.rank] = sum;
    t.Sync();
    for (int r = 0; r < t.size; ++r)
      if (b[r] != b[0]) good = false;
    t.Sync();
  });
  const int n = size.load();
  long want_sum = 0;
  for (int r = 0; r < n; ++r) want_sum += 1000L * salt + r;
  ok = good.load() && members.load() == n && n >= 1 && b[0] == want_sum;
  return n;
}

void TeamsOfEverySize() {
  rnnfast::SetNumThreads(4);
  Expect(rnnfast::GetNumThreads() == 4, "SetNumThreads(4)");
  for (int i = 0; i < 300; ++i) {
    const int want = 1 + i % 5;  // 5 asks for more than the pool has
    bool ok = false;
    const int n = PhasedRun(want, i, ok);
    Expect(ok, "phased run " + std::to_string(i) + " (want " + std::to_string(want) + ")");
    Expect(n == (want < 4 ? want : 4), "run " + std::to_string(i) + ": team of " +
                                           std::to_string(n) + " for " + std::to_string(want));
  }
}

void WorkersWokenFromSleep() {
  // Longer than the workers' spin (500 us): each run wakes them from the
  // condition variable.
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    bool ok = false;
    PhasedRun(3, 7 + i, ok);
    Expect(ok, "run after the workers slept " + std::to_string(i));
  }
}

void ConcurrentCallers() {
  // Several threads call at once: one gets the pool, the others run alone;
  // every caller's run completes with its own results.
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < 4; ++c)
    threads.emplace_back([c, &bad] {
      for (int i = 0; i < 100; ++i) {
        bool ok = false;
        PhasedRun(2 + (i + c) % 3, 100 * c + i, ok);
        if (!ok) bad.fetch_add(1);
      }
    });
  for (auto& t : threads) t.join();
  Expect(bad.load() == 0, "concurrent callers: " + std::to_string(bad.load()) + " bad runs");
}

void NestedRun() {
  // A kernel called from inside a member runs alone (the pool is busy).
  std::atomic<int> inner_sizes{0}, inner_runs{0};
  rnnfast::ParallelRun(3, [&](const rnnfast::Team& t) {
    rnnfast::ParallelRun(3, [&](const rnnfast::Team& u) {
      inner_sizes.fetch_add(u.size);
      inner_runs.fetch_add(1);
    });
    t.Sync();
  });
  Expect(inner_runs.load() == inner_sizes.load(), "nested runs are not teams of one");
}

void GrowingPool() {
  rnnfast::SetNumThreads(2);
  bool ok = false;
  Expect(PhasedRun(8, 1, ok) == 2 && ok, "pool of 2");
  rnnfast::SetNumThreads(6);  // starts more workers on the next run
  PhasedRun(6, 2, ok);
  Expect(ok, "pool grown to 6");
  rnnfast::SetNumThreads(0);  // clamped to 1
  Expect(rnnfast::GetNumThreads() == 1, "SetNumThreads(0) clamps to 1");
  Expect(PhasedRun(4, 3, ok) == 1 && ok, "pool of 1 runs on the caller");
  rnnfast::SetNumThreads(4);
}

void ContendedBarriers() {
  // One member arrives late at every barrier: the others' long waits mark the
  // pool contended for a while (timing-dependent, so only exercised here).
  rnnfast::ParallelRun(2, [&](const rnnfast::Team& t) {
    for (int i = 0; i < 4; ++i) {
      if (t.rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      t.Sync();
    }
  });
  std::printf("contended after late members: %s\n", rnnfast::RecentlyContended() ? "yes" : "no");
  bool ok = false;
  PhasedRun(4, 11, ok);
  Expect(ok, "run while contended");
}

void ContendedJoins() {
  // Runs without barriers (row splits) whose caller waits at the end longer
  // than its own share took, three times within 100 ms, mark the pool
  // contended: the kernels then choose one thread. Wait out any hold left by
  // the previous check first, so that this one is what sets it.
  for (int i = 0; i < 300 && rnnfast::RecentlyContended(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Expect(!rnnfast::RecentlyContended(), "contention hold ends");
  for (int i = 0; i < 3; ++i) {
    rnnfast::ParallelRun(2, [&](const rnnfast::Team& t) {
      if (t.rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(3));
    });
  }
  Expect(rnnfast::RecentlyContended(), "contended after three late joins");
  // Joins whose members finish together leave it alone once the hold ends.
  for (int i = 0; i < 300 && rnnfast::RecentlyContended(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (int i = 0; i < 10; ++i) {
    rnnfast::ParallelRun(2, [&](const rnnfast::Team&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    });
  }
  Expect(!rnnfast::RecentlyContended(), "balanced joins are not contention");
}

void ForkedChild() {
#ifndef RNNFAST_TSAN  // TSan does not support threads started after a multi-threaded fork
  bool ok = false;
  PhasedRun(4, 5, ok);  // the parent's workers exist
  const pid_t pid = fork();
  if (pid == 0) {
    bool child_ok = false;
    PhasedRun(4, 6, child_ok);
    _exit(child_ok ? 0 : 1);
  }
  int status = 0;
  Expect(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
             WEXITSTATUS(status) == 0,
         "run in a forked child");
  PhasedRun(4, 7, ok);
  Expect(ok, "parent after fork");
#endif
}

}  // namespace

int main() {
  TeamsOfEverySize();
  WorkersWokenFromSleep();
  ConcurrentCallers();
  NestedRun();
  GrowingPool();
  ContendedBarriers();
  ContendedJoins();
  ForkedChild();
  if (failures == 0) std::printf("all thread pool checks passed\n");
  return failures == 0 ? 0 : 1;
}
