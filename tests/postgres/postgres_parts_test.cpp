// The PostgreSQL backend's parts that need no server: schema names and DDL (pg_schema), statement
// keys and SQL text (pg_statements), statement parameters (pg_rows), the pool's options and error
// classes (pg_pool), and the notification channel's name (pg_notify).
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "durable_execution/errors.hpp"
#include "pg_notify.hpp"
#include "pg_pool.hpp"
#include "pg_rows.hpp"
#include "pg_schema.hpp"
#include "pg_statements.hpp"

namespace {

namespace de = durable_execution;
namespace pg = durable_execution::postgres;
namespace sql = durable_execution::sql;

sql::UpdateShape shape_setting(std::initializer_list<sql::SetField> fields) {
  sql::UpdateShape shape;
  for (auto f : fields) shape.set |= 1U << f;
  return shape;
}

std::string thrown_message(const auto& make) {
  try {
    make();
  } catch (const de::DurableExecutionError& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

TEST(PostgresSchema, NamesAreValidatedAndQuoted) {
  const pg::TableSchema table{"Jobs", "task_executions"};
  EXPECT_EQ(table.qualified(), R"("Jobs"."task_executions")");
  EXPECT_EQ(table.index_name("ready_start_at"), R"("ix_task_executions_ready_start_at")");
  EXPECT_NE(thrown_message([] { pg::TableSchema("a\"b", "t"); }).find("schema name 'a\"b'"),
            std::string::npos);
  EXPECT_NE(thrown_message([] { pg::TableSchema("s", "t x"); }).find("table name 't x'"),
            std::string::npos);
  EXPECT_NE(thrown_message([] {
              pg::TableSchema("s", std::string{pg::kSchemaTable});
            }).find("must not be durable_execution_schema"),
            std::string::npos);
}

TEST(PostgresSchema, CreateTableHasVersionOneColumnsWithTypesAndNullability) {
  const auto ddl = pg::TableSchema{"s", "t"}.create_table_v1_sql();
  EXPECT_TRUE(ddl.starts_with(
      R"(CREATE TABLE "s"."t" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, )"
      "root_task_id text, "))
      << ddl;
  EXPECT_NE(ddl.find(", task_id text NOT NULL, "), std::string::npos) << ddl;
  EXPECT_NE(ddl.find(", retry_options json NOT NULL, "), std::string::npos) << ddl;
  EXPECT_NE(ddl.find(", executor_id text, "), std::string::npos) << ddl;
  EXPECT_NE(ddl.find(", updated_at bigint NOT NULL)"), std::string::npos) << ddl;
  EXPECT_EQ(ddl.find("lease_expirations"), std::string::npos) << "added by migration 2: " << ddl;
}

TEST(PostgresSchema, IndexesArePartialWhereTheyHaveAPredicate) {
  const pg::TableSchema table{"s", "t"};
  EXPECT_EQ(table.create_index_sql({"ready_start_at", "start_at", false, "status = 'ready'"}),
            R"(CREATE INDEX IF NOT EXISTS "ix_t_ready_start_at" ON "s"."t" (start_at) )"
            "WHERE status = 'ready'");
  EXPECT_EQ(table.create_index_sql({"execution_id", "execution_id", true, ""}),
            R"(CREATE UNIQUE INDEX IF NOT EXISTS "ix_t_execution_id" ON "s"."t" (execution_id))");
}

TEST(PostgresSchema, ColumnTypes) {
  EXPECT_EQ(pg::column_type("retry_options"), "json");
  EXPECT_EQ(pg::column_type("lease_expirations"), "integer");
  EXPECT_EQ(pg::column_type("no_such_column"), "");
}

TEST(PostgresStatements, KeysAndNames) {
  EXPECT_EQ(pg::statement_name(pg::statement_key(pg::q_insert)), "de_0100000000000000");
  sql::UpdateShape shape = shape_setting({sql::s_status});
  shape.null = 1U << sql::s_executor_id;
  EXPECT_EQ(pg::statement_name(pg::statement_key(pg::q_update_by_id, shape, 5)),
            "de_0705000001000002");
  EXPECT_EQ(pg::claim_literal(std::string_view{"ready"}), "'ready'");
  EXPECT_EQ(pg::claim_literal(false), "false");
  EXPECT_EQ((pg::IdFilters{.status = true, .is_finished = true}.flags()), 6U);
}

TEST(PostgresStatements, InsertCastsEveryColumnArray) {
  const auto text = pg::StatementText{R"("s"."t")"}.insert();
  EXPECT_TRUE(text.starts_with(R"(INSERT INTO "s"."t" (root_task_id, root_execution_id, )"));
  EXPECT_NE(text.find(") SELECT * FROM unnest($1::text[], $2::text[], "), std::string::npos);
  EXPECT_NE(text.find(", $10::json[], "), std::string::npos) << text;
  EXPECT_TRUE(text.ends_with(", $40::integer[])")) << text;
}

TEST(PostgresStatements, GuardedUpdatesNumberTheirParameters) {
  const pg::StatementText text{R"("s"."t")"};
  const auto shape = shape_setting({sql::s_status, sql::s_updated_at});
  EXPECT_EQ(text.update_by_id(shape, {.status = true}),
            R"(UPDATE "s"."t" t SET status = $1::text, updated_at = $2::bigint )"
            "WHERE t.execution_id = $3 AND t.status = $4 RETURNING t.parent_execution_id");
  EXPECT_EQ(text.update_by_ids(shape, {.status = true}, true),
            R"(UPDATE "s"."t" t SET status = v.f1, updated_at = v.f22 FROM unnest()"
            "$1::text[], $2::text[], $3::text[], $4::bigint[]) AS v(eid, fst, f1, f22) WHERE "
            "t.execution_id = v.eid AND t.status = v.fst RETURNING t.execution_id, "
            "t.parent_execution_id");
  EXPECT_EQ(text.update_by_parent_ids(shape),
            R"(UPDATE "s"."t" t SET status = v.f1, updated_at = v.f22 FROM unnest()"
            "$1::text[], $2::boolean[], $3::text[], $4::bigint[]) AS v(pid, fin, f1, f22) WHERE "
            "t.parent_execution_id = v.pid AND t.is_finished = v.fin");
}

TEST(PostgresStatements, ClaimsLockSkipAndBindAfterTheirWhereValues) {
  const pg::StatementText text{R"("s"."t")"};
  const auto shape = shape_setting({sql::s_updated_at, sql::s_increment_lease_expirations});
  const auto selected = text.update_selected("close_expires_at < $1", 1, "close_expires_at", shape);
  EXPECT_EQ(selected,
            R"(WITH sel AS (SELECT id FROM "s"."t" WHERE close_expires_at < $1 ORDER BY )"
            R"(close_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) UPDATE "s"."t" t SET )"
            "updated_at = $3::bigint, lease_expirations = lease_expirations + 1 FROM sel WHERE "
            "t.id = sel.id AND t.id = ANY(ARRAY(SELECT id FROM sel))");
  const auto claim = text.claim("status = 'ready'", 0, "start_at", shape);
  EXPECT_TRUE(claim.starts_with("WITH sel AS (SELECT id, start_at AS k FROM ")) << claim;
  EXPECT_NE(claim.find(" LIMIT $1 FOR UPDATE SKIP LOCKED) "), std::string::npos) << claim;
  EXPECT_TRUE(claim.ends_with(", t.lease_expirations, sel.k")) << claim;
  EXPECT_NE(claim.find(" RETURNING t.id, t.root_task_id, "), std::string::npos) << claim;
  EXPECT_EQ(text.close_finished(true, "ready", shape),
            text.update_selected("is_finished = true AND close_status = 'ready'", 0, "updated_at",
                                 shape) +
                " RETURNING t.parent_execution_id");
}

TEST(PostgresStatements, ExpiresAtFromTheBaseSaturates) {
  const auto text = pg::StatementText{R"("s"."t")"}.update_by_id(
      shape_setting({sql::s_expires_at_from_base}), {});
  EXPECT_NE(text.find("t.timeout_ms"), std::string::npos) << text;
  EXPECT_NE(text.find("$1::bigint"), std::string::npos) << text;
  EXPECT_NE(text.find("WHERE t.execution_id = $2 RETURNING"), std::string::npos) << text;
}

TEST(PostgresRows, ParamsKeepTheirTextsWhenMoved) {
  const std::string borrowed = "borrowed";
  pg::Params params;
  params.ref(borrowed);
  params.own("owned");
  params.add(-7);
  params.add_bool(true);
  params.add_null();
  EXPECT_EQ(params.next_index(), 6);
  const pg::Params moved = std::move(params);
  const auto& v = moved.values();
  ASSERT_EQ(v.size(), 5U);
  EXPECT_EQ(v[0], borrowed.c_str());
  EXPECT_STREQ(v[1], "owned");
  EXPECT_STREQ(v[2], "-7");
  EXPECT_STREQ(v[3], "t");
  EXPECT_EQ(v[4], nullptr);
}

TEST(PostgresRows, UpdateArraysBindTheShapesValueFieldsInOrder) {
  de::TaskExecutionUpdate a;
  a.status = de::TaskExecutionStatus::running;
  a.updated_at = de::from_unix_ms(5);
  de::TaskExecutionUpdate b = a;
  b.updated_at = de::from_unix_ms(6);
  pg::UpdateArrays arrays;
  arrays.add(a);
  arrays.add(b);
  pg::Params params;
  arrays.bind(sql::shape_of(a, std::nullopt), params);
  ASSERT_EQ(params.values().size(), 2U);
  EXPECT_STREQ(params.values()[0], R"({"running","running"})");
  EXPECT_STREQ(params.values()[1], "{5,6}");
}

TEST(PostgresPool, OptionsAreCheckedAndConnectTimeoutAdded) {
  const pg::Pool pool{"postgresql://u:s3cret@h/db", {}};
  EXPECT_EQ(pool.conninfo(), "postgresql://u:s3cret@h/db?connect_timeout=10");
  EXPECT_EQ(pool.redacted(), "postgresql://u:***@h/db");
  EXPECT_EQ(pool.clean("bad password s3cret\n"), "bad password ***");
  EXPECT_EQ((pg::Pool{"host=h connect_timeout=3", {.connect_timeout = std::chrono::seconds{9}}}
                 .conninfo()),
            "host=h connect_timeout=3");
  EXPECT_NE(thrown_message([] { pg::Pool("host=h", {.pool_size = 0}); }).find("pool_size"),
            std::string::npos);
  EXPECT_NE(thrown_message([] { pg::Pool("host=h", {.max_retries = -1}); }).find("max_retries"),
            std::string::npos);
}

TEST(PostgresPool, SqlStatesAreClassified) {
  EXPECT_EQ(pg::classify("40001"), pg::SqlErrorKind::retry_in_place);
  EXPECT_EQ(pg::classify("40P01"), pg::SqlErrorKind::retry_in_place);
  EXPECT_EQ(pg::classify("23505"), pg::SqlErrorKind::duplicate);
  EXPECT_EQ(pg::classify("08006"), pg::SqlErrorKind::connection);
  EXPECT_EQ(pg::classify("25006"), pg::SqlErrorKind::connection);  // a demoted primary
  EXPECT_EQ(pg::classify("57P01"), pg::SqlErrorKind::connection);
  EXPECT_EQ(pg::classify("42P01"), pg::SqlErrorKind::fatal);
}

TEST(PostgresNotify, ChannelNameIsTheSameInEveryProcessAndBuild) {
  // Pinned: processes of different builds on one table must share the channel.
  EXPECT_EQ(pg::channel_name("public", "task_executions"), "de_0b4c8eeebf7b0b07");
  EXPECT_NE(pg::channel_name("public", "other"), pg::channel_name("public", "task_executions"));
}

}  // namespace
