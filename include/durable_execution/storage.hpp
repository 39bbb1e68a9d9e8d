#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "durable_execution/export.hpp"
#include "durable_execution/task_execution.hpp"

namespace durable_execution {

/** @brief One lookup of get_many_by_id: the row with this id, if it matches `filters`. */
struct GetByIdRequest {
  /// The execution to read.
  std::string execution_id{};
  /// Conditions the row must meet to be returned.
  GetByIdFilters filters{};
};

/** @brief One lookup of get_many_by_sleeping_task_unique_id (ids are unique per storage). */
struct GetBySleepingTaskUniqueIdRequest {
  /// The unique id of the sleeping execution to read.
  std::string sleeping_task_unique_id{};
};

/** @brief A guarded update of a row's parent, made together with the row's own update. */
struct ParentUpdateRequest {
  /// Conditions the parent must meet to be updated.
  GetByIdFilters filters{};
  /// The parent's update.
  TaskExecutionUpdate update{};
};

/**
 * @brief One guarded update of update_many_by_id: the row with `execution_id`, if it matches
 * `filters`, gets `update`; a row that does not match (or does not exist) is left alone, and
 * so are its parent's count and `parent_update`.
 */
struct UpdateByIdRequest {
  /// The row to update.
  std::string execution_id{};
  /// The guard: the row is updated only if it matches.
  GetByIdFilters filters{};
  /// The update.
  TaskExecutionUpdate update{};
  /**
   * If the row is updated and has a parent, also decrement the parent's active children count
   * in the same transaction. Lets the engine close a finished child in its result write instead
   * of a later mark step (which does the same decrement).
   */
  bool decrement_parent_active_children_count = false;
  /**
   * If the row is updated and has a parent that matches these filters, also apply this update to
   * the parent in the same transaction. Lets a finalize child settle its parent in its result
   * write instead of a later close step.
   */
  std::optional<ParentUpdateRequest> parent_update{};
  /**
   * The caller can redo this write if a crash of the store loses it (a run's result: the run
   * re-runs when its lease expires): the store may return before it is on disk. See "Deferred
   * durability" in TaskExecutionsStorage.
   */
  bool defer_durability = false;
};

/**
 * @brief One request of update_many_by_id_and_insert_children_if_updated: the guarded update of
 * UpdateByIdRequest, and, only if it took effect, the insertion of these records (the parent's
 * children, or the next step of a sequential chain), atomically with it.
 */
struct UpdateByIdAndInsertChildrenRequest {
  /// The row to update.
  std::string execution_id{};
  /// The guard: the row is updated only if it matches.
  GetByIdFilters filters{};
  /// The update.
  TaskExecutionUpdate update{};
  /// Records inserted only if the update took effect.
  std::vector<TaskExecutionRecord> children_to_insert_if_updated{};
  /// As UpdateByIdRequest::defer_durability (the inserted records included).
  bool defer_durability = false;
};

/**
 * @brief The ready claim (T3): up to `limit` rows with this `status` and `start_at <
 * start_at_less_than`, ascending `start_at`, each given `update`.
 */
struct UpdateByStatusAndStartAtLessThanRequest {
  /// The status of the rows to claim.
  TaskExecutionStatus status = TaskExecutionStatus::ready;
  /// Claims rows whose `start_at` is before this time.
  Timestamp start_at_less_than{};
  /// The update of each claimed row.
  TaskExecutionUpdate update{};
  /** Each selected row gets `expires_at = update_expires_at_with_started_at + row.timeout`. */
  Timestamp update_expires_at_with_started_at{};
  /// The most rows to claim.
  std::int64_t limit = 0;
};

/**
 * @brief The children-step claim (T15): up to `limit` parents with this `status` and
 * processing status whose `active_children_count` is 0, oldest `updated_at` first.
 */
struct UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest {
  /// The status of the parents to claim.
  TaskExecutionStatus status = TaskExecutionStatus::waiting_for_children;
  /// The processing status of the parents to claim.
  OnChildrenFinishedProcessingStatus on_children_finished_processing_status =
      OnChildrenFinishedProcessingStatus::idle;
  /// The update of each claimed parent.
  TaskExecutionUpdate update{};
  /// The most rows to claim.
  std::int64_t limit = 0;
};

/** @brief The close-step claim (T19): up to `limit` rows with this close status, oldest first. */
struct UpdateByCloseStatusRequest {
  /// The close status of the rows to claim.
  CloseStatus close_status = CloseStatus::ready;
  /// The update of each claimed row.
  TaskExecutionUpdate update{};
  /// The most rows to claim.
  std::int64_t limit = 0;
};

/**
 * @brief The lease-expiry step (T14): up to `limit` rows with this `is_sleeping_task` and
 * `expires_at < expires_at_less_than`, ascending `expires_at`, each given `update`.
 */
struct UpdateByIsSleepingTaskAndExpiresAtLessThanRequest {
  /// Selects sleeping executions, or the others.
  bool is_sleeping_task = false;
  /// Selects rows whose `expires_at` is before this time.
  Timestamp expires_at_less_than{};
  /// The update of each selected row.
  TaskExecutionUpdate update{};
  /// The most rows to update.
  std::int64_t limit = 0;
  /**
   * If set, a selected row whose `lease_expirations` is already >= this value gets
   * `exhausted_update` instead of `update` (the crash-loop bound: such rows end `failed`). The
   * two updates together touch at most `limit` rows, each selected by ascending `expires_at`.
   */
  std::optional<std::int32_t> max_lease_expirations{};
  /// The update of a selected row past `max_lease_expirations`.
  TaskExecutionUpdate exhausted_update{};
};

/** @brief Children steps whose lease expired (T17): ascending processing expiry, at most `limit`.
 */
struct UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest {
  /// Selects parents whose processing lease ends before this time.
  Timestamp on_children_finished_processing_expires_at_less_than{};
  /// The update of each selected row.
  TaskExecutionUpdate update{};
  /// The most rows to update.
  std::int64_t limit = 0;
};

/** @brief Close steps whose lease expired (T21): ascending `close_expires_at`, at most `limit`. */
struct UpdateByCloseExpiresAtLessThanRequest {
  /// Selects rows whose `close_expires_at` is before this time.
  Timestamp close_expires_at_less_than{};
  /// The update of each selected row.
  TaskExecutionUpdate update{};
  /// The most rows to update.
  std::int64_t limit = 0;
};

/**
 * @brief The cancellation claim (T12): up to `limit` rows run by `executor_id` with this
 * `needs_promise_cancellation`, oldest `updated_at` first.
 */
struct UpdateByExecutorIdAndNeedsPromiseCancellationRequest {
  /// The executor whose runs are selected.
  std::string executor_id{};
  /// Selects rows with this cancellation flag.
  bool needs_promise_cancellation = true;
  /// The update of each selected row.
  TaskExecutionUpdate update{};
  /// The most rows to update.
  std::int64_t limit = 0;
};

/** @brief One lookup of get_many_by_parent_execution_id: every child of this parent. */
struct GetByParentExecutionIdRequest {
  /// The parent whose children are read.
  std::string parent_execution_id{};
};

/**
 * @brief One request of update_many_by_parent_execution_id_and_is_finished: every child of the
 * parent whose `is_finished` equals this value gets `update` (no limit).
 */
struct UpdateByParentExecutionIdAndIsFinishedRequest {
  /// The parent whose children are updated.
  std::string parent_execution_id{};
  /// Selects the children with this `is_finished`.
  bool is_finished = false;
  /// The update of each selected child.
  TaskExecutionUpdate update{};
};

/**
 * @brief The mark step (T18): up to `limit` rows with this `is_finished` and close status,
 * oldest `updated_at` first, each given `update`; see the method.
 */
struct UpdateAndDecrementParentActiveChildrenCountRequest {
  /// Selects rows with this `is_finished`.
  bool is_finished = true;
  /// Selects rows with this close status.
  CloseStatus close_status = CloseStatus::idle;
  /// The update of each selected row.
  TaskExecutionUpdate update{};
  /// The most rows to update.
  std::int64_t limit = 0;
};

/** @brief delete_by_id: the row with this id (none: no-op). */
struct DeleteByIdRequest {
  /// The row to delete.
  std::string execution_id{};
};

/**
 * @brief The storage contract of the engine (SPEC.md §4.1): batch-shaped operations on execution
 * records.
 *
 * Every method is atomic; in the `*_many_*` methods atomicity holds per element (one request's
 * guard check and write happen together). Updates are applied as given: callers pass updates
 * produced by normalize_update(), and `unset_*` directives win over set values. Time comparisons
 * are strict "less than" and an unset time never matches. A limit <= 0 selects nothing. Returned
 * records are copies with the update applied. Selection order: `start_at` ascending for the
 * start-at claim, the compared expiry ascending for the expiry methods, `updated_at` ascending
 * (oldest first) for the other limited methods; ties keep insertion order where the backend can.
 *
 * Errors: a duplicate execution id or sleeping-task unique id on insert throws
 * DurableExecutionError and inserts nothing of that call; an unknown id is a no-op for updates
 * and deletes and `std::nullopt` for lookups. Backend failures surface as DurableExecutionError;
 * transient ones (busy database, lost connection) are marked retryable, and one whose outcome
 * the backend cannot know (a lost commit reply) too: every write of the engine is guarded, so a
 * repeated write that already took effect does nothing. A method that throws may have applied
 * some of its requests (per-request atomicity; the stores of this library apply none of a call
 * that fails with a duplicate id, a custom one may); callers must not rely on either.
 *
 * A backend may: batch, reorder or parallelize work inside one call as long as each request's
 * own guard-then-write stays atomic and the results come back in request order; return claimed
 * rows in the stated order or any order when ties occur; keep its own caches, connections and
 * threads. It may not: apply an update to a row whose guard did not match; return a claimed row
 * to two concurrent claims (a claim's selection and update are one atomic step: `SKIP LOCKED`
 * on PostgreSQL, the write lock on SQLite); change a field the update does not name (except
 * `updated_at`, always written); or call back into the engine. Values are stored and returned
 * verbatim (ids, inputs and outputs are arbitrary text: parameterize, never splice).
 *
 * Deferred durability: a write returns once it is durable (on disk, and wherever the backend
 * replicates synchronously), except a call whose every request has `defer_durability`: the
 * backend may then return before it is durable (PostgreSQL commits it with
 * `synchronous_commit = off`), under three rules that keep "nothing acted on is lost":
 * (1) order: a crash that loses a deferred write loses every write committed after it too (a
 * store whose log is not in commit order must ignore the flag); (2) a durable write also makes
 * every write committed before it durable; (3) get_many_by_id and
 * get_many_by_sleeping_task_unique_id never return a finished execution that is not durable yet
 * (PostgreSQL makes the read's view durable first, on the same connection).
 * get_many_by_parent_execution_id may: the engine reads children only after a durable claim of
 * their parent, which made their results durable (rule 2). Every claim is a durable write, so a
 * run never starts on state that a crash could take back; what a crash can lose is only results
 * nobody has read yet, and their runs re-run once their leases expire (at-least-once runs; an
 * outcome is never seen and then replaced). Ignoring the flag (every write durable) is always
 * correct.
 *
 * Every backend runs the same conformance suite, which is the executable form of this contract:
 * the testing kit's DE_STORAGE_CONFORMANCE_SUITE (durable_execution/testing/, src/testing/;
 * docs/custom-storage.md), which a custom backend runs too.
 *
 * @note Thread safety: implementations must be thread-safe: any number of threads (and, for
 *   database backends, processes) may call any method concurrently, without deadlock.
 */
class DURABLE_EXECUTION_EXPORT TaskExecutionsStorage {
 public:
  TaskExecutionsStorage() = default;
  TaskExecutionsStorage(const TaskExecutionsStorage&) = delete;
  TaskExecutionsStorage& operator=(const TaskExecutionsStorage&) = delete;
  TaskExecutionsStorage(TaskExecutionsStorage&&) = delete;
  TaskExecutionsStorage& operator=(TaskExecutionsStorage&&) = delete;
  virtual ~TaskExecutionsStorage();

