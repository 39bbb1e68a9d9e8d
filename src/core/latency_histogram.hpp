#pragma once

// A fixed histogram of durations with log buckets, for percentiles in stats. Not installed.

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace durable_execution::detail {

/**
 * @brief Counts durations in buckets of 4 per power of two of nanoseconds (256 buckets: 1 ns to
 * centuries), so a percentile read from it is within ~12% of the true value (the bucket's middle
 * is reported). Recording is one relaxed atomic increment.
 *
 * @note Thread safety: thread-safe; a read concurrent with records sees some of them (stats only).
 */
class LatencyHistogram {
 public:
  void record(std::chrono::nanoseconds d) noexcept {
    buckets_[index_of(d.count())].fetch_add(1, std::memory_order_relaxed);
  }

  /** @brief The q-quantile (0-1) in milliseconds; 0 if nothing was recorded. */
  [[nodiscard]] double quantile_ms(double q) const noexcept {
    std::array<std::int64_t, kBuckets> counts{};
    std::int64_t total = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      counts[i] = buckets_[i].load(std::memory_order_relaxed);
      total += counts[i];
    }
    if (total == 0) return 0;
    // The smallest bucket holding the ceil(q * total)-th duration.
    const auto rank = static_cast<std::int64_t>(q * static_cast<double>(total) + 0.999999);
    std::int64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts[i];
      if (seen >= rank && counts[i] > 0) return middle_ns(i) / 1e6;
    }
    return middle_ns(kBuckets - 1) / 1e6;
  }

 private:
  static constexpr std::size_t kSubBuckets = 4;  // per power of two
  static constexpr std::size_t kBuckets = 64 * kSubBuckets;

  static std::size_t index_of(std::int64_t ns) noexcept {
    if (ns < 4) return ns < 0 ? 0 : static_cast<std::size_t>(ns);
    const auto v = static_cast<std::uint64_t>(ns);
    const auto msb = static_cast<std::size_t>(std::bit_width(v)) - 1;  // >= 2
    const auto sub = static_cast<std::size_t>((v >> (msb - 2)) & 3U);
    return msb * kSubBuckets + sub;
  }

  /** The middle of bucket i, in nanoseconds. */
  static double middle_ns(std::size_t i) noexcept {
    if (i < 8) return static_cast<double>(i);  // buckets 0-3 are exact; 4-7 are unused
    const auto msb = i / kSubBuckets;
    const auto sub = i % kSubBuckets;
    const auto shift = static_cast<int>(msb) - 2;
    return std::ldexp(static_cast<double>(4 + sub) + 0.5, shift);
  }

  std::array<std::atomic<std::int64_t>, kBuckets> buckets_{};
};

}  // namespace durable_execution::detail
