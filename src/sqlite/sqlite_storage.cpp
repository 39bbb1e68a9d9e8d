// The SQLite backend's contract methods: the TaskExecutionsStorage implementation, each method
// one transaction (sqlite_storage_impl.hpp) composed of the table's queries (sqlite_queries.hpp).
// Threads: any caller thread; every method is atomic and thread-safe (the public header says how).

#include "durable_execution/sqlite/sqlite_storage.hpp"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "sql/sql_columns.hpp"
#include "sql/sql_update_shape.hpp"
#include "sqlite/sqlite_queries.hpp"
#include "sqlite/sqlite_row_codec.hpp"
#include "sqlite/sqlite_storage_impl.hpp"

namespace durable_execution {

namespace {

using sql::b;
using sql::ms;
using sql::shape_of;
using sqlite::cache_key;
using sqlite::Connection;
using sqlite::PendingDecrements;
using enum sqlite::Query;

}  // namespace

// ---- public methods --------------------------------------------------------------------------

SqliteTaskExecutionsStorage::SqliteTaskExecutionsStorage(std::string path,
                                                         SqliteStorageOptions options)
    : impl_(std::make_unique<Impl>(std::move(path), std::move(options))) {}

SqliteTaskExecutionsStorage::~SqliteTaskExecutionsStorage() = default;

const std::string& SqliteTaskExecutionsStorage::path() const noexcept { return impl_->path; }
const std::string& SqliteTaskExecutionsStorage::table_name() const noexcept {
  return impl_->queries.table();
}

std::vector<std::string> SqliteTaskExecutionsStorage::prepared_statement_sql() const {
  return impl_->prepared_statement_sql();
}

void SqliteTaskExecutionsStorage::insert_many(const std::vector<TaskExecutionRecord>& executions) {
  if (executions.empty()) return;
  impl_->transaction(true, "insert_many",
                     [&](Connection& c) { impl_->queries.insert_rows(c, executions); });
}

std::vector<std::optional<TaskExecutionRecord>> SqliteTaskExecutionsStorage::get_many_by_id(
    const std::vector<GetByIdRequest>& requests) {
  if (requests.empty()) return {};
  return impl_->transaction(false, "get_many_by_id", [&](Connection& c) {
    std::vector<std::optional<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto& stmt = c.statement(cache_key(q_get_by_id),
                               [&] { return impl_->queries.select_where("execution_id = ?"); });
      stmt.bind_static(1, req.execution_id);
      std::optional<TaskExecutionRecord> found;
      if (stmt.step()) {
        auto record = sqlite::read_record(stmt, impl_->queries.table(), c.decode);
        if (req.filters.matches(record)) found = std::move(record);
      }
      out.push_back(std::move(found));
    }
    return out;
  });
}

std::vector<std::optional<TaskExecutionRecord>>
SqliteTaskExecutionsStorage::get_many_by_sleeping_task_unique_id(
    const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) {
  if (requests.empty()) return {};
  return impl_->transaction(false, "get_many_by_sleeping_task_unique_id", [&](Connection& c) {
    std::vector<std::optional<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto& stmt = c.statement(cache_key(q_get_by_sleeping_task_unique_id), [&] {
        return impl_->queries.select_where("sleeping_task_unique_id = ?");
      });
      stmt.bind_static(1, req.sleeping_task_unique_id);
      std::optional<TaskExecutionRecord> found;
      if (stmt.step()) found = sqlite::read_record(stmt, impl_->queries.table(), c.decode);
      out.push_back(std::move(found));
    }
    return out;
  });
}

void SqliteTaskExecutionsStorage::update_many_by_id(
    const std::vector<UpdateByIdRequest>& requests) {
  if (requests.empty()) return;
  const auto& im = impl_->queries;
  impl_->transaction(true, "update_many_by_id", [&](Connection& c) {
    PendingDecrements decrements;
    for (const auto& req : requests) {
      if (!decrements.entries.empty()) decrements.flush_one(im, c, req.execution_id);
      auto result =
          im.update_by_id(c, req.execution_id, req.filters, req.update,
                          req.decrement_parent_active_children_count || req.parent_update);
      if (!result.updated || result.parent_execution_id.empty()) continue;
      if (req.decrement_parent_active_children_count) {
        decrements.add(result.parent_execution_id, req.update.updated_at);
      }
      if (req.parent_update) {
        // Decrements first, as a request's own effects apply in order.
        decrements.flush_one(im, c, result.parent_execution_id);
        (void)im.update_by_id(c, result.parent_execution_id, req.parent_update->filters,
                              req.parent_update->update, false);
      }
    }
    decrements.flush_all(im, c);
  });
}

void SqliteTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(
    const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) {
  if (requests.empty()) return;
  impl_->transaction(true, "update_many_by_id_and_insert_children_if_updated", [&](Connection& c) {
    for (const auto& req : requests) {
      if (impl_->queries.update_by_id(c, req.execution_id, req.filters, req.update, false)
              .updated) {
        impl_->queries.insert_rows(c, req.children_to_insert_if_updated);
      }
    }
  });
}

std::vector<TaskExecutionRecord>
SqliteTaskExecutionsStorage::update_by_status_and_start_at_less_than_and_return(
    const UpdateByStatusAndStartAtLessThanRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->transaction(
      true, "update_by_status_and_start_at_less_than_and_return", [&](Connection& c) {
        const auto status = to_string(request.status);
        const auto start_at = ms(request.start_at_less_than);
        if (!request.update.start_at) {
          return impl_->queries.claim_by_start_at(c, {status, start_at}, request.limit,
                                                  request.update,
                                                  request.update_expires_at_with_started_at);
        }
        return impl_->queries.select_and_update(
            c, q_select_by_status_start_at, q_update_by_status_start_at,
            "status = ? AND start_at < ?", {status, start_at}, "start_at", request.limit,
            request.update, request.update_expires_at_with_started_at);
      });
}

std::vector<TaskExecutionRecord> SqliteTaskExecutionsStorage::
    update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
        const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->transaction(
      true, "update_by_status_and_on_children_finished_processing_status", [&](Connection& c) {
        return impl_->queries.select_and_update(
            c, q_select_by_status_ocfp_status, q_update_by_status_ocfp_status,
            "status = ? AND on_children_finished_processing_status = ? AND "
            "active_children_count = 0",
            {to_string(request.status), to_string(request.on_children_finished_processing_status)},
            "updated_at", request.limit, request.update);
      });
}

std::vector<TaskExecutionRecord> SqliteTaskExecutionsStorage::update_by_close_status_and_return(
    const UpdateByCloseStatusRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->transaction(true, "update_by_close_status_and_return", [&](Connection& c) {
    return impl_->queries.select_and_update(c, q_select_by_close_status, q_update_by_close_status,
                                            "close_status = ?", {to_string(request.close_status)},
                                            "updated_at", request.limit, request.update,
                                            std::nullopt, true);
  });
}

std::int64_t SqliteTaskExecutionsStorage::update_by_is_sleeping_task_and_expires_at_less_than(
    const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  return impl_->transaction(
      true, "update_by_is_sleeping_task_and_expires_at_less_than", [&](Connection& c) {
        const auto is_sleeping_task = b(request.is_sleeping_task);
        const auto expires_at = ms(request.expires_at_less_than);
        std::int64_t exhausted = 0;
        if (request.max_lease_expirations) {
          // Rows past the crash-loop bound first; they leave the selection (no longer running).
          exhausted = impl_->queries.update_selected(
              c, q_update_exhausted_by_is_sleeping_task_expires_at,
              "is_sleeping_task = ? AND expires_at < ? AND lease_expirations >= ?",
              {is_sleeping_task, expires_at, std::int64_t{*request.max_lease_expirations}},
              "expires_at", request.limit, request.exhausted_update);
        }
        if (exhausted >= request.limit) return exhausted;
        return exhausted +
               impl_->queries.update_selected(c, q_update_by_is_sleeping_task_expires_at,
                                              "is_sleeping_task = ? AND expires_at < ?",
                                              {is_sleeping_task, expires_at}, "expires_at",
                                              request.limit - exhausted, request.update);
      });
}

std::int64_t
SqliteTaskExecutionsStorage::update_by_on_children_finished_processing_expires_at_less_than(
    const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  return impl_->transaction(
      true, "update_by_on_children_finished_processing_expires_at_less_than", [&](Connection& c) {
        return impl_->queries.update_selected(
            c, q_update_by_ocfp_expires_at, "on_children_finished_processing_expires_at < ?",
            {ms(request.on_children_finished_processing_expires_at_less_than)},
            "on_children_finished_processing_expires_at", request.limit, request.update);
      });
}

std::int64_t SqliteTaskExecutionsStorage::update_by_close_expires_at_less_than(
    const UpdateByCloseExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  return impl_->transaction(true, "update_by_close_expires_at_less_than", [&](Connection& c) {
    return impl_->queries.update_selected(c, q_update_by_close_expires_at, "close_expires_at < ?",
                                          {ms(request.close_expires_at_less_than)},
                                          "close_expires_at", request.limit, request.update);
  });
}