  /**
   * @brief Inserts all records, or none if any execution id or sleeping-task unique id already
   * exists (in the store or twice in `executions`): then throws a non-retryable
   * DurableExecutionError naming the id. Records are stored as given (the caller builds them
   * with make_task_execution_record); an empty vector is a no-op.
   */
  virtual void insert_many(const std::vector<TaskExecutionRecord>& executions) = 0;

  /**
   * @brief One result per request, in request order: the record, or nullopt when the id is
   * unknown or the record does not match the request's filters. Reads only; each result is a
   * consistent record (never half of a concurrent write). Duplicate requests are allowed.
   */
  [[nodiscard]] virtual std::vector<std::optional<TaskExecutionRecord>> get_many_by_id(
      const std::vector<GetByIdRequest>& requests) = 0;

  /** @brief As get_many_by_id, by sleeping-task unique id (rows without one never match). */
  [[nodiscard]] virtual std::vector<std::optional<TaskExecutionRecord>>
  get_many_by_sleeping_task_unique_id(
      const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) = 0;

  /**
   * @brief Per request, atomically: if the row exists and matches the filters, applies the
   * update; then, if the request asks, decrements its parent's `active_children_count` by one
   * and applies `parent_update` to the parent if the parent matches its filters. A request whose
   * guard does not match does nothing. Returns nothing: callers that need the result read it
   * back. Two requests for the same row in one call are not supported (the in-memory and SQLite
   * stores apply both in order, PostgreSQL one of them: one UPDATE statement); the engine never
   * sends them, and a layer that merges calls must keep them in separate calls.
   */
  virtual void update_many_by_id(const std::vector<UpdateByIdRequest>& requests) = 0;

