// Unit tests of the SQLite backend's parts (src/sqlite): the statement wrapper and cache, the row
// codec's round trip and its damage-tolerant reading, and the schema's versioning. The parts'
// sources are compiled into this executable (they are internal, not exported).

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sql/sql_columns.hpp"
#include "sqlite/sqlite_row_codec.hpp"
#include "sqlite/sqlite_schema.hpp"
#include "sqlite/sqlite_statement.hpp"
#include "sqlite_test_support.hpp"

namespace de = durable_execution;
namespace sq = durable_execution::sqlite;
using de::testing::SqliteFileTest;

namespace {

class SqliteInternals : public SqliteFileTest {
 protected:
  void SetUp() override {
    SqliteFileTest::SetUp();
    db_.emplace(path_, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  }
  void TearDown() override {
    db_.reset();
    SqliteFileTest::TearDown();
  }
  sqlite3* handle() { return db_->getHandle(); }

  std::optional<SQLite::Database> db_;
};

// ---- statement wrapper and cache --------------------------------------------------------------

TEST_F(SqliteInternals, StatementBindsStepsAndCountsChanges) {
  sq::exec(handle(), "CREATE TABLE t (i INTEGER, s TEXT)");
  sq::Stmt insert(handle(), "INSERT INTO t VALUES (?, ?)");
  const std::string text = "hello";
  EXPECT_EQ(insert.bind_all(1, {std::int64_t{7}, std::string_view{text}}), 3);
  EXPECT_EQ(insert.exec(), 1);
  insert.reset();
  insert.bind(1, 8);
  insert.bind_null(2);
  EXPECT_EQ(insert.exec(), 1);

  sq::Stmt select(handle(), "SELECT i, s FROM t ORDER BY i", sq::Stmt::Lifetime::one_shot);
  ASSERT_TRUE(select.step());
  EXPECT_EQ(select.int64(0), 7);
  EXPECT_EQ(select.text(1), "hello");
  ASSERT_TRUE(select.step());
  EXPECT_TRUE(select.is_null(1));
  EXPECT_EQ(select.type(0), SQLITE_INTEGER);
  EXPECT_FALSE(select.step());
}

TEST_F(SqliteInternals, StatementErrorsAreSqliteExceptionsAndTryExecSwallowsThem) {
  try {
    sq::Stmt bad(handle(), "SELECT * FROM no_such_table");
    FAIL() << "prepared a statement on a missing table";
  } catch (const SQLite::Exception& e) {
    EXPECT_EQ(e.getErrorCode(), SQLITE_ERROR);
  }
  sq::exec(handle(), "CREATE TABLE u (k INTEGER PRIMARY KEY)");
  sq::exec(handle(), "INSERT INTO u VALUES (1)");
  try {
    sq::exec(handle(), "INSERT INTO u VALUES (1)");
    FAIL() << "inserted a duplicate key";
  } catch (const SQLite::Exception& e) {
    EXPECT_EQ(e.getExtendedErrorCode(), SQLITE_CONSTRAINT_PRIMARYKEY);
  }
  sq::try_exec(handle(), "ROLLBACK");  // no transaction open: ignored
  sq::try_exec(handle(), "not sql");
}

TEST_F(SqliteInternals, StatementCachePreparesEachKeyOnce) {
  sq::StatementCache cache;
  int prepared = 0;
  auto make = [&](std::string sql) {
    return [&prepared, sql] {
      ++prepared;
      return sql;
    };
  };
  auto& a = cache.get(handle(), 1, make("SELECT 1"));
  auto& again = cache.get(handle(), 1, make("SELECT 1"));
  auto& b = cache.get(handle(), 2, make("SELECT 2"));
  EXPECT_EQ(&a, &again);
  EXPECT_NE(&a, &b);
  EXPECT_EQ(prepared, 2);
  EXPECT_EQ(cache.size(), 2U);

  // A statement handed out again is reset: it runs from its first row.
  ASSERT_TRUE(a.step());
  auto& reset = cache.get(handle(), 1, make("SELECT 1"));
  ASSERT_TRUE(reset.step());
  EXPECT_EQ(reset.int64(0), 1);

  std::vector<std::string> sql;
  cache.append_sql(sql);
  std::sort(sql.begin(), sql.end());
  EXPECT_EQ(sql, (std::vector<std::string>{"SELECT 1", "SELECT 2"}));

  cache.release_if_full();  // far below the cap: kept
  EXPECT_EQ(cache.size(), 2U);
  for (std::uint64_t k = 3; k <= sq::StatementCache::kMaxStatements; ++k) {
    (void)cache.get(handle(), k, [] { return std::string{"SELECT 3"}; });
  }
  cache.release_if_full();
  EXPECT_EQ(cache.size(), 0U);
}

// ---- row codec ----------------------------------------------------------------------------------

/** A record with every optional field set, and JSON that needs escaping. */
de::TaskExecutionRecord full_record() {
  auto r = de::testing::ready_record();
  const auto t = de::testing::test_now();
  r.root = de::TaskExecutionSummary{"root_task", "root_exec"};
  r.parent = de::ParentTaskExecutionSummary{"parent_task", "parent_exec", 3, true, false};
  r.is_sleeping_task = true;
  r.sleeping_task_unique_id = "sleep-1";
  r.retry_options = {.max_attempts = 4,
                     .base_delay = std::chrono::milliseconds{10},
                     .delay_multiplier = 1.5,
                     .max_delay = std::chrono::milliseconds{900}};
  r.sleep_before_run = std::chrono::milliseconds{25};
  r.are_children_sequential = true;
  r.input = R"({"x":"quote \" and \\ backslash"})";
  r.executor_id = "executor-a";
  r.status = de::TaskExecutionStatus::running;
  r.run_output = "run";
  r.output = "out";
  r.error = de::StoredError{de::ErrorType::timed_out, true, false, "slow \"run\""};
  r.retry_attempts = 2;
  r.started_at = t + std::chrono::milliseconds{1};
  r.expires_at = t + std::chrono::milliseconds{2};
  r.finished_at = t + std::chrono::milliseconds{3};
  r.children = std::vector<de::TaskExecutionSummary>{{"child", "c1"}, {"child \"q\"", "c2"}};
  r.active_children_count = 2;
  r.on_children_finished_processing_status = de::OnChildrenFinishedProcessingStatus::processing;
  r.on_children_finished_processing_expires_at = t + std::chrono::milliseconds{4};
  r.on_children_finished_processing_finished_at = t + std::chrono::milliseconds{5};
  r.finalize = de::TaskExecutionSummary{"finalize_task", "f1"};
  r.close_status = de::CloseStatus::closing;
  r.close_expires_at = t + std::chrono::milliseconds{6};
  r.closed_at = t + std::chrono::milliseconds{7};
  r.needs_promise_cancellation = true;
  r.lease_expirations = 5;
  return r;
}

