// TaskExecutionsStorageWithBatching: one Batcher per batchable operation. A call that finds its
// operation idle goes at once; otherwise it queues, and the first queued call (the collector)
// sends the batch from its own thread (a leader/follower scheme: no dispatcher thread, no
// wake-up for a lone caller).

#include "durable_execution/batching_storage.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "durable_execution/errors.hpp"
#include "durable_execution/fault_injection_storage.hpp"
#include "executor_validation.hpp"
#include "latency_histogram.hpp"

namespace durable_execution {

namespace {

using SteadyClock = std::chrono::steady_clock;

/** Whether an exception of the wrapped storage is retryable, as the engine's retry layer sees
 * it: one that is not a DurableExecutionError counts as retryable. */
bool is_retryable(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const DurableExecutionError& de) {
    return de.is_retryable();
  } catch (...) {
    return true;
  }
}

/**
 * Coalesces the calls of one operation. `Element` is the result element (void for the update and
 * insert methods): a call's result is the slice of the combined result for its requests.
 */
template <class Request, class Element>
class Batcher {
 public:
  using Results = std::conditional_t<
      std::is_void_v<Element>, std::monostate,
      std::vector<std::conditional_t<std::is_void_v<Element>, std::monostate, Element>>>;
  using Forward = std::function<Results(const std::vector<Request>&)>;

  /**
   * The row a request writes, for the operations whose backends do not support two requests for
   * one row in one call (storage.hpp: PostgreSQL applies one of them): calls writing the same row
   * never share a batch. Null: no such limit (inserts and reads).
   */
  using RowOf = const std::string& (*)(const Request&);

  Batcher(const char* name, Forward forward, const StorageBatchingOptions& options,
          RowOf row_of = nullptr)
      : name_(name), forward_(std::move(forward)), options_(options), row_of_(row_of) {}

  Results submit(const std::vector<Request>& requests) {
    const auto n = requests.size();
    std::unique_lock lock(mutex_);
    ++calls_;
    if (shut_down_ || n == 0 || n >= static_cast<std::size_t>(options_.max_batch_size)) {
      ++bypassed_;
      lock.unlock();
      return forward_(requests);
    }
    Call call{&requests, SteadyClock::now()};
    if (queue_.empty() && in_flight_ < options_.max_batches_in_flight) {
      Batch batch;  // alone, at once: the requests are sent as they are, without a copy
      batch.calls.push_back(&call);
      return send(lock, std::move(batch), call, /*queued=*/false);
    }
    queue_.push_back(&call);
    queued_requests_ += n;
    if (queue_.size() == 1) {
      call.collector = true;
    } else if (full()) {
      queue_.front()->cv.notify_one();
    }
    for (;;) {
      if (call.done) return take(call);
      if (call.collector) {
        // Bounded: the window ends it; a returning batch, a full batch or shutdown end it early.
        call.cv.wait_until(lock, call.arrived + options_.window, [&] {
          return in_flight_ < options_.max_batches_in_flight || full() || shut_down_ || call.done;
        });
        if (call.done) return take(call);  // failed by a shutdown that did not wait for it
        return send(lock, gather(), call, /*queued=*/true);
      }
      call.cv.wait(lock);  // until done (its collector's batch returned) or made the collector
    }
  }

  void shutdown(SteadyClock::time_point deadline) noexcept {
    std::unique_lock lock(mutex_);
    shut_down_ = true;
    if (!queue_.empty()) queue_.front()->cv.notify_one();  // send what is queued, now
    idle_cv_.wait_until(lock, deadline, [&] { return queue_.empty() && in_flight_ == 0; });
    const auto error = [&] {
      return std::make_exception_ptr(DurableExecutionError::non_retryable(fmt::format(
          "storage batching shut down: the combined {} call holding this request did not "
          "return within shutdown_timeout ({} ms); its outcome is unknown",
          name_, options_.shutdown_timeout.count())));
    };
    // Callers waiting on a batch still in the wrapped storage: released with an error. The thread
    // that sent it (calls[0]) stays in the wrapped storage and gets its own outcome.
    for (Batch* batch : in_flight_batches_) {
      if (batch->abandoned) continue;  // an earlier shutdown released its callers: gone now
      batch->abandoned = true;
      for (std::size_t i = 1; i < batch->calls.size(); ++i) {
        release(*batch->calls[i], std::nullopt, error());
        ++failed_at_shutdown_;
      }
    }
    // Only reachable if a collector has not woken yet (deadline 0): it gets an error too.
    for (Call* call : queue_) {
      release(*call, std::nullopt, error());
      ++failed_at_shutdown_;
    }
    queue_.clear();
    queued_requests_ = 0;
  }