  /**
   * @brief Per request, atomically: the guarded update of update_many_by_id, then, only if it
   * took effect, the insert of `children_to_insert_if_updated` (as insert_many: a duplicate id
   * throws and that request writes nothing, neither update nor children).
   */
  virtual void update_many_by_id_and_insert_children_if_updated(
      const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) = 0;

  /**
   * @brief Claims (selects and updates in one atomic step) up to `limit` rows with `status` and
   * `start_at < start_at_less_than`, ascending `start_at` (ties: insertion order); each gets
   * `update` and `expires_at = update_expires_at_with_started_at + its own timeout` (saturating
   * at the Timestamp bounds). @return the updated records, in that order. Concurrent claims
   * never return the same row.
   */
  [[nodiscard]] virtual std::vector<TaskExecutionRecord>
  update_by_status_and_start_at_less_than_and_return(
      const UpdateByStatusAndStartAtLessThanRequest& request) = 0;

  /**
   * @brief Claims up to `limit` parents with `status`, `on_children_finished_processing_status`
   * and `active_children_count == 0`, oldest `updated_at` first; each gets `update`.
   * @return the updated records, in that order.
   */
  [[nodiscard]] virtual std::vector<TaskExecutionRecord>
  update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
      const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) = 0;

  /**
   * @brief Claims up to `limit` rows with `close_status`, oldest `updated_at` first; each gets
   * `update`. @return the updated records, in that order.
   */
  [[nodiscard]] virtual std::vector<TaskExecutionRecord> update_by_close_status_and_return(
      const UpdateByCloseStatusRequest& request) = 0;

