// PostgreSQL-specific checks of PostgresTaskExecutionsStorage: construction errors (unreachable
// server, bad credentials, invalid names: clear, and never showing the password), schema
// versions, SQL injection attempts stored verbatim, every prepared statement served by an index,
// and connections lost mid-use. Tests that need a server skip without DE_TEST_PG_URL (and fail
// in CI).
#include "durable_execution/postgres/postgres_storage.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "durable_execution/errors.hpp"
#include "pg_text.hpp"
#include "postgres_support.hpp"
#include "storage_factory.hpp"

namespace {

namespace de = durable_execution;
using de::testing::postgres_exec;
using de::testing::postgres_query;

de::Timestamp test_now() { return de::from_unix_ms(1'750'000'000'000); }

de::TaskExecutionRecord ready_record(std::string task_id = "task", std::string input = "{}") {
  de::NewTaskExecution values;
  values.task_id = std::move(task_id);
  values.execution_id = de::generate_execution_id();
  values.timeout = std::chrono::milliseconds{1000};
  values.input = std::move(input);
  return de::make_task_execution_record(test_now(), std::move(values));
}

/** Fixture: the server URL and a fresh schema name, dropped afterwards. */
class PostgresStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DE_SKIP_IF_STORAGE_UNAVAILABLE(de::testing::postgres_factory());
    url_ = *de::testing::postgres_test_url();
    schema_ = de::testing::unique_schema_name();
  }
  void TearDown() override {
    if (!schema_.empty()) de::testing::drop_postgres_schema(url_, schema_);
  }

  [[nodiscard]] de::PostgresStorageOptions options() const {
    return {.schema = schema_, .pool_size = 4};
  }
  [[nodiscard]] std::string table() const { return "\"" + schema_ + "\".task_executions"; }

  std::string url_;
  std::string schema_;
};

std::string construction_error(const std::string& url, de::PostgresStorageOptions options = {}) {
  try {
    de::PostgresTaskExecutionsStorage storage{url, std::move(options)};
  } catch (const de::DurableExecutionError& e) {
    return e.what();
  }
  return "<no error>";
}

// ---- construction errors ---------------------------------------------------------------------

TEST(PostgresConstruction, UnreachableServerIsAClearErrorWithoutThePassword) {
  // Port 1 on the loopback: nothing listens there, the connection is refused at once.
  const auto message =
      construction_error("postgresql://app:Top$ecretPw0rd@127.0.0.1:1/db?connect_timeout=2");
  EXPECT_NE(message.find("Cannot connect to PostgreSQL"), std::string::npos) << message;
  EXPECT_NE(message.find("127.0.0.1"), std::string::npos) << message;
  EXPECT_EQ(message.find("Top$ecretPw0rd"), std::string::npos) << message;
  EXPECT_NE(message.find("app:***@"), std::string::npos) << message;

  const auto keyword = construction_error(
      "host=127.0.0.1 port=1 user=app password=Top$ecretPw0rd dbname=db connect_timeout=2");
  EXPECT_NE(keyword.find("Cannot connect to PostgreSQL"), std::string::npos) << keyword;
  EXPECT_EQ(keyword.find("Top$ecretPw0rd"), std::string::npos) << keyword;
}

TEST(PostgresConstruction, InvalidNamesAndOptionsAreRefusedBeforeConnecting) {
  const std::string url = "postgresql://app:pw@127.0.0.1:1/db";
  EXPECT_NE(
      construction_error(url, {.schema = "jobs; DROP TABLE x"}).find("Invalid PostgreSQL schema"),
      std::string::npos);
  EXPECT_NE(construction_error(url, {.table_name = "a\"b"}).find("Invalid PostgreSQL table"),
            std::string::npos);
  EXPECT_NE(construction_error(url, {.table_name = "durable_execution_schema"})
                .find("Invalid PostgreSQL table"),
            std::string::npos);
  EXPECT_NE(construction_error(url, {.pool_size = 0}).find("pool_size"), std::string::npos);
}

TEST_F(PostgresStorageTest, BadCredentialsAreAClearErrorWithoutThePassword) {
  // A role that does not exist: the server refuses the login whatever its auth method.
  auto bad = de::postgres::with_connection_option(url_, "user", "de_no_such_role_x");
  bad = de::postgres::with_connection_option(bad, "password", "Hunter2Secret");
  const auto message = construction_error(bad, options());
  EXPECT_NE(message.find("Cannot connect to PostgreSQL"), std::string::npos) << message;
  EXPECT_NE(message.find("de_no_such_role_x"), std::string::npos) << message;
  EXPECT_EQ(message.find("Hunter2Secret"), std::string::npos) << message;
}