  [[nodiscard]] StorageBatchingOperationStats stats() const {
    std::lock_guard lock(mutex_);
    StorageBatchingOperationStats s;
    s.calls = calls_;
    s.bypassed = bypassed_;
    s.batches = batches_;
    s.max_calls_per_batch = max_calls_per_batch_;
    if (batches_ > 0) {
      s.mean_calls_per_batch = static_cast<double>(batched_calls_) / static_cast<double>(batches_);
      s.mean_requests_per_batch =
          static_cast<double>(batched_requests_) / static_cast<double>(batches_);
    }
    if (batched_calls_ > 0) {
      s.mean_wait_ms =
          static_cast<double>(total_wait_ns_) / static_cast<double>(batched_calls_) / 1e6;
    }
    s.p99_wait_ms = wait_.quantile_ms(0.99);
    s.split_calls = split_calls_;
    s.failed_at_shutdown = failed_at_shutdown_;
    return s;
  }

 private:
  struct Call {
    const std::vector<Request>* requests;
    SteadyClock::time_point arrived;
    std::optional<Results> result{};
    /** The wrapped storage's own exception (shared by the callers of one failed combined call,
     * as std::shared_future shares one), or the wrapper's shutdown error. */
    std::exception_ptr error{};
    bool done = false;
    bool collector = false;  // the first queued call: it gathers and sends the next batch
    std::condition_variable cv{};
  };

  /** One combined call, on the stack of the thread that sends it (calls[0]). */
  struct Batch {
    std::vector<Call*> calls{};
    /** The calls' requests, copied (the other callers may be released by shutdown meanwhile). */
    std::vector<Request> combined{};
    /** Call i's requests are combined[offsets[i], offsets[i + 1]). */
    std::vector<std::size_t> offsets{};
    std::vector<std::optional<Results>> results{};
    std::vector<std::exception_ptr> errors{};
    /** Set by shutdown when it released the other callers: do not touch their calls. */
    bool abandoned = false;
  };

  [[nodiscard]] bool full() const {
    return queued_requests_ >= static_cast<std::size_t>(options_.max_batch_size);
  }

  /**
   * Takes calls from the front of the queue, in order, up to max_batch_size requests (at least
   * the first). A call that writes a row an earlier call of the batch writes stays queued for the
   * next batch: the calls are concurrent, so either order is one they could have had alone.
   */
  Batch gather() {
    Batch batch;
    std::size_t total = 0;
    std::unordered_set<std::string_view> rows;
    std::deque<Call*> left;
    while (!queue_.empty()) {
      Call* next = queue_.front();
      const auto n = next->requests->size();
      if (!batch.calls.empty() && total + n > static_cast<std::size_t>(options_.max_batch_size)) {
        break;
      }
      queue_.pop_front();
      if (row_of_ != nullptr && writes_a_row_of(*next, rows)) {
        left.push_back(next);
        continue;
      }
      queued_requests_ -= n;
      total += n;
      batch.calls.push_back(next);
    }
    queue_.insert(queue_.begin(), left.begin(), left.end());
    if (!queue_.empty()) {
      queue_.front()->collector = true;
      queue_.front()->cv.notify_one();
    }
    if (batch.calls.size() > 1) {
      batch.combined.reserve(total);
      batch.offsets.reserve(batch.calls.size() + 1);
      for (Call* c : batch.calls) {
        batch.offsets.push_back(batch.combined.size());
        batch.combined.insert(batch.combined.end(), c->requests->begin(), c->requests->end());
      }
      batch.offsets.push_back(batch.combined.size());
    }
    return batch;
  }

  /** Whether `call` writes one of `rows`; if not, adds the rows it writes. */
  bool writes_a_row_of(const Call& call, std::unordered_set<std::string_view>& rows) const {
    for (const auto& r : *call.requests) {
      if (rows.contains(row_of_(r))) return true;
    }
    for (const auto& r : *call.requests) rows.insert(row_of_(r));
    return false;
  }

