#pragma once

// Saturating time arithmetic: every sum of a time and a duration the engine and the stores make
// (start_at, leases, retry back-off, timer deadlines, waits) goes through these, so that a value
// near the int64 limits (a row written by another program, an option at its maximum) clamps
// instead of overflowing. Validation refuses values beyond the documented limits (limits.hpp);
// these are the second line. Not API.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "durable_execution/limits.hpp"
#include "durable_execution/task_execution.hpp"

namespace durable_execution::detail {

/** @brief `a + b`, clamped to the range of std::int64_t. */
[[nodiscard]] constexpr std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) {
    return b > 0 ? std::numeric_limits<std::int64_t>::max()
                 : std::numeric_limits<std::int64_t>::min();
  }
  return out;
}

/** @brief `a - b`, clamped to the range of std::int64_t. */
[[nodiscard]] constexpr std::int64_t saturating_sub(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t out = 0;
  if (__builtin_sub_overflow(a, b, &out)) {
    return b < 0 ? std::numeric_limits<std::int64_t>::max()
                 : std::numeric_limits<std::int64_t>::min();
  }
  return out;
}

[[nodiscard]] constexpr std::chrono::milliseconds saturating_add(
    std::chrono::milliseconds a, std::chrono::milliseconds b) noexcept {
  return std::chrono::milliseconds{saturating_add(a.count(), b.count())};
}

/** @brief `t + d`, clamped to the Timestamps that int64 milliseconds can hold. */
[[nodiscard]] constexpr Timestamp saturating_add(Timestamp t,
                                                 std::chrono::milliseconds d) noexcept {
  return from_unix_ms(saturating_add(to_unix_ms(t), d.count()));
}

/** @brief `a - b` as a duration, clamped. */
[[nodiscard]] constexpr std::chrono::milliseconds saturating_sub(Timestamp a,
                                                                 Timestamp b) noexcept {
  return std::chrono::milliseconds{saturating_sub(to_unix_ms(a), to_unix_ms(b))};
}

/**
 * @brief `now + d` on a clock whose durations are finer than milliseconds (steady_clock counts
 * nanoseconds: 292 years fit), clamped to the clock's time_point::min() / max(). A deadline at
 * max() never comes.
 */
template <class TimePoint>
[[nodiscard]] constexpr TimePoint saturating_deadline(TimePoint now,
                                                      std::chrono::milliseconds d) noexcept {
  using Duration = typename TimePoint::duration;
  static_assert(std::is_same_v<typename Duration::rep, std::int64_t>);
  constexpr auto max_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Duration::max());
  if (d > max_ms) return TimePoint::max();
  if (d < -max_ms) return TimePoint::min();
  return TimePoint{Duration{saturating_add(now.time_since_epoch().count(),
                                           std::chrono::duration_cast<Duration>(d).count())}};
}

/**
 * @brief Milliseconds from a computed double: NaN and negatives give 0, anything above `max`
 * (infinity included) gives `max`. The conversion of a double that does not fit int64 is
 * undefined behaviour; this never makes one.
 */
[[nodiscard]] inline std::chrono::milliseconds clamp_milliseconds(
    double ms, std::chrono::milliseconds max) noexcept {
  if (!(ms > 0)) return std::chrono::milliseconds{0};
  if (!(ms < static_cast<double>(max.count()))) return max;
  return std::chrono::milliseconds{static_cast<std::int64_t>(ms)};
}

/**
 * @brief The delay before retry `retry_attempts + 1` (SPEC.md §3.4): `base_delay ·
 * multiplier^retry_attempts`, capped by `max_delay` and, whatever the stored options say, kept
 * within [0, max_duration].
 */
[[nodiscard]] inline std::chrono::milliseconds retry_delay(const RetryOptions& r,
                                                           std::int32_t retry_attempts) noexcept {
  double delay = static_cast<double>(r.base_delay.value_or(std::chrono::milliseconds{0}).count());
  if (retry_attempts > 0) delay *= std::pow(r.delay_multiplier.value_or(1.0), retry_attempts);
  if (r.max_delay) delay = std::min(delay, static_cast<double>(r.max_delay->count()));
  return clamp_milliseconds(delay, max_duration);
}

}  // namespace durable_execution::detail
