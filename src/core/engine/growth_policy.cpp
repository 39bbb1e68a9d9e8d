#include "growth_policy.hpp"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <thread>

namespace durable_execution::detail {

namespace {

/** The cgroup v2 CPU quota in cores (cpu.max "<quota> <period>"), or 0 if none. */
double cgroup_quota_cores() {
  std::ifstream in("/sys/fs/cgroup/cpu.max");
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return 0;
  try {
    return std::stod(quota) / period;
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

std::uint32_t available_cores() noexcept {
  std::uint32_t cores = std::max(1U, std::thread::hardware_concurrency());
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    cores = static_cast<std::uint32_t>(std::max(1, CPU_COUNT(&set)));
  }
  try {
    if (const double quota = cgroup_quota_cores(); quota > 0) {
      cores = std::min(cores, static_cast<std::uint32_t>(std::max(1.0, std::ceil(quota))));
    }
  } catch (...) {  // an unreadable cgroup file: the affinity mask stands
  }
  return cores;
}

std::size_t GrowthPolicy::on_submit(std::size_t queued, std::int64_t busy, std::int64_t idle,
                                    std::int64_t run_wait_ns_mean) const noexcept {
  auto room = std::max<std::int64_t>(0, static_cast<std::int64_t>(eager_workers()) - busy);
  if (run_wait_ns_mean >= c_.waiting_run_ns) room = std::max(room, idle);
  return std::min(queued, static_cast<std::size_t>(room));
}

void GrowthPolicy::sample_cpu(std::int64_t cpu_ns,
                              std::chrono::steady_clock::time_point now) noexcept {
  if (const auto wall =
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - wall_at_check_).count();
      wall_at_check_ != std::chrono::steady_clock::time_point{} && wall > 0) {
    const auto sample = static_cast<double>(cpu_ns - cpu_at_check_) / static_cast<double>(wall) /
                        static_cast<double>(cores_);
    cpu_utilization_ += (sample - cpu_utilization_) / 4;
  }
  cpu_at_check_ = cpu_ns;
  wall_at_check_ = now;
}

std::size_t GrowthPolicy::on_stall_check(std::size_t queued, std::int64_t busy,
                                         std::int64_t in_user_code,
                                         std::chrono::steady_clock::duration oldest_wait,
                                         std::int64_t run_wait_ns_mean) const noexcept {
  const bool blocked = in_user_code >= busy;
  const bool cpu_bound = cpu_utilization_ >= c_.brake_cpu_utilization &&
                         run_wait_ns_mean >= c_.waiting_run_ns &&
                         busy >= c_.brake_workers_per_core * static_cast<std::int64_t>(cores_);
  if (!blocked || cpu_bound || oldest_wait < c_.stall_threshold) return 0;
  return std::min(queued, static_cast<std::size_t>(std::max<std::int64_t>(busy, 1)));
}

}  // namespace durable_execution::detail
