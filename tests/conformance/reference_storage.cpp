#include "reference_storage.hpp"

#include <algorithm>
#include <functional>
#include <set>

#include "durable_execution/errors.hpp"

namespace durable_execution::testing {

namespace {

using Lock = std::lock_guard<std::mutex>;

// Selects rows matching `pred`, stable-sorted by `key` (insertion order breaks ties), up to limit.
template <class Pred, class Key>
std::vector<TaskExecutionRecord*> select(std::vector<TaskExecutionRecord>& rows, Pred pred, Key key,
                                         std::int64_t limit) {
  std::vector<TaskExecutionRecord*> out;
  if (limit <= 0) return out;
  for (auto& r : rows) {
    if (pred(r)) out.push_back(&r);
  }
  std::stable_sort(out.begin(), out.end(),
                   [&](const TaskExecutionRecord* a, const TaskExecutionRecord* b) {
                     return key(*a) < key(*b);
                   });
  if (out.size() > static_cast<std::size_t>(limit)) out.resize(static_cast<std::size_t>(limit));
  return out;
}

auto by_updated_at = [](const TaskExecutionRecord& r) { return r.updated_at; };

bool less_than(const std::optional<Timestamp>& value, Timestamp bound) {
  return value.has_value() && *value < bound;
}

}  // namespace

ReferenceStorage::~ReferenceStorage() = default;

TaskExecutionRecord* ReferenceStorage::find(const std::string& execution_id) {
  auto it = std::find_if(rows_.begin(), rows_.end(),
                         [&](const auto& r) { return r.execution_id == execution_id; });
  return it == rows_.end() ? nullptr : &*it;
}

void ReferenceStorage::check_insertable(const std::vector<TaskExecutionRecord>& executions) const {
  std::set<std::string> ids;
  std::set<std::string> unique_ids;
  for (const auto& r : rows_) {
    ids.insert(r.execution_id);
    if (r.sleeping_task_unique_id) unique_ids.insert(*r.sleeping_task_unique_id);
  }
  for (const auto& r : executions) {
    if (!ids.insert(r.execution_id).second) {
      throw DurableExecutionError("Duplicate execution id: " + r.execution_id);
    }
    if (r.sleeping_task_unique_id && !unique_ids.insert(*r.sleeping_task_unique_id).second) {
      throw DurableExecutionError("Duplicate sleeping task unique id: " +
                                  *r.sleeping_task_unique_id);
    }
  }
}

void ReferenceStorage::insert_many(const std::vector<TaskExecutionRecord>& executions) {
  Lock lock{mutex_};
  check_insertable(executions);
  rows_.insert(rows_.end(), executions.begin(), executions.end());
}

std::vector<std::optional<TaskExecutionRecord>> ReferenceStorage::get_many_by_id(
    const std::vector<GetByIdRequest>& requests) {
  Lock lock{mutex_};
  std::vector<std::optional<TaskExecutionRecord>> out;
  for (const auto& req : requests) {
    auto* r = find(req.execution_id);
    out.push_back(r && req.filters.matches(*r) ? std::optional{*r} : std::nullopt);
  }
  return out;
}

std::vector<std::optional<TaskExecutionRecord>>
ReferenceStorage::get_many_by_sleeping_task_unique_id(
    const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) {
  Lock lock{mutex_};
  std::vector<std::optional<TaskExecutionRecord>> out;
  for (const auto& req : requests) {
    auto it = std::find_if(rows_.begin(), rows_.end(), [&](const auto& r) {
      return r.sleeping_task_unique_id == req.sleeping_task_unique_id;
    });
    out.push_back(it == rows_.end() ? std::nullopt : std::optional{*it});
  }
  return out;
}

void ReferenceStorage::update_many_by_id(const std::vector<UpdateByIdRequest>& requests) {
  Lock lock{mutex_};
  for (const auto& req : requests) {
    auto* r = find(req.execution_id);
    if (!r || !req.filters.matches(*r)) continue;
    apply_update(*r, req.update);
    if (!r->parent) continue;
    auto* p = find(r->parent->execution_id);
    if (p && req.decrement_parent_active_children_count) --p->active_children_count;
    if (p && req.parent_update && req.parent_update->filters.matches(*p)) {
      apply_update(*p, req.parent_update->update);
    }
  }
}

void ReferenceStorage::update_many_by_id_and_insert_children_if_updated(
    const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) {
  Lock lock{mutex_};
  for (const auto& req : requests) {
    auto* r = find(req.execution_id);
    if (!r || !req.filters.matches(*r)) continue;
    // Check before writing anything, so that a failed insert leaves the row as it was.
    check_insertable(req.children_to_insert_if_updated);
    apply_update(*r, req.update);
    rows_.insert(rows_.end(), req.children_to_insert_if_updated.begin(),
                 req.children_to_insert_if_updated.end());
  }
}

std::vector<TaskExecutionRecord>
ReferenceStorage::update_by_status_and_start_at_less_than_and_return(
    const UpdateByStatusAndStartAtLessThanRequest& request) {
  Lock lock{mutex_};
  std::vector<TaskExecutionRecord> out;
  for (auto* r : select(
           rows_,
           [&](const auto& x) {
             return x.status == request.status && x.start_at < request.start_at_less_than;
           },
           [](const auto& x) { return x.start_at; }, request.limit)) {
    apply_update(*r, request.update);
    r->expires_at = request.update_expires_at_with_started_at + r->timeout;
    out.push_back(*r);
  }
  return out;
}

std::vector<TaskExecutionRecord> ReferenceStorage::
    update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
        const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) {
  Lock lock{mutex_};
  std::vector<TaskExecutionRecord> out;
  for (auto* r : select(
           rows_,
           [&](const auto& x) {
             return x.status == request.status &&
                    x.on_children_finished_processing_status ==
                        request.on_children_finished_processing_status &&
                    x.active_children_count == 0;
           },
           by_updated_at, request.limit)) {
    apply_update(*r, request.update);
    out.push_back(*r);
  }
  return out;
}