  /**
   * Sends `batch` (whose calls[0] is `own`), hands out the outcomes, returns own's. `queued`:
   * whether the calls waited in the queue (else own went at once: no wait to record).
   */
  Results send(std::unique_lock<std::mutex>& lock, Batch batch, Call& own, bool queued) {
    const auto now = SteadyClock::now();
    ++batches_;
    batched_calls_ += static_cast<std::int64_t>(batch.calls.size());
    max_calls_per_batch_ =
        std::max(max_calls_per_batch_, static_cast<std::int64_t>(batch.calls.size()));
    for (Call* c : batch.calls) {
      batched_requests_ += static_cast<std::int64_t>(c->requests->size());
      const auto waited = queued ? now - c->arrived : SteadyClock::duration::zero();
      total_wait_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count();
      wait_.record(waited);
    }
    ++in_flight_;
    in_flight_batches_.push_back(&batch);
    batch.results.resize(batch.calls.size());
    batch.errors.resize(batch.calls.size());
    lock.unlock();

    try {
      if (batch.calls.size() == 1) {
        run_alone(batch);
      } else {
        run(batch, 0, batch.calls.size());
      }
    } catch (...) {  // out of memory splitting or slicing: every caller still gets an outcome
      const auto error = std::current_exception();
      for (std::size_t i = 0; i < batch.calls.size(); ++i) {
        if (!batch.results[i] && !batch.errors[i]) batch.errors[i] = error;
      }
    }

    lock.lock();
    --in_flight_;
    in_flight_batches_.erase(
        std::find(in_flight_batches_.begin(), in_flight_batches_.end(), &batch));
    if (!batch.abandoned) {
      for (std::size_t i = 1; i < batch.calls.size(); ++i) {
        release(*batch.calls[i], std::move(batch.results[i]), std::move(batch.errors[i]));
      }
    }
    if (!queue_.empty()) queue_.front()->cv.notify_one();  // the collector may go now
    if (shut_down_) idle_cv_.notify_all();
    own.result = std::move(batch.results[0]);
    own.error = std::move(batch.errors[0]);
    return take(own);
  }

  /** Marks `call` done with its outcome and wakes it (under the mutex: its stack may go then). */
  void release(Call& call, std::optional<Results> result, std::exception_ptr error) {
    call.result = std::move(result);
    call.error = std::move(error);
    call.done = true;
    call.cv.notify_one();
  }

  static Results take(Call& call) {
    if (call.error) std::rethrow_exception(call.error);
    return std::move(*call.result);
  }

  void run_alone(Batch& batch) {
    try {
      batch.results[0] = forward_(*batch.calls[0]->requests);
    } catch (...) {
      batch.errors[0] = std::current_exception();
    }
  }

  /** Sends the requests of calls [first, last) as one call; isolates a non-retryable failure. */
  void run(Batch& batch, std::size_t first, std::size_t last) {
    const bool whole = first == 0 && last == batch.calls.size();
    const auto begin = batch.combined.begin() + static_cast<std::ptrdiff_t>(batch.offsets[first]);
    const auto end = batch.combined.begin() + static_cast<std::ptrdiff_t>(batch.offsets[last]);
    std::exception_ptr failure;
    try {
      Results results =
          whole ? forward_(batch.combined) : forward_(std::vector<Request>(begin, end));
      distribute(batch, first, last, std::move(results));
      return;
    } catch (...) {
      failure = std::current_exception();
    }
    // Retryable: every caller retries, as it would have alone. Alone: the error is its own.
    if (is_retryable(failure) || last - first == 1 || abandoned(batch)) {
      for (auto i = first; i < last; ++i) batch.errors[i] = failure;
      return;
    }
    const auto middle = first + (last - first) / 2;
    count_splits(2);
    run(batch, first, middle);
    run(batch, middle, last);
  }

