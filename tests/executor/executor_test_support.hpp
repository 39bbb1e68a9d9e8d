#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "durable_execution/durable_execution.hpp"
#include "storage_factory.hpp"

namespace durable_execution::testing {

using namespace std::chrono_literals;

/** Polls `pred` until it holds or `timeout` passes; every wait in these tests is bounded. */
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds{10}) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return pred();
}

/** A gate tasks block on until the test opens it (bounded, so a bug fails, not hangs). */
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }
  /** @return false if the gate did not open within `timeout` or `stop` fired. */
  bool wait(std::stop_token stop = {}, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    std::stop_callback cb(stop, [this] { cv_.notify_all(); });
    return cv_.wait_for(lock, timeout, [&] { return open_ || stop.stop_requested(); }) && open_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

/** Releases blocked tasks one permit at a time. */
class Permits {
 public:
  void release(int n) {
    {
      std::lock_guard lock(mutex_);
      permits_ += n;
    }
    cv_.notify_all();
  }
  bool acquire(std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, timeout, [&] { return permits_ > 0; })) return false;
    --permits_;
    return true;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int permits_ = 0;
};

/** Short loops so tests finish fast; every option otherwise at its default. */
inline DurableExecutorOptions fast_options() {
  DurableExecutorOptions o;
  o.background_process_intra_batch_sleep = 20ms;
  o.log_level = LogLevel::error;
  return o;
}

inline WaitOptions bounded_wait(std::chrono::milliseconds timeout = 10s) {
  return WaitOptions{.polling_interval = 20ms, .timeout = timeout};
}

class ExecutorTest : public ::testing::TestWithParam<StorageFactory> {
 protected:
  void SetUp() override {
    DE_SKIP_IF_STORAGE_UNAVAILABLE(GetParam());
    storage_ = GetParam().make();
  }
  TaskExecutionsStorage& storage() { return *storage_; }

  std::unique_ptr<TaskExecutionsStorage> storage_;
};

}  // namespace durable_execution::testing
