// The contract methods of PostgresTaskExecutionsStorage (the TaskExecutionsStorage
// implementation), composed over the backend's parts: each method picks how it runs (pg_pool's
// Mode), groups its requests into as few statements as it can, and calls the table operations
// (pg_operations.cpp); the constructor validates, connects and migrates (pg_schema). Threads:
// every thread that calls the storage; executors' subscriptions are served by the listener
// thread (pg_notify).
#include "durable_execution/postgres/postgres_storage.hpp"

#include <algorithm>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "durable_execution/errors.hpp"
#include "pg_storage_impl.hpp"

namespace durable_execution {

namespace {

using namespace sql;       // NOLINT(google-build-using-namespace)
using namespace postgres;  // NOLINT(google-build-using-namespace)

}  // namespace

PostgresTaskExecutionsStorage::Impl::Impl(std::string connection_string, PostgresStorageOptions o)
    : options(std::move(o)),
      table(options.schema, options.table_name),
      pool(std::move(connection_string), options),
      text(table.qualified()),
      notifications(pool.conninfo(), channel_name(table.schema(), table.table()), options.notify) {
  // The first connection proves the server is reachable and the credentials good.
  std::unique_ptr<Connection> first;
  try {
    first = pool.connect();
  } catch (const ConnectionLost& e) {
    throw DurableExecutionError(
        "Cannot connect to PostgreSQL (" + pool.redacted() + "): " + e.message, ErrorType::generic,
        false, false);
  }
  try {
    table.migrate(*first->conn);
  } catch (const DurableExecutionError&) {
    throw;
  } catch (const std::exception& e) {
    throw DurableExecutionError(
        "PostgreSQL storage (" + pool.redacted() + ") schema setup failed: " + pool.clean(e.what()),
        ErrorType::generic, false, false);
  }
  pool.adopt(std::move(first));
}

PostgresTaskExecutionsStorage::PostgresTaskExecutionsStorage(std::string connection_string,
                                                             PostgresStorageOptions options)
    : impl_(std::make_unique<Impl>(std::move(connection_string), std::move(options))) {}

PostgresTaskExecutionsStorage::~PostgresTaskExecutionsStorage() = default;

const std::string& PostgresTaskExecutionsStorage::redacted_connection_string() const noexcept {
  return impl_->pool.redacted();
}
const std::string& PostgresTaskExecutionsStorage::schema() const noexcept {
  return impl_->table.schema();
}
const std::string& PostgresTaskExecutionsStorage::table_name() const noexcept {
  return impl_->table.table();
}

std::vector<std::string> PostgresTaskExecutionsStorage::prepared_statement_sql() const {
  return impl_->statements.all_sql();
}

std::int32_t PostgresTaskExecutionsStorage::open_connections() const {
  return impl_->pool.open_connections();
}

void PostgresTaskExecutionsStorage::insert_many(
    const std::vector<TaskExecutionRecord>& executions) {
  if (executions.empty()) return;
  std::vector<const TaskExecutionRecord*> rows;
  rows.reserve(executions.size());
  for (const auto& r : executions) rows.push_back(&r);
  impl_->run(
      "insert_many", Mode::single, [&](Impl::Ctx& ctx) { impl_->insert_rows(ctx, rows); },
      // A lost connection: the insert is all or nothing, so its first row tells.
      [&] {
        return impl_->run("insert_many (re-check)", Mode::read, [&](Impl::Ctx& ctx) {
          return !impl_
                      ->select_by_keys(ctx, q_get_by_ids, "execution_id",
                                       {&executions.front().execution_id})
                      .empty();
        });
      });
  impl_->work_created();
}

std::vector<std::optional<TaskExecutionRecord>> PostgresTaskExecutionsStorage::get_many_by_id(
    const std::vector<GetByIdRequest>& requests) {
  if (requests.empty()) return {};
  return impl_->run("get_many_by_id", Mode::read, [&](Impl::Ctx& ctx) {
    std::vector<const std::string*> keys;
    keys.reserve(requests.size());
    for (const auto& r : requests) keys.push_back(&r.execution_id);
    auto rows = impl_->select_by_keys(ctx, q_get_by_ids, "execution_id", keys);
    Impl::make_view_durable(ctx, rows);
    std::unordered_map<std::string_view, const TaskExecutionRecord*> by_id;
    for (const auto& r : rows) by_id.emplace(r.execution_id, &r);
    std::vector<std::optional<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto it = by_id.find(req.execution_id);
      if (it != by_id.end() && req.filters.matches(*it->second)) {
        out.emplace_back(*it->second);
      } else {
        out.emplace_back(std::nullopt);
      }
    }
    return out;
  });
}

