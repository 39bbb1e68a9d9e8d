#include "storage_writes.hpp"

namespace durable_execution::detail {

void StorageWrites::store(const std::vector<UpdateByIdRequest>& requests) const {
  caller_.call_with_retries(StorageMethod::update_many_by_id, retries_,
                            [&](TaskExecutionsStorage& s) { s.update_many_by_id(requests); });
}

void StorageWrites::store(const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) const {
  caller_.call_with_retries(StorageMethod::update_many_by_id_and_insert_children_if_updated,
                            retries_, [&](TaskExecutionsStorage& s) {
                              s.update_many_by_id_and_insert_children_if_updated(requests);
                            });
}

void StorageWrites::store(
    const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) const {
  caller_.call_with_retries(StorageMethod::update_many_by_parent_execution_id_and_is_finished,
                            retries_, [&](TaskExecutionsStorage& s) {
                              s.update_many_by_parent_execution_id_and_is_finished(requests);
                            });
}

std::optional<TaskExecutionRecord> StorageWrites::get_by_id(const std::string& id) const {
  std::vector<GetByIdRequest> reqs{GetByIdRequest{id, {}}};
  auto res = caller_.call(StorageMethod::get_many_by_id,
                          [&](TaskExecutionsStorage& s) { return s.get_many_by_id(reqs); });
  return res.empty() ? std::nullopt : std::move(res.front());
}

bool StorageWrites::already_stored(const UpdateByIdAndInsertChildrenRequest& request) const {
  if (request.children_to_insert_if_updated.empty()) return false;
  try {
    return get_by_id(request.children_to_insert_if_updated.front().execution_id).has_value();
  } catch (const std::exception&) {
    return false;
  }
}

void StorageWrites::record_rejection(const char* process, const std::string& execution_id,
                                     std::optional<UpdateByIdRequest> failure,
                                     const StoredError& error) const {
  if (!failure) {
    logger_.error(fmt::format("Error in {}: the write of execution {} was rejected and dropped: {}",
                              process, execution_id, error.message));
    return;
  }
  logger_.error(
      fmt::format("Error in {}: the write of execution {} was rejected, it ends with the error: {}",
                  process, execution_id, error.message));
  const std::vector<UpdateByIdRequest> updates{std::move(*failure)};
  if (auto failed = try_store(updates)) {
    logger_.error(fmt::format(
        "Error in {}: could not record the failure of execution {}, left to lease expiry: {}",
        process, execution_id, failed->error.message));
  }
}

void StorageWrites::log_left(const char* process, std::size_t count, const StoredError& error,
                             bool after_retries) const {
  if (after_retries) {
    logger_.error(fmt::format(
        "Error in {}: {} request(s) not written after {} attempts, left to lease expiry: {}",
        process, count, retries_ + 1, error.message));
  } else {
    logger_.error(fmt::format("Error in {}: {} request(s) not written, left to lease expiry: {}",
                              process, count, error.message));
  }
}

}  // namespace durable_execution::detail