// ---- schema ----------------------------------------------------------------------------------

TEST_F(PostgresStorageTest, CreatesTheSchemaTableIndexesAndVersionRow) {
  de::PostgresTaskExecutionsStorage storage{url_, options()};
  EXPECT_EQ(storage.schema(), schema_);
  const auto version = postgres_query(
      url_, "SELECT table_name, version FROM \"" + schema_ + "\".durable_execution_schema");
  ASSERT_EQ(version.size(), 1u);
  EXPECT_EQ(version[0], (std::vector<std::string>{"task_executions", "3"}));
  const auto indexes = postgres_query(
      url_, "SELECT count(*) FROM pg_indexes WHERE schemaname = '" + schema_ +
                "' AND tablename = 'task_executions' AND indexname LIKE 'ix_task_executions_%'");
  EXPECT_EQ(indexes[0][0], "11");
  // The claims' indexes hold only the rows their claims select (version 3).
  const auto ready =
      postgres_query(url_, "SELECT indexdef FROM pg_indexes WHERE schemaname = '" + schema_ +
                               "' AND indexname = 'ix_task_executions_ready_start_at'");
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_NE(ready[0][0].find("WHERE (status = 'ready'::text)"), std::string::npos) << ready[0][0];
  // Opening again (another executor starting) changes nothing.
  de::PostgresTaskExecutionsStorage again{url_, options()};
  EXPECT_EQ(postgres_query(
                url_, "SELECT count(*) FROM \"" + schema_ + "\".durable_execution_schema")[0][0],
            "1");
}

TEST_F(PostgresStorageTest, ATableNameOfSixtyThreeBytesGetsEveryIndexUniqueOnesIncluded) {
  // "ix_<table>_<suffix>" is longer than PostgreSQL's 63-byte identifiers: cut there, the names
  // would collide and all but one index would silently be missing.
  const std::string long_a = "t" + std::string(62, 'x');
  const std::string long_b = "t" + std::string(61, 'x') + "y";  // same 15-byte prefix
  for (const auto& name : {long_a, long_b}) {
    auto o = options();
    o.table_name = name;
    de::PostgresTaskExecutionsStorage storage{url_, o};
    const auto indexes =
        postgres_query(url_, "SELECT count(*) FROM pg_indexes WHERE schemaname = '" + schema_ +
                                 "' AND tablename = '" + name + "' AND indexname LIKE 'ix_%'");
    EXPECT_EQ(indexes[0][0], "11") << name;
    auto r = ready_record();
    r.is_sleeping_task = true;
    r.sleeping_task_unique_id = "same";
    storage.insert_many({r});
    auto again = ready_record();
    again.is_sleeping_task = true;
    again.sleeping_task_unique_id = "same";
    EXPECT_THROW(storage.insert_many({again}), de::DurableExecutionError) << name;
    EXPECT_THROW(storage.insert_many({r}), de::DurableExecutionError) << name;
  }
}

TEST_F(PostgresStorageTest, ANewerSchemaVersionIsRefusedWithoutTouchingAnything) {
  {
    de::PostgresTaskExecutionsStorage storage{url_, options()};
    storage.insert_many({ready_record()});
  }
  postgres_exec(url_, "UPDATE \"" + schema_ + "\".durable_execution_schema SET version = 99");
  postgres_exec(url_, "DROP INDEX \"" + schema_ + "\".ix_task_executions_close_expires_at");
  const auto message = construction_error(url_, options());
  EXPECT_NE(message.find("newer than the version this library supports"), std::string::npos)
      << message;
  // Nothing was recreated or rewritten.
  EXPECT_EQ(postgres_query(
                url_, "SELECT version FROM \"" + schema_ + "\".durable_execution_schema")[0][0],
            "99");
  EXPECT_EQ(postgres_query(url_, "SELECT count(*) FROM pg_indexes WHERE schemaname = '" + schema_ +
                                     "' AND indexname LIKE 'ix_%'")[0][0],
            "10");
  EXPECT_EQ(postgres_query(url_, "SELECT count(*) FROM " + table())[0][0], "1");
}

