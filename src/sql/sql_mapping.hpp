#pragma once

// The SQL mapping shared by the SQL backends (src/sqlite, src/postgres; SPEC.md §9): the column
// layout of the executions table, its indexes, the JSON text of the JSON columns, and the shapes
// of updates (which columns an update assigns, and the SET clause that does it). Internal: not
// installed, included by the backends' sources only.

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "durable_execution/errors.hpp"
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

// The columns an update can assign, in SET clause order. An update's shape (which columns it
// sets to a value and which to NULL) keys its cached statement, so the SQL text is built once
// per shape, not per call.
enum SetField : unsigned {
  s_executor_id,
  s_status,
  s_run_output,
  s_output,
  s_error,
  s_retry_attempts,
  s_start_at,
  s_started_at,
  s_expires_at,
  s_expires_at_from_base,  // expires_at = ? + timeout_ms, saturating (the claim: per-row timeouts)
  s_children,
  s_active_children_count,
  s_ocfp_status,
  s_ocfp_expires_at,
  s_ocfp_finished_at,
  s_finalize,
  s_close_status,
  s_close_expires_at,
  s_closed_at,
  s_needs_promise_cancellation,
  s_is_finished,
  s_finished_at,
  s_updated_at,
  s_increment_lease_expirations,  // lease_expirations = lease_expirations + 1 (no parameter)
  s_field_count,
};
static_assert(s_field_count <= 32);

/** Whether an assigned field binds a value (s_increment_lease_expirations is computed in SQL). */
constexpr bool binds_value(SetField f) { return f != s_increment_lease_expirations; }

constexpr std::array<std::string_view, s_field_count> kSetColumns{
    "executor_id",
    "status",
    "run_output",
    "output",
    "error",
    "retry_attempts",
    "start_at",
    "started_at",
    "expires_at",
    "expires_at",
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
    "is_finished",
    "finished_at",
    "updated_at",
    "lease_expirations",
};

/** The value of s_increment_lease_expirations: computed in SQL, nothing to bind. */
struct Increment {};

/**
 * `base + timeout` in SQL, saturating at the bounds of a 64-bit integer (as
 * detail::saturating_add): SQLite would turn an overflow into a REAL, which no INTEGER column
 * should hold, and PostgreSQL raises an error. Nested CASEs, so that no subtraction is evaluated
 * for a timeout of the other sign (PostgreSQL does not promise the evaluation order of AND): no
 * branch can overflow. `base` may be repeated in the text (a numbered parameter or a column).
 */
inline std::string saturating_add_sql(std::string_view base, std::string_view timeout) {
  const std::string b{base};
  const std::string t{timeout};
  return "CASE WHEN " + t + " > 0 THEN CASE WHEN " + b + " > 9223372036854775807 - " + t +
         " THEN 9223372036854775807 ELSE " + b + " + " + t + " END WHEN " + t +
         " < 0 THEN CASE WHEN " + b + " < (-9223372036854775807 - 1) - " + t +
         " THEN (-9223372036854775807 - 1) ELSE " + b + " + " + t + " END ELSE " + b + " END";
}

/**
 * Calls `v.value(field, x)` (x: int64, string_view into `u` or a static string, or a temporary
 * std::string, or Increment for s_increment_lease_expirations) or `v.null(field)` for every
 * column the update assigns, in SetField order.
 * Unset directives win over set values, as in apply_update(). With `expires_at_base`,
 * expires_at is computed per row as base + the row's own timeout.
 */
