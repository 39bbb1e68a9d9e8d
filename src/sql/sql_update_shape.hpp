#pragma once

// The shapes of updates, shared by the SQL backends (SPEC.md §9): which columns an update assigns
// (SetField), the values it assigns (visit_update), and the SET clause that does it (UpdateShape),
// which keys a backend's cached statements. Pure functions and constants: any thread may use them.
// Internal: not installed, included by the backends' sources only.

#include <array>
#include <bit>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "durable_execution/task_execution.hpp"
#include "sql/sql_columns.hpp"

namespace durable_execution::sql {

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

}  // namespace durable_execution::sql