class SqliteRowCodec : public SqliteInternals {
 protected:
  void SetUp() override {
    SqliteInternals::SetUp();
    sq::Schema("row codec test", "t").migrate(handle());
  }

  void insert(const de::TaskExecutionRecord& r) {
    std::string columns;
    std::string params;
    for (auto c : de::sql::kColumns) {
      columns += columns.empty() ? "" : ", ";
      params += params.empty() ? "?" : ", ?";
      columns += c;
    }
    sq::Stmt stmt(handle(), "INSERT INTO t (" + columns + ") VALUES (" + params + ")");
    sq::bind_record(stmt, r, retry_options_);
    EXPECT_EQ(stmt.exec(), 1);
  }

  /** The stored row of `execution_id` read back, and whether it read as corrupt. */
  std::pair<de::TaskExecutionRecord, bool> read(const std::string& execution_id) {
    std::string columns = "id";
    for (auto c : de::sql::kColumns) columns += std::string{", "} + std::string{c};
    sq::Stmt stmt(handle(), "SELECT " + columns + " FROM t WHERE execution_id = ?");
    stmt.bind_static(1, execution_id);
    EXPECT_TRUE(stmt.step());
    bool corrupt = false;
    auto r = sq::read_record(stmt, "t", decode_, &corrupt);
    return {std::move(r), corrupt};
  }

