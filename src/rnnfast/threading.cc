#include "rnnfast/threading.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RNNFAST_PAUSE() _mm_pause()
#else
#define RNNFAST_PAUSE() std::this_thread::yield()
#endif

namespace rnnfast {
namespace {

constexpr int kMaxThreads = 256;
// How long idle workers spin before sleeping: long enough to bridge the gaps
// between the kernel calls of training steps (Python, the loss, the optimizer:
// up to a few hundred microseconds in W1), short enough not to hold a core
// for long once the calls stop. Waking a sleeping worker cost 50-80 us per
// call on a KVM guest (Zen 4): at 50 us of spinning, a 0.17 ms forward called
// 100-300 us after the previous one took 0.23-0.26 ms.
constexpr auto kSpinTime = std::chrono::microseconds(500);
// How long a barrier spins before it starts yielding its core.
constexpr auto kBarrierSpin = std::chrono::microseconds(20);

// Called by a run's caller that had to yield while waiting for the other
// members after doing its own share (defined with the contention state below).
void NoteJoinWait(std::chrono::steady_clock::duration worked,
                  std::chrono::steady_clock::duration waited);

int DefaultThreads() {
  if (const char* env = std::getenv("RNNFAST_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n < kMaxThreads ? n : kMaxThreads;
  }
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n >= 1) return n < kMaxThreads ? n : kMaxThreads;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n >= 1 ? static_cast<int>(n < kMaxThreads ? n : kMaxThreads) : 1;
}

// Pool state. Workers are detached and hold a pointer to their Pool, so a
// forked child can abandon this object (its threads do not exist there) and
// start a new one.
class Pool {
 public:
  explicit Pool(int threads) : threads_(threads) {}

  int threads() const { return threads_.load(std::memory_order_relaxed); }
  void set_threads(int n) { threads_.store(n, std::memory_order_relaxed); }

  void Run(int want, const std::function<void(const Team&)>& fn) {
    int n = want < threads() ? want : threads();
    if (n < 1) n = 1;
    bool expected = false;
    // One caller at a time; a concurrent caller (another Python thread, or a
    // kernel called from inside a worker) runs alone instead of waiting.
    if (n == 1 || !busy_.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      fn(Team{0, 1, nullptr});
      return;
    }
    EnsureWorkers(n - 1);
    SpinBarrier barrier(n);
    job_ = &fn;
    barrier_ = &barrier;
    pending_.store(n - 1, std::memory_order_relaxed);
    {
      // Publishing under the mutex means a worker about to sleep cannot miss it.
      std::lock_guard<std::mutex> lock(mutex_);
      const std::uint64_t gen = (word_.load(std::memory_order_relaxed) >> 16) + 1;
      word_.store((gen << 16) | static_cast<std::uint64_t>(n), std::memory_order_release);
    }
    wake_.notify_all();
    const auto posted = std::chrono::steady_clock::now();
    fn(Team{0, n, &barrier});
    const auto start = std::chrono::steady_clock::now();
    bool yielded = false;
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if ((spins & 63) != 63 || std::chrono::steady_clock::now() - start < kBarrierSpin) {
        RNNFAST_PAUSE();
      } else {
        std::this_thread::yield();
        yielded = true;
      }
    }
    if (yielded) NoteJoinWait(start - posted, std::chrono::steady_clock::now() - start);
    busy_.store(false, std::memory_order_release);
  }

 private:
  void EnsureWorkers(int count) {
    // A new worker starts from the current generation, so the run posted
    // right after this cannot be mistaken for one it has already seen.
    const std::uint64_t seen = word_.load(std::memory_order_relaxed) >> 16;
    while (static_cast<int>(started_) < count) {
      const int rank = static_cast<int>(++started_);
      std::thread([this, rank, seen] { Work(rank, seen); }).detach();
    }
  }