  void distribute(Batch& batch, std::size_t first, std::size_t last, Results results) {
    if constexpr (std::is_void_v<Element>) {
      for (auto i = first; i < last; ++i) batch.results[i] = std::monostate{};
    } else {
      const auto base = batch.offsets[first];
      if (results.size() != batch.offsets[last] - base) {
        const auto error = std::make_exception_ptr(DurableExecutionError::non_retryable(
            fmt::format("The wrapped storage returned {} results for {} {} requests",
                        results.size(), batch.offsets[last] - base, name_)));
        for (auto i = first; i < last; ++i) batch.errors[i] = error;
        return;
      }
      for (auto i = first; i < last; ++i) {
        auto from = results.begin() + static_cast<std::ptrdiff_t>(batch.offsets[i] - base);
        auto to = results.begin() + static_cast<std::ptrdiff_t>(batch.offsets[i + 1] - base);
        batch.results[i] = Results(std::make_move_iterator(from), std::make_move_iterator(to));
      }
    }
  }

  bool abandoned(const Batch& batch) {
    std::lock_guard lock(mutex_);
    return batch.abandoned;
  }

  void count_splits(std::int64_t n) {
    std::lock_guard lock(mutex_);
    split_calls_ += n;
  }

  const char* name_;
  Forward forward_;
  StorageBatchingOptions options_;
  RowOf row_of_;

  mutable std::mutex mutex_;
  std::condition_variable idle_cv_;  // shutdown waits on it for the batches in flight
  std::deque<Call*> queue_;
  std::size_t queued_requests_ = 0;
  std::int32_t in_flight_ = 0;
  std::vector<Batch*> in_flight_batches_;
  bool shut_down_ = false;

  std::int64_t calls_ = 0;
  std::int64_t bypassed_ = 0;
  std::int64_t batches_ = 0;
  std::int64_t batched_calls_ = 0;
  std::int64_t batched_requests_ = 0;
  std::int64_t max_calls_per_batch_ = 0;
  std::int64_t total_wait_ns_ = 0;
  std::int64_t split_calls_ = 0;
  std::int64_t failed_at_shutdown_ = 0;
  detail::LatencyHistogram wait_;
};

std::string name_of(StorageOperation op) { return std::string{to_string(op)}; }

}  // namespace

/**
 * Shared with every call in progress (each holds a reference while it runs): a thread that
 * shutdown stopped waiting for may return after the wrapper is gone.
 */
struct TaskExecutionsStorageWithBatching::Batchers {
  Batchers(TaskExecutionsStorage* s, const StorageBatchingOptions& o)
      : options(o),
        insert(
            "insert_many",
            [s](const std::vector<TaskExecutionRecord>& r) {
              s->insert_many(r);
              return std::monostate{};
            },
            o),
        get_by_id(
            "get_many_by_id",
            [s](const std::vector<GetByIdRequest>& r) { return s->get_many_by_id(r); }, o),
        get_by_unique_id(
            "get_many_by_sleeping_task_unique_id",
            [s](const std::vector<GetBySleepingTaskUniqueIdRequest>& r) {
              return s->get_many_by_sleeping_task_unique_id(r);
            },
            o),
        update_by_id(
            "update_many_by_id",
            [s](const std::vector<UpdateByIdRequest>& r) {
              s->update_many_by_id(r);
              return std::monostate{};
            },
            o, [](const UpdateByIdRequest& r) -> const std::string& { return r.execution_id; }),
        update_with_children(
            "update_many_by_id_and_insert_children_if_updated",
            [s](const std::vector<UpdateByIdAndInsertChildrenRequest>& r) {
              s->update_many_by_id_and_insert_children_if_updated(r);
              return std::monostate{};
            },
            o,
            [](const UpdateByIdAndInsertChildrenRequest& r) -> const std::string& {
              return r.execution_id;
            }),
        get_by_parent(
            "get_many_by_parent_execution_id",
            [s](const std::vector<GetByParentExecutionIdRequest>& r) {
              return s->get_many_by_parent_execution_id(r);
            },
            o),
        update_by_parent(
            "update_many_by_parent_execution_id_and_is_finished",
            [s](const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& r) {
              s->update_many_by_parent_execution_id_and_is_finished(r);
              return std::monostate{};
            },
            o,
            [](const UpdateByParentExecutionIdAndIsFinishedRequest& r) -> const std::string& {
              return r.parent_execution_id;
            }) {}

  /** Calls f(name, batcher) for each batcher. */
  template <class F>
  void for_each(F&& f) {
    f(StorageOperation::insert_many, insert);
    f(StorageOperation::get_many_by_id, get_by_id);
    f(StorageOperation::get_many_by_sleeping_task_unique_id, get_by_unique_id);
    f(StorageOperation::update_many_by_id, update_by_id);
    f(StorageOperation::update_many_by_id_and_insert_children_if_updated, update_with_children);
    f(StorageOperation::get_many_by_parent_execution_id, get_by_parent);
    f(StorageOperation::update_many_by_parent_execution_id_and_is_finished, update_by_parent);
  }