std::vector<std::optional<TaskExecutionRecord>>
PostgresTaskExecutionsStorage::get_many_by_sleeping_task_unique_id(
    const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) {
  if (requests.empty()) return {};
  return impl_->run("get_many_by_sleeping_task_unique_id", Mode::read, [&](Impl::Ctx& ctx) {
    std::vector<const std::string*> keys;
    keys.reserve(requests.size());
    for (const auto& r : requests) keys.push_back(&r.sleeping_task_unique_id);
    auto rows = impl_->select_by_keys(ctx, q_get_by_unique_ids, "sleeping_task_unique_id", keys);
    Impl::make_view_durable(ctx, rows);
    std::unordered_map<std::string_view, const TaskExecutionRecord*> by_key;
    for (const auto& r : rows) {
      if (r.sleeping_task_unique_id) by_key.emplace(*r.sleeping_task_unique_id, &r);
    }
    std::vector<std::optional<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto it = by_key.find(req.sleeping_task_unique_id);
      if (it != by_key.end()) {
        out.emplace_back(*it->second);
      } else {
        out.emplace_back(std::nullopt);
      }
    }
    return out;
  });
}

namespace {

/** Requests that can share one multi-row UPDATE: same shape and filters, distinct ids. */
template <class Req>
bool same_group(const Req& a, const Req& b) {
  return shape_of(a.update, std::nullopt).key() == shape_of(b.update, std::nullopt).key() &&
         a.filters.is_sleeping_task.has_value() == b.filters.is_sleeping_task.has_value() &&
         a.filters.status.has_value() == b.filters.status.has_value() &&
         a.filters.is_finished.has_value() == b.filters.is_finished.has_value();
}

/**
 * Splits requests into runs of consecutive requests that can share one statement (same_group,
 * distinct ids, and `alone(req)` false for all but single-request runs), in request order.
 */
template <class Req, class Alone>
std::vector<std::vector<const Req*>> consecutive_groups(const std::vector<Req>& requests,
                                                        Alone&& alone) {
  std::vector<std::vector<const Req*>> groups;
  std::unordered_set<std::string_view> ids;
  for (const auto& req : requests) {
    const bool starts_new = groups.empty() || alone(req) || alone(*groups.back().front()) ||
                            !same_group(*groups.back().front(), req) ||
                            ids.count(req.execution_id) > 0;
    if (starts_new) {
      groups.emplace_back();
      ids.clear();
    }
    groups.back().push_back(&req);
    ids.insert(req.execution_id);
  }
  return groups;
}

}  // namespace

void PostgresTaskExecutionsStorage::update_many_by_id(
    const std::vector<UpdateByIdRequest>& requests) {
  if (requests.empty()) return;
  // A request that sets active_children_count does not commute with decrements of its row made
  // by earlier requests of its group; a parent update needs its own statements: both go alone.
  const auto groups = consecutive_groups(requests, [](const UpdateByIdRequest& r) {
    return r.parent_update.has_value() ||
           (shape_of(r.update, std::nullopt).set >> s_active_children_count) & 1U;
  });
  impl_->run("update_many_by_id", impl_->write_mode(requests), [&](Impl::Ctx& ctx) {
    // Decrements of one call, applied once per parent. A decrement commutes with writes to
    // other rows, so it is applied early only before a later group writes the parent itself.
    std::map<std::string, std::pair<std::int64_t, Timestamp>> pending;
    auto flush_for = [&](const std::vector<const UpdateByIdRequest*>& group) {
      std::map<std::string, std::pair<std::int64_t, Timestamp>> now;
      for (const auto* req : group) {
        auto it = pending.find(req->execution_id);
        if (it != pending.end()) {
          now.insert(*it);
          pending.erase(it);
        }
      }
      impl_->decrement_parents(ctx, now);
    };
    for (const auto& group : groups) {
      if (!pending.empty()) flush_for(group);
      const auto& first = *group.front();
      if (first.parent_update) {
        auto parent = impl_->update_one(ctx, first.execution_id, first.filters, first.update);
        if (!parent || parent->empty()) continue;
        if (first.decrement_parent_active_children_count) {
          auto& d = pending[*parent];
          ++d.first;
          d.second = first.update.updated_at;
        }
        // Decrements first, as a request's own effects apply in order.
        auto it = pending.find(*parent);
        if (it != pending.end()) {
          impl_->decrement_parents(ctx, {*it});
          pending.erase(it);
        }
        (void)impl_->update_one(ctx, *parent, first.parent_update->filters,
                                first.parent_update->update);
        continue;
      }
      bool want_parent = false;
      for (const auto* req : group) {
        want_parent = want_parent || req->decrement_parent_active_children_count;
      }
      const auto updated = impl_->update_group(ctx, group, want_parent);
      if (!want_parent) continue;
      std::unordered_map<std::string_view, const UpdateByIdRequest*> by_id;
      for (const auto* req : group) by_id.emplace(req->execution_id, req);
      for (const auto& u : updated) {
        const auto* req = by_id.at(u.execution_id);
        if (!req->decrement_parent_active_children_count || u.parent_execution_id.empty()) {
          continue;
        }
        auto& d = pending[u.parent_execution_id];
        ++d.first;
        d.second = std::max(d.second, req->update.updated_at);
      }
    }
    impl_->decrement_parents(ctx, pending);
  });
  impl_->work_created();
}

void PostgresTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(
    const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) {
  if (requests.empty()) return;
  const auto groups =
      consecutive_groups(requests, [](const UpdateByIdAndInsertChildrenRequest&) { return false; });
  impl_->run("update_many_by_id_and_insert_children_if_updated", impl_->write_mode(requests),
             [&](Impl::Ctx& ctx) {
               for (const auto& group : groups) {
                 const auto updated = impl_->update_group(ctx, group, false);
                 if (updated.empty()) continue;
                 std::vector<const TaskExecutionRecord*> children;
                 // Children in request order (the statement returns rows in any order).
                 std::unordered_set<std::string_view> done;
                 for (const auto& u : updated) done.insert(u.execution_id);
                 for (const auto* req : group) {
                   if (done.count(req->execution_id) == 0) continue;
                   for (const auto& child : req->children_to_insert_if_updated) {
                     children.push_back(&child);
                   }
                 }
                 impl_->insert_rows(ctx, children);
               }
             });
  impl_->work_created();
}

std::vector<TaskExecutionRecord>
PostgresTaskExecutionsStorage::update_by_status_and_start_at_less_than_and_return(
    const UpdateByStatusAndStartAtLessThanRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->run(
      "update_by_status_and_start_at_less_than_and_return", Mode::single, [&](Impl::Ctx& ctx) {
        Params where;
        where.add(ms(request.start_at_less_than));
        return impl_->claim(
            ctx, q_claim_by_status_start_at, static_cast<std::uint64_t>(request.status),
            "status = " + claim_literal(to_string(request.status)) + " AND start_at < $1",
            std::move(where), "start_at", request.limit, request.update,
            request.update_expires_at_with_started_at);
      });
}

std::vector<TaskExecutionRecord> PostgresTaskExecutionsStorage::
    update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
        const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->run(
      "update_by_status_and_on_children_finished_processing_status", Mode::single,
      [&](Impl::Ctx& ctx) {
        return impl_->claim(
            ctx, q_claim_by_status_ocfp_status,
            static_cast<std::uint64_t>(request.status) * 4 +
                static_cast<std::uint64_t>(request.on_children_finished_processing_status),
            "status = " + claim_literal(to_string(request.status)) +
                " AND on_children_finished_processing_status = " +
                claim_literal(to_string(request.on_children_finished_processing_status)) +
                " AND active_children_count = 0",
            Params{}, "updated_at", request.limit, request.update);
      });
}

std::vector<TaskExecutionRecord> PostgresTaskExecutionsStorage::update_by_close_status_and_return(
    const UpdateByCloseStatusRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->run("update_by_close_status_and_return", Mode::single, [&](Impl::Ctx& ctx) {
    return impl_->claim(ctx, q_claim_by_close_status,
                        static_cast<std::uint64_t>(request.close_status),
                        "close_status = " + claim_literal(to_string(request.close_status)),
                        Params{}, "updated_at", request.limit, request.update, std::nullopt, true);
  });
}

