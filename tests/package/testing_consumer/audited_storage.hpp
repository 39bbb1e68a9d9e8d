#pragma once

// A user's own storage, written from docs/custom-storage.md: the in-memory store behind a
// forwarding wrapper that counts the writes it passes on (say, for an audit log). Only the
// methods it changes are overridden; the base forwards the rest.

#include <atomic>
#include <cstdint>
#include <durable_execution/forwarding_storage.hpp>
#include <durable_execution/in_memory_storage.hpp>
#include <memory>
#include <vector>

namespace my_app {

class AuditedStorage final : public durable_execution::ForwardingTaskExecutionsStorage {
 public:
  AuditedStorage()
      : ForwardingTaskExecutionsStorage(
            std::make_unique<durable_execution::InMemoryTaskExecutionsStorage>()) {}

  void insert_many(const std::vector<durable_execution::TaskExecutionRecord>& executions) override {
    ForwardingTaskExecutionsStorage::insert_many(executions);
    inserted_ += static_cast<std::int64_t>(executions.size());  // only once the insert succeeded
  }

  void update_many_by_id(
      const std::vector<durable_execution::UpdateByIdRequest>& requests) override {
    ForwardingTaskExecutionsStorage::update_many_by_id(requests);
    update_calls_ += 1;
  }

  [[nodiscard]] std::int64_t inserted() const noexcept { return inserted_; }
  [[nodiscard]] std::int64_t update_calls() const noexcept { return update_calls_; }

 private:
  std::atomic<std::int64_t> inserted_{0};  // the storage is called from many threads at once
  std::atomic<std::int64_t> update_calls_{0};
};

}  // namespace my_app
