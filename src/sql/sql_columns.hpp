#pragma once

// The row layout shared by the SQL backends (src/sqlite, src/postgres; SPEC.md §9): the columns of
// the executions table, its indexes, how values and JSON columns are written, and the one mapping
// of a record onto a row (visit_record). Pure functions and constants: any thread may use them.
// Internal: not installed, included by the backends' sources only.

#include <algorithm>
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "durable_execution/task_execution.hpp"

namespace durable_execution::sql {

// ---- table layout ----------------------------------------------------------------------------

// Column order of every row read (after the leading rowid) and of the INSERT statement.
constexpr std::array<std::string_view, 40> kColumns{
    "root_task_id",
    "root_execution_id",
    "parent_task_id",
    "parent_execution_id",
    "index_in_parent_children",
    "is_only_child_of_parent",
    "is_finalize_of_parent",
    "task_id",
    "execution_id",
    "retry_options",
    "sleep_ms_before_run",
    "timeout_ms",
    "are_children_sequential",
    "input",
    "executor_id",
    "is_sleeping_task",
    "sleeping_task_unique_id",
    "status",
    "is_finished",
    "run_output",
    "output",
    "error",
    "retry_attempts",
    "start_at",
    "started_at",
    "expires_at",
    "finished_at",
    "children",
    "active_children_count",
    "on_children_finished_processing_status",
    "on_children_finished_processing_expires_at",
    "on_children_finished_processing_finished_at",
    "finalize",
    "close_status",
    "close_expires_at",
    "closed_at",
    "needs_promise_cancellation",
    "created_at",
    "updated_at",
    "lease_expirations",  // version 2
};
/** Columns of version 1 of the table; later ones are added by migrations. */
constexpr std::size_t kColumnsV1 = 39;

enum Col : int {
  c_root_task_id = 1,  // 0 is the rowid
  c_root_execution_id,
  c_parent_task_id,
  c_parent_execution_id,
  c_index_in_parent_children,
  c_is_only_child_of_parent,
  c_is_finalize_of_parent,
  c_task_id,
  c_execution_id,
  c_retry_options,
  c_sleep_ms_before_run,
  c_timeout_ms,
  c_are_children_sequential,
  c_input,
  c_executor_id,
  c_is_sleeping_task,
  c_sleeping_task_unique_id,
  c_status,
  c_is_finished,
  c_run_output,
  c_output,
  c_error,
  c_retry_attempts,
  c_start_at,
  c_started_at,
  c_expires_at,
  c_finished_at,
  c_children,
  c_active_children_count,
  c_on_children_finished_processing_status,
  c_on_children_finished_processing_expires_at,
  c_on_children_finished_processing_finished_at,
  c_finalize,
  c_close_status,
  c_close_expires_at,
  c_closed_at,
  c_needs_promise_cancellation,
  c_created_at,
  c_updated_at,
  c_lease_expirations,
  c_count,
};
static_assert(c_count == kColumns.size() + 1);

// SPEC.md §4.2. Indexes on columns that are NULL for most rows are partial (`IS NOT NULL`):
// a row only pays for the indexes its state needs (a fresh top-level row touches 5 of 11), and
// SQLite and PostgreSQL still use them, because every query compares those columns (`= ?` or
// `< ?`), which implies NOT NULL.
struct IndexDef {
  std::string_view suffix;
  std::string_view columns;
  bool unique;
  std::string_view where;
};
constexpr std::array<IndexDef, 11> kIndexesV1{{
    {"execution_id", "execution_id", true, ""},
    {"sleeping_task_unique_id", "sleeping_task_unique_id", true,
     "sleeping_task_unique_id IS NOT NULL"},
    {"status_start_at", "status, start_at", false, ""},
    {"status_ocfp_status_acc_updated_at",
     "status, on_children_finished_processing_status, active_children_count, updated_at", false,
     ""},
    {"close_status_updated_at", "close_status, updated_at", false, ""},
    {"is_sleeping_task_expires_at", "is_sleeping_task, expires_at", false,
     "expires_at IS NOT NULL"},
    {"ocfp_expires_at", "on_children_finished_processing_expires_at", false,
     "on_children_finished_processing_expires_at IS NOT NULL"},
    {"close_expires_at", "close_expires_at", false, "close_expires_at IS NOT NULL"},
    {"executor_id_npc_updated_at", "executor_id, needs_promise_cancellation, updated_at", false,
     "executor_id IS NOT NULL"},
    {"parent_execution_id_is_finished", "parent_execution_id, is_finished", false,
     "parent_execution_id IS NOT NULL"},
    {"is_finished_close_status_updated_at", "is_finished, close_status, updated_at", false, ""},
}};

// ---- values ----------------------------------------------------------------------------------

inline std::int64_t b(bool v) { return v ? 1 : 0; }
inline std::int64_t ms(Timestamp t) { return to_unix_ms(t); }
// Invalid UTF-8 (say, in an error message taken from a foreign exception) is replaced, not
// thrown: a record must always be storable.
inline std::string json_text(const auto& value) {
  return nlohmann::json(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The `children` column is a list of {executionId, taskId} summaries, written and read for every
// parent: its JSON text is made and parsed directly in the common case (ids of printable ASCII
// without quotes or backslashes, as generate_execution_id and task ids are), in nlohmann's exact
// output format; anything else goes through nlohmann.
inline bool is_plain_json_string(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    const auto u = static_cast<unsigned char>(ch);
    return u >= 0x20 && u < 0x7f && ch != '"' && ch != '\\';
  });
}

inline std::string children_json(const std::vector<TaskExecutionSummary>& children) {
  std::size_t size = 2;
  for (const auto& c : children) {
    if (!is_plain_json_string(c.execution_id) || !is_plain_json_string(c.task_id)) {
      return json_text(children);
    }
    size += c.execution_id.size() + c.task_id.size() + 32;
  }
  std::string out;
  out.reserve(size);
  out += '[';
  for (std::size_t i = 0; i < children.size(); ++i) {
    if (i > 0) out += ',';
    out += R"({"executionId":")";
    out += children[i].execution_id;
    out += R"(","taskId":")";
    out += children[i].task_id;
    out += R"("})";
  }
  out += ']';
  return out;
}

