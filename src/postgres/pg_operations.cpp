// Table operations of the PostgreSQL backend, the pieces the contract methods are built from:
// multi-row insert, select by keys, grouped and single guarded updates, parent decrements, and
// claims with SKIP LOCKED (setting corrupt rows aside). Each binds its values, runs its statement
// (pg_statements) and decodes the result (pg_rows). Entered by any storage caller, inside a
// Pool::run body on that call's connection.
#include <algorithm>
#include <unordered_set>

#include "pg_storage_impl.hpp"

namespace durable_execution {

namespace {

using namespace sql;       // NOLINT(google-build-using-namespace)
using namespace postgres;  // NOLINT(google-build-using-namespace)

}  // namespace

void PostgresTaskExecutionsStorage::Impl::warn(std::string_view message) noexcept {
  try {
    warning_log.warn("PostgreSQL storage (" + pool.redacted() + "): ", message, options.log_sink);
  } catch (...) {  // NOLINT(bugprone-empty-catch): building the prefix may throw; never fail a call
  }
}

void PostgresTaskExecutionsStorage::Impl::make_view_durable(
    Ctx& ctx, const std::vector<TaskExecutionRecord>& rows) {
  if (std::none_of(rows.begin(), rows.end(), [](const auto& r) { return r.is_finished; })) return;
  // Nothing to do when every WAL record is flushed already and no standby must confirm it (an
  // idle server: results read long after they were written). Otherwise a commit with a record
  // of its own (one that wrote only its transaction id would not wait for the disk).
  (void)ctx.tx.exec(
      "SELECT CASE WHEN current_setting('synchronous_standby_names') = '' AND "
      "pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn() THEN NULL ELSE "
      "pg_logical_emit_message(true, 'durable_execution', 'durable read') END");
}

void PostgresTaskExecutionsStorage::Impl::insert_rows(
    Ctx& ctx, const std::vector<const TaskExecutionRecord*>& rows) {
  if (rows.empty()) return;
  (void)ctx.exec(
      statement_key(q_insert), [&] { return text.insert(); }, insert_params(rows));
}

std::vector<TaskExecutionRecord> PostgresTaskExecutionsStorage::Impl::select_by_keys(
    Ctx& ctx, Query q, std::string_view column, const std::vector<const std::string*>& keys) {
  ArrayLiteral array;
  std::unordered_set<std::string_view> seen;
  for (const auto* k : keys) {
    if (seen.insert(*k).second) array.add(std::string_view{*k});
  }
  Params params;
  params.own(array.take());
  const auto r = ctx.exec(
      statement_key(q), [&] { return text.select_by(column); }, params);
  return read_rows(r, text.table(), ctx.c.decode);
}

template <class Req>
std::vector<PostgresTaskExecutionsStorage::Impl::GroupedUpdate>
PostgresTaskExecutionsStorage::Impl::update_group(Ctx& ctx, const std::vector<const Req*>& group,
                                                  bool want_parent) {
  const auto& first = *group.front();
  const auto shape = shape_of(first.update, std::nullopt);
  const auto& f = first.filters;
  const auto filters = IdFilters::of(f);
  const std::uint64_t flags = filters.flags() | (want_parent ? 8U : 0U);
  ArrayLiteral ids;
  ArrayLiteral sleeping;
  ArrayLiteral statuses;
  ArrayLiteral finished;
  UpdateArrays values;
  for (const auto* req : group) {
    ids.add(std::string_view{req->execution_id});
    if (f.is_sleeping_task) sleeping.add(b(*req->filters.is_sleeping_task));
    if (f.status) statuses.add(to_string(*req->filters.status));
    if (f.is_finished) finished.add(b(*req->filters.is_finished));
    values.add(req->update);
  }
  Params params;
  params.own(ids.take());
  if (f.is_sleeping_task) params.own(sleeping.take());
  if (f.status) params.own(statuses.take());
  if (f.is_finished) params.own(finished.take());
  values.bind(shape, params);
  const auto r = ctx.exec(
      statement_key(q_update_by_ids, shape, flags),
      [&] { return text.update_by_ids(shape, filters, want_parent); }, params);
  std::vector<GroupedUpdate> out;
  out.reserve(r.size());
  for (const auto& row : r) {
    GroupedUpdate u;
    u.execution_id = row[0].c_str();
    if (want_parent && !row[1].is_null()) u.parent_execution_id = row[1].c_str();
    out.push_back(std::move(u));
  }
  return out;
}

template std::vector<PostgresTaskExecutionsStorage::Impl::GroupedUpdate>
PostgresTaskExecutionsStorage::Impl::update_group<UpdateByIdRequest>(
    Ctx&, const std::vector<const UpdateByIdRequest*>&, bool);
template std::vector<PostgresTaskExecutionsStorage::Impl::GroupedUpdate>
PostgresTaskExecutionsStorage::Impl::update_group<UpdateByIdAndInsertChildrenRequest>(
    Ctx&, const std::vector<const UpdateByIdAndInsertChildrenRequest*>&, bool);

std::optional<std::string> PostgresTaskExecutionsStorage::Impl::update_one(
    Ctx& ctx, const std::string& execution_id, const GetByIdFilters& filters,
    const TaskExecutionUpdate& update) {
  const auto shape = shape_of(update, std::nullopt);
  const auto which = IdFilters::of(filters);
  Params params;
  ScalarBindVisitor v{params};
  visit_update(update, std::nullopt, v);
  params.ref(execution_id);
  if (filters.is_sleeping_task) params.add_bool(*filters.is_sleeping_task);
  if (filters.status) params.own(std::string{to_string(*filters.status)});
  if (filters.is_finished) params.add_bool(*filters.is_finished);
  const auto r = ctx.exec(
      statement_key(q_update_by_id, shape, which.flags()),
      [&] { return text.update_by_id(shape, which); }, params);
  if (r.empty()) return std::nullopt;
  return text_or_empty(r[0][0]);
}

void PostgresTaskExecutionsStorage::Impl::decrement_parents(
    Ctx& ctx, const std::map<std::string, std::pair<std::int64_t, Timestamp>>& decrements) {
  if (decrements.empty()) return;
  ArrayLiteral ids;
  ArrayLiteral counts;
  ArrayLiteral updated;
  for (const auto& [id, d] : decrements) {
    ids.add(std::string_view{id});
    counts.add(d.first);
    updated.add(ms(d.second));
  }
  Params params;
  params.own(ids.take());
  params.own(counts.take());
  params.own(updated.take());
  (void)ctx.exec(
      statement_key(q_decrement_parents), [&] { return text.decrement_parents(); }, params);
}

std::vector<TaskExecutionRecord> PostgresTaskExecutionsStorage::Impl::claim(
    Ctx& ctx, Query q, std::uint64_t flags, std::string_view where, Params where_params,
    std::string_view order_by, std::int64_t limit, const TaskExecutionUpdate& update,
    std::optional<Timestamp> expires_at_base, bool keep_corrupt) {
  const auto shape = shape_of(update, expires_at_base);
  const int where_count = where_params.next_index() - 1;
  Params params = std::move(where_params);
  params.add(limit);
  ScalarBindVisitor v{params};
  visit_update(update, expires_at_base, v);
  const auto r = ctx.exec(
      statement_key(q, shape, flags),
      [&] { return text.claim(where, where_count, order_by, shape); }, params);
  struct Claimed {
    std::int64_t key;
    std::int64_t id;
    std::size_t index;
  };
  std::vector<TaskExecutionRecord> rows;
  std::vector<bool> corrupt;
  rows.reserve(r.size());
  corrupt.reserve(r.size());
  std::vector<Claimed> order;
  order.reserve(r.size());
  for (std::size_t i = 0; i < r.size(); ++i) {
    const PgCells cells{r[static_cast<pqxx::result::size_type>(i)]};
    bool bad = false;
    rows.push_back(read_record(cells, "PostgreSQL", text.table(), ctx.c.decode, &bad));
    corrupt.push_back(bad);
    order.push_back(
        {cells.integer(static_cast<int>(c_count)).value_or(0), cells.integer(0).value_or(0), i});
  }
  std::sort(order.begin(), order.end(), [](const Claimed& a, const Claimed& b) {
    return a.key != b.key ? a.key < b.key : a.id < b.id;
  });
  std::vector<TaskExecutionRecord> out;
  out.reserve(rows.size());
  std::vector<std::string> messages;
  for (const auto& o : order) {
    if (!corrupt[o.index]) {
      out.push_back(std::move(rows[o.index]));
    } else if (set_aside_corrupt(ctx, o.id, rows[o.index], update.updated_at, keep_corrupt,
                                 messages)) {
      out.push_back(std::move(rows[o.index]));
    }
  }
  for (const auto& m : messages) warn(m);
  return out;
}

/**
 * The claim's own update is already applied when this runs. Only with `keep` (the close claim:
 * closing a failed execution is what the engine does next anyway) is the row returned. A row
 * whose set-aside write fails is skipped; the claim's update then stands and the row comes back
 * after its lease (logged both ways).
 */
bool PostgresTaskExecutionsStorage::Impl::set_aside_corrupt(Ctx& ctx, std::int64_t id,
                                                            TaskExecutionRecord& record,
                                                            Timestamp now, bool keep,
                                                            std::vector<std::string>& messages) {
  const std::string message = record.error ? record.error->message : std::string{};
  // Without a readable execution id nothing can close the row later (the engine addresses
  // rows by id): the close claim then closes it here.
  const bool close_here = keep && record.execution_id.empty();
  Params params;
  params.own(json_text(*record.error));
  params.add(ms(now));
  params.add(ms(now));
  if (close_here) params.add(ms(now));
  params.add(id);
  try {
    (void)ctx.exec(
        statement_key(close_here ? q_set_aside_closed : q_set_aside),
        [&] { return text.set_aside(close_here); }, params);
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::statement_completion_unknown&) {
    throw;
  } catch (const pqxx::sql_error& e) {
    if (classify(e.sqlstate()) == SqlErrorKind::connection) throw;
    messages.push_back("could not set aside a corrupt execution (" + pool.clean(e.what()) +
                       "); skipped: " + message);
    return false;
  }
  messages.push_back(std::string{"set aside a corrupt execution as failed"} +
                     (close_here ? " and closed" : "") + ": " + message);
  if (!keep || close_here) return false;
  record.executor_id.reset();
  record.updated_at = now;
  return true;
}

std::int64_t PostgresTaskExecutionsStorage::Impl::update_selected(
    Ctx& ctx, Query q, std::string_view where, Params where_params, std::string_view order_by,
    std::int64_t limit, const TaskExecutionUpdate& update) {
  const auto shape = shape_of(update, std::nullopt);
  const int where_count = where_params.next_index() - 1;
  Params params = std::move(where_params);
  params.add(limit);
  ScalarBindVisitor v{params};
  visit_update(update, std::nullopt, v);
  const auto r = ctx.exec(
      statement_key(q, shape),
      [&] { return text.update_selected(where, where_count, order_by, shape); }, params);
  return static_cast<std::int64_t>(r.affected_rows());
}

}  // namespace durable_execution
