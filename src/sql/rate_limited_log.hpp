#pragma once

// The SQL backends' warnings (corrupt rows set aside, a database file gone): a burst of lines,
// then one per window with the count of the rest, through the storage's log sink (default:
// stderr). Thread-safe; never throws (a log line is never worth a failed call).

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace durable_execution::sql {

class RateLimitedLog {
 public:
  static constexpr std::chrono::seconds kWindow{10};
  static constexpr std::size_t kBurst = 5;

  /** Logs `prefix + message` through `sink`, at most kBurst lines per kWindow. */
  void warn(std::string_view prefix, std::string_view message,
            const std::function<void(std::string_view)>& sink) noexcept {
    try {
      std::size_t suppressed = 0;
      {
        std::lock_guard lock(mutex_);
        const auto now = std::chrono::steady_clock::now();
        if (now - window_start_ >= kWindow) {
          window_start_ = now;
          suppressed = suppressed_;
          suppressed_ = 0;
          in_window_ = 0;
        }
        if (in_window_ >= kBurst) {
          ++suppressed_;
          return;
        }
        ++in_window_;
      }
      std::string text{prefix};
      text += message;
      if (suppressed > 0) {
        text += " [" + std::to_string(suppressed) + " similar messages suppressed]";
      }
      if (sink) {
        sink(text);
      } else {
        std::fprintf(stderr, "[durable_execution] %s\n", text.c_str());
      }
    } catch (...) {  // NOLINT(bugprone-empty-catch): a log line is never worth a failed call
    }
  }

 private:
  std::mutex mutex_;
  std::chrono::steady_clock::time_point window_start_{};
  std::size_t in_window_ = 0;
  std::size_t suppressed_ = 0;
};

}  // namespace durable_execution::sql
