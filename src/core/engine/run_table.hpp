#pragma once

// The runs this executor holds: claimed and not yet finished (in flight), abandoned (timed out or
// cancelled while their callable still runs here: they hold a slot of
// max_concurrent_task_executions until it returns), held (a retry claimed while its previous
// attempt's callable still runs: never two attempts at once), and cancellations that arrived
// before their claim registered. One mutex; entered by the dispatcher (admit), workers (finish,
// abandoned_returned), the timer (timeouts), the background thread and the application (cancel),
// the completion writer (completions_written) and shutdown.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../executor_support.hpp"
#include "durable_execution/task_context.hpp"
#include "registry.hpp"

namespace durable_execution::detail {

/** @brief One claimed execution being run here. */
struct Run {
  TaskExecutionRecord record;
  std::shared_ptr<const TaskDefinition> definition;
  std::stop_source stop;
  std::atomic<StopReason> reason{StopReason::none};
  /** Set by whoever records the run's outcome first: its result, a timeout or a cancel. */
  std::atomic<bool> settled{false};
};

class RunTable {
 public:
  /** How long a cancellation that found no local run waits for a claim in flight to register. */
  static constexpr std::chrono::seconds kEarlyCancelTtl{10};

  /** `remember_early_cancels`: executors do; clients run nothing, so they need not. */
  explicit RunTable(bool remember_early_cancels)
      : remember_early_cancels_(remember_early_cancels) {}

  struct Admitted {
    std::vector<std::shared_ptr<Run>> start;  // to run now
    std::vector<std::shared_ptr<Run>> held;   // to run when the previous attempt returns
  };
  /** @brief Registers claimed rows as runs (skipping ones already here or cancelled early). */
  [[nodiscard]] Admitted admit(std::vector<TaskExecutionRecord> rows, const TaskRegistry& registry);

  /**
   * @brief The run left this executor's hands; its result is about to be written.
   * @return the runs left in flight, or nullopt if shutdown gave up waiting (results dropped).
   */
  [[nodiscard]] std::optional<std::size_t> finish(const Run& run);
  /** @brief A result batch of `n` runs was written (shutdown waits for pending ones). */
  void completions_written(std::int64_t n);

  /** @brief A settled run whose callable still runs (timed out): it holds a slot. */
  void abandon(const Run& run);
  struct Returned {
    std::shared_ptr<Run> next;  // a held retry of the same execution, to start now
    std::size_t running = 0;
  };
  /** @brief The callable of an abandoned run returned (or never started): its slot is free. */
  [[nodiscard]] Returned abandoned_returned(const Run& run);
  /** @brief A held run's deadline passed: true if it was still held (now removed). */
  [[nodiscard]] bool take_held(const std::shared_ptr<Run>& run);

  /**
   * @brief An execution was cancelled in storage: its run here, if any, settled and removed (the
   * caller stops it); else the cancel is remembered for a claim in flight (kEarlyCancelTtl).
   */
  [[nodiscard]] std::shared_ptr<Run> cancel(const std::string& execution_id);

  struct Counts {
    std::int64_t free_slots = 0;  // of `max`, not held by a run or an abandoned run
    std::int32_t abandoned = 0;
    /** No run in flight here. Abandoned runs do not count: their outcome is recorded, so a
     * crash of this process cannot touch them. */
    bool alone = false;
  };
  [[nodiscard]] Counts counts(std::int32_t max) const;
  [[nodiscard]] std::size_t running() const;
  [[nodiscard]] std::int32_t abandoned() const noexcept { return zombies_.load(); }
  [[nodiscard]] std::vector<std::string> ids() const;

  /** @brief What shutdown left behind: runs still in their task functions, abandoned ones. */
  struct Left {
    std::vector<std::string> runs;  // "<execution id> (<task id>)"
    std::int32_t abandoned = 0;
  };
  /**
   * @brief Asks every run to stop (reason shutdown) and waits until all are finished and their
   * results written, or `deadline`: then results that arrive later are dropped.
   */
  [[nodiscard]] Left stop_all(SteadyClock::time_point deadline);

 private:
  void abandon_locked(const Run& run);
  void remember_early_cancel_locked(const std::string& execution_id);

  bool remember_early_cancels_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;  // signalled when in-flight runs or pending results drop
  // Keys view the run's own execution id (the run outlives its entry): no copy per run.
  std::unordered_map<std::string_view, std::shared_ptr<Run>> in_flight_;
  std::int64_t pending_completions_ = 0;
  std::atomic<std::int32_t> zombies_{0};
  /** Executions with an abandoned callable still running here, and how many. */
  std::unordered_map<std::string, std::int32_t> zombie_ids_;
  std::unordered_map<std::string_view, std::shared_ptr<Run>> held_;
  bool discard_results_ = false;
  std::unordered_map<std::string, SteadyClock::time_point> early_cancels_;
};

}  // namespace durable_execution::detail
