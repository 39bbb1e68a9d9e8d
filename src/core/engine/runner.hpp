#pragma once

// One run from claim to result: starts claimed runs on the pool (a retry whose previous
// attempt's callable still runs here is held until it returns), runs the task function under its
// deadline, and settles each run exactly once — by its result, a timeout (T8/T9) or a
// cancellation (T23) — handing the planned write to the completion writer. Entered by the
// dispatcher (start), workers (execute), the timer (timeouts), the background thread and the
// application (cancel).

#include <functional>
#include <memory>
#include <vector>

#include "completion_writer.hpp"
#include "run_deadlines.hpp"
#include "run_table.hpp"
#include "transitions.hpp"
#include "worker_pool.hpp"

namespace durable_execution::detail {

class Runner {
 public:
  /** Told when a run's slot is freed, with the runs left in flight (the dispatcher's cue). */
  using OnSlotFreed = std::function<void(std::size_t running)>;

  Runner(const Clock& clock, const Transitions& transitions, RunTable& runs,
         CompletionWriter& writer, TimerThread* timer)
      : clock_(clock), transitions_(transitions), runs_(runs), writer_(writer), timer_(timer) {}

  /** The pool runs are started on and the deadline slots; set once before start(). */
  void attach(WorkerPool& pool, RunDeadlines& deadlines, OnSlotFreed on_slot_freed) {
    pool_ = &pool;
    deadlines_ = &deadlines;
    on_slot_freed_ = std::move(on_slot_freed);
  }

  /** @brief Starts admitted runs; held ones time out at their own deadline if still held. */
  void start(RunTable::Admitted admitted);
  /** @brief On a worker: runs the task function and records the outcome. */
  void execute(const std::shared_ptr<Run>& run, RunDeadlines::Slot& slot);
  /** @brief On the timer thread: a run past its deadline. */
  void time_out(const std::shared_ptr<Run>& run);
  /** @brief Stops a local run whose execution was cancelled; its late result is discarded. */
  void cancel(const std::string& execution_id);

 private:
  /** Runs the task function and plans its result write (§3.2-§3.4). */
  RunWrite run_and_plan(Run& run);
  void held_timed_out(const std::weak_ptr<Run>& weak);
  void abandoned_returned(const Run& run);
  /** The run left this executor's hands: free its slot and record the outcome. */
  void finish(const std::shared_ptr<Run>& run, RunWrite write, bool write_here);

  const Clock& clock_;
  const Transitions& transitions_;
  RunTable& runs_;
  CompletionWriter& writer_;
  TimerThread* timer_;
  WorkerPool* pool_ = nullptr;
  RunDeadlines* deadlines_ = nullptr;
  OnSlotFreed on_slot_freed_;
};

}  // namespace durable_execution::detail
