#pragma once

// The one statement API of the SQLite backend: Stmt, a prepared statement on SQLite's C API, and
// StatementCache, a connection's prepared statements by key. Every statement the backend runs
// (queries, transaction control, pragmas, schema changes) goes through Stmt. Threads: a Stmt and a
// StatementCache belong to one connection, used by one thread at a time (the storage's callers
// under the connection's mutex, the checkpoint thread on its own connection, the opening thread).

#include <sqlite3.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace durable_execution::sqlite {

/** A parameter value: an integer, or text bound without a copy (it outlives the statement run). */
using Param = std::variant<std::int64_t, std::string_view>;

/**
 * A prepared statement on SQLite's C API. SQLiteCpp's Statement copies every bound string and
 * hands out a Column (a shared_ptr copy) per column read; on the engine's hot path those costs
 * were a large part of a write transaction, so the storage binds and reads through this instead.
 * Errors are thrown as SQLite::Exception, like SQLiteCpp's, so one translation covers both.
 */
class Stmt {
 public:
  /** Persistent statements are cached and run many times; one-shot ones run once. */
  enum class Lifetime { persistent, one_shot };

  Stmt(sqlite3* db, std::string sql, Lifetime lifetime = Lifetime::persistent);
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt(Stmt&&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt();

  [[nodiscard]] const std::string& sql() const noexcept { return sql_; }
  void reset() noexcept;

  void bind(int index, std::int64_t value);
  /** Binds text that stays alive and unchanged until the statement is stepped to completion. */
  void bind_static(int index, std::string_view value);
  /** Binds a copy of the text (for temporaries). */
  void bind_copy(int index, std::string_view value);
  void bind_null(int index);
  /** Binds `params` (text without a copy) from parameter `first` on; returns the next index. */
  int bind_all(int first, std::initializer_list<Param> params);

  /** One step: true if a row is available. */
  bool step();
  /** Runs to completion; returns the number of rows changed. */
  std::int64_t exec();

  [[nodiscard]] int type(int col) const noexcept;
  [[nodiscard]] bool is_null(int col) const noexcept { return type(col) == SQLITE_NULL; }
  [[nodiscard]] std::int64_t int64(int col) const noexcept;
  [[nodiscard]] std::string_view text(int col) const noexcept;

 private:
  void check(int rc) const;

  sqlite3* db_;
  std::string sql_;
  sqlite3_stmt* stmt_ = nullptr;
};

/** Prepares and runs one statement once, reading no rows (a pragma, a schema change). */
void exec(sqlite3* db, std::string sql);
/** Like exec, but a failure is ignored (ROLLBACK after an error, when none may be open). */
void try_exec(sqlite3* db, std::string sql) noexcept;

/**
 * A connection's prepared statements, by a key that stands for the statement's text (the query
 * and the shape of its SQL). A statement is prepared on first use and reused after.
 */
class StatementCache {
 public:
  /** Beyond this many statements, release_if_full() drops them all (it guards misuse only). */
  static constexpr std::size_t kMaxStatements = 512;

  /** The statement for `key`, prepared from `make_sql()` on first use; reset for a new run. */
  template <class MakeSql>
  Stmt& get(sqlite3* db, std::uint64_t key, MakeSql&& make_sql) {
    auto it = statements_.find(key);
    if (it == statements_.end()) {
      it = statements_.emplace(key, std::make_unique<Stmt>(db, make_sql())).first;
    } else {
      it->second->reset();
    }
    return *it->second;
  }

  /** Resets every statement (releases read cursors, e.g. before COMMIT). */
  void reset_all() noexcept;
  /** Drops every statement if there are kMaxStatements; call between transactions only. */
  void release_if_full();
  [[nodiscard]] std::size_t size() const noexcept { return statements_.size(); }
  /** Appends the text of every cached statement to `out`. */
  void append_sql(std::vector<std::string>& out) const;

 private:
  std::unordered_map<std::uint64_t, std::unique_ptr<Stmt>> statements_;
};

}  // namespace durable_execution::sqlite
