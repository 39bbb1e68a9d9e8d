#pragma once

// The library's one source of randomness: execution ids, executor ids, back-off jitter.

#include <random>

namespace durable_execution::detail {

/**
 * @brief This thread's generator, seeded from std::random_device. Reseeded in a child process
 * after fork(): a child would otherwise repeat its parent's sequence, and two children would
 * generate the same execution ids.
 */
[[nodiscard]] std::mt19937_64& thread_random();

}  // namespace durable_execution::detail
