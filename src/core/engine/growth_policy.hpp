#pragma once

// When the worker pool starts or wakes workers: pure decisions over samples (busy and idle
// workers, workers inside task functions, the queue, CPU time), so that they are unit-tested on
// fake samples. The pool (worker_pool.hpp) feeds it under its mutex; not thread-safe itself.

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace durable_execution::detail {

/** @brief The cores this process may use: the CPU affinity mask, capped by a cgroup CPU quota. */
[[nodiscard]] std::uint32_t available_cores() noexcept;

/** @brief The growth policy's constants, in one place. */
struct GrowthConstants {
  /** How long a queued run may wait for a worker before the pool adds workers for the queue. */
  std::chrono::microseconds stall_threshold{1000};
  /** Runs that wait this long on average (not computing) get idle workers for a whole batch. */
  std::int64_t waiting_run_ns = 100'000;
  /** A pool of waiting runs stops growing while the process uses this share of the cores... */
  double brake_cpu_utilization = 0.8;
  /** ...once it has this many workers per core. */
  std::int64_t brake_workers_per_core = 16;
};

class GrowthPolicy {
 public:
  /** `min_workers`: the option min_worker_threads (0: one per core, at least 2). */
  explicit GrowthPolicy(std::uint32_t cores, std::uint32_t min_workers = 0)
      : GrowthPolicy(cores, min_workers, GrowthConstants{}) {}
  GrowthPolicy(std::uint32_t cores, std::uint32_t min_workers, GrowthConstants constants)
      : cores_(cores < 2 ? 2 : cores), min_workers_(min_workers), c_(constants) {}

  /**
   * @brief Workers kept when idle, and started at once for quick tasks: min_workers if set, else
   * one per core (at least 2).
   */
  [[nodiscard]] std::uint32_t eager_workers() const noexcept {
    return min_workers_ > 0 ? min_workers_ : cores_;
  }
  [[nodiscard]] const GrowthConstants& constants() const noexcept { return c_; }

  /**
   * @brief On a submit: how many workers the queue should have on the way (started or woken).
   * Quick tasks get at most a core's worth, so that they drain the queue without a wake-up per
   * task; tasks that wait get every idle worker (a batch of 1 ms sleeps should not queue behind
   * two workers).
   */
  [[nodiscard]] std::size_t on_submit(std::size_t queued, std::int64_t busy, std::int64_t idle,
                                      std::int64_t run_wait_ns_mean) const noexcept;

  /**
   * @brief Feeds the CPU time (ns) the engine's threads used so far, at `now`, into the moving
   * CPU utilization (a share of the cores).
   */
  void sample_cpu(std::int64_t cpu_ns, std::chrono::steady_clock::time_point now) noexcept;
  [[nodiscard]] double cpu_utilization() const noexcept { return cpu_utilization_; }

  /**
   * @brief On a stall check: how many workers to add for the queue (0: none). The pool grows
   * when the oldest queued run waited past the threshold while every busy worker is inside a
   * task function (the tasks, not the engine, hold the workers); it doubles the busy workers per
   * check. One brake: when runs mostly wait, the pool is large and the process keeps most of the
   * cores busy, the CPU bounds throughput and more threads only add switching (measured: 256
   * workers instead of 128 made the reference scenario ~8% slower).
   */
  [[nodiscard]] std::size_t on_stall_check(std::size_t queued, std::int64_t busy,
                                           std::int64_t in_user_code,
                                           std::chrono::steady_clock::duration oldest_wait,
                                           std::int64_t run_wait_ns_mean) const noexcept;

 private:
  std::uint32_t cores_;  // at least 2: CPU shares and the brake count per core
  std::uint32_t min_workers_;
  GrowthConstants c_;
  double cpu_utilization_ = 0;
  std::int64_t cpu_at_check_ = 0;
  std::chrono::steady_clock::time_point wall_at_check_{};
};

}  // namespace durable_execution::detail