/** Parses children_json's own format; nullopt for anything else (then nlohmann parses it). */
inline std::optional<std::vector<TaskExecutionSummary>> parse_plain_children(
    std::string_view text) {
  constexpr std::string_view kExec = R"({"executionId":")";
  constexpr std::string_view kTask = R"(","taskId":")";
  constexpr std::string_view kEnd = R"("})";
  std::vector<TaskExecutionSummary> out;
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') return std::nullopt;
  text = text.substr(1, text.size() - 2);
  auto take = [&](std::string_view prefix) {
    if (text.substr(0, prefix.size()) != prefix) return false;
    text.remove_prefix(prefix.size());
    return true;
  };
  auto string_until_quote = [&](std::string& into) {
    const auto end = text.find('"');
    if (end == std::string_view::npos) return false;
    const auto value = text.substr(0, end);
    if (!is_plain_json_string(value)) return false;
    into.assign(value);
    text.remove_prefix(end);
    return true;
  };
  while (!text.empty()) {
    if (!out.empty() && !take(",")) return std::nullopt;
    TaskExecutionSummary s;
    if (!take(kExec) || !string_until_quote(s.execution_id) || !take(kTask) ||
        !string_until_quote(s.task_id) || !take(kEnd)) {
      return std::nullopt;
    }
    out.push_back(std::move(s));
  }
  return out;
}

/**
 * Calls, for every column of kColumns in order, `v.value(x)` with the value a SQL backend stores
 * for `r` (x: a string_view into `r` or a static string, a temporary std::string of JSON built
 * here, or an int64: timestamps as unix milliseconds, booleans as 0/1), `v.null()` for NULL, or
 * `v.retry_options(r.retry_options)` for that JSON column (backends cache its text: most rows
 * share one retry policy). The one mapping of a record onto a row; its inverse is read_record.
 */
template <class V>
void visit_record(const TaskExecutionRecord& r, V& v) {
  auto text_opt = [&](const std::optional<std::string>& x) {
    x ? v.value(std::string_view{*x}) : v.null();
  };
  auto time_opt = [&](const std::optional<Timestamp>& x) { x ? v.value(ms(*x)) : v.null(); };
  if (r.root) {
    v.value(std::string_view{r.root->task_id});
    v.value(std::string_view{r.root->execution_id});
  } else {
    v.null();
    v.null();
  }
  if (r.parent) {
    v.value(std::string_view{r.parent->task_id});
    v.value(std::string_view{r.parent->execution_id});
    v.value(std::int64_t{r.parent->index_in_parent_children});
    v.value(b(r.parent->is_only_child_of_parent));
    v.value(b(r.parent->is_finalize_of_parent));
  } else {
    for (int k = 0; k < 5; ++k) v.null();
  }
  v.value(std::string_view{r.task_id});
  v.value(std::string_view{r.execution_id});
  v.retry_options(r.retry_options);
  v.value(std::int64_t{r.sleep_before_run.count()});
  v.value(std::int64_t{r.timeout.count()});
  v.value(b(r.are_children_sequential));
  v.value(std::string_view{r.input});
  text_opt(r.executor_id);
  v.value(b(r.is_sleeping_task));
  text_opt(r.sleeping_task_unique_id);
  v.value(to_string(r.status));
  v.value(b(r.is_finished));
  text_opt(r.run_output);
  text_opt(r.output);
  r.error ? v.value(json_text(*r.error)) : v.null();
  v.value(std::int64_t{r.retry_attempts});
  v.value(ms(r.start_at));
  time_opt(r.started_at);
  time_opt(r.expires_at);
  time_opt(r.finished_at);
  if (!r.children) {
    v.null();
  } else if (r.children->empty()) {
    v.value(std::string_view{"[]"});
  } else {
    v.value(children_json(*r.children));
  }
  v.value(std::int64_t{r.active_children_count});
  v.value(to_string(r.on_children_finished_processing_status));
  time_opt(r.on_children_finished_processing_expires_at);
  time_opt(r.on_children_finished_processing_finished_at);
  r.finalize ? v.value(json_text(*r.finalize)) : v.null();
  v.value(to_string(r.close_status));
  time_opt(r.close_expires_at);
  time_opt(r.closed_at);
  v.value(b(r.needs_promise_cancellation));
  v.value(ms(r.created_at));
  v.value(ms(r.updated_at));
  v.value(std::int64_t{r.lease_expirations});
}

}  // namespace durable_execution::sql
