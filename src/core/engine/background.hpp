#pragma once

// The background thread: the steps that move executions along after their runs — mark finished
// executions (T18), close them (T19-T21, T11), process parents whose children finished
// (T15-T17), deliver cancellations to this executor's runs (T23) and return expired executions
// (T13, T14, processing reset, T22). Each step plans with Transitions and writes in batches
// (failures isolated, storage_writes.hpp). Woken by local completions, cancels and expiry times;
// otherwise it polls with back-off. A pass after one with work runs only the steps that may have
// work (step_demand.hpp). Entered by its own thread only (stats: any thread).

#include <atomic>
#include <map>
#include <string>
#include <thread>

#include "engine_context.hpp"

namespace durable_execution::detail {

class Background {
 public:
  explicit Background(const EngineContext& context) : c_(context) {}

  /**
   * @brief Runs the loop on a thread that holds `owner`: a finalize function that never returns
   * keeps the engine alive past a bounded shutdown.
   */
  void start(std::shared_ptr<void> owner);
  /**
   * @brief After LoopSignals::stop(): joins the thread if it returns by `deadline`, else detaches
   * it. @return false if it was left running (in a finalize function).
   */
  bool join(SteadyClock::time_point deadline);

  /** @brief Batch stats of each step, by process name. */
  [[nodiscard]] std::map<std::string, ProcessBatchStats> stats() const;

 private:
  /** What a step did: items taken, and whether it finished executions (mark work). */
  struct StepOutcome {
    std::int64_t items = 0;
    bool finished = false;
  };

  void loop();
  template <class F>
  StepOutcome step(const char* name, ProcessStats& stats, std::int32_t& errors, F&& fn);
  StepOutcome mark_step();
  StepOutcome close_step();
  StepOutcome children_step();
  std::int64_t cancel_step();
  std::int64_t expire_step();
  /** One read for the children of every claimed parent (each parent alone if one is damaged). */
  void read_children(const std::vector<TaskExecutionRecord>& parents, ParentWrites& writes,
                     std::vector<std::vector<TaskExecutionRecord>>& loaded,
                     std::vector<bool>& unreadable);

  EngineContext c_;
  ProcessStats mark_stats_, close_stats_, children_stats_, cancel_stats_, expire_stats_;
  std::thread thread_;
  std::atomic<bool> done_{false};
};

}  // namespace durable_execution::detail
