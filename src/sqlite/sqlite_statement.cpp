// The statement wrapper and cache (sqlite_statement.hpp): thin calls into SQLite's C API that
// throw SQLite::Exception on failure. Entered by whichever thread holds the statement's connection.

#include "sqlite/sqlite_statement.hpp"

#include <SQLiteCpp/Exception.h>

#include <utility>

namespace durable_execution::sqlite {

Stmt::Stmt(sqlite3* db, std::string sql, Lifetime lifetime) : db_(db), sql_(std::move(sql)) {
  const unsigned flags = lifetime == Lifetime::persistent ? SQLITE_PREPARE_PERSISTENT : 0U;
  const int rc = sqlite3_prepare_v3(db_, sql_.c_str(), static_cast<int>(sql_.size() + 1), flags,
                                    &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt_);
    throw SQLite::Exception(db_, rc);
  }
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

void Stmt::reset() noexcept { (void)sqlite3_reset(stmt_); }

void Stmt::bind(int index, std::int64_t value) { check(sqlite3_bind_int64(stmt_, index, value)); }

void Stmt::bind_static(int index, std::string_view value) {
  check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8));
}

void Stmt::bind_copy(int index, std::string_view value) {
  check(
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
}

void Stmt::bind_null(int index) { check(sqlite3_bind_null(stmt_, index)); }

int Stmt::bind_all(int first, std::initializer_list<Param> params) {
  for (const auto& p : params) {
    if (const auto* i = std::get_if<std::int64_t>(&p)) {
      bind(first++, *i);
    } else {
      bind_static(first++, std::get<std::string_view>(p));
    }
  }
  return first;
}

bool Stmt::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw SQLite::Exception(db_, rc);
}

std::int64_t Stmt::exec() {
  while (step()) {
  }
  return sqlite3_changes64(db_);
}

int Stmt::type(int col) const noexcept { return sqlite3_column_type(stmt_, col); }

std::int64_t Stmt::int64(int col) const noexcept { return sqlite3_column_int64(stmt_, col); }

std::string_view Stmt::text(int col) const noexcept {
  const auto* p = sqlite3_column_text(stmt_, col);
  const auto n = sqlite3_column_bytes(stmt_, col);
  if (p == nullptr) return {};
  return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)};
}

void Stmt::check(int rc) const {
  if (rc != SQLITE_OK) throw SQLite::Exception(db_, rc);
}

void exec(sqlite3* db, std::string sql) {
  Stmt stmt(db, std::move(sql), Stmt::Lifetime::one_shot);
  (void)stmt.exec();
}

void try_exec(sqlite3* db, std::string sql) noexcept {
  try {
    exec(db, std::move(sql));
  } catch (...) {  // NOLINT(bugprone-empty-catch): the caller already reports the first failure
  }
}

void StatementCache::reset_all() noexcept {
  for (auto& [key, stmt] : statements_) stmt->reset();
}

void StatementCache::release_if_full() {
  if (statements_.size() >= kMaxStatements) statements_.clear();
}

void StatementCache::append_sql(std::vector<std::string>& out) const {
  for (const auto& [key, stmt] : statements_) out.push_back(stmt->sql());
}

}  // namespace durable_execution::sqlite
