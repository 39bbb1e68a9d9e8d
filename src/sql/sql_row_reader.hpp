#pragma once

// The damage-tolerant row reader shared by the SQL backends (SPEC.md §9.2): reads one result row,
// laid out as sql_columns.hpp says, through a backend's cells into a TaskExecutionRecord, and turns
// a damaged row into a failed record instead of throwing. Stateless but for the DecodeCache the
// caller passes (one per connection, so one thread at a time). Internal: not installed.

#include <chrono>
#include <cstdint>
#include <exception>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "durable_execution/errors.hpp"
#include "durable_execution/task_execution.hpp"
#include "sql/sql_columns.hpp"

namespace durable_execution::sql {

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
