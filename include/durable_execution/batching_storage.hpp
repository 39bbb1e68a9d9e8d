#pragma once

#include <map>
#include <memory>
#include <string>

#include "durable_execution/export.hpp"
#include "durable_execution/forwarding_storage.hpp"
#include "durable_execution/options.hpp"

namespace durable_execution {

/**
 * @brief A storage that coalesces concurrent calls, DataLoader-style: calls of the same batchable
 * operation made at the same time by different threads go to the wrapped storage as one call,
 * so they share one round trip (one transaction on PostgreSQL or SQLite).
 *
 * The batchable operations are insert_many, get_many_by_id, get_many_by_sleeping_task_unique_id,
 * update_many_by_id, update_many_by_id_and_insert_children_if_updated,
 * get_many_by_parent_execution_id and update_many_by_parent_execution_id_and_is_finished; every
 * other method (claims, expiry, deletes, subscriptions) goes straight to the wrapped storage.
 *
 * How a call travels: if none of its operation is queued and fewer than `max_batches_in_flight`
 * combined calls of it are in the wrapped storage, it goes at once, alone (a lone caller never
 * waits). Otherwise it queues; the first queued call gathers the batch and sends it, from its own
 * thread, as soon as a batch in flight returns, the batch holds `max_batch_size` requests, or
 * `window` has passed since it arrived, whichever is first. The
 * combined call holds the calls' requests in arrival order, each call's requests together, and
 * each caller gets its own slice of the results; two calls that update the same row (or, for
 * the update by parent, the same parent) never share a combined call, as storage.hpp requires.
 * There is no background thread.
 *
 * Errors: callers get the wrapped storage's own exception, of its own type. A retryable one (or
 * one that is not a DurableExecutionError) of a combined call goes to every caller in it (they
 * retry, as they would have alone). A non-retryable one is isolated: the batch is split in
 * halves, each sent again, recursively, until each failing call gets the error it would have
 * got alone, and the others their results — the same outcome as separate calls (a duplicate id
 * of one caller's insert fails that caller only). The stores of this library apply nothing of a
 * call that fails; a custom one that applies part of it sees the applied requests again, where
 * guarded updates match nothing, as a repeated separate call would.
 *
 * Shutdown (shutdown() or the destructor): queued calls are sent at once; combined calls in the
 * wrapped storage are waited for up to `shutdown_timeout`; past it each caller still waiting on
 * one of them gets DurableExecutionError "storage batching shut down ..." (the outcome of its
 * requests is then unknown to it; the thread that sent the combined call is still in the
 * wrapped storage, as it would be without the wrapper). It never hangs. Calls made after
 * shutdown go straight to the wrapped storage, unbatched.
 *
 * @code
 * durable_execution::PostgresTaskExecutionsStorage postgres{url};
 * durable_execution::TaskExecutionsStorageWithBatching storage{
 *     postgres, {.window = std::chrono::microseconds{500}, .max_batch_size = 100}};
 * // Any number of threads: concurrent calls share round trips.
 * storage.update_many_by_id({request});
 * auto stats = storage.stats();  // per operation: batches, calls per batch, wait
 * @endcode
 *
 * @throws DurableExecutionError from the constructor for invalid options.
 *
 * @note Thread safety: thread-safe; as the wrapped storage, each method is atomic per request
 *   (never across the calls of one batch). A borrowed storage must outlive the wrapper, and an
 *   owned one is destroyed with it: if shutdown stopped waiting for a combined call, the thread
 *   in it still uses the wrapped storage, so do not destroy that storage before the call returns.
 */
class DURABLE_EXECUTION_EXPORT TaskExecutionsStorageWithBatching final
    : public ForwardingTaskExecutionsStorage {
 public:
  /// @brief Wraps a borrowed storage, which must outlive the wrapper.
  explicit TaskExecutionsStorageWithBatching(TaskExecutionsStorage& inner,
                                             const StorageBatchingOptions& options = {});
  /// @brief Wraps a storage the wrapper owns and destroys with it.
  explicit TaskExecutionsStorageWithBatching(std::unique_ptr<TaskExecutionsStorage> inner,
                                             const StorageBatchingOptions& options = {});
  /** @brief Calls shutdown(). */
  ~TaskExecutionsStorageWithBatching() override;

  /**
   * @brief Sends what is queued, waits up to `shutdown_timeout` for combined calls in flight, and
   * fails the callers still waiting on them. From then on calls are not batched. Idempotent; never
   * throws; bounded by `shutdown_timeout` (plus the sends of what was queued, which run on their
   * callers' threads).
   */
  void shutdown() noexcept;

  /** @brief Per batchable method name (as in TaskExecutionsStorage): what batching did. */
  [[nodiscard]] std::map<std::string, StorageBatchingOperationStats> stats() const;

  void insert_many(const std::vector<TaskExecutionRecord>& executions) override;
  [[nodiscard]] std::vector<std::optional<TaskExecutionRecord>> get_many_by_id(
      const std::vector<GetByIdRequest>& requests) override;
  [[nodiscard]] std::vector<std::optional<TaskExecutionRecord>> get_many_by_sleeping_task_unique_id(
      const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) override;
  void update_many_by_id(const std::vector<UpdateByIdRequest>& requests) override;
  void update_many_by_id_and_insert_children_if_updated(
      const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) override;
  [[nodiscard]] std::vector<std::vector<TaskExecutionRecord>> get_many_by_parent_execution_id(
      const std::vector<GetByParentExecutionIdRequest>& requests) override;
  void update_many_by_parent_execution_id_and_is_finished(
      const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) override;

 private:
  struct Batchers;
  std::shared_ptr<Batchers> batchers_;
};

}  // namespace durable_execution