std::vector<TaskExecutionRecord>
SqliteTaskExecutionsStorage::update_by_executor_id_and_needs_promise_cancellation_and_return(
    const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->transaction(true, "update_by_executor_id_and_needs_promise_cancellation_and_return",
                            [&](Connection& c) {
                              return impl_->queries.select_and_update(
                                  c, q_select_by_executor_id_npc, q_update_by_executor_id_npc,
                                  "executor_id = ? AND needs_promise_cancellation = ?",
                                  {request.executor_id, b(request.needs_promise_cancellation)},
                                  "updated_at", request.limit, request.update);
                            });
}

std::vector<std::vector<TaskExecutionRecord>>
SqliteTaskExecutionsStorage::get_many_by_parent_execution_id(
    const std::vector<GetByParentExecutionIdRequest>& requests) {
  if (requests.empty()) return {};
  return impl_->transaction(false, "get_many_by_parent_execution_id", [&](Connection& c) {
    std::vector<std::vector<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto& stmt = c.statement(cache_key(q_get_by_parent_execution_id), [&] {
        return impl_->queries.select_where("parent_execution_id = ?");
      });
      stmt.bind_static(1, req.parent_execution_id);
      out.push_back(impl_->queries.read_all(c, stmt));
    }
    return out;
  });
}

void SqliteTaskExecutionsStorage::update_many_by_parent_execution_id_and_is_finished(
    const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) {
  if (requests.empty()) return;
  const auto& im = impl_->queries;
  impl_->transaction(
      true, "update_many_by_parent_execution_id_and_is_finished", [&](Connection& c) {
        for (const auto& req : requests) {
          const auto shape = shape_of(req.update, std::nullopt);
          auto& stmt =
              c.statement(cache_key(q_update_by_parent_execution_id_is_finished, shape), [&] {
                return std::string{sqlite::kUpdate} + im.quoted_table() + " SET " + shape.sql() +
                       " WHERE parent_execution_id = ? AND is_finished = ?";
              });
          const int next = sqlite::bind_update(stmt, req.update, std::nullopt);
          stmt.bind_static(next, req.parent_execution_id);
          stmt.bind(next + 1, b(req.is_finished));
          (void)stmt.exec();
        }
      });
}

std::int64_t SqliteTaskExecutionsStorage::
    update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
        const UpdateAndDecrementParentActiveChildrenCountRequest& request) {
  if (request.limit <= 0) return 0;
  const auto& im = impl_->queries;
  return impl_->transaction(
      true, "update_and_decrement_parent_active_children_count", [&](Connection& c) {
        std::vector<std::int64_t> ids;
        std::map<std::string, std::int64_t> decrements;  // sorted: a fixed parent update order
        {
          auto& select = c.statement(cache_key(q_select_by_is_finished_close_status), [&] {
            return "SELECT id, parent_execution_id FROM " + im.quoted_table() +
                   " WHERE is_finished = ? AND close_status = ? ORDER BY updated_at LIMIT ?";
          });
          select.bind(1, b(request.is_finished));
          select.bind_static(2, to_string(request.close_status));
          select.bind(3, request.limit);
          while (select.step()) {
            ids.push_back(select.int64(0));
            if (select.type(1) == SQLITE_TEXT) {
              const auto parent_id = select.text(1);
              if (!parent_id.empty()) ++decrements[std::string{parent_id}];
            }
          }
          select.reset();
        }
        if (ids.empty()) return std::int64_t{0};
        const auto shape = shape_of(request.update, std::nullopt);
        auto& upd = c.statement(cache_key(q_update_by_is_finished_close_status, shape), [&] {
          return std::string{sqlite::kUpdate} + im.quoted_table() + " SET " + shape.sql() +
                 " WHERE id = ?";
        });
        const int id_param = sqlite::bind_update(upd, request.update, std::nullopt);
        for (std::size_t i = 0; i < ids.size(); ++i) {
          if (i > 0) upd.reset();
          upd.bind(id_param, ids[i]);
          (void)upd.exec();
        }
        for (const auto& [parent_id, count] : decrements) {
          im.decrement_active_children_count(c, parent_id, count, request.update.updated_at);
        }
        return static_cast<std::int64_t>(ids.size());
      });
}

void SqliteTaskExecutionsStorage::delete_by_id(const DeleteByIdRequest& request) {
  impl_->transaction(true, "delete_by_id", [&](Connection& c) {
    auto& stmt = c.statement(cache_key(q_delete_by_id), [&] {
      return "DELETE FROM " + impl_->queries.quoted_table() + " WHERE execution_id = ?";
    });
    stmt.bind_static(1, request.execution_id);
    (void)stmt.exec();
  });
}

void SqliteTaskExecutionsStorage::delete_all() {
  impl_->transaction(true, "delete_all", [&](Connection& c) {
    (void)
        c.statement(cache_key(q_delete_all), [&] {
           return "DELETE FROM " + impl_->queries.quoted_table();
         }).exec();
  });
}

}  // namespace durable_execution