std::int64_t PostgresTaskExecutionsStorage::update_by_is_sleeping_task_and_expires_at_less_than(
    const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  const auto where = [&] {
    Params p;
    p.add_bool(request.is_sleeping_task);
    p.add(ms(request.expires_at_less_than));
    return p;
  };
  // With the crash-loop bound, two updates: one transaction.
  const auto mode = request.max_lease_expirations ? Mode::transaction : Mode::single;
  const auto count =
      impl_->run("update_by_is_sleeping_task_and_expires_at_less_than", mode, [&](Impl::Ctx& ctx) {
        std::int64_t exhausted = 0;
        if (request.max_lease_expirations) {
          // Rows past the crash-loop bound first; they leave the selection (no longer running).
          auto exhausted_where = where();
          exhausted_where.add(std::int64_t{*request.max_lease_expirations});
          exhausted = impl_->update_selected(
              ctx, q_expire_sleeping_exhausted,
              "is_sleeping_task = $1 AND expires_at < $2 AND lease_expirations >= $3",
              std::move(exhausted_where), "expires_at", request.limit, request.exhausted_update);
        }
        if (exhausted >= request.limit) return exhausted;
        return exhausted + impl_->update_selected(
                               ctx, q_expire_sleeping, "is_sleeping_task = $1 AND expires_at < $2",
                               where(), "expires_at", request.limit - exhausted, request.update);
      });
  if (count > 0) impl_->work_created();
  return count;
}

std::int64_t
PostgresTaskExecutionsStorage::update_by_on_children_finished_processing_expires_at_less_than(
    const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  const auto count = impl_->run(
      "update_by_on_children_finished_processing_expires_at_less_than", Mode::single,
      [&](Impl::Ctx& ctx) {
        Params where;
        where.add(ms(request.on_children_finished_processing_expires_at_less_than));
        return impl_->update_selected(
            ctx, q_expire_ocfp, "on_children_finished_processing_expires_at < $1", std::move(where),
            "on_children_finished_processing_expires_at", request.limit, request.update);
      });
  if (count > 0) impl_->work_created();
  return count;
}

std::int64_t PostgresTaskExecutionsStorage::update_by_close_expires_at_less_than(
    const UpdateByCloseExpiresAtLessThanRequest& request) {
  if (request.limit <= 0) return 0;
  const auto count =
      impl_->run("update_by_close_expires_at_less_than", Mode::single, [&](Impl::Ctx& ctx) {
        Params where;
        where.add(ms(request.close_expires_at_less_than));
        return impl_->update_selected(ctx, q_expire_close, "close_expires_at < $1",
                                      std::move(where), "close_expires_at", request.limit,
                                      request.update);
      });
  if (count > 0) impl_->work_created();
  return count;
}

std::vector<TaskExecutionRecord>
PostgresTaskExecutionsStorage::update_by_executor_id_and_needs_promise_cancellation_and_return(
    const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& request) {
  if (request.limit <= 0) return {};
  return impl_->run("update_by_executor_id_and_needs_promise_cancellation_and_return", Mode::single,
                    [&](Impl::Ctx& ctx) {
                      Params where;
                      where.ref(request.executor_id);
                      return impl_->claim(ctx, q_claim_by_executor_id_npc,
                                          request.needs_promise_cancellation ? 1 : 0,
                                          "executor_id = $1 AND needs_promise_cancellation = " +
                                              claim_literal(request.needs_promise_cancellation),
                                          std::move(where), "updated_at", request.limit,
                                          request.update);
                    });
}

std::vector<std::vector<TaskExecutionRecord>>
PostgresTaskExecutionsStorage::get_many_by_parent_execution_id(
    const std::vector<GetByParentExecutionIdRequest>& requests) {
  if (requests.empty()) return {};
  return impl_->run("get_many_by_parent_execution_id", Mode::read, [&](Impl::Ctx& ctx) {
    std::vector<const std::string*> keys;
    keys.reserve(requests.size());
    for (const auto& r : requests) keys.push_back(&r.parent_execution_id);
    // No make_view_durable: see the contract method (the engine reads children only after a
    // durable claim of their parent).
    auto rows = impl_->select_by_keys(ctx, q_get_by_parent_ids, "parent_execution_id", keys);
    std::unordered_map<std::string_view, std::vector<const TaskExecutionRecord*>> by_parent;
    for (const auto& r : rows) {
      if (r.parent) by_parent[r.parent->execution_id].push_back(&r);
    }
    std::vector<std::vector<TaskExecutionRecord>> out;
    out.reserve(requests.size());
    for (const auto& req : requests) {
      auto& children = out.emplace_back();
      auto it = by_parent.find(req.parent_execution_id);
      if (it == by_parent.end()) continue;
      children.reserve(it->second.size());
      for (const auto* r : it->second) children.push_back(*r);
    }
    return out;
  });
}

