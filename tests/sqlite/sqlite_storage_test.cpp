// SQLite-specific behaviour of SqliteTaskExecutionsStorage: query plans, table names, schema
// versions, unusable files, corrupt rows, NULL mapping, busy handling, persistence.

#include "durable_execution/sqlite/sqlite_storage.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "durable_execution/errors.hpp"
#include "sqlite_test_support.hpp"

namespace de = durable_execution;
using de::testing::claim_request;
using de::testing::ready_record;
using de::testing::ready_records;
using de::testing::SqliteFileTest;
using de::testing::test_now;
using namespace std::chrono_literals;

namespace {

/** A raw connection to the same file, bypassing the storage (to inspect or corrupt rows). */
SQLite::Database raw(const std::string& path) {
  return SQLite::Database(path, SQLite::OPEN_READWRITE, 5000);
}

std::optional<de::TaskExecutionRecord> get(de::TaskExecutionsStorage& s, const std::string& id) {
  return s.get_many_by_id({{id, {}}}).at(0);
}

/** Calls every storage method at least once, so that every statement gets prepared. */
void exercise_every_method(de::SqliteTaskExecutionsStorage& s) {
  const auto now = test_now();
  auto parent = ready_record(now);
  auto child = ready_record(now);
  child.parent =
      de::ParentTaskExecutionSummary{parent.task_id, parent.execution_id, 0, true, false};
  s.insert_many({parent});

  de::TaskExecutionUpdate running;
  running.status = de::TaskExecutionStatus::running;
  running.executor_id = "de_x";
  running.started_at = now;
  (void)s.update_by_status_and_start_at_less_than_and_return(claim_request("de_x", 10, now));

  de::TaskExecutionUpdate waiting;
  waiting.status = de::TaskExecutionStatus::waiting_for_children;
  waiting.run_output = "out";
  waiting.children = std::vector<de::TaskExecutionSummary>{{child.task_id, child.execution_id}};
  waiting.active_children_count = 1;
  s.update_many_by_id_and_insert_children_if_updated({{parent.execution_id,
                                                       {.status = de::TaskExecutionStatus::running},
                                                       de::normalize_update(now, waiting),
                                                       {child}}});
  de::TaskExecutionUpdate cancel;
  cancel.status = de::TaskExecutionStatus::cancelled;
  cancel.error = de::StoredError{de::ErrorType::cancelled, false, false, "cancelled"};
  cancel.needs_promise_cancellation = true;
  s.update_many_by_id(
      {{child.execution_id, {.is_finished = false}, de::normalize_update(now, cancel)}});
  s.update_many_by_parent_execution_id_and_is_finished(
      {{parent.execution_id, false, de::normalize_update(now, cancel)}});
  (void)s.get_many_by_id({{parent.execution_id, {}}});
  (void)s.get_many_by_sleeping_task_unique_id({{"nope"}});
  (void)s.get_many_by_parent_execution_id({{parent.execution_id}});

  de::TaskExecutionUpdate close_ready;
  close_ready.close_status = de::CloseStatus::ready;
  (void)s.update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
      {true, de::CloseStatus::idle, de::normalize_update(now, close_ready), 10});
  de::TaskExecutionUpdate processing;
  processing.on_children_finished_processing_status =
      de::OnChildrenFinishedProcessingStatus::processing;
  processing.on_children_finished_processing_expires_at = now + 1s;
  (void)s
      .update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
          {de::TaskExecutionStatus::waiting_for_children,
           de::OnChildrenFinishedProcessingStatus::idle, de::normalize_update(now, processing),
           10});
  de::TaskExecutionUpdate closing;
  closing.close_status = de::CloseStatus::closing;
  closing.close_expires_at = now + 1s;
  (void)s.update_by_close_status_and_return(
      {de::CloseStatus::ready, de::normalize_update(now, closing), 10});
  de::TaskExecutionUpdate expired;
  expired.status = de::TaskExecutionStatus::ready;
  expired.start_at = now;
  (void)s.update_by_is_sleeping_task_and_expires_at_less_than(
      {false, now + 1h, de::normalize_update(now, expired), 10});
  de::TaskExecutionUpdate idle;
  idle.on_children_finished_processing_status = de::OnChildrenFinishedProcessingStatus::idle;
  (void)s.update_by_on_children_finished_processing_expires_at_less_than(
      {now + 1h, de::normalize_update(now, idle), 10});
  de::TaskExecutionUpdate reopen;
  reopen.close_status = de::CloseStatus::ready;
  (void)s.update_by_close_expires_at_less_than({now + 1h, de::normalize_update(now, reopen), 10});
  de::TaskExecutionUpdate consumed;
  consumed.needs_promise_cancellation = false;
  (void)s.update_by_executor_id_and_needs_promise_cancellation_and_return(
      {"de_x", true, de::normalize_update(now, consumed), 10});
  s.delete_by_id({child.execution_id});
  s.delete_all();
}

}  // namespace