std::vector<TaskExecutionRecord> ReferenceStorage::update_by_close_status_and_return(
    const UpdateByCloseStatusRequest& request) {
  Lock lock{mutex_};
  std::vector<TaskExecutionRecord> out;
  for (auto* r : select(
           rows_, [&](const auto& x) { return x.close_status == request.close_status; },
           by_updated_at, request.limit)) {
    apply_update(*r, request.update);
    out.push_back(*r);
  }
  return out;
}

std::int64_t ReferenceStorage::update_by_is_sleeping_task_and_expires_at_less_than(
    const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) {
  Lock lock{mutex_};
  auto rows = select(
      rows_,
      [&](const auto& x) {
        return x.is_sleeping_task == request.is_sleeping_task &&
               less_than(x.expires_at, request.expires_at_less_than);
      },
      [](const auto& x) { return *x.expires_at; }, request.limit);
  for (auto* r : rows) {
    const bool exhausted =
        request.max_lease_expirations && r->lease_expirations >= *request.max_lease_expirations;
    apply_update(*r, exhausted ? request.exhausted_update : request.update);
  }
  return static_cast<std::int64_t>(rows.size());
}

std::int64_t ReferenceStorage::update_by_on_children_finished_processing_expires_at_less_than(
    const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) {
  Lock lock{mutex_};
  auto rows = select(
      rows_,
      [&](const auto& x) {
        return less_than(x.on_children_finished_processing_expires_at,
                         request.on_children_finished_processing_expires_at_less_than);
      },
      [](const auto& x) { return *x.on_children_finished_processing_expires_at; }, request.limit);
  for (auto* r : rows) apply_update(*r, request.update);
  return static_cast<std::int64_t>(rows.size());
}

std::int64_t ReferenceStorage::update_by_close_expires_at_less_than(
    const UpdateByCloseExpiresAtLessThanRequest& request) {
  Lock lock{mutex_};
  auto rows = select(
      rows_,
      [&](const auto& x) {
        return less_than(x.close_expires_at, request.close_expires_at_less_than);
      },
      [](const auto& x) { return *x.close_expires_at; }, request.limit);
  for (auto* r : rows) apply_update(*r, request.update);
  return static_cast<std::int64_t>(rows.size());
}

std::vector<TaskExecutionRecord>
ReferenceStorage::update_by_executor_id_and_needs_promise_cancellation_and_return(
    const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) {
  Lock lock{mutex_};
  std::vector<TaskExecutionRecord> out;
  for (auto* r : select(
           rows_,
           [&](const auto& x) {
             return x.executor_id == request.executor_id &&
                    x.needs_promise_cancellation == request.needs_promise_cancellation;
           },
           by_updated_at, request.limit)) {
    apply_update(*r, request.update);
    out.push_back(*r);
  }
  return out;
}

std::vector<std::vector<TaskExecutionRecord>> ReferenceStorage::get_many_by_parent_execution_id(
    const std::vector<GetByParentExecutionIdRequest>& requests) {
  Lock lock{mutex_};
  std::vector<std::vector<TaskExecutionRecord>> out;
  for (const auto& req : requests) {
    auto& children = out.emplace_back();
    for (const auto& r : rows_) {
      if (r.parent && r.parent->execution_id == req.parent_execution_id) children.push_back(r);
    }
  }
  return out;
}

void ReferenceStorage::update_many_by_parent_execution_id_and_is_finished(
    const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) {
  Lock lock{mutex_};
  for (const auto& req : requests) {
    for (auto& r : rows_) {
      if (r.parent && r.parent->execution_id == req.parent_execution_id &&
          r.is_finished == req.is_finished) {
        apply_update(r, req.update);
      }
    }
  }
}

std::int64_t
ReferenceStorage::update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
    const UpdateAndDecrementParentActiveChildrenCountRequest& request) {
  Lock lock{mutex_};
  auto rows = select(
      rows_,
      [&](const auto& x) {
        return x.is_finished == request.is_finished && x.close_status == request.close_status;
      },
      by_updated_at, request.limit);
  std::vector<std::string> parents;
  for (auto* r : rows) {
    apply_update(*r, request.update);
    if (r->parent) parents.push_back(r->parent->execution_id);
  }
  for (const auto& id : parents) {
    if (auto* p = find(id)) --p->active_children_count;
  }
  return static_cast<std::int64_t>(rows.size());
}

void ReferenceStorage::delete_by_id(const DeleteByIdRequest& request) {
  Lock lock{mutex_};
  std::erase_if(rows_, [&](const auto& r) { return r.execution_id == request.execution_id; });
}

void ReferenceStorage::delete_all() {
  Lock lock{mutex_};
  rows_.clear();
}

StorageFactory reference_factory() {
  return {"Reference", [] { return std::make_unique<ReferenceStorage>(); }};
}

}  // namespace durable_execution::testing