void PostgresTaskExecutionsStorage::update_many_by_parent_execution_id_and_is_finished(
    const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) {
  if (requests.empty()) return;
  // Runs of consecutive requests with one update shape and distinct parents share a statement.
  std::vector<std::vector<const UpdateByParentExecutionIdAndIsFinishedRequest*>> groups;
  std::unordered_set<std::string_view> parents;
  for (const auto& req : requests) {
    if (groups.empty() ||
        shape_of(groups.back().front()->update, std::nullopt).key() !=
            shape_of(req.update, std::nullopt).key() ||
        parents.count(req.parent_execution_id) > 0) {
      groups.emplace_back();
      parents.clear();
    }
    groups.back().push_back(&req);
    parents.insert(req.parent_execution_id);
  }
  impl_->run("update_many_by_parent_execution_id_and_is_finished",
             groups.size() == 1 ? Mode::single : Mode::transaction, [&](Impl::Ctx& ctx) {
               for (const auto& group : groups) {
                 const auto shape = shape_of(group.front()->update, std::nullopt);
                 ArrayLiteral ids;
                 ArrayLiteral finished;
                 UpdateArrays values;
                 for (const auto* req : group) {
                   ids.add(std::string_view{req->parent_execution_id});
                   finished.add(b(req->is_finished));
                   values.add(req->update);
                 }
                 Params params;
                 params.own(ids.take());
                 params.own(finished.take());
                 values.bind(shape, params);
                 (void)ctx.exec(
                     statement_key(q_update_by_parent_ids, shape),
                     [&] { return impl_->text.update_by_parent_ids(shape); }, params);
               }
             });
  impl_->work_created();
}

std::int64_t PostgresTaskExecutionsStorage::
    update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
        const UpdateAndDecrementParentActiveChildrenCountRequest& request) {
  if (request.limit <= 0) return 0;
  const auto shape = shape_of(request.update, std::nullopt);
  const auto count = impl_->run(
      "update_and_decrement_parent_active_children_count", Mode::transaction, [&](Impl::Ctx& ctx) {
        Params params;
        params.add(request.limit);
        ScalarBindVisitor v{params};
        visit_update(request.update, std::nullopt, v);
        const auto r = ctx.exec(
            statement_key(
                q_close_finished, shape,
                (request.is_finished ? 4U : 0U) + static_cast<std::uint64_t>(request.close_status)),
            [&] {
              return impl_->text.close_finished(request.is_finished,
                                                to_string(request.close_status), shape);
            },
            params);
        std::map<std::string, std::pair<std::int64_t, Timestamp>> decrements;
        for (const auto& row : r) {
          if (row[0].is_null() || row[0].size() == 0) continue;
          auto& d = decrements[row[0].c_str()];
          ++d.first;
          d.second = request.update.updated_at;
        }
        impl_->decrement_parents(ctx, decrements);
        return static_cast<std::int64_t>(r.size());
      });
  if (count > 0) impl_->work_created();
  return count;
}

void PostgresTaskExecutionsStorage::delete_by_id(const DeleteByIdRequest& request) {
  impl_->run("delete_by_id", Mode::single, [&](Impl::Ctx& ctx) {
    Params params;
    params.ref(request.execution_id);
    (void)ctx.exec(
        statement_key(q_delete_by_id), [&] { return impl_->text.delete_by_id(); }, params);
  });
}

std::uint64_t PostgresTaskExecutionsStorage::subscribe_to_external_work(
    std::function<void()> on_external_work) {
  return impl_->notifications.subscribe(std::move(on_external_work));
}

void PostgresTaskExecutionsStorage::unsubscribe_from_external_work(std::uint64_t token) noexcept {
  impl_->notifications.unsubscribe(token);
}

void PostgresTaskExecutionsStorage::delete_all() {
  impl_->run("delete_all", Mode::single, [&](Impl::Ctx& ctx) {
    (void)ctx.exec(
        statement_key(q_delete_all), [&] { return impl_->text.delete_all(); }, Params{});
  });
}

}  // namespace durable_execution