template <class V>
void visit_update(const TaskExecutionUpdate& u, std::optional<Timestamp> expires_at_base, V& v) {
  auto text_opt = [&](SetField f, const std::optional<std::string>& x, bool unset) {
    if (unset) {
      v.null(f);
    } else if (x) {
      v.value(f, std::string_view{*x});
    }
  };
  auto time_opt = [&](SetField f, const std::optional<Timestamp>& x, bool unset) {
    if (unset) {
      v.null(f);
    } else if (x) {
      v.value(f, ms(*x));
    }
  };
  text_opt(s_executor_id, u.executor_id, u.unset_executor_id);
  if (u.status) v.value(s_status, to_string(*u.status));
  text_opt(s_run_output, u.run_output, u.unset_run_output);
  text_opt(s_output, u.output, false);
  if (u.unset_error) {
    v.null(s_error);
  } else if (u.error) {
    v.value(s_error, json_text(*u.error));
  }
  if (u.retry_attempts) v.value(s_retry_attempts, std::int64_t{*u.retry_attempts});
  time_opt(s_start_at, u.start_at, false);
  time_opt(s_started_at, u.started_at, false);
  if (expires_at_base) {
    v.value(s_expires_at_from_base, ms(*expires_at_base));
  } else {
    time_opt(s_expires_at, u.expires_at, u.unset_expires_at);
  }
  if (u.children) v.value(s_children, children_json(*u.children));
  if (u.active_children_count) {
    v.value(s_active_children_count, std::int64_t{*u.active_children_count});
  }
  if (u.on_children_finished_processing_status) {
    v.value(s_ocfp_status, to_string(*u.on_children_finished_processing_status));
  }
  time_opt(s_ocfp_expires_at, u.on_children_finished_processing_expires_at,
           u.unset_on_children_finished_processing_expires_at);
  time_opt(s_ocfp_finished_at, u.on_children_finished_processing_finished_at, false);
  if (u.finalize) v.value(s_finalize, json_text(*u.finalize));
  if (u.close_status) v.value(s_close_status, to_string(*u.close_status));
  time_opt(s_close_expires_at, u.close_expires_at, u.unset_close_expires_at);
  time_opt(s_closed_at, u.closed_at, false);
  if (u.needs_promise_cancellation) {
    v.value(s_needs_promise_cancellation, b(*u.needs_promise_cancellation));
  }
  if (u.is_finished) v.value(s_is_finished, b(*u.is_finished));
  time_opt(s_finished_at, u.finished_at, false);
  v.value(s_updated_at, ms(u.updated_at));
  if (u.increment_lease_expirations) v.value(s_increment_lease_expirations, Increment{});
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

/** Which columns an update assigns a value (`set`) or NULL (`null`): its statement's shape. */
struct UpdateShape {
  std::uint32_t set = 0;
  std::uint32_t null = 0;

  [[nodiscard]] std::uint64_t key() const {
    return static_cast<std::uint64_t>(set) | (static_cast<std::uint64_t>(null) << 32);
  }

  /**
   * The SET clause: column assignments in SetField order, each assigned column's value written as
   * `value_expr(field)` (a parameter placeholder, or a column of a joined list of values; for
   * s_expires_at_from_base the whole saturating expression, see saturating_add_sql). Fields that
   * bind no value (binds_value) are written here and never passed to `value_expr`.
   */
  template <class ValueExpr>
  [[nodiscard]] std::string sql(ValueExpr&& value_expr) const {
    std::string out;
    for (unsigned f = 0; f < s_field_count; ++f) {
      const bool is_set = (set >> f) & 1U;
      const bool is_null = (null >> f) & 1U;
      if (!is_set && !is_null) continue;
      if (!out.empty()) out += ", ";
      out += kSetColumns[f];
      if (is_null) {
        out += " = NULL";
      } else if (f == s_increment_lease_expirations) {
        out += " = lease_expirations + 1";
      } else {
        out += " = ";
        out += value_expr(static_cast<SetField>(f));
      }
    }
    return out;
  }

  /**
   * The SET clause with `?` placeholders (SQLite). Expires_at from the base is saturating, its
   * base bound once as parameter N (the set columns before it bind 1..N-1).
   */
  [[nodiscard]] std::string sql() const {
    return sql([this](SetField f) {
      if (f != s_expires_at_from_base) return std::string{"?"};
      const auto n = "?" + std::to_string(1 + std::popcount(set & ((1U << f) - 1U)));
      return saturating_add_sql(n, "timeout_ms");
    });
  }
};

struct ShapeVisitor {
  UpdateShape shape;
  void value(SetField f, const auto& /*value*/) { shape.set |= 1U << f; }
  void null(SetField f) { shape.null |= 1U << f; }
};

inline UpdateShape shape_of(const TaskExecutionUpdate& u,
                            std::optional<Timestamp> expires_at_base) {
  ShapeVisitor v;
  visit_update(u, expires_at_base, v);
  return v.shape;
}

// ---- reading rows ----------------------------------------------------------------------------

// A row another program damaged (text where a number belongs, malformed JSON, an unknown status,
// a value out of range) must not stop anything else: every column is read, a damaged one is
// replaced by its default, and the first damage found turns the record into a `failed` one whose
// error names the column ("corrupt record: column ..."). Claims then set such rows aside in
// storage, so that no claim selects them again.

/** The first damaged column of a row being read. */
struct RowDamage {
  std::string_view column;
  std::string detail;
};

/** Decoded JSON values that repeat across rows (retry options), per connection. */
struct DecodeCache {
  std::string retry_options_text;
  RetryOptions retry_options{};
  bool has_retry_options = false;
};

/**
 * Reads the columns of one result row (laid out as `id, kColumns...`, see Col) through a
 * backend's cells: `is_null(col)`, `text(col)` and `integer(col)` (nullopt when the cell has
 * another type), optionally `boolean(col)` (else booleans are the integers 0 and 1) and
 * `type_name(col)` (the cell's type, for messages). Never throws for what a cell holds: the
 * first damage is recorded in `damage` and a default value is returned.
 */
template <class Cells>
struct RowReader {
  const Cells& cells;
  std::optional<RowDamage>& damage;

  [[nodiscard]] static std::string_view name(int col) {
    return kColumns[static_cast<std::size_t>(col - 1)];
  }
  void damaged(int col, std::string detail) const {
    if (!damage) damage = RowDamage{name(col), std::move(detail)};
  }
  void wrong_type(int col, std::string_view expected) const {
    std::string detail = "expected " + std::string{expected};
    if constexpr (requires { cells.type_name(col); }) {
      detail += ", found " + std::string{cells.type_name(col)};
    }
    damaged(col, std::move(detail));
  }
  [[nodiscard]] bool is_null(int col) const { return cells.is_null(col); }

  [[nodiscard]] std::optional<std::string_view> text_view(int col) const {
    auto value = cells.text(col);
    if (!value) wrong_type(col, "TEXT");
    return value;
  }
  [[nodiscard]] std::string text(int col) const {
    const auto v = text_view(col);
    return v ? std::string{*v} : std::string{};
  }
  [[nodiscard]] std::optional<std::string> opt_text(int col) const {
    if (is_null(col)) return std::nullopt;
    const auto v = text_view(col);
    if (!v) return std::nullopt;
    return std::string{*v};
  }
  [[nodiscard]] std::optional<std::int64_t> checked_integer(int col) const {
    auto value = cells.integer(col);
    if (!value) wrong_type(col, "INTEGER");
    return value;
  }
  [[nodiscard]] std::int64_t integer(int col) const { return checked_integer(col).value_or(0); }
  [[nodiscard]] std::int32_t int32(int col) const {
    const auto v = integer(col);
    if (v < std::numeric_limits<std::int32_t>::min() ||
        v > std::numeric_limits<std::int32_t>::max()) {
      damaged(col, "integer out of range: " + std::to_string(v));
      return 0;
    }
    return static_cast<std::int32_t>(v);
  }
  [[nodiscard]] bool boolean(int col) const {
    if constexpr (requires { cells.boolean(col); }) {
      const std::optional<bool> value = cells.boolean(col);
      if (!value) {
        wrong_type(col, "a boolean");
        return false;
      }
      return *value;
    } else {
      const auto v = integer(col);
      if (v != 0 && v != 1) {
        damaged(col, "expected 0 or 1, found " + std::to_string(v));
        return false;
      }
      return v == 1;
    }
  }
  [[nodiscard]] Timestamp time(int col) const { return from_unix_ms(integer(col)); }
  [[nodiscard]] std::optional<Timestamp> opt_time(int col) const {
    if (is_null(col)) return std::nullopt;
    const auto v = checked_integer(col);
    if (!v) return std::nullopt;
    return from_unix_ms(*v);
  }
  /** `parse(text)` of a TEXT column; nullopt (and the damage noted) if it throws. */
  template <class F>
  [[nodiscard]] auto parsed(int col, F&& parse) const
      -> std::optional<decltype(parse(std::string_view{}))> {
    const auto value = text_view(col);
    if (!value) return std::nullopt;
    try {
      return parse(*value);
    } catch (const std::exception& e) {
      damaged(col, e.what());
      return std::nullopt;
    }
  }
  template <class T>
  [[nodiscard]] std::optional<T> json(int col) const {
    // nlohmann's parser does not recurse, and these types' from_json do not follow the nesting.
    return parsed(col, [](std::string_view v) { return nlohmann::json::parse(v).get<T>(); });
  }
  template <class T>
  [[nodiscard]] std::optional<T> opt_json(int col) const {
    if (is_null(col)) return std::nullopt;
    return json<T>(col);
  }
};

/**
 * Turns the record of a damaged row into what it is set aside as: `failed`, with a non-retryable,
 * internal error naming the column, and the fields a failed record does not have cleared.
 */
inline void mark_corrupt(TaskExecutionRecord& r, const RowDamage& damage, std::string_view backend,
                         const std::string& table, std::string_view execution_id) {
  r.status = TaskExecutionStatus::failed;
  r.is_finished = true;
  r.error = StoredError{ErrorType::generic, false, true,
                        "corrupt record: column " + std::string{damage.column} + ": " +
                            damage.detail + " (" + std::string{backend} + " table " + table +
                            ", execution id '" + std::string{execution_id} + "')"};
  if (!r.finished_at) r.finished_at = r.updated_at;
  r.executor_id.reset();
  r.run_output.reset();
  r.expires_at.reset();
  r.needs_promise_cancellation = false;
}

/**
 * The record of one result row (SPEC.md §9.2), read through a backend's cells (RowReader). Never
 * throws for what the row holds: a damaged row reads as a failed record (mark_corrupt) and sets
 * `*corrupt`.
 */
template <class Cells>
TaskExecutionRecord read_record(const Cells& cells, std::string_view backend,
                                const std::string& table, DecodeCache& cache,
                                bool* corrupt = nullptr) {
  std::optional<RowDamage> damage;
  const RowReader<Cells> row{cells, damage};
  TaskExecutionRecord r;
  if (!row.is_null(c_root_task_id) && !row.is_null(c_root_execution_id)) {
    auto root_task = row.text_view(c_root_task_id);
    auto root_exec = row.text_view(c_root_execution_id);
    if (root_task && root_exec && !root_task->empty() && !root_exec->empty()) {
      r.root = TaskExecutionSummary{std::string{*root_task}, std::string{*root_exec}};
    }
  }
  if (!row.is_null(c_parent_task_id) && !row.is_null(c_parent_execution_id)) {
    auto parent_task = row.text_view(c_parent_task_id);
    auto parent_exec = row.text_view(c_parent_execution_id);
    if (parent_task && parent_exec && !parent_task->empty() && !parent_exec->empty()) {
      ParentTaskExecutionSummary p;
      p.task_id = std::string{*parent_task};
      p.execution_id = std::string{*parent_exec};
      // SPEC.md §9.2: missing index defaults to 0 and flags to false (tested for NULL, not truth).
      if (!row.is_null(c_index_in_parent_children)) {
        p.index_in_parent_children = row.int32(c_index_in_parent_children);
      }
      if (!row.is_null(c_is_only_child_of_parent)) {
        p.is_only_child_of_parent = row.boolean(c_is_only_child_of_parent);
      }
      if (!row.is_null(c_is_finalize_of_parent)) {
        p.is_finalize_of_parent = row.boolean(c_is_finalize_of_parent);
      }
      r.parent = std::move(p);
    }
  }
  r.task_id = row.text(c_task_id);
  r.execution_id = row.text(c_execution_id);
  if (const auto text = row.text_view(c_retry_options)) {
    // Rows of one task share their retry options: decode each distinct text once.
    if (cache.has_retry_options && *text == cache.retry_options_text) {
      r.retry_options = cache.retry_options;
    } else if (auto decoded = row.template json<RetryOptions>(c_retry_options)) {
      cache.retry_options = *decoded;
      cache.retry_options_text.assign(*text);
      cache.has_retry_options = true;
      r.retry_options = *decoded;
    }
  }
  r.sleep_before_run = std::chrono::milliseconds{row.integer(c_sleep_ms_before_run)};
  r.timeout = std::chrono::milliseconds{row.integer(c_timeout_ms)};
  r.are_children_sequential = row.boolean(c_are_children_sequential);
  r.input = row.text(c_input);
  r.executor_id = row.opt_text(c_executor_id);
  r.is_sleeping_task = row.boolean(c_is_sleeping_task);
  r.sleeping_task_unique_id = row.opt_text(c_sleeping_task_unique_id);
  r.status = row.parsed(c_status, [](std::string_view s) { return parse_task_execution_status(s); })
                 .value_or(TaskExecutionStatus::failed);
  r.is_finished = row.boolean(c_is_finished);
  r.run_output = row.opt_text(c_run_output);
  r.output = row.opt_text(c_output);
  r.error = row.template opt_json<StoredError>(c_error);
  r.retry_attempts = row.int32(c_retry_attempts);
  r.start_at = row.time(c_start_at);
  r.started_at = row.opt_time(c_started_at);
  r.expires_at = row.opt_time(c_expires_at);
  r.finished_at = row.opt_time(c_finished_at);
  if (!row.is_null(c_children)) {
    if (const auto text = row.text_view(c_children)) {
      auto plain = parse_plain_children(*text);
      r.children = plain ? std::move(plain)
                         : row.template json<std::vector<TaskExecutionSummary>>(c_children);
    }
  }
  r.active_children_count = row.int32(c_active_children_count);
  r.on_children_finished_processing_status =
      row.parsed(c_on_children_finished_processing_status,
                 [](std::string_view s) { return parse_on_children_finished_processing_status(s); })
          .value_or(OnChildrenFinishedProcessingStatus::idle);
  r.on_children_finished_processing_expires_at =
      row.opt_time(c_on_children_finished_processing_expires_at);
  r.on_children_finished_processing_finished_at =
      row.opt_time(c_on_children_finished_processing_finished_at);
  r.finalize = row.template opt_json<TaskExecutionSummary>(c_finalize);
  r.close_status =
      row.parsed(c_close_status, [](std::string_view s) { return parse_close_status(s); })
          .value_or(CloseStatus::idle);
  r.close_expires_at = row.opt_time(c_close_expires_at);
  r.closed_at = row.opt_time(c_closed_at);
  r.needs_promise_cancellation = row.boolean(c_needs_promise_cancellation);
  r.created_at = row.time(c_created_at);
  r.updated_at = row.time(c_updated_at);
  r.lease_expirations = row.int32(c_lease_expirations);
  if (corrupt != nullptr) *corrupt = damage.has_value();
  if (damage) {
    const auto id = cells.text(c_execution_id);
    mark_corrupt(r, *damage, backend, table, id ? *id : std::string_view{"(unreadable)"});
  }
  return r;
}

}  // namespace durable_execution::sql
