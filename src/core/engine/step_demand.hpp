#pragma once

// Which of the background thread's three chained steps — mark (T18), close (T19-T21, T11) and
// children (T15-T17) — may have work. A pass that follows a pass with work runs only those, so
// the steps that found nothing are not asked again at once (on PostgreSQL each ask is a round
// trip: before this, the empty asks were ~40% of an executor's statements). A step stays due
// while it fills its batch; work it does makes the steps it feeds due; wake-ups name the steps
// they feed; a wake-up without names, and the polling interval, make all three due (work of
// other processes, expired leases, anything not tracked here): the loop asks every step at least
// once per polling interval, however many named wake-ups come between. Pure: no threads, no time.
// Entered by the background thread only (LoopSignals carries the wake-ups' names).

#include <cstdint>

namespace durable_execution::detail {

/** @brief The chained background steps; a set of them is an unsigned of these bits. */
enum class BackgroundStep : unsigned { mark = 1, close = 2, children = 4 };

inline constexpr unsigned all_background_steps = 7;

[[nodiscard]] constexpr unsigned bit(BackgroundStep step) noexcept {
  return static_cast<unsigned>(step);
}

class StepDemand {
 public:
  [[nodiscard]] bool due(BackgroundStep step) const noexcept { return (due_ & bit(step)) != 0; }
  [[nodiscard]] bool any() const noexcept { return due_ != 0; }

  /** @brief Wake-ups (or the polling interval, with all_background_steps) make these due. */
  void add(unsigned steps) noexcept { due_ |= steps & all_background_steps; }

  /**
   * @brief Step `step` ran and took `items` of at most `batch_size`; `finished` says whether it
   * finished executions (a parent settled by its finalize child or its children step), which
   * gives the mark step work. A step that failed stays due (the loop backs off first).
   */
  void ran(BackgroundStep step, std::int64_t items, std::int64_t batch_size, bool finished,
           bool failed) noexcept {
    due_ &= ~bit(step);
    if (failed || (items > 0 && items >= batch_size)) due_ |= bit(step);
    // Marked executions are ready to close, and their parents' active children counts dropped.
    if (step == BackgroundStep::mark && items > 0) {
      due_ |= bit(BackgroundStep::close) | bit(BackgroundStep::children);
    }
    if (finished) due_ |= bit(BackgroundStep::mark);
  }

 private:
  unsigned due_ = all_background_steps;
};

}  // namespace durable_execution::detail