TEST_F(PostgresStorageTest, AForeignTableOfThatNameIsRefused) {
  postgres_exec(url_, "CREATE SCHEMA \"" + schema_ + "\"; CREATE TABLE " + table() +
                          " (id bigint, execution_id text)");
  const auto message = construction_error(url_, options());
  EXPECT_NE(message.find("is not a task executions table"), std::string::npos) << message;
}

TEST_F(PostgresStorageTest, AnExistingTableWithoutAVersionRowIsAdopted) {
  {
    de::PostgresTaskExecutionsStorage storage{url_, options()};
    storage.insert_many({ready_record()});
  }
  postgres_exec(url_, "DELETE FROM \"" + schema_ + "\".durable_execution_schema");
  de::PostgresTaskExecutionsStorage adopted{url_, options()};
  EXPECT_EQ(postgres_query(
                url_, "SELECT version FROM \"" + schema_ + "\".durable_execution_schema")[0][0],
            "3");
  EXPECT_EQ(postgres_query(url_, "SELECT count(*) FROM " + table())[0][0], "1");
}

// ---- parameterized SQL -----------------------------------------------------------------------

TEST_F(PostgresStorageTest, HostileStringsAreStoredAndReturnedVerbatim) {
  de::PostgresTaskExecutionsStorage storage{url_, options()};
  const std::vector<std::string> hostile{
      "'); DROP TABLE x; --",
      "\"; DROP TABLE " + table() + "; --",
      "it's a \"quote\" \\ backslash \\\\ {braces,commas} NULL",
      "$1 $2 ::text[] E'\\x00' \\x41\\x42 %s %n",
      "tab\tnewline\nreturn\r unicode \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
  };
  postgres_exec(url_, "CREATE TABLE \"" + schema_ + "\".x (y int)");
  std::vector<de::TaskExecutionRecord> records;
  for (std::size_t i = 0; i < hostile.size(); ++i) {
    auto r = ready_record(hostile[i], hostile[i]);
    r.is_sleeping_task = true;
    r.sleeping_task_unique_id = hostile[i];
    r.run_output = hostile[i];
    r.output = hostile[i];
    r.executor_id = hostile[i];
    records.push_back(std::move(r));
  }
  storage.insert_many(records);
  std::vector<de::GetByIdRequest> by_id;
  std::vector<de::GetBySleepingTaskUniqueIdRequest> by_unique;
  for (const auto& r : records) {
    by_id.push_back({.execution_id = r.execution_id});
    by_unique.push_back({.sleeping_task_unique_id = *r.sleeping_task_unique_id});
  }
  const auto found = storage.get_many_by_id(by_id);
  const auto found_unique = storage.get_many_by_sleeping_task_unique_id(by_unique);
  ASSERT_EQ(found.size(), hostile.size());
  for (std::size_t i = 0; i < hostile.size(); ++i) {
    ASSERT_TRUE(found[i].has_value()) << hostile[i];
    EXPECT_EQ(found[i]->task_id, hostile[i]);
    EXPECT_EQ(found[i]->input, hostile[i]);
    EXPECT_EQ(found[i]->sleeping_task_unique_id, hostile[i]);
    EXPECT_EQ(found[i]->run_output, hostile[i]);
    EXPECT_EQ(found[i]->output, hostile[i]);
    ASSERT_TRUE(found_unique[i].has_value()) << hostile[i];
    EXPECT_EQ(found_unique[i]->execution_id, records[i].execution_id);
  }
  // An update and a claim carry them too (array and scalar parameters).
  de::TaskExecutionUpdate update;
  update.output = hostile[0];
  update.executor_id = hostile[1];
  storage.update_many_by_id({{.execution_id = records[2].execution_id,
                              .update = de::normalize_update(test_now(), update)}});
  const auto updated = storage.get_many_by_id({{.execution_id = records[2].execution_id}});
  EXPECT_EQ(updated[0]->output, hostile[0]);
  EXPECT_EQ(updated[0]->executor_id, hostile[1]);
  const auto cancelled = storage.update_by_executor_id_and_needs_promise_cancellation_and_return(
      {.executor_id = hostile[3],
       .needs_promise_cancellation = false,
       .update = de::normalize_update(test_now(), {}),
       .limit = 10});
  ASSERT_EQ(cancelled.size(), 1u);
  EXPECT_EQ(cancelled[0].execution_id, records[3].execution_id);
  // Every table is still there.
  EXPECT_EQ(postgres_query(url_, "SELECT count(*) FROM \"" + schema_ + "\".x")[0][0], "0");
  EXPECT_EQ(postgres_query(url_, "SELECT count(*) FROM " + table())[0][0],
            std::to_string(hostile.size()));
}