  sq::RetryOptionsText retry_options_;
  de::sql::DecodeCache decode_;
};

TEST_F(SqliteRowCodec, FullRecordRoundTrips) {
  const auto r = full_record();
  insert(r);
  const auto [back, corrupt] = read(r.execution_id);
  EXPECT_FALSE(corrupt);
  EXPECT_EQ(back, r);
}

TEST_F(SqliteRowCodec, MinimalRecordRoundTripsAndEmptyChildrenStayEmpty) {
  auto r = de::testing::ready_record();
  insert(r);
  auto r2 = de::testing::ready_record();
  r2.children = std::vector<de::TaskExecutionSummary>{};
  insert(r2);
  EXPECT_EQ(read(r.execution_id).first, r);
  EXPECT_EQ(read(r2.execution_id).first, r2);
}

TEST_F(SqliteRowCodec, RetryOptionsTextIsReusedForEqualOptions) {
  const de::RetryOptions a{.max_attempts = 2};
  const auto& first = retry_options_.json(a);
  const auto* first_data = first.data();
  EXPECT_EQ(&retry_options_.json(a), &first);
  EXPECT_EQ(retry_options_.json(a).data(), first_data);
  EXPECT_EQ(retry_options_.json(a), de::sql::json_text(a));
  EXPECT_EQ(retry_options_.json(de::RetryOptions{.max_attempts = 3}),
            de::sql::json_text(de::RetryOptions{.max_attempts = 3}));
}

TEST_F(SqliteRowCodec, DamagedColumnReadsAsFailedRecordNamingTheColumn) {
  const auto r = full_record();
  insert(r);
  sq::Stmt damage(handle(), "UPDATE t SET retry_attempts = 'many' WHERE execution_id = ?");
  damage.bind_static(1, r.execution_id);
  ASSERT_EQ(damage.exec(), 1);
  const auto [back, corrupt] = read(r.execution_id);
  EXPECT_TRUE(corrupt);
  EXPECT_EQ(back.status, de::TaskExecutionStatus::failed);
  EXPECT_TRUE(back.is_finished);
  ASSERT_TRUE(back.error.has_value());
  EXPECT_FALSE(back.error->is_retryable);
  EXPECT_NE(back.error->message.find("column retry_attempts"), std::string::npos)
      << back.error->message;
  EXPECT_NE(back.error->message.find(r.execution_id), std::string::npos);
  EXPECT_FALSE(back.executor_id.has_value());
  EXPECT_EQ(back.task_id, r.task_id);  // undamaged columns still read
}

// ---- schema
// ---------------------------------------------------------------------------------------

TEST(SqliteSchema, TableNames) {
  EXPECT_TRUE(sq::is_valid_table_name("task_executions"));
  EXPECT_TRUE(sq::is_valid_table_name("_T9"));
  EXPECT_FALSE(sq::is_valid_table_name(""));
  EXPECT_FALSE(sq::is_valid_table_name("9lives"));
  EXPECT_FALSE(sq::is_valid_table_name("has space"));
  EXPECT_FALSE(sq::is_valid_table_name("SQLite_master"));
  EXPECT_FALSE(sq::is_valid_table_name("Durable_Execution_Schema"));
  EXPECT_FALSE(sq::is_valid_table_name(std::string(64, 'a')));
}

TEST_F(SqliteInternals, SchemaMigratesOnceAndRecordsItsVersion) {
  const sq::Schema schema("schema test", "jobs");
  EXPECT_EQ(schema.read_version(handle()), std::nullopt);
  schema.migrate(handle());
  schema.migrate(handle());  // a second open finds the current version: nothing to do
  EXPECT_EQ(schema.read_version(handle()),
            std::optional<std::int64_t>{de::SqliteTaskExecutionsStorage::schema_version});
  EXPECT_NO_THROW(schema.refuse_newer(de::SqliteTaskExecutionsStorage::schema_version));
  EXPECT_THROW(schema.refuse_newer(de::SqliteTaskExecutionsStorage::schema_version + 1),
               de::DurableExecutionError);
}

}  // namespace
