#include "random.hpp"

#include <pthread.h>

#include <atomic>
#include <cstdint>

namespace durable_execution::detail {

namespace {

/** Bumped in the child of every fork(): a thread's generator seeded before it is stale. */
std::atomic<std::uint64_t> fork_generation{0};

void on_fork_child() noexcept { fork_generation.fetch_add(1, std::memory_order_relaxed); }

std::uint64_t fresh_seed() {
  std::random_device rd;
  // Distinct even if random_device were deterministic: threads seeded at once differ.
  static std::atomic<std::uint64_t> counter{0};
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
         (counter.fetch_add(1, std::memory_order_relaxed) * 0x9E3779B97F4A7C15ULL);
}

}  // namespace

std::mt19937_64& thread_random() {
  // Registered before any generator exists (a fork before that has nothing stale to copy).
  static const bool registered = pthread_atfork(nullptr, nullptr, on_fork_child) == 0;
  (void)registered;
  struct State {
    std::uint64_t generation;
    std::mt19937_64 rng;
  };
  thread_local State state{fork_generation.load(std::memory_order_relaxed),
                           std::mt19937_64{fresh_seed()}};
  const auto generation = fork_generation.load(std::memory_order_relaxed);
  if (state.generation != generation) {
    state.generation = generation;
    state.rng.seed(fresh_seed());
  }
  return state.rng;
}

}  // namespace durable_execution::detail