// ---- query plans -----------------------------------------------------------------------------

/** The highest `$n` in a statement: its parameter count. */
int parameter_count(const std::string& sql) {
  int count = 0;
  static const std::regex param{R"(\$([0-9]+))"};
  for (auto it = std::sregex_iterator(sql.begin(), sql.end(), param); it != std::sregex_iterator();
       ++it) {
    count = std::max(count, std::stoi((*it)[1].str()));
  }
  return count;
}

TEST_F(PostgresStorageTest, EveryPreparedStatementIsServedByAnIndex) {
  de::PostgresTaskExecutionsStorage storage{url_, options()};
  // Enough rows that a sequential scan would be the slow plan: 20,000, as parents with children,
  // sleeping rows and finished rows.
  const auto now = test_now();
  std::vector<de::TaskExecutionRecord> batch;
  for (int i = 0; i < 20'000; ++i) {
    auto r = ready_record("task_" + std::to_string(i % 50));
    if (i % 4 == 1) {
      r.is_sleeping_task = true;
      r.sleeping_task_unique_id = "unique_" + std::to_string(i);
      r.expires_at = now + std::chrono::hours{1};
    }
    if (i % 4 == 2) {
      r.parent = de::ParentTaskExecutionSummary{.task_id = "p",
                                                .execution_id = "parent_" + std::to_string(i / 40)};
    }
    if (i % 4 == 3) {
      r.status = de::TaskExecutionStatus::completed;
      r.is_finished = true;
      r.close_status = de::CloseStatus::closed;
    }
    batch.push_back(std::move(r));
    if (batch.size() == 1000) {
      storage.insert_many(batch);
      batch.clear();
    }
  }
  postgres_exec(url_, "ANALYZE " + table());

  // Every method, so that every statement gets prepared (with the update shapes the engine uses).
  de::TaskExecutionUpdate claim;
  claim.executor_id = "e";
  claim.status = de::TaskExecutionStatus::running;
  claim.started_at = now;
  const auto claimed = storage.update_by_status_and_start_at_less_than_and_return(
      {.status = de::TaskExecutionStatus::ready,
       .start_at_less_than = now + std::chrono::milliseconds{1},
       .update = de::normalize_update(now, claim),
       .update_expires_at_with_started_at = now,
       .limit = 3});
  ASSERT_FALSE(claimed.empty());
  de::TaskExecutionUpdate done;
  done.status = de::TaskExecutionStatus::completed;
  done.output = "1";
  std::vector<de::UpdateByIdRequest> completions;
  for (const auto& c : claimed) {
    completions.push_back({.execution_id = c.execution_id,
                           .filters = {.status = de::TaskExecutionStatus::running},
                           .update = de::normalize_update(now, done),
                           .decrement_parent_active_children_count = true});
  }
  storage.update_many_by_id(completions);
  storage.update_many_by_id_and_insert_children_if_updated(
      {{.execution_id = claimed[0].execution_id,
        .filters = {.is_finished = true},
        .update = de::normalize_update(now, {}),
        .children_to_insert_if_updated = {ready_record()}}});
  (void)storage.get_many_by_id({{.execution_id = claimed[0].execution_id}});
  (void)storage.get_many_by_sleeping_task_unique_id({{.sleeping_task_unique_id = "unique_1"}});
  (void)storage.get_many_by_parent_execution_id({{.parent_execution_id = "parent_1"}});
  (void)storage
      .update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
          {.update = de::normalize_update(now, {}), .limit = 2});
  (void)storage.update_by_close_status_and_return(
      {.update = de::normalize_update(now, {}), .limit = 2});
  (void)storage.update_by_is_sleeping_task_and_expires_at_less_than(
      {.is_sleeping_task = true,
       .expires_at_less_than = now,
       .update = de::normalize_update(now, {}),
       .limit = 2});
  (void)storage.update_by_on_children_finished_processing_expires_at_less_than(
      {.on_children_finished_processing_expires_at_less_than = now,
       .update = de::normalize_update(now, {}),
       .limit = 2});
  (void)storage.update_by_close_expires_at_less_than(
      {.close_expires_at_less_than = now, .update = de::normalize_update(now, {}), .limit = 2});
  (void)storage.update_by_executor_id_and_needs_promise_cancellation_and_return(
      {.executor_id = "e", .update = de::normalize_update(now, {}), .limit = 2});
  de::TaskExecutionUpdate cancel;
  cancel.needs_promise_cancellation = true;
  storage.update_many_by_parent_execution_id_and_is_finished(
      {{.parent_execution_id = "parent_2", .update = de::normalize_update(now, cancel)}});
  (void)storage.update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
      {.update = de::normalize_update(now, {}), .limit = 2});
  storage.delete_by_id({.execution_id = "none"});

  const auto statements = storage.prepared_statement_sql();
  EXPECT_GE(statements.size(), 15u);
  std::size_t checked = 0;
  for (const auto& sql : statements) {
    if (sql == "DELETE FROM " + table()) continue;  // delete_all empties the table
    std::string nulls;
    for (int i = 0; i < parameter_count(sql); ++i) nulls += (i > 0 ? ", NULL" : "NULL");
    // A generic plan: the one a prepared statement settles on, whatever the values.
    const auto plan =
        postgres_query(url_, "SET plan_cache_mode = force_generic_plan; PREPARE q AS " + sql +
                                 "; EXPLAIN EXECUTE q" + (nulls.empty() ? "" : "(" + nulls + ")"));
    std::string text;
    for (const auto& row : plan) text += row[0] + "\n";
    EXPECT_EQ(text.find("Seq Scan on task_executions"), std::string::npos) << sql << "\n" << text;
    ++checked;
  }
  EXPECT_GE(checked, 15u);
}