  /**
   * @brief Updates up to `limit` rows with `is_sleeping_task` whose `expires_at` is set and
   * earlier than the bound, ascending `expires_at`: each gets `update`, or `exhausted_update` if
   * `max_lease_expirations` is set and the row's `lease_expirations` has reached it.
   * @return the number of rows updated (both kinds).
   */
  virtual std::int64_t update_by_is_sleeping_task_and_expires_at_less_than(
      const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) = 0;

  /**
   * @brief Updates up to `limit` rows whose `on_children_finished_processing_expires_at` is set
   * and earlier than the bound, ascending by it. @return the number of rows updated.
   */
  virtual std::int64_t update_by_on_children_finished_processing_expires_at_less_than(
      const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) = 0;

  /**
   * @brief Updates up to `limit` rows whose `close_expires_at` is set and earlier than the
   * bound, ascending by it. @return the number of rows updated.
   */
  virtual std::int64_t update_by_close_expires_at_less_than(
      const UpdateByCloseExpiresAtLessThanRequest& request) = 0;

  /**
   * @brief Claims up to `limit` rows with `executor_id` and `needs_promise_cancellation`,
   * oldest `updated_at` first; each gets `update`. @return the updated records, in that order.
   */
  [[nodiscard]] virtual std::vector<TaskExecutionRecord>
  update_by_executor_id_and_needs_promise_cancellation_and_return(
      const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) = 0;

  /**
   * @brief One result per request, in request order: all children of that parent (finalize
   * child included), in no particular order; empty for an unknown parent. Reads only.
   */
  [[nodiscard]] virtual std::vector<std::vector<TaskExecutionRecord>>
  get_many_by_parent_execution_id(const std::vector<GetByParentExecutionIdRequest>& requests) = 0;

  /**
   * @brief Per request, atomically: every child of the parent whose `is_finished` equals the
   * request's gets `update` (the cancellation of a parent's unfinished children, T11).
   */
  virtual void update_many_by_parent_execution_id_and_is_finished(
      const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) = 0;

  /**
   * @brief Selects finished rows by close status (oldest `updated_at` first), updates them and, in
   * the same transaction, decrements each parent's active children count by its number of
   * selected children. @return the number of rows updated.
   */
  virtual std::int64_t
  update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
      const UpdateAndDecrementParentActiveChildrenCountRequest& request) = 0;

  /** @brief Deletes one row (not its children); an unknown id is a no-op. Not used by the engine.
   */
  virtual void delete_by_id(const DeleteByIdRequest& request) = 0;
  /** @brief Deletes every row of this storage (tests, benchmarks). Not used by the engine. */
  virtual void delete_all() = 0;

  /**
   * @brief Subscribes `on_external_work` to hints that another process has just created work
   * this one may want at once (new or newly ready executions, finished children, cancellations),
   * so that an executor need not wait for its next poll. A backend that can tell (PostgreSQL:
   * LISTEN/NOTIFY) calls the callback from a thread of its own; the default implementation
   * never calls it, and polling finds such work. The callback must return quickly and must not
   * call the storage. The executor subscribes in start() and unsubscribes in shutdown().
   * @return a token for unsubscribe_from_external_work (0 if the callback is never called).
   */
  virtual std::uint64_t subscribe_to_external_work(std::function<void()> on_external_work);

  /**
   * @brief Ends a subscription (an unknown or 0 token is ignored). Once it returns, the callback
   * is not running and will not be called again.
   */
  virtual void unsubscribe_from_external_work(std::uint64_t token) noexcept;
};

}  // namespace durable_execution