  void Work(int rank, std::uint64_t seen) {
    for (;;) {
      std::uint64_t word = WaitForJob(seen);
      seen = word >> 16;
      const int n = static_cast<int>(word & 0xffff);
      if (rank >= n) continue;  // not a member of this run
      (*job_)(Team{rank, n, barrier_});
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::uint64_t WaitForJob(std::uint64_t seen) {
    const auto now = std::chrono::steady_clock::now();
    const auto deadline = now + kSpinTime, polite = now + kBarrierSpin;
    for (int spins = 0;; ++spins) {
      const std::uint64_t word = word_.load(std::memory_order_acquire);
      if ((word >> 16) != seen) return word;
      if ((spins & 63) == 63) {
        const auto t = std::chrono::steady_clock::now();
        if (t > deadline) break;
        // Yield now and then: when this process has more threads than free
        // cores, the thread doing the caller's work may be waiting for this
        // core (W1 LSTM step on 2 threads with one core busy elsewhere: 3.5 ms
        // against 0.9 on one thread while workers spun without yielding).
        if (t > polite) std::this_thread::yield();
      }
      RNNFAST_PAUSE();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    std::uint64_t word;
    wake_.wait(lock, [&] { return ((word = word_.load(std::memory_order_acquire)) >> 16) != seen; });
    return word;
  }

  std::atomic<int> threads_;
  std::atomic<bool> busy_{false};
  unsigned started_ = 0;  // workers created; only touched by the busy owner
  // (generation << 16) | team size: one word so that a worker never pairs one
  // run's generation with another run's size.
  std::atomic<std::uint64_t> word_{0};
  const std::function<void(const Team&)>* job_ = nullptr;
  SpinBarrier* barrier_ = nullptr;
  std::atomic<int> pending_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
};

std::atomic<Pool*> g_pool{nullptr};
// steady_clock ticks until which teams are considered contended.
std::atomic<std::int64_t> g_contended_until{0};

std::int64_t Now() { return std::chrono::steady_clock::now().time_since_epoch().count(); }

// How long the kernels stay on one thread once contention is seen: short at
// first (a burst such as NumPy's BLAS threads spinning after a product, which
// made the first second of training run at one thread's speed), doubled, up
// to a second, while contention is seen again soon after each hold ends.
constexpr auto kFirstHold = std::chrono::milliseconds(50);
constexpr auto kLongestHold = std::chrono::seconds(1);
std::atomic<std::int64_t> g_hold{0};

void NoteContention() {
  using std::chrono::duration_cast;
  using Ticks = std::chrono::steady_clock::duration;
  const std::int64_t first = duration_cast<Ticks>(kFirstHold).count();
  const std::int64_t longest = duration_cast<Ticks>(kLongestHold).count();
  const std::int64_t now = Now(), until = g_contended_until.load(std::memory_order_relaxed);
  std::int64_t hold = g_hold.load(std::memory_order_relaxed);
  hold = hold > 0 && now - until < 2 * hold ? std::min(2 * hold, longest) : first;
  g_hold.store(hold, std::memory_order_relaxed);
  g_contended_until.store(now + hold, std::memory_order_relaxed);
}
// Runs without per-step barriers (row splits) meet only at the end, so their
// contention shows there: a caller that waited for the other members longer
// than its own share took (and over 50 us, to ignore tiny runs) spent more
// time than doing all the work alone would have, whatever the cause (members
// descheduled by other processes, or a sleeping worker woken for each short
// call). Three such joins within 100 ms put the kernels on one thread for the
// contention hold.
std::atomic<std::int64_t> g_join_strike_at[3] = {};
std::atomic<unsigned> g_join_strikes{0};

void NoteJoinWait(std::chrono::steady_clock::duration worked,
                  std::chrono::steady_clock::duration waited) {
  using std::chrono::duration_cast;
  using Ticks = std::chrono::steady_clock::duration;
  if (waited < std::chrono::microseconds(50) || waited < worked) return;
  const std::int64_t now = Now();
  const unsigned k = g_join_strikes.fetch_add(1, std::memory_order_relaxed);
  g_join_strike_at[k % 3].store(now, std::memory_order_relaxed);
  const std::int64_t oldest = g_join_strike_at[(k + 1) % 3].load(std::memory_order_relaxed);
  const std::int64_t window = duration_cast<Ticks>(std::chrono::milliseconds(100)).count();
  if (k >= 2 && now - oldest < window) NoteContention();
}
std::once_flag g_init;

void AfterForkInChild() {
  // The workers did not survive the fork and the mutex may be held by one of
  // them: abandon the old pool (leaked on purpose) and start afresh.
  Pool* old = g_pool.load();
  g_pool.store(new Pool(old != nullptr ? old->threads() : DefaultThreads()));
}

Pool& GlobalPool() {
  std::call_once(g_init, [] {
    g_pool.store(new Pool(DefaultThreads()));
    pthread_atfork(nullptr, nullptr, AfterForkInChild);
  });
  return *g_pool.load();
}

}  // namespace

SpinBarrier::SpinBarrier(int n) : n_(n), released_(Now()) {}

void SpinBarrier::Wait() {
  const std::int64_t arrived_at = Now();
  const std::int64_t previous_release = released_.load(std::memory_order_relaxed);
  const unsigned gen = generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
    arrived_.store(0, std::memory_order_relaxed);
    released_.store(arrived_at, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    return;
  }
  // Spin briefly (members normally arrive within microseconds of each
  // other), then yield the core: when other processes hold the cores the late
  // member may be waiting for ours.
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  bool yielded = false;
  for (int spins = 0; generation_.load(std::memory_order_acquire) == gen; ++spins) {
    if ((spins & 63) != 63 || Clock::now() - start < kBarrierSpin) {
      RNNFAST_PAUSE();
      continue;
    }
    std::this_thread::yield();
    yielded = true;
  }
  if (!yielded) return;
  // A long wait is a sign of contention only when it dwarfs the work this
  // member did since the previous barrier (a big, slightly unbalanced phase
  // also waits long); several such waits in one run decide it.
  const std::int64_t waited = Now() - arrived_at;
  const std::int64_t worked = arrived_at - previous_release;
  const std::int64_t ms = std::chrono::duration_cast<Clock::duration>(
                              std::chrono::milliseconds(1)).count();
  if (waited > ms && waited > worked && strikes_.fetch_add(1) + 1 == 3) NoteContention();
}

bool RecentlyContended() { return Now() < g_contended_until.load(std::memory_order_relaxed); }

void SetNumThreads(int n) {
  if (n < 1) n = 1;
  if (n > kMaxThreads) n = kMaxThreads;
  GlobalPool().set_threads(n);
}

int GetNumThreads() { return GlobalPool().threads(); }

void ParallelRun(int want, const std::function<void(const Team&)>& fn) {
  GlobalPool().Run(want, fn);
}

}  // namespace rnnfast
