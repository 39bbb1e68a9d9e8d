#include "executor_support.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "random.hpp"

namespace durable_execution::detail {

std::chrono::microseconds jittered_us(std::chrono::microseconds d) {
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  const double factor = 1.0 + 0.25 * dist(thread_random());
  return std::chrono::microseconds{
      static_cast<std::int64_t>(static_cast<double>(d.count()) * factor)};
}

std::chrono::milliseconds jittered(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
      jittered_us(std::chrono::duration_cast<std::chrono::microseconds>(d)));
}

std::string make_executor_id() {
  static constexpr std::string_view kAlphabet =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::uniform_int_distribution<std::size_t> dist(0, kAlphabet.size() - 1);
  std::string id = "de_";
  for (int i = 0; i < 8; ++i) id.push_back(kAlphabet[dist(thread_random())]);
  return id;
}

EngineLogger::EngineLogger(LogLevel level, const std::string& logger_name, LogSink sink)
    : level_(level), sink_(std::move(sink)) {
  if (sink_) return;
  if (!logger_name.empty()) logger_ = spdlog::get(logger_name);
  if (!logger_) {
    // Unregistered, so that several executors in one process never collide on a name.
    logger_ = std::make_shared<spdlog::logger>(
        "durable_execution", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    logger_->set_level(spdlog::level::trace);
  }
}

void EngineLogger::log(LogLevel level, const std::string& message) const {
  if (level < level_) return;
  if (sink_) {
    sink_(level, message);
    return;
  }
  switch (level) {
    case LogLevel::debug:
      logger_->debug(message);
      break;
    case LogLevel::info:
      logger_->info(message);
      break;
    case LogLevel::error:
      logger_->error(message);
      break;
  }
}

const char* storage_method_name(StorageMethod m) noexcept {
  switch (m) {
    case StorageMethod::insert_many:
      return "insert_many";
    case StorageMethod::get_many_by_id:
      return "get_many_by_id";
    case StorageMethod::get_many_by_sleeping_task_unique_id:
      return "get_many_by_sleeping_task_unique_id";
    case StorageMethod::update_many_by_id:
      return "update_many_by_id";
    case StorageMethod::update_many_by_id_and_insert_children_if_updated:
      return "update_many_by_id_and_insert_children_if_updated";
    case StorageMethod::claim_ready:
      return "update_by_status_and_start_at_less_than_and_return";
    case StorageMethod::claim_children_finished:
      return "update_by_status_and_on_children_finished_processing_status_and_active_children_"
             "count_zero_and_return";
    case StorageMethod::claim_close:
      return "update_by_close_status_and_return";
    case StorageMethod::expire_running:
      return "update_by_is_sleeping_task_and_expires_at_less_than";
    case StorageMethod::expire_processing:
      return "update_by_on_children_finished_processing_expires_at_less_than";
    case StorageMethod::expire_close:
      return "update_by_close_expires_at_less_than";
    case StorageMethod::claim_cancellations:
      return "update_by_executor_id_and_needs_promise_cancellation_and_return";
    case StorageMethod::get_many_by_parent_execution_id:
      return "get_many_by_parent_execution_id";
    case StorageMethod::update_many_by_parent_execution_id_and_is_finished:
      return "update_many_by_parent_execution_id_and_is_finished";
    case StorageMethod::mark_finished:
      return "update_and_decrement_parent_active_children_count_by_is_finished_and_close_status";
    case StorageMethod::count_:
      break;
  }
  return "unknown";
}

void StorageCaller::record(StorageMethod method, SteadyClock::time_point start) noexcept {
  const auto end = SteadyClock::now();
  auto& c = counters_[static_cast<std::size_t>(method)];
  c.count.fetch_add(1, std::memory_order_relaxed);
  const auto took = std::chrono::duration_cast<std::chrono::nanoseconds>(end - start);
  c.total_ns.fetch_add(took.count(), std::memory_order_relaxed);
  c.durations.record(took);
  const auto sec = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto& slot = seconds_[static_cast<std::size_t>(sec) % kSecondSlots];
  auto seen = slot.second.load(std::memory_order_relaxed);
  if (seen != sec) {
    // First call of a new second in this slot: reset it (a racing call may be lost; stats only).
    if (slot.second.compare_exchange_strong(seen, sec, std::memory_order_relaxed)) {
      slot.count.store(0, std::memory_order_relaxed);
    }
  }
  slot.count.fetch_add(1, std::memory_order_relaxed);
}

std::map<std::string, StorageCallStats> StorageCaller::call_stats() const {
  std::map<std::string, StorageCallStats> out;
  const double seconds =
      std::max(std::chrono::duration<double>(SteadyClock::now() - created_).count(), 1e-3);
  for (std::size_t i = 0; i < counters_.size(); ++i) {
    const auto count = counters_[i].count.load(std::memory_order_relaxed);
    if (count == 0) continue;
    const auto total = counters_[i].total_ns.load(std::memory_order_relaxed);
    out[storage_method_name(static_cast<StorageMethod>(i))] = StorageCallStats{
        count, static_cast<double>(total) / static_cast<double>(count) / 1e6,
        counters_[i].durations.quantile_ms(0.99), static_cast<double>(count) / seconds};
  }
  return out;
}

std::map<std::int64_t, std::int64_t> StorageCaller::per_second_counts() const {
  std::map<std::int64_t, std::int64_t> out;
  for (const auto& slot : seconds_) {
    const auto sec = slot.second.load(std::memory_order_relaxed);
    if (sec >= 0) out[sec] = slot.count.load(std::memory_order_relaxed);
  }
  return out;
}

}  // namespace durable_execution::detail
