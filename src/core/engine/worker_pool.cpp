#include "worker_pool.hpp"

#include <time.h>

#include <algorithm>

namespace durable_execution::detail {

namespace {

/** One run in this many per worker is timed for the wait mean (CPU clocks have no vDSO path). */
constexpr std::uint32_t kWaitSampleEvery = 4;

/** CPU time of `clock` (the calling thread's or the process's), in ns: one system call. */
std::int64_t cpu_time_ns(clockid_t clock) noexcept {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/** Adds the calling thread's CPU time since its last report (at `now_ns`) to `total`. */
void add_thread_cpu(std::atomic<std::int64_t>& total, std::int64_t now_ns) noexcept {
  thread_local std::int64_t reported_ns = 0;
  total.fetch_add(now_ns - reported_ns, std::memory_order_relaxed);
  reported_ns = now_ns;
}

}  // namespace

void WorkerPool::report_thread_cpu() noexcept {
  add_thread_cpu(engine_cpu_ns_, cpu_time_ns(CLOCK_THREAD_CPUTIME_ID));
}

WorkerPool::UserCode::UserCode(WorkerPool& pool) : pool_(pool) {
  pool_.in_user_code_.fetch_add(1, std::memory_order_relaxed);
  thread_local std::uint32_t runs_on_this_worker = 0;
  sampled_ = runs_on_this_worker++ % kWaitSampleEvery == 0;
  if (sampled_) {
    wall_start_ = SteadyClock::now();
    cpu_start_ = cpu_time_ns(CLOCK_THREAD_CPUTIME_ID);
  }
}

WorkerPool::UserCode::~UserCode() {
  pool_.in_user_code_.fetch_sub(1, std::memory_order_relaxed);
  if (!sampled_) return;
  const auto wall =
      std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - wall_start_)
          .count();
  const auto cpu_end = cpu_time_ns(CLOCK_THREAD_CPUTIME_ID);
  const auto waited = std::max<std::int64_t>(0, wall - (cpu_end - cpu_start_));
  add_thread_cpu(pool_.engine_cpu_ns_, cpu_end);  // the same reading: no extra system call
  // A racy moving mean (weight 1/8) is enough for a pool heuristic.
  const auto mean = pool_.run_wait_ns_mean_.load(std::memory_order_relaxed);
  pool_.run_wait_ns_mean_.store(mean + (waited - mean) / 8, std::memory_order_relaxed);
}

WorkerPool::Wakeups WorkerPool::add_workers_locked(std::size_t want) {
  // The caller wakes idle workers after releasing the mutex: a worker woken while it is held
  // (on 2 cores, it often runs at once) would only block on it again.
  const auto idle = static_cast<std::size_t>(idle_);
  const Wakeups w{std::min(want, idle), want >= idle && idle > 0};
  if (want <= idle || stop_) return w;
  join_exited_locked();
  auto to_spawn = want - idle;
  while (to_spawn-- > 0 && static_cast<std::int32_t>(threads_.size()) < config_.max_workers) {
    threads_.emplace_back();
    const auto self = std::prev(threads_.end());
    *self = std::thread([this, owner = owner_.lock(), self] { worker_loop(self); });
  }
  return w;
}

void WorkerPool::wake(Wakeups w) {
  if (w.all) {
    cv_.notify_all();
    return;
  }
  for (std::size_t i = 0; i < w.count; ++i) cv_.notify_one();
}

void WorkerPool::submit(std::vector<std::shared_ptr<Run>> runs) {
  if (runs.empty()) return;
  std::unique_lock lock(mutex_);
  const auto now = SteadyClock::now();
  for (auto& r : runs) queue_.push_back(Job{std::move(r), now});
  // If the queue stalls anyway, the stall check starts new workers.
  const auto busy = static_cast<std::int64_t>(threads_.size()) - idle_;
  const auto w = add_workers_locked(policy_.on_submit(
      queue_.size(), busy, idle_, run_wait_ns_mean_.load(std::memory_order_relaxed)));
  schedule_check_locked();
  lock.unlock();
  wake(w);
}

void WorkerPool::schedule_check_locked() {
  if (check_scheduled_ || queue_.empty() || !config_.timer) return;
  check_scheduled_ = true;
  config_.timer->schedule(SteadyClock::now() + policy_.constants().stall_threshold,
                          [this] { stall_check(); });
}

void WorkerPool::stall_check() {
  std::unique_lock lock(mutex_);
  check_scheduled_ = false;
  if (queue_.empty() || stop_) return;
  const auto now = SteadyClock::now();
  policy_.sample_cpu(engine_cpu_ns_.load(std::memory_order_relaxed), now);
  const auto busy = static_cast<std::int64_t>(threads_.size()) - idle_;
  const auto grow = policy_.on_stall_check(
      queue_.size(), busy, in_user_code_.load(std::memory_order_relaxed),
      now - queue_.front().queued, run_wait_ns_mean_.load(std::memory_order_relaxed));
  Wakeups w;
  if (grow > 0) w = add_workers_locked(grow);
  schedule_check_locked();
  lock.unlock();
  wake(w);
}

void WorkerPool::join_exited_locked() {
  // Exited workers only have to return, never to lock.
  for (auto& t : exited_) {
    if (t.joinable()) t.join();
  }
  exited_.clear();
}

void WorkerPool::worker_loop(std::list<std::thread>::iterator self) {
  config_.caller->adopt_thread();
  auto& slot = deadlines_.acquire();
  std::unique_lock lock(mutex_);
  for (;;) {
    if (queue_.empty() && !stop_) {
      ++idle_;
      const bool has_work =
          cv_.wait_for(lock, config_.idle_timeout, [this] { return !queue_.empty() || stop_; });
      --idle_;
      // Idle for idle_timeout: retire, down to a core's worth of workers.
      if (!has_work && threads_.size() <= policy_.eager_workers()) continue;
      if (!has_work) break;
    }
    if (queue_.empty()) break;  // stop_
    auto job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    execute_(job.run, slot);
    job.run.reset();
    lock.lock();
  }
  deadlines_.release(slot);
  exited_.splice(exited_.end(), threads_, self);
}

void WorkerPool::stop(SteadyClock::time_point deadline) {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (threads_.empty() || SteadyClock::now() >= deadline) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  std::lock_guard lock(mutex_);
  join_exited_locked();
  for (auto& t : threads_) t.detach();
}

std::int32_t WorkerPool::threads() const {
  std::lock_guard lock(mutex_);
  return static_cast<std::int32_t>(threads_.size());
}

}  // namespace durable_execution::detail
