#pragma once

// Row encoding and decoding of the PostgreSQL backend, on top of the shared mapping (src/sql):
// statement parameters as libpq takes them (texts or NULL), a batch's columns and updates as
// array literals for `unnest`, and result rows read as text cells. Threads: any storage caller,
// on values of its own call (nothing here is shared).

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pg_text.hpp"
#include "sql/sql_mapping.hpp"

namespace durable_execution::postgres {

/**
 * The parameters of one statement execution as libpq takes them: NUL-terminated texts or NULL.
 * Strings that outlive the execution are referenced, temporaries are owned here.
 */
class Params {
 public:
  void ref(const std::string& value) { values_.push_back(value.c_str()); }
  void own(std::string value) {
    owned_.push_back(std::move(value));
    values_.push_back(owned_.back().c_str());
  }
  void add(std::int64_t value) { own(std::to_string(value)); }
  void add_bool(bool value) { values_.push_back(value ? "t" : "f"); }
  void add_null() { values_.push_back(nullptr); }
  [[nodiscard]] const std::vector<const char*>& values() const noexcept { return values_; }
  [[nodiscard]] int next_index() const noexcept { return static_cast<int>(values_.size()) + 1; }

 private:
  std::deque<std::string> owned_;  // a deque: c_str() pointers stay valid as it grows or moves
  std::vector<const char*> values_;
};

/** Appends an update's values as scalar parameters (one row's update, `$n` placeholders). */
struct ScalarBindVisitor {
  Params& params;
  void value(sql::SetField /*f*/, std::int64_t x) { params.add(x); }
  void value(sql::SetField /*f*/, std::string_view x) { params.own(std::string{x}); }
  void value(sql::SetField /*f*/, const std::string& x) { params.own(x); }
  void value(sql::SetField /*f*/, sql::Increment /*x*/) {}
  void null(sql::SetField /*f*/) {}
};

/** Per-field array literals of a batch of same-shape updates (one element per row). */
class UpdateArrays {
 public:
  /** Appends one row's update values (rows of one shape: shape_of(update, std::nullopt)). */
  void add(const TaskExecutionUpdate& update);
  /** Appends the arrays of the fields `shape` assigns a value, in SetField order. */
  void bind(const sql::UpdateShape& shape, Params& params);

 private:
  struct Visitor {
    std::array<ArrayLiteral, sql::s_field_count>& arrays;
    void value(sql::SetField f, std::int64_t x) { arrays[f].add(x); }
    void value(sql::SetField f, std::string_view x) { arrays[f].add(x); }
    void value(sql::SetField f, const std::string& x) { arrays[f].add(std::string_view{x}); }
    void value(sql::SetField /*f*/, sql::Increment /*x*/) {}
    void null(sql::SetField /*f*/) {}
  };
  std::array<ArrayLiteral, sql::s_field_count> arrays_;
};

/** The parameters of a multi-row INSERT: each column of `rows` (kColumns) as one array. */
[[nodiscard]] Params insert_params(const std::vector<const TaskExecutionRecord*>& rows);

/** A pqxx result row's cells as the shared RowReader reads them (text format). */
struct PgCells {
  const pqxx::row& row;

  [[nodiscard]] pqxx::field at(int col) const {
    return row[static_cast<pqxx::row::size_type>(col)];
  }
  [[nodiscard]] bool is_null(int col) const { return at(col).is_null(); }
  [[nodiscard]] std::optional<std::string_view> text(int col) const;
  [[nodiscard]] std::optional<std::int64_t> integer(int col) const;
  [[nodiscard]] std::optional<bool> boolean(int col) const;
};

/** The records of result rows laid out as `id, kColumns...` (damaged rows read as failed). */
[[nodiscard]] std::vector<TaskExecutionRecord> read_rows(const pqxx::result& r,
                                                         const std::string& table,
                                                         sql::DecodeCache& cache);

/** A text cell, or "" when NULL. */
[[nodiscard]] inline std::string text_or_empty(const pqxx::field& f) {
  return f.is_null() ? std::string{} : std::string{f.c_str()};
}

}  // namespace durable_execution::postgres