// ---- query plans -------------------------------------------------------------------------------

TEST_F(SqliteFileTest, EveryPreparedStatementIsServedByAnIndex) {
  de::SqliteTaskExecutionsStorage storage{path_};
  exercise_every_method(storage);
  const auto statements = storage.prepared_statement_sql();
  ASSERT_GE(statements.size(), 15U) << "every method should have prepared its statements";

  auto db = raw(path_);
  const std::string table = storage.table_name();
  for (const auto& sql : statements) {
    // DELETE without WHERE (the delete_all test helper) empties the table by definition.
    if (sql == "DELETE FROM \"" + table + "\"") continue;
    SQLite::Statement plan(db, "EXPLAIN QUERY PLAN " + sql);
    std::vector<std::string> details;
    while (plan.executeStep()) details.push_back(plan.getColumn(3).getString());
    if (sql.rfind("INSERT", 0) == 0) continue;  // inserts read nothing
    ASSERT_FALSE(details.empty()) << sql;
    for (const auto& d : details) {
      // "SCAN <table>" is a full table (or full index) walk; a temp B-tree means a sort that an
      // index should have made unnecessary.
      EXPECT_EQ(d.find("SCAN"), std::string::npos) << "full scan in: " << sql << "\n  plan: " << d;
      EXPECT_EQ(d.find("TEMP B-TREE"), std::string::npos)
          << "sort in: " << sql << "\n  plan: " << d;
    }
  }
}

TEST_F(SqliteFileTest, PreparedStatementsAreReused) {
  de::SqliteTaskExecutionsStorage storage{path_};
  auto record = ready_record();
  storage.insert_many({record});
  (void)get(storage, record.execution_id);
  const auto before = storage.prepared_statement_sql().size();
  for (int i = 0; i < 50; ++i) {
    storage.insert_many({ready_record()});
    ASSERT_TRUE(get(storage, record.execution_id).has_value());
  }
  EXPECT_EQ(storage.prepared_statement_sql().size(), before);
}

// ---- table names ---------------------------------------------------------------------------