// ---- lost connections ------------------------------------------------------------------------

TEST_F(PostgresStorageTest, ConnectionsKilledByTheServerAreReplaced) {
  const auto url = de::postgres::with_connection_option(url_, "application_name", schema_);
  de::PostgresTaskExecutionsStorage storage{url, options()};
  auto records = std::vector<de::TaskExecutionRecord>{ready_record(), ready_record()};
  storage.insert_many(records);
  for (int round = 0; round < 3; ++round) {
    postgres_exec(url_,
                  "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                  "application_name = '" +
                      schema_ + "'");
    const auto found = storage.get_many_by_id({{.execution_id = records[0].execution_id}});
    ASSERT_TRUE(found[0].has_value());
    auto extra = ready_record();
    storage.insert_many({extra});
    records.push_back(extra);
  }
  EXPECT_EQ(postgres_query(url_, "SELECT count(*) FROM " + table())[0][0], "5");
  EXPECT_LE(storage.open_connections(), 4);
}

// ---- LISTEN/NOTIFY ---------------------------------------------------------------------------

/** Counts callback calls; waits (bounded) for the next one. */
class CallCounter {
 public:
  void operator()() {
    {
      std::lock_guard lock(mutex_);
      ++calls_;
    }
    cv_.notify_all();
  }
  /** @return true if the count exceeded `seen` within `timeout`. */
  bool wait_beyond(int seen, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return calls_ > seen; });
  }
  int calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int calls_ = 0;
};

TEST_F(PostgresStorageTest, AWriteInOneStorageWakesSubscribersOfAnother) {
  de::PostgresTaskExecutionsStorage writer{url_, options()};
  de::PostgresTaskExecutionsStorage reader{url_, options()};
  CallCounter counter;
  const auto token = reader.subscribe_to_external_work([&] { counter(); });
  ASSERT_NE(token, 0u);
  // The listener calls once when it connects (work may have been missed before).
  ASSERT_TRUE(counter.wait_beyond(0, std::chrono::seconds{10}));
  for (int i = 0; i < 3; ++i) {
    const int seen = counter.calls();
    const auto start = std::chrono::steady_clock::now();
    writer.insert_many({ready_record()});
    ASSERT_TRUE(counter.wait_beyond(seen, std::chrono::seconds{10})) << "round " << i;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds{2});
  }
  // After unsubscribe, the callback is never called again.
  reader.unsubscribe_from_external_work(token);
  const int after = counter.calls();
  writer.insert_many({ready_record()});
  EXPECT_FALSE(counter.wait_beyond(after, std::chrono::milliseconds{300}));
}

