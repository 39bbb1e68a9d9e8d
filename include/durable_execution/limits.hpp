#pragma once

// The engine's documented limits on values (docs/reliability.md, "Poison limits"): how deeply a
// serialized value may nest and how long a duration may be. Values beyond them are refused where
// they enter (enqueue, a run's result, option validation), so that no later step recurses or
// overflows on them; time arithmetic on stored values that are out of range saturates.

#include <chrono>
#include <cstddef>

namespace durable_execution {

/**
 * @brief The deepest nesting of arrays and objects in a task input or output (a scalar has depth
 * 0, `[]` depth 1, `[{}]` depth 2). A deeper input is refused by enqueue_task (and by child());
 * a run whose output is deeper fails with a non-retryable "Error serializing value: ..." error.
 */
inline constexpr std::size_t max_serialized_nesting_depth = 512;

/**
 * @brief The deepest nesting of anything the engine stores or decodes: documents it composes
 * (a parent's output, a finalize step's input, both with the children's outputs inside) and
 * every value read back from storage. Twice max_serialized_nesting_depth, so that workflows
 * nesting other workflows keep room to wrap their children's outputs. Deeper stored data (say,
 * a row written by another program) is refused when decoded, with a clear error, instead of
 * being handed to a recursive decoder.
 */
inline constexpr std::size_t max_stored_nesting_depth = 2 * max_serialized_nesting_depth;

/**
 * @brief The longest timeout, sleep before run, retry delay and expire leeway accepted: 10 years
 * (3,650 days). Larger values are refused by validation ("... must be at most 315360000000 ms");
 * a retry delay computed beyond it (base delay × multiplier^k without a max_delay) is capped at
 * it.
 */
inline constexpr std::chrono::milliseconds max_duration{315'360'000'000};

/**
 * @brief The longest error message the engine stores: 64 KiB. A longer one (a task throwing a
 * multi-megabyte message, a sleeping task failed with one) is cut at a UTF-8 character boundary
 * and ends with "... [N bytes truncated]", so that one message cannot bloat its row, its
 * parent's output and every read of them.
 */
inline constexpr std::size_t max_error_message_size = 64 * 1024;

}  // namespace durable_execution
