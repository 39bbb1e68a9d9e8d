#pragma once

// The engine's own writes (run results, children steps, closes) with failures isolated per
// request (DESIGN.md "Durability and correctness rules"): transient errors are retried with
// bounded back-off in the storage caller, then left to lease expiry; a batch rejected for good is
// split in halves until each rejected request stands alone, and that request's execution ends
// with the storage's error. Entered by workers (group commit), the completion writer and the
// background thread; stateless beyond its references, so thread-safe.

#include <fmt/format.h>

#include <optional>
#include <string>
#include <vector>

#include "../executor_support.hpp"
#include "transitions.hpp"

namespace durable_execution::detail {

class StorageWrites {
 public:
  /** Retries of the engine's own writes: at least this many, more if the options say so. */
  static constexpr std::int32_t kMinRetries = 5;

  StorageWrites(StorageCaller& caller, const EngineLogger& logger,
                std::int32_t storage_max_retry_attempts)
      : caller_(caller),
        logger_(logger),
        retries_(std::max(storage_max_retry_attempts, kMinRetries)) {}

  /**
   * @brief Retries of the engine's own writes, in the storage caller (the one retry layer;
   * jittered back-off 12.5 ms doubling to 1 s: ~0.4 s over 5 retries).
   */
  [[nodiscard]] std::int32_t retries() const noexcept { return retries_; }

  void store(const std::vector<UpdateByIdRequest>& requests) const;
  void store(const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) const;
  void store(const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) const;
  /** @brief One record by id (with the caller's retries), or nullopt. */
  [[nodiscard]] std::optional<TaskExecutionRecord> get_by_id(const std::string& id) const;

  /** @brief Why a write failed for good. */
  struct Failure {
    bool retryable = false;
    StoredError error;
  };

  /**
   * @brief Writes `requests` in one storage call, isolating failures: a batch rejected
   * non-retryably is split in halves, each written on its own, recursively (about 2 log2(n)
   * calls per bad request, on the failure path only); a request rejected alone ends its
   * execution with the write `failure(i, error)` gives (nullopt: dropped, its lease expires).
   * Persistent transient errors leave the batch to lease expiry, as a crash would.
   * @return how many requests were rejected on their own.
   */
  template <class Request, class FailureFn>
  std::size_t write_isolated(const char* process, const std::vector<Request>& requests,
                             FailureFn&& failure) const {
    auto failed = try_store(requests);
    if (!failed) return 0;
    if (caller_.closed_for_engine_threads()) return 0;  // shut down: left to lease expiry
    if (failed->retryable) {
      log_left(process, requests.size(), failed->error, true);
      return 0;
    }
    std::vector<std::size_t> all(requests.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    return isolate(process, requests, all, std::move(failed->error), failure);
  }

 private:
  template <class Request>
  std::optional<Failure> try_store(const std::vector<Request>& requests) const {
    try {
      store(requests);
      return std::nullopt;
    } catch (const DurableExecutionError& e) {
      return Failure{e.is_retryable(), e.to_stored()};
    } catch (const std::exception&) {
      return Failure{true, to_stored_error(std::current_exception())};
    }
  }

  /** `requests[indices]`, written together, were rejected non-retryably with `error`. */
  template <class Request, class FailureFn>
  std::size_t isolate(const char* process, const std::vector<Request>& requests,
                      const std::vector<std::size_t>& indices, StoredError error,
                      FailureFn& failure) const {
    if (indices.size() == 1) {
      const auto i = indices.front();
      if (already_stored(requests[i])) return 0;
      error.is_retryable = false;
      record_rejection(process, requests[i].execution_id, failure(i, error), error);
      return 1;
    }
    std::size_t rejected = 0;
    const auto half = indices.begin() + static_cast<std::ptrdiff_t>(indices.size() / 2);
    for (const auto& part : {std::vector<std::size_t>(indices.begin(), half),
                             std::vector<std::size_t>(half, indices.end())}) {
      std::vector<Request> sub;
      sub.reserve(part.size());
      for (const auto i : part) sub.push_back(requests[i]);
      auto failed = try_store(sub);
      if (!failed) continue;
      if (failed->retryable) {
        log_left(process, sub.size(), failed->error, false);
        continue;
      }
      rejected += isolate(process, requests, part, std::move(failed->error), failure);
    }
    return rejected;
  }

  /**
   * Whether a children insert is already stored (a partial write the storage reported failed).
   * Guarded updates that took effect turn into no-ops when repeated, but a sequential step's
   * insert keeps its guard: a storage that applied part of a failed batch (the in-memory store
   * does, per request) or lost a commit's reply would see it as a duplicate.
   */
  bool already_stored(const UpdateByIdAndInsertChildrenRequest& request) const;
  static bool already_stored(const UpdateByIdRequest&) { return false; }

  /** Writes `failure` (if any) for a request rejected alone, and logs what happened. */
  void record_rejection(const char* process, const std::string& execution_id,
                        std::optional<UpdateByIdRequest> failure, const StoredError& error) const;
  void log_left(const char* process, std::size_t count, const StoredError& error,
                bool after_retries) const;

  StorageCaller& caller_;
  const EngineLogger& logger_;
  std::int32_t retries_;
};

}  // namespace durable_execution::detail