TEST_F(PostgresStorageTest, NotifyOffNeverSubscribes) {
  auto o = options();
  o.notify = false;
  de::PostgresTaskExecutionsStorage storage{url_, o};
  EXPECT_EQ(storage.subscribe_to_external_work([] {}), 0u);
}

}  // namespace

// ---- issue 10 on PostgreSQL: schema version 2, saturating leases, corrupt rows ----------------

namespace {

de::UpdateByStatusAndStartAtLessThanRequest claim_request(de::Timestamp now, std::int64_t limit) {
  de::TaskExecutionUpdate claim;
  claim.executor_id = "de_x";
  claim.status = de::TaskExecutionStatus::running;
  claim.started_at = now;
  return {.status = de::TaskExecutionStatus::ready,
          .start_at_less_than = now + std::chrono::milliseconds{1},
          .update = de::normalize_update(now, claim),
          .update_expires_at_with_started_at = now,
          .limit = limit};
}

std::optional<de::TaskExecutionRecord> get(de::TaskExecutionsStorage& storage,
                                           const std::string& execution_id) {
  return storage.get_many_by_id({{.execution_id = execution_id}}).at(0);
}

}  // namespace

TEST_F(PostgresStorageTest, AVersion1SchemaGetsTheLeaseExpirationsColumn) {
  const auto record = ready_record();
  {
    de::PostgresTaskExecutionsStorage storage{url_, options()};
    storage.insert_many({record});
  }
  // The table as version 1 wrote it.
  postgres_exec(url_, "ALTER TABLE " + table() + " DROP COLUMN lease_expirations");
  postgres_exec(url_, "UPDATE \"" + schema_ + "\".durable_execution_schema SET version = 1");
  de::PostgresTaskExecutionsStorage storage{url_, options()};
  EXPECT_EQ(postgres_query(
                url_, "SELECT version FROM \"" + schema_ + "\".durable_execution_schema")[0][0],
            "3");
  const auto read = get(storage, record.execution_id);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->lease_expirations, 0);
  de::TaskExecutionUpdate bump;
  bump.increment_lease_expirations = true;
  storage.update_many_by_id(
      {{.execution_id = record.execution_id, .update = de::normalize_update(test_now(), bump)}});
  EXPECT_EQ(get(storage, record.execution_id)->lease_expirations, 1);
}

TEST_F(PostgresStorageTest, AVersion2SchemaGetsThePartialClaimIndexes) {
  const auto record = ready_record();
  {
    de::PostgresTaskExecutionsStorage storage{url_, options()};
    storage.insert_many({record});
  }
  // The indexes as version 2 had them: the five claim indexes over every row.
  const std::string s = "\"" + schema_ + "\".";
  postgres_exec(url_, "DROP INDEX " + s + "ix_task_executions_ready_start_at, " + s +
                          "ix_task_executions_children_finished_updated_at, " + s +
                          "ix_task_executions_close_ready_updated_at, " + s +
                          "ix_task_executions_cancellation_executor_id_updated_at, " + s +
                          "ix_task_executions_finished_close_idle_updated_at");
  postgres_exec(url_, "CREATE INDEX ix_task_executions_status_start_at ON " + table() +
                          " (status, start_at); CREATE INDEX "
                          "ix_task_executions_close_status_updated_at ON " +
                          table() + " (close_status, updated_at)");
  postgres_exec(url_, "UPDATE \"" + schema_ + "\".durable_execution_schema SET version = 2");
  de::PostgresTaskExecutionsStorage storage{url_, options()};
  EXPECT_EQ(postgres_query(
                url_, "SELECT version FROM \"" + schema_ + "\".durable_execution_schema")[0][0],
            "3");
  const auto names = postgres_query(url_, "SELECT indexname FROM pg_indexes WHERE schemaname = '" +
                                              schema_ + "' ORDER BY indexname");
  std::set<std::string> present;
  for (const auto& row : names) present.insert(row[0]);
  EXPECT_EQ(present.count("ix_task_executions_status_start_at"), 0u);
  EXPECT_EQ(present.count("ix_task_executions_close_status_updated_at"), 0u);
  EXPECT_EQ(present.count("ix_task_executions_ready_start_at"), 1u);
  EXPECT_EQ(present.count("ix_task_executions_finished_close_idle_updated_at"), 1u);
  // The row written before the migration is claimed through the new index.
  const auto claimed =
      storage.update_by_status_and_start_at_less_than_and_return(claim_request(test_now(), 10));
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].execution_id, record.execution_id);
}

