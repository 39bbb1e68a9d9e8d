#include "run_table.hpp"

#include <fmt/format.h>

namespace durable_execution::detail {

RunTable::Admitted RunTable::admit(std::vector<TaskExecutionRecord> rows,
                                   const TaskRegistry& registry) {
  Admitted out;
  out.start.reserve(rows.size());
  std::lock_guard lock(mutex_);
  for (auto& row : rows) {
    if (in_flight_.contains(row.execution_id)) continue;
    if (!early_cancels_.empty() && early_cancels_.erase(row.execution_id) > 0) continue;
    auto run = std::make_shared<Run>();
    run->definition = registry.find(row.task_id);
    run->record = std::move(row);
    in_flight_.emplace(run->record.execution_id, run);
    if (!zombie_ids_.empty() && zombie_ids_.contains(run->record.execution_id)) {
      held_.emplace(run->record.execution_id, run);
      out.held.push_back(std::move(run));
      continue;
    }
    out.start.push_back(std::move(run));
  }
  return out;
}

std::optional<std::size_t> RunTable::finish(const Run& run) {
  std::lock_guard lock(mutex_);
  in_flight_.erase(run.record.execution_id);
  if (discard_results_) return std::nullopt;
  ++pending_completions_;
  return in_flight_.size();
}

void RunTable::completions_written(std::int64_t n) {
  {
    std::lock_guard lock(mutex_);
    pending_completions_ -= n;
  }
  cv_.notify_all();
}

void RunTable::abandon(const Run& run) {
  std::lock_guard lock(mutex_);
  abandon_locked(run);
}

void RunTable::abandon_locked(const Run& run) {
  zombies_.fetch_add(1);
  ++zombie_ids_[run.record.execution_id];
}

RunTable::Returned RunTable::abandoned_returned(const Run& run) {
  Returned out;
  {
    std::lock_guard lock(mutex_);
    zombies_.fetch_sub(1);
    if (auto it = zombie_ids_.find(run.record.execution_id);
        it != zombie_ids_.end() && --it->second == 0) {
      zombie_ids_.erase(it);
      if (auto h = held_.find(run.record.execution_id); h != held_.end()) {
        out.next = std::move(h->second);
        held_.erase(h);
      }
    }
    out.running = in_flight_.size();
  }
  cv_.notify_all();
  return out;
}

bool RunTable::take_held(const std::shared_ptr<Run>& run) {
  std::lock_guard lock(mutex_);
  auto it = held_.find(run->record.execution_id);
  if (it == held_.end() || it->second != run) return false;  // started: its own deadline
  held_.erase(it);
  return true;
}

std::shared_ptr<Run> RunTable::cancel(const std::string& execution_id) {
  std::shared_ptr<Run> run;
  {
    std::lock_guard lock(mutex_);
    auto it = in_flight_.find(execution_id);
    if (it == in_flight_.end()) {
      remember_early_cancel_locked(execution_id);
      return nullptr;
    }
    run = it->second;
    if (run->settled.exchange(true)) return nullptr;
    in_flight_.erase(it);
    if (auto h = held_.find(execution_id); h != held_.end() && h->second == run) {
      held_.erase(h);  // never started: nothing abandoned
    } else {
      abandon_locked(*run);
    }
  }
  cv_.notify_all();
  return run;
}

void RunTable::remember_early_cancel_locked(const std::string& execution_id) {
  // Only executions cancelled in storage get here: none runs again.
  if (!remember_early_cancels_) return;
  const auto now = SteadyClock::now();
  if (early_cancels_.size() >= 1024) {
    std::erase_if(early_cancels_, [now](const auto& e) { return e.second <= now; });
  }
  early_cancels_.insert_or_assign(execution_id, now + kEarlyCancelTtl);
}

RunTable::Counts RunTable::counts(std::int32_t max) const {
  std::lock_guard lock(mutex_);
  const auto abandoned = zombies_.load();
  return Counts{max - static_cast<std::int64_t>(in_flight_.size()) - abandoned, abandoned,
                in_flight_.empty()};
}

std::size_t RunTable::running() const {
  std::lock_guard lock(mutex_);
  return in_flight_.size();
}

std::vector<std::string> RunTable::ids() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> ids;
  ids.reserve(in_flight_.size());
  for (const auto& [id, run] : in_flight_) ids.emplace_back(id);
  return ids;
}

RunTable::Left RunTable::stop_all(SteadyClock::time_point deadline) {
  Left left;
  std::unique_lock lock(mutex_);
  for (auto& [id, run] : in_flight_) {
    StopReason expected = StopReason::none;
    run->reason.compare_exchange_strong(expected, StopReason::shutdown);
    run->stop.request_stop();
  }
  const bool done = cv_.wait_until(lock, deadline, [this] {
    return in_flight_.empty() && pending_completions_ == 0 && zombies_.load() == 0;
  });
  if (!done) {
    discard_results_ = true;
    for (const auto& [id, run] : in_flight_) {
      left.runs.push_back(fmt::format("{} ({})", id, run->record.task_id));
    }
    left.abandoned = zombies_.load();
  }
  return left;
}

}  // namespace durable_execution::detail