TEST_F(SqliteFileTest, InvalidTableNamesAreRejectedAtConstruction) {
  const std::vector<std::string> names{"",
                                       "1abc",
                                       "a-b",
                                       "a b",
                                       "x;DROP TABLE y",
                                       "t\"",
                                       "t'",
                                       "sqlite_master",
                                       "SQLITE_x",
                                       "durable_execution_schema",
                                       std::string(64, 'a'),
                                       "tábla"};
  for (const auto& name : names) {
    EXPECT_THROW(de::SqliteTaskExecutionsStorage(path_, {.table_name = name}),
                 de::DurableExecutionError)
        << "name: " << name;
  }
  // A rejected name is refused before the file is even created.
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(SqliteFileTest, CustomTableNamesAreIndependentTablesInOneFile) {
  const std::string longest = "_" + std::string(62, 'Z');
  de::SqliteTaskExecutionsStorage jobs{path_, {.table_name = "jobs"}};
  de::SqliteTaskExecutionsStorage other{path_, {.table_name = longest}};
  de::SqliteTaskExecutionsStorage keyword{path_, {.table_name = "select"}};
  auto a = ready_record();
  auto b = ready_record();
  jobs.insert_many({a});
  other.insert_many({b});
  keyword.insert_many({a});
  EXPECT_TRUE(get(jobs, a.execution_id));
  EXPECT_FALSE(get(jobs, b.execution_id));
  EXPECT_TRUE(get(other, b.execution_id));
  EXPECT_FALSE(get(other, a.execution_id));
  EXPECT_TRUE(get(keyword, a.execution_id));
  EXPECT_EQ(jobs.table_name(), "jobs");

  auto db = raw(path_);
  SQLite::Statement q(db,
                      "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = "
                      "'jobs' AND name LIKE 'ix_jobs_%'");
  ASSERT_TRUE(q.executeStep());
  EXPECT_EQ(q.getColumn(0).getInt(), 11);
}

// ---- schema versions -------------------------------------------------------------------------

TEST_F(SqliteFileTest, SchemaVersionIsRecordedAndReopeningKeepsData) {
  auto record = ready_record();
  {
    de::SqliteTaskExecutionsStorage storage{path_};
    storage.insert_many({record});
  }
  {
    auto db = raw(path_);
    SQLite::Statement q(db,
                        "SELECT version FROM durable_execution_schema WHERE table_name = "
                        "'task_executions'");
    ASSERT_TRUE(q.executeStep());
    EXPECT_EQ(q.getColumn(0).getInt(), de::SqliteTaskExecutionsStorage::schema_version);
    EXPECT_EQ(db.execAndGet("PRAGMA journal_mode").getString(), "wal");
  }
  de::SqliteTaskExecutionsStorage reopened{path_};
  auto found = get(reopened, record.execution_id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, record);
}

TEST_F(SqliteFileTest, VersionOneTableIsMigratedWithItsRows) {
  auto record = ready_record();
  record.lease_expirations = 2;
  {
    de::SqliteTaskExecutionsStorage storage{path_};
    storage.insert_many({record});
  }
  {
    // Back to version 1: no lease_expirations column.
    auto db = raw(path_);
    db.exec("ALTER TABLE task_executions DROP COLUMN lease_expirations");
    db.exec("UPDATE durable_execution_schema SET version = 1");
  }
  de::SqliteTaskExecutionsStorage migrated{path_};
  auto found = get(migrated, record.execution_id);
  ASSERT_TRUE(found.has_value());
  auto expected = record;
  expected.lease_expirations = 0;  // the column's default
  EXPECT_EQ(*found, expected);
  auto db = raw(path_);
  EXPECT_EQ(db.execAndGet("SELECT version FROM durable_execution_schema").getInt(), 2);
  EXPECT_EQ(db.execAndGet("SELECT lease_expirations FROM task_executions").getInt(), 0);
}

TEST_F(SqliteFileTest, NewerSchemaVersionIsRefusedWithoutTouchingTheFile) {
  auto record = ready_record();
  {
    de::SqliteTaskExecutionsStorage storage{path_};
    storage.insert_many({record});
  }
  {
    auto db = raw(path_);
    db.exec(
        "UPDATE durable_execution_schema SET version = 99 WHERE table_name = 'task_executions'");
    db.exec("ALTER TABLE task_executions ADD COLUMN future_column TEXT");
    // A newer library might have chosen another journal mode: opening must not switch it.
    EXPECT_EQ(db.execAndGet("PRAGMA journal_mode=DELETE").getString(), "delete");
  }
  try {
    de::SqliteTaskExecutionsStorage storage{path_};
    FAIL() << "opening a newer schema must throw";
  } catch (const de::DurableExecutionError& e) {
    EXPECT_NE(std::string{e.what()}.find("newer"), std::string::npos) << e.what();
    EXPECT_FALSE(e.is_retryable());
  }
  auto db = raw(path_);
  EXPECT_EQ(db.execAndGet("PRAGMA journal_mode").getString(), "delete");
  EXPECT_EQ(db.execAndGet("SELECT version FROM durable_execution_schema").getInt(), 99);
  EXPECT_EQ(db.execAndGet("SELECT count(*) FROM task_executions").getInt(), 1);
}

TEST_F(SqliteFileTest, ForeignTableWithTheSameNameIsRefused) {
  {
    SQLite::Database db(path_, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE task_executions (id INTEGER PRIMARY KEY, name TEXT)");
    db.exec("INSERT INTO task_executions (name) VALUES ('mine')");
  }
  EXPECT_THROW(de::SqliteTaskExecutionsStorage{path_}, de::DurableExecutionError);
  auto db = raw(path_);
  EXPECT_EQ(db.execAndGet("SELECT name FROM task_executions").getString(), "mine");
}

// ---- unusable files ---------------------------------------------------------------------------

TEST_F(SqliteFileTest, UnopenablePathsThrowDurableExecutionError) {
  EXPECT_THROW(de::SqliteTaskExecutionsStorage{"/nonexistent/dir/x.db"}, de::DurableExecutionError);
  const auto dir = path_ + "_dir";
  std::filesystem::create_directory(dir);
  EXPECT_THROW(de::SqliteTaskExecutionsStorage{dir}, de::DurableExecutionError);
  std::filesystem::remove(dir);
}

TEST_F(SqliteFileTest, FileThatIsNotADatabaseThrowsDurableExecutionError) {
  {
    std::ofstream out(path_, std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>((i * 131 + 7) % 256));
  }
  try {
    de::SqliteTaskExecutionsStorage storage{path_};
    FAIL() << "a garbage file must not open";
  } catch (const de::DurableExecutionError& e) {
    EXPECT_NE(std::string{e.what()}.find(path_), std::string::npos) << e.what();
  }
}

// ---- corrupt rows ----------------------------------------------------------------------------

TEST_F(SqliteFileTest, CorruptRowsReadAsFailedAndTheStorageKeepsWorking) {
  de::SqliteTaskExecutionsStorage storage{path_, {.log_sink = [](std::string_view) {}}};
  auto good = ready_record();
  auto bad_status = ready_record();
  auto bad_json = ready_record();
  auto bad_type = ready_record();
  auto bad_error = ready_record();
  storage.insert_many({good, bad_status, bad_json, bad_type, bad_error});
  {
    auto db = raw(path_);
    SQLite::Statement u1(db,
                         "UPDATE task_executions SET status = 'exploded' WHERE execution_id = ?");
    u1.bind(1, bad_status.execution_id);
    u1.exec();
    SQLite::Statement u2(db,
                         "UPDATE task_executions SET retry_options = '{not json' WHERE "
                         "execution_id = ?");
    u2.bind(1, bad_json.execution_id);
    u2.exec();
    SQLite::Statement u3(
        db, "UPDATE task_executions SET retry_attempts = 'many' WHERE execution_id = ?");
    u3.bind(1, bad_type.execution_id);
    u3.exec();
    SQLite::Statement u4(db,
                         "UPDATE task_executions SET error = '{\"errorType\":\"weird\"}' WHERE "
                         "execution_id = ?");
    u4.bind(1, bad_error.execution_id);
    u4.exec();
  }
  const std::vector<std::pair<const std::string*, std::string>> corrupt{
      {&bad_status.execution_id, "status"},
      {&bad_json.execution_id, "retry_options"},
      {&bad_type.execution_id, "retry_attempts"},
      {&bad_error.execution_id, "error"}};
  for (const auto& [id, column] : corrupt) {
    std::optional<de::TaskExecutionRecord> read;
    ASSERT_NO_THROW(read = get(storage, *id)) << column;
    ASSERT_TRUE(read.has_value()) << column;
    EXPECT_EQ(read->status, de::TaskExecutionStatus::failed) << column;
    ASSERT_TRUE(read->error.has_value());
    EXPECT_FALSE(read->error->is_retryable);
    EXPECT_NE(read->error->message.find("corrupt record: column " + column), std::string::npos)
        << read->error->message;
    EXPECT_NE(read->error->message.find(*id), std::string::npos) << read->error->message;
  }
  // A claim that selects corrupt rows sets them aside and returns the healthy one.
  std::vector<de::TaskExecutionRecord> claimed;
  ASSERT_NO_THROW(claimed = storage.update_by_status_and_start_at_less_than_and_return(
                      claim_request("de_x", 10)));
  ASSERT_EQ(claimed.size(), 1U);
  EXPECT_EQ(claimed[0].execution_id, good.execution_id);
  // The connection is still usable after the failures.
  auto fresh = ready_record();
  storage.insert_many({fresh});
  EXPECT_TRUE(get(storage, fresh.execution_id).has_value());
}

// ---- row mapping -------------------------------------------------------------------------------

TEST_F(SqliteFileTest, AbsentOptionalsAreNullAndZeroValuesStaySet) {
  de::SqliteTaskExecutionsStorage storage{path_};
  auto fresh = ready_record();
  auto zeros = ready_record();
  zeros.parent = de::ParentTaskExecutionSummary{"p", "te_parent", 0, false, false};
  zeros.root = de::TaskExecutionSummary{"r", "te_root"};
  zeros.started_at = de::from_unix_ms(0);
  zeros.expires_at = de::from_unix_ms(0);
  zeros.run_output = "";
  zeros.output = "";
  zeros.executor_id = "";
  zeros.children = std::vector<de::TaskExecutionSummary>{};
  zeros.close_expires_at = de::from_unix_ms(0);
  storage.insert_many({fresh, zeros});

  auto db = raw(path_);
  SQLite::Statement q(
      db,
      "SELECT root_task_id IS NULL, parent_execution_id IS NULL, "
      "index_in_parent_children IS NULL, executor_id IS NULL, started_at IS NULL, "
      "expires_at IS NULL, finished_at IS NULL, run_output IS NULL, output IS NULL, "
      "error IS NULL, children IS NULL, finalize IS NULL, close_expires_at IS NULL, "
      "closed_at IS NULL, sleeping_task_unique_id IS NULL FROM task_executions "
      "WHERE execution_id = ?");
  q.bind(1, fresh.execution_id);
  ASSERT_TRUE(q.executeStep());
  for (int i = 0; i < q.getColumnCount(); ++i) EXPECT_EQ(q.getColumn(i).getInt(), 1) << i;

  auto read = get(storage, zeros.execution_id);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(*read, zeros);
  ASSERT_TRUE(read->started_at.has_value());
  EXPECT_EQ(de::to_unix_ms(*read->started_at), 0);
  ASSERT_TRUE(read->parent.has_value());
  EXPECT_EQ(read->parent->index_in_parent_children, 0);
  ASSERT_TRUE(read->children.has_value());
  EXPECT_TRUE(read->children->empty());
  EXPECT_EQ(read->output, std::optional<std::string>{""});
}

// ---- busy database ---------------------------------------------------------------------------

TEST_F(SqliteFileTest, DatabaseThatStaysBusyGivesARetryableErrorThenRecovers) {
  de::SqliteTaskExecutionsStorage storage{path_, {.busy_timeout = 20ms, .max_busy_retries = 2}};
  auto blocker = raw(path_);
  blocker.exec("BEGIN IMMEDIATE");  // another writer holds the write lock
  auto record = ready_record();
  const auto start = std::chrono::steady_clock::now();
  try {
    storage.insert_many({record});
    FAIL() << "insert must fail while another connection holds the write lock";
  } catch (const de::DurableExecutionError& e) {
    EXPECT_TRUE(e.is_retryable()) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << "busy retries must be bounded";
  // Reads are not blocked by a writer in WAL mode.
  EXPECT_FALSE(get(storage, record.execution_id).has_value());
  blocker.exec("ROLLBACK");
  storage.insert_many({record});
  EXPECT_TRUE(get(storage, record.execution_id).has_value());
}

TEST_F(SqliteFileTest, InvalidOptionsAreRejected) {
  EXPECT_THROW(de::SqliteTaskExecutionsStorage(path_, {.busy_timeout = -1ms}),
               de::DurableExecutionError);
  EXPECT_THROW(de::SqliteTaskExecutionsStorage(path_, {.max_busy_retries = -1}),
               de::DurableExecutionError);
  EXPECT_THROW(de::SqliteTaskExecutionsStorage(path_, {.read_connections = 65}),
               de::DurableExecutionError);
  EXPECT_THROW(de::SqliteTaskExecutionsStorage(
                   path_, {.synchronous = static_cast<de::SqliteSynchronous>(7)}),
               de::DurableExecutionError);
  EXPECT_THROW(de::SqliteTaskExecutionsStorage(path_, {.cache_size_kib = -1}),
               de::DurableExecutionError);
  // Refused before the file is created; the bounds themselves are accepted.
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_NO_THROW(de::SqliteTaskExecutionsStorage(path_, {.read_connections = 64}));
  try {
    de::SqliteTaskExecutionsStorage reserved{path_, {.table_name = "durable_execution_schema"}};
    ADD_FAILURE() << "the schema table's name was accepted";
  } catch (const de::DurableExecutionError& e) {
    EXPECT_NE(std::string{e.what()}.find("must not be durable_execution_schema"), std::string::npos)
        << e.what();
  }
}

TEST_F(SqliteFileTest, AReadOnlyDatabaseIsRefusedAtConstructionNotAtTheFirstWrite) {
  { de::SqliteTaskExecutionsStorage create{path_}; }
  try {
    de::SqliteTaskExecutionsStorage read_only{"file:" + path_ + "?mode=ro"};
    ADD_FAILURE() << "a read-only database was opened";
  } catch (const de::DurableExecutionError& e) {
    EXPECT_NE(std::string{e.what()}.find("read-only"), std::string::npos) << e.what();
    EXPECT_FALSE(e.is_retryable());
  }
}

// ---- multi-row operations ----------------------------------------------------------------------

TEST_F(SqliteFileTest, ClaimReturnsRowsInStartAtOrderWithExpiryFromEachTimeout) {
  de::SqliteTaskExecutionsStorage storage{path_};
  const auto now = test_now();
  std::vector<de::TaskExecutionRecord> rows;
  for (int i = 0; i < 5; ++i) {
    auto r = ready_record(now - std::chrono::milliseconds{10 * (5 - i)});
    r.timeout = std::chrono::milliseconds{100 * (i + 1)};
    rows.push_back(r);
  }
  // Insert in reverse so that start_at order differs from insertion order.
  storage.insert_many({rows.rbegin(), rows.rend()});
  auto request = claim_request("de_a", 3, now);
  const auto base = now + 7s;  // distinct from updated_at, so a swapped parameter shows
  request.update_expires_at_with_started_at = base;
  auto claimed = storage.update_by_status_and_start_at_less_than_and_return(request);
  ASSERT_EQ(claimed.size(), 3U);
  for (std::size_t i = 0; i < claimed.size(); ++i) {
    EXPECT_EQ(claimed[i].execution_id, rows[i].execution_id);
    EXPECT_EQ(claimed[i].status, de::TaskExecutionStatus::running);
    EXPECT_EQ(claimed[i].expires_at, base + rows[i].timeout);
    EXPECT_EQ(claimed[i].updated_at, now);
    auto stored = get(storage, claimed[i].execution_id);
    ASSERT_TRUE(stored.has_value());
    EXPECT_EQ(*stored, claimed[i]) << "returned row must equal the stored row";
  }
}

TEST_F(SqliteFileTest, LookupsDoNotWaitBehindAWriteThatWaitsForTheLock) {
  de::SqliteTaskExecutionsStorage storage{path_, {.busy_timeout = 3000ms, .max_busy_retries = 0}};
  auto existing = ready_record();
  storage.insert_many({existing});
  auto blocker = raw(path_);
  blocker.exec("BEGIN IMMEDIATE");  // another process holds the write lock

  std::atomic<bool> writer_done{false};
  std::jthread writer([&] {
    try {
      storage.insert_many({ready_record()});  // waits in the busy handler, holding the writer
    } catch (const de::DurableExecutionError&) {
    }
    writer_done = true;
  });
  std::this_thread::sleep_for(50ms);  // let the writer reach the busy wait (not needed for pass)
  const auto start = std::chrono::steady_clock::now();
  auto found = get(storage, existing.execution_id);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(found.has_value());
  EXPECT_LT(took, 1000ms) << "a lookup waited for the blocked writer";
  EXPECT_FALSE(writer_done.load()) << "the writer should still be waiting for the lock";
  blocker.exec("ROLLBACK");
}

TEST_F(SqliteFileTest, InvalidUtf8InJsonFieldsIsStoredNotThrown) {
  de::SqliteTaskExecutionsStorage storage{path_};
  auto record = ready_record();
  record.status = de::TaskExecutionStatus::failed;
  record.is_finished = true;
  record.error = de::StoredError{de::ErrorType::generic, true, false, "bad \xff byte"};
  record.output = std::string{"raw \xfe bytes stay \x00 as they are", 31};
  storage.insert_many({record});
  auto read = get(storage, record.execution_id);
  ASSERT_TRUE(read.has_value());
  ASSERT_TRUE(read->error.has_value());
  EXPECT_EQ(read->error->message, "bad \xEF\xBF\xBD byte");  // U+FFFD replacement character
  EXPECT_EQ(read->output, record.output) << "TEXT columns keep their exact bytes";
}

TEST_F(SqliteFileTest, UnversionedTableWithAllColumnsIsAdoptedWithItsRows) {
  auto record = ready_record();
  {
    de::SqliteTaskExecutionsStorage storage{path_, {.table_name = "legacy"}};
    storage.insert_many({record});
  }
  {
    // Emulate a table created by another tool (the reference engine's drizzle schema has the
    // same columns): no version row and no indexes.
    auto db = raw(path_);
    db.exec("DELETE FROM durable_execution_schema");
    SQLite::Statement ix(db,
                         "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = "
                         "'legacy' AND name LIKE 'ix_%'");
    std::vector<std::string> names;
    while (ix.executeStep()) names.push_back(ix.getColumn(0).getString());
    ASSERT_EQ(names.size(), 11U);
    for (const auto& name : names) db.exec("DROP INDEX \"" + name + "\"");
  }
  de::SqliteTaskExecutionsStorage adopted{path_, {.table_name = "legacy"}};
  auto found = get(adopted, record.execution_id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, record);
  auto db = raw(path_);
  EXPECT_EQ(db.execAndGet("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = "
                          "'legacy' AND name LIKE 'ix_legacy_%'")
                .getInt(),
            11);
  EXPECT_EQ(db.execAndGet("SELECT version FROM durable_execution_schema WHERE table_name = "
                          "'legacy'")
                .getInt(),
            de::SqliteTaskExecutionsStorage::schema_version);
  // The unique index is back: a duplicate is rejected again.
  EXPECT_THROW(adopted.insert_many({record}), de::DurableExecutionError);
}

TEST_F(SqliteFileTest, TableNamesDifferingOnlyInCaseNameTheSameTable) {
  auto record = ready_record();
  {
    de::SqliteTaskExecutionsStorage lower{path_, {.table_name = "jobs"}};
    lower.insert_many({record});
  }
  de::SqliteTaskExecutionsStorage upper{path_, {.table_name = "JOBS"}};
  EXPECT_TRUE(get(upper, record.execution_id).has_value());
  auto db = raw(path_);
  EXPECT_EQ(db.execAndGet("SELECT count(*) FROM durable_execution_schema").getInt(), 1);
}

// ---- batched writes ----------------------------------------------------------------------------

TEST_F(SqliteFileTest, ClaimReturnsRowsInStartAtOrderWithTiesInInsertionOrder) {
  de::SqliteTaskExecutionsStorage storage{path_};
  const auto now = test_now();
  // Inserted latest start first; two pairs share a start time.
  std::vector<de::TaskExecutionRecord> rows;
  for (int i = 0; i < 6; ++i) {
    auto r = ready_record(now);
    r.start_at = now - std::chrono::milliseconds{100 * (5 - i) / 2 * 2};  // 400,400,200,200,0,0
    rows.push_back(r);
  }
  std::reverse(rows.begin(), rows.end());
  storage.insert_many(rows);
  auto claimed =
      storage.update_by_status_and_start_at_less_than_and_return(claim_request("de_x", 5, now));
  ASSERT_EQ(claimed.size(), 5U);
  // Expected: by start_at, ties by insertion order (rowid), as the (status, start_at) index.
  auto expected = rows;
  std::stable_sort(expected.begin(), expected.end(),
                   [](const auto& a, const auto& b) { return a.start_at < b.start_at; });
  for (std::size_t i = 0; i < claimed.size(); ++i) {
    EXPECT_EQ(claimed[i].execution_id, expected[i].execution_id) << i;
    EXPECT_EQ(claimed[i].status, de::TaskExecutionStatus::running);
    ASSERT_TRUE(claimed[i].expires_at.has_value());
    // The returned row is the stored row.
    EXPECT_EQ(get(storage, claimed[i].execution_id), claimed[i]);
  }
}

TEST_F(SqliteFileTest, ParentDecrementsOfOneCallKeepRequestOrder) {
  de::SqliteTaskExecutionsStorage storage{path_};
  const auto now = test_now();
  auto parent = ready_record(now);
  parent.active_children_count = 10;
  std::vector<de::TaskExecutionRecord> children;
  for (int i = 0; i < 3; ++i) {
    auto child = ready_record(now);
    child.parent = de::ParentTaskExecutionSummary{.task_id = parent.task_id,
                                                  .execution_id = parent.execution_id,
                                                  .index_in_parent_children = i};
    children.push_back(child);
  }
  auto all = children;
  all.push_back(parent);
  storage.insert_many(all);

  auto finish = [&](const std::string& id, de::Timestamp at) {
    de::TaskExecutionUpdate u;
    u.status = de::TaskExecutionStatus::completed;
    u.output = "{}";
    de::UpdateByIdRequest req{
        id, {.status = de::TaskExecutionStatus::ready}, de::normalize_update(at, u)};
    req.decrement_parent_active_children_count = true;
    return req;
  };
  de::TaskExecutionUpdate set_count;
  set_count.active_children_count = 7;
  // Two decrements, then a write of the parent itself, then one more decrement; a filtered-out
  // request decrements nothing.
  storage.update_many_by_id({
      finish(children[0].execution_id, now + 1ms),
      finish(children[1].execution_id, now + 2ms),
      {parent.execution_id, {}, de::normalize_update(now + 3ms, set_count)},
      finish(children[2].execution_id, now + 4ms),
      finish(children[0].execution_id, now + 5ms),  // no longer ready: not updated
  });
  auto stored = get(storage, parent.execution_id);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->active_children_count, 6);  // 10 - 2, set to 7, - 1
  EXPECT_EQ(stored->updated_at, now + 4ms);
}

TEST_F(SqliteFileTest, BackgroundCheckpointsKeepTheWalBoundedUnderContinuousWrites) {
  // Checkpoints run on a background thread; the WAL must still be copied back completely and
  // restarted now and then, or it would grow with every write. About 24 MB are written here in
  // 400 transactions; without restarts the WAL would hold all of it.
  de::SqliteTaskExecutionsStorage storage{path_};
  const std::string big_input = "\"" + std::string(6000, 'x') + "\"";
  for (int round = 0; round < 400; ++round) {
    auto rows = ready_records(10);
    for (auto& r : rows) r.input = big_input;
    storage.insert_many(rows);
  }
  const auto wal_bytes = std::filesystem::file_size(path_ + "-wal");
  EXPECT_LT(wal_bytes, 16U * 1024 * 1024) << "the WAL was not restarted";
  // Every row is there, and the file stays consistent.
  auto db = raw(path_);
  EXPECT_EQ(db.execAndGet("SELECT count(*) FROM task_executions").getInt64(), 4000);
  EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
}

TEST_F(SqliteFileTest, ChildrenListsRoundTripWhateverTheirIdsAndKeyOrder) {
  de::SqliteTaskExecutionsStorage storage{path_};
  auto plain = ready_record();
  plain.children = std::vector<de::TaskExecutionSummary>{{"task_a", "de_1"}, {"task_b", "de_2"}};
  auto odd = ready_record();
  odd.children = std::vector<de::TaskExecutionSummary>{
      {"quote\"d", "back\\slash"}, {"tab\there", "ünïcode"}, {"", ""}};
  auto empty = ready_record();
  empty.children = std::vector<de::TaskExecutionSummary>{};
  storage.insert_many({plain, odd, empty});
  EXPECT_EQ(get(storage, plain.execution_id), plain);
  EXPECT_EQ(get(storage, odd.execution_id), odd);
  EXPECT_EQ(get(storage, empty.execution_id), empty);
  {
    // Written by another program: other key order, whitespace.
    auto db = raw(path_);
    SQLite::Statement u(db, "UPDATE task_executions SET children = ? WHERE execution_id = ?");
    u.bind(1, R"([ {"taskId": "t1", "executionId": "e1"}, {"executionId":"e2","taskId":"t2"} ])");
    u.bind(2, plain.execution_id);
    u.exec();
  }
  auto other = get(storage, plain.execution_id);
  ASSERT_TRUE(other.has_value());
  const std::vector<de::TaskExecutionSummary> expected{{"t1", "e1"}, {"t2", "e2"}};
  EXPECT_EQ(other->children, expected);
  // An update writes the list back in the storage's own format.
  de::TaskExecutionUpdate u;
  u.children = std::vector<de::TaskExecutionSummary>{{"task_c", "de_3"}};
  storage.update_many_by_id({{plain.execution_id, {}, de::normalize_update(test_now(), u)}});
  auto db = raw(path_);
  SQLite::Statement q(db, "SELECT children FROM task_executions WHERE execution_id = ?");
  q.bind(1, plain.execution_id);
  ASSERT_TRUE(q.executeStep());
  EXPECT_EQ(q.getColumn(0).getString(), R"([{"executionId":"de_3","taskId":"task_c"}])");
}