TEST_F(PostgresStorageTest, ClaimExpirySaturatesForExtremeTimeouts) {
  de::PostgresTaskExecutionsStorage storage{url_, options()};
  const auto now = test_now();
  auto huge = ready_record();
  huge.timeout = std::chrono::milliseconds::max();
  auto negative = ready_record();
  negative.timeout = std::chrono::milliseconds::min();
  storage.insert_many({huge, negative});
  const auto claimed =
      storage.update_by_status_and_start_at_less_than_and_return(claim_request(now, 10));
  ASSERT_EQ(claimed.size(), 2U);
  for (const auto& c : claimed) {
    ASSERT_TRUE(c.expires_at.has_value());
    // The maximum saturates (bigint overflow would be an error); the minimum still fits.
    const auto expected = c.execution_id == huge.execution_id
                              ? std::numeric_limits<std::int64_t>::max()
                              : de::to_unix_ms(now) + std::numeric_limits<std::int64_t>::min();
    EXPECT_EQ(de::to_unix_ms(*c.expires_at), expected);
    const auto stored = get(storage, c.execution_id);
    ASSERT_TRUE(stored.has_value());
    EXPECT_EQ(stored->status, de::TaskExecutionStatus::running);
    EXPECT_EQ(stored->expires_at, c.expires_at);
  }
}

TEST_F(PostgresStorageTest, ClaimsSetCorruptRowsAsideAndReturnTheHealthyOnes) {
  std::mutex log_mutex;
  std::vector<std::string> log;
  auto opts = options();
  opts.log_sink = [&](std::string_view line) {
    std::lock_guard lock(log_mutex);
    log.emplace_back(line);
  };
  de::PostgresTaskExecutionsStorage storage{url_, opts};
  const auto healthy = ready_record();
  const auto bad_status = ready_record();
  const auto bad_children = ready_record();
  storage.insert_many({healthy, bad_status, bad_children});
  postgres_exec(url_, "UPDATE " + table() + " SET close_status = 'bogus' WHERE execution_id = '" +
                          bad_status.execution_id + "'");
  postgres_exec(url_, "UPDATE " + table() + " SET children = '[1, 2]' WHERE execution_id = '" +
                          bad_children.execution_id + "'");
  const auto now = test_now();
  const auto claimed =
      storage.update_by_status_and_start_at_less_than_and_return(claim_request(now, 10));
  ASSERT_EQ(claimed.size(), 1U);
  EXPECT_EQ(claimed[0].execution_id, healthy.execution_id);
  const std::vector<std::pair<std::string, std::string>> damaged{
      {bad_status.execution_id, "close_status"}, {bad_children.execution_id, "children"}};
  for (const auto& [id, column] : damaged) {
    const auto read = get(storage, id);
    ASSERT_TRUE(read.has_value()) << column;
    EXPECT_EQ(read->status, de::TaskExecutionStatus::failed) << column;
    EXPECT_TRUE(read->is_finished) << column;
    EXPECT_FALSE(read->executor_id.has_value()) << column;
    ASSERT_TRUE(read->error.has_value()) << column;
    EXPECT_NE(read->error->message.find("corrupt record: column " + column), std::string::npos)
        << read->error->message;
    // Stored as failed: status, finish and no lease, whatever the damaged column still holds.
    const auto stored = postgres_query(
        url_, "SELECT status, is_finished, executor_id IS NULL, expires_at IS NULL FROM " +
                  table() + " WHERE execution_id = '" + id + "'");
    EXPECT_EQ(stored[0], (std::vector<std::string>{"failed", "t", "t", "t"})) << column;
  }
  // Nothing is claimed again.
  EXPECT_TRUE(storage
                  .update_by_status_and_start_at_less_than_and_return(
                      claim_request(now + std::chrono::seconds{1}, 10))
                  .empty());
  std::lock_guard lock(log_mutex);
  ASSERT_EQ(log.size(), 2U);
  for (const auto& line : log) {
    EXPECT_NE(line.find("set aside a corrupt execution as failed"), std::string::npos) << line;
  }
}