  StorageBatchingOptions options;
  std::mutex shutdown_mutex;
  bool shut_down = false;  // under shutdown_mutex: a second shutdown() returns at once
  Batcher<TaskExecutionRecord, void> insert;
  Batcher<GetByIdRequest, std::optional<TaskExecutionRecord>> get_by_id;
  Batcher<GetBySleepingTaskUniqueIdRequest, std::optional<TaskExecutionRecord>> get_by_unique_id;
  Batcher<UpdateByIdRequest, void> update_by_id;
  Batcher<UpdateByIdAndInsertChildrenRequest, void> update_with_children;
  Batcher<GetByParentExecutionIdRequest, std::vector<TaskExecutionRecord>> get_by_parent;
  Batcher<UpdateByParentExecutionIdAndIsFinishedRequest, void> update_by_parent;
};

TaskExecutionsStorageWithBatching::TaskExecutionsStorageWithBatching(
    TaskExecutionsStorage& inner, const StorageBatchingOptions& options)
    : ForwardingTaskExecutionsStorage(inner) {
  detail::validate_storage_batching_options(options);
  batchers_ = std::make_shared<Batchers>(&this->inner(), options);
}

TaskExecutionsStorageWithBatching::TaskExecutionsStorageWithBatching(
    std::unique_ptr<TaskExecutionsStorage> inner, const StorageBatchingOptions& options)
    : ForwardingTaskExecutionsStorage(std::move(inner)) {
  detail::validate_storage_batching_options(options);
  batchers_ = std::make_shared<Batchers>(&this->inner(), options);
}

TaskExecutionsStorageWithBatching::~TaskExecutionsStorageWithBatching() { shutdown(); }

void TaskExecutionsStorageWithBatching::shutdown() noexcept {
  std::lock_guard lock(batchers_->shutdown_mutex);
  if (std::exchange(batchers_->shut_down, true)) return;
  const auto deadline = SteadyClock::now() + batchers_->options.shutdown_timeout;
  batchers_->for_each([&](StorageOperation, auto& b) { b.shutdown(deadline); });
}

std::map<std::string, StorageBatchingOperationStats> TaskExecutionsStorageWithBatching::stats()
    const {
  std::map<std::string, StorageBatchingOperationStats> out;
  batchers_->for_each([&](StorageOperation op, auto& b) { out[name_of(op)] = b.stats(); });
  return out;
}

void TaskExecutionsStorageWithBatching::insert_many(
    const std::vector<TaskExecutionRecord>& executions) {
  const auto keep = batchers_;
  (void)keep->insert.submit(executions);
}

std::vector<std::optional<TaskExecutionRecord>> TaskExecutionsStorageWithBatching::get_many_by_id(
    const std::vector<GetByIdRequest>& requests) {
  const auto keep = batchers_;
  return keep->get_by_id.submit(requests);
}

std::vector<std::optional<TaskExecutionRecord>>
TaskExecutionsStorageWithBatching::get_many_by_sleeping_task_unique_id(
    const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) {
  const auto keep = batchers_;
  return keep->get_by_unique_id.submit(requests);
}

void TaskExecutionsStorageWithBatching::update_many_by_id(
    const std::vector<UpdateByIdRequest>& requests) {
  const auto keep = batchers_;
  (void)keep->update_by_id.submit(requests);
}

void TaskExecutionsStorageWithBatching::update_many_by_id_and_insert_children_if_updated(
    const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) {
  const auto keep = batchers_;
  (void)keep->update_with_children.submit(requests);
}

std::vector<std::vector<TaskExecutionRecord>>
TaskExecutionsStorageWithBatching::get_many_by_parent_execution_id(
    const std::vector<GetByParentExecutionIdRequest>& requests) {
  const auto keep = batchers_;
  return keep->get_by_parent.submit(requests);
}

void TaskExecutionsStorageWithBatching::update_many_by_parent_execution_id_and_is_finished(
    const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) {
  const auto keep = batchers_;
  (void)keep->update_by_parent.submit(requests);
}

}  // namespace durable_execution
