#pragma once

#include <memory>

#include "durable_execution/export.hpp"
#include "durable_execution/storage.hpp"

namespace durable_execution {

/**
 * @brief A storage that forwards every call to another one: the base of storage wrappers (stats,
 * fault injection, clean-up on close). Override only the methods the wrapper changes.
 *
 * @code
 * class CountingStorage : public durable_execution::ForwardingTaskExecutionsStorage {
 *  public:
 *   using ForwardingTaskExecutionsStorage::ForwardingTaskExecutionsStorage;
 *   void insert_many(const std::vector<durable_execution::TaskExecutionRecord>& e) override {
 *     ++inserts;
 *     ForwardingTaskExecutionsStorage::insert_many(e);
 *   }
 *   std::atomic<int> inserts{0};
 * };
 * @endcode
 *
 * @note Thread safety: as thread-safe as the wrapped storage. A borrowed storage must outlive the
 *   wrapper; an owned one is destroyed with it.
 */
class DURABLE_EXECUTION_EXPORT ForwardingTaskExecutionsStorage : public TaskExecutionsStorage {
 public:
  /** @brief Wraps a borrowed storage. */
  explicit ForwardingTaskExecutionsStorage(TaskExecutionsStorage& inner);
  /** @brief Wraps and owns a storage. */
  explicit ForwardingTaskExecutionsStorage(std::unique_ptr<TaskExecutionsStorage> inner);
  ~ForwardingTaskExecutionsStorage() override;

  void insert_many(const std::vector<TaskExecutionRecord>& executions) override;
  [[nodiscard]] std::vector<std::optional<TaskExecutionRecord>> get_many_by_id(
      const std::vector<GetByIdRequest>& requests) override;
  [[nodiscard]] std::vector<std::optional<TaskExecutionRecord>> get_many_by_sleeping_task_unique_id(
      const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) override;
  void update_many_by_id(const std::vector<UpdateByIdRequest>& requests) override;
  void update_many_by_id_and_insert_children_if_updated(
      const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) override;
  [[nodiscard]] std::vector<TaskExecutionRecord> update_by_status_and_start_at_less_than_and_return(
      const UpdateByStatusAndStartAtLessThanRequest& request) override;
  [[nodiscard]] std::vector<TaskExecutionRecord>
  update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
      const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) override;
  [[nodiscard]] std::vector<TaskExecutionRecord> update_by_close_status_and_return(
      const UpdateByCloseStatusRequest& request) override;
  std::int64_t update_by_is_sleeping_task_and_expires_at_less_than(
      const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) override;
  std::int64_t update_by_on_children_finished_processing_expires_at_less_than(
      const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) override;
  std::int64_t update_by_close_expires_at_less_than(
      const UpdateByCloseExpiresAtLessThanRequest& request) override;
  [[nodiscard]] std::vector<TaskExecutionRecord>
  update_by_executor_id_and_needs_promise_cancellation_and_return(
      const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) override;
  [[nodiscard]] std::vector<std::vector<TaskExecutionRecord>> get_many_by_parent_execution_id(
      const std::vector<GetByParentExecutionIdRequest>& requests) override;
  void update_many_by_parent_execution_id_and_is_finished(
      const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) override;
  std::int64_t update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
      const UpdateAndDecrementParentActiveChildrenCountRequest& request) override;
  void delete_by_id(const DeleteByIdRequest& request) override;
  void delete_all() override;
  std::uint64_t subscribe_to_external_work(std::function<void()> on_external_work) override;
  void unsubscribe_from_external_work(std::uint64_t token) noexcept override;

 protected:
  /// @brief The wrapped storage, borrowed or owned.
  [[nodiscard]] TaskExecutionsStorage& inner() const noexcept { return *inner_; }
  /** @brief Destroys an owned storage now (for example to delete its files after). */
  void reset_owned() noexcept;

 private:
  std::unique_ptr<TaskExecutionsStorage> owned_;
  TaskExecutionsStorage* inner_;
};

}  // namespace durable_execution
