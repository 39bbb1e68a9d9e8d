#include "runner.hpp"

#include <fmt/format.h>

#include "durable_execution/detail/saturating_time.hpp"

namespace durable_execution::detail {

void Runner::start(RunTable::Admitted admitted) {
  for (const auto& run : admitted.held) {
    timer_->schedule(clock_.steady_now() + run->record.timeout,
                     [this, weak = std::weak_ptr<Run>(run)] { held_timed_out(weak); });
  }
  pool_->submit(std::move(admitted.start));
}

void Runner::execute(const std::shared_ptr<Run>& run, RunDeadlines::Slot& slot) {
  if (run->settled.load()) {  // cancelled while queued
    abandoned_returned(*run);
    return;
  }
  deadlines_->arm(slot, run, saturating_deadline(clock_.steady_now(), run->record.timeout));
  RunWrite write = run_and_plan(*run);
  deadlines_->disarm(slot);
  if (run->settled.exchange(true)) {
    // Timed out or cancelled meanwhile: that outcome is recorded; this late result is not.
    abandoned_returned(*run);
    return;
  }
  finish(run, std::move(write), true);
}

RunWrite Runner::run_and_plan(Run& run) {
  const auto& rec = run.record;
  try {
    const auto& def = run.definition;
    if (!def) throw DurableExecutionNotFoundError(fmt::format("Task {} not found", rec.task_id));
    if (def->is_sleeping_task || !def->run) {
      throw DurableExecutionError::non_retryable("Sleeping tasks cannot be run", true);
    }
    TaskRunContext ctx{TaskRunContextData{
        .execution = &rec,
        .stop_token = run.stop.get_token(),
        .stop_reason = &run.reason,
    }};
    RunParentResult result;
    {
      const WorkerPool::UserCode in_user_code{*pool_};
      result = def->run(ctx, rec.input);
    }
    return transitions_.run_succeeded(rec, *def, std::move(result), clock_.now());
  } catch (...) {
    return transitions_.run_failed(rec, to_stored_error(std::current_exception()), clock_.now());
  }
}

void Runner::time_out(const std::shared_ptr<Run>& run) {
  if (run->settled.exchange(true)) return;
  runs_.abandon(*run);
  run->reason.store(StopReason::timed_out, std::memory_order_release);
  run->stop.request_stop();
  finish(run,
         transitions_.run_failed(run->record, DurableExecutionTimedOutError{}.to_stored(),
                                 clock_.now()),
         false);
}

void Runner::held_timed_out(const std::weak_ptr<Run>& weak) {
  auto run = weak.lock();
  if (!run || !runs_.take_held(run)) return;
  if (run->settled.exchange(true)) return;
  finish(run,
         transitions_.run_failed(run->record, DurableExecutionTimedOutError{}.to_stored(),
                                 clock_.now()),
         false);
}

void Runner::abandoned_returned(const Run& run) {
  auto returned = runs_.abandoned_returned(run);
  if (returned.next) {
    std::vector<std::shared_ptr<Run>> runs;
    runs.push_back(std::move(returned.next));
    pool_->submit(std::move(runs));
  }
  on_slot_freed_(returned.running);
}

void Runner::finish(const std::shared_ptr<Run>& run, RunWrite write, bool write_here) {
  const auto running = runs_.finish(*run);
  if (!running) return;  // shutdown gave up on this run: nothing reaches storage
  on_slot_freed_(*running);
  if (const auto& parent = run->record.parent) {
    write.has_parent = true;
    write.is_finalize_of_parent = parent->is_finalize_of_parent;
  }
  // A worker writes its result itself (group commit); the timer only queues it.
  if (write_here) {
    writer_.submit(std::move(write));
  } else {
    writer_.queue(std::move(write));
  }
}

void Runner::cancel(const std::string& execution_id) {
  auto run = runs_.cancel(execution_id);
  if (!run) return;
  run->reason.store(StopReason::cancelled, std::memory_order_release);
  run->stop.request_stop();
  on_slot_freed_(runs_.running());
}

}  // namespace durable_execution::detail
