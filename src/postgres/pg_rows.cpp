// Row encoding and decoding of the PostgreSQL backend (see pg_rows.hpp). Entered by any storage
// caller, on its own call's values.
#include "pg_rows.hpp"

#include <charconv>

namespace durable_execution::postgres {

void UpdateArrays::add(const TaskExecutionUpdate& update) {
  Visitor v{arrays_};
  sql::visit_update(update, std::nullopt, v);
}

void UpdateArrays::bind(const sql::UpdateShape& shape, Params& params) {
  for (unsigned k = 0; k < sql::s_field_count; ++k) {
    if (((shape.set >> k) & 1U) != 0 && sql::binds_value(static_cast<sql::SetField>(k))) {
      params.own(arrays_[k].take());
    }
  }
}

Params insert_params(const std::vector<const TaskExecutionRecord*>& rows) {
  struct Columns {
    std::array<ArrayLiteral, sql::kColumns.size()> cols;
    std::size_t i = 0;
    std::string retry_text;
    const RetryOptions* retry_of_text = nullptr;
    void value(std::string_view v) { cols[i++].add(v); }
    void value(std::int64_t v) { cols[i++].add(v); }
    void null() { cols[i++].add_null(); }
    void retry_options(const RetryOptions& r) {
      if (retry_of_text == nullptr || !(*retry_of_text == r)) {
        retry_text = sql::json_text(r);
        retry_of_text = &r;
      }
      value(retry_text);
    }
  } v;
  for (const auto* r : rows) {
    v.i = 0;
    sql::visit_record(*r, v);
  }
  Params params;
  for (auto& col : v.cols) params.own(col.take());
  return params;
}

std::optional<std::string_view> PgCells::text(int col) const {
  const auto f = at(col);
  if (f.is_null()) return std::nullopt;
  return std::string_view{f.c_str(), f.size()};
}

std::optional<std::int64_t> PgCells::integer(int col) const {
  const auto f = at(col);
  if (f.is_null()) return std::nullopt;
  std::int64_t v = 0;
  const char* end = f.c_str() + f.size();
  const auto [ptr, ec] = std::from_chars(f.c_str(), end, v);
  if (ec != std::errc{} || ptr != end) return std::nullopt;
  return v;
}

std::optional<bool> PgCells::boolean(int col) const {
  const auto f = at(col);
  if (f.is_null() || f.size() != 1) return std::nullopt;
  if (f.c_str()[0] == 't') return true;
  if (f.c_str()[0] == 'f') return false;
  return std::nullopt;
}

std::vector<TaskExecutionRecord> read_rows(const pqxx::result& r, const std::string& table,
                                           sql::DecodeCache& cache) {
  std::vector<TaskExecutionRecord> out;
  out.reserve(r.size());
  for (const auto& row : r)
    out.push_back(sql::read_record(PgCells{row}, "PostgreSQL", table, cache));
  return out;
}

}  // namespace durable_execution::postgres
