// The PostgreSQL backend's text helpers (no server needed): array literals, identifiers and
// connection strings with the password hidden.
#include <gtest/gtest.h>

#include "pg_text.hpp"

namespace {

using namespace durable_execution::postgres;

TEST(PostgresText, ArrayLiteralQuotesAndEscapesEveryString) {
  ArrayLiteral a;
  a.add(std::string_view{"plain"});
  a.add(std::string_view{"with \"quotes\" and \\backslash\\"});
  a.add(std::string_view{"NULL"});
  a.add(std::string_view{"{,}"});
  a.add_null();
  a.add(std::int64_t{-42});
  EXPECT_EQ(a.size(), 6u);
  EXPECT_EQ(a.take(), R"({"plain","with \"quotes\" and \\backslash\\","NULL","{,}",NULL,-42})");
  EXPECT_EQ(a.take(), "{}");  // the builder starts over
}

TEST(PostgresText, IdentifiersAreValidated) {
  EXPECT_TRUE(is_valid_identifier("task_executions"));
  EXPECT_TRUE(is_valid_identifier("_Jobs2"));
  EXPECT_TRUE(is_valid_identifier(std::string(63, 'a')));
  EXPECT_FALSE(is_valid_identifier(std::string(64, 'a')));
  EXPECT_FALSE(is_valid_identifier(""));
  EXPECT_FALSE(is_valid_identifier("2jobs"));
  EXPECT_FALSE(is_valid_identifier("jobs; DROP TABLE x"));
  EXPECT_FALSE(is_valid_identifier("a\"b"));
  EXPECT_FALSE(is_valid_identifier("a.b"));
}

TEST(PostgresText, PasswordOfUrlAndKeywordForms) {
  EXPECT_EQ(connection_password("postgresql://u:s3cret@host:5432/db"), "s3cret");
  EXPECT_EQ(connection_password("postgres://u:p%40ss@h/db"), "p@ss");
  EXPECT_EQ(connection_password("postgresql://u@h/db?password=qwerty&sslmode=disable"), "qwerty");
  EXPECT_EQ(connection_password("host=h user=u password=hunter2 dbname=d"), "hunter2");
  EXPECT_EQ(connection_password("host=h password='a b\\'c'"), "a b'c");
  EXPECT_EQ(connection_password("postgresql://u@h/db"), std::nullopt);
  EXPECT_EQ(connection_password("host=h user=u"), std::nullopt);
}

TEST(PostgresText, RedactionHidesEveryFormOfThePassword) {
  EXPECT_EQ(redact_connection_string("postgresql://u:s3cret@host:5432/db"),
            "postgresql://u:***@host:5432/db");
  EXPECT_EQ(redact_connection_string("postgresql://u@h/db?sslmode=disable&password=qwerty"),
            "postgresql://u@h/db?sslmode=disable&password=***");
  EXPECT_EQ(redact_connection_string("host=h user=u password=hunter2 dbname=d"),
            "host=h user=u password=*** dbname=d");
  EXPECT_EQ(redact_connection_string("host=h password='a b\\'c' dbname=d"),
            "host=h password=*** dbname=d");
  EXPECT_EQ(redact_connection_string("postgresql://u@h/db"), "postgresql://u@h/db");
  EXPECT_EQ(redact_secret("FATAL: bad password hunter2 for u", std::string{"hunter2"}),
            "FATAL: bad password *** for u");
}

TEST(PostgresText, ConnectionOptionsAreAddedInTheStringsOwnForm) {
  EXPECT_EQ(with_connection_option("postgresql://u@h/db", "connect_timeout", "5"),
            "postgresql://u@h/db?connect_timeout=5");
  EXPECT_EQ(with_connection_option("postgresql://u@h/db?sslmode=disable", "connect_timeout", "5"),
            "postgresql://u@h/db?sslmode=disable&connect_timeout=5");
  EXPECT_EQ(with_connection_option("host=h", "connect_timeout", "5"), "host=h connect_timeout=5");
  EXPECT_TRUE(has_connection_option("host=h connect_timeout=3", "connect_timeout"));
  EXPECT_TRUE(has_connection_option("postgresql://h/db?connect_timeout=3", "connect_timeout"));
  EXPECT_FALSE(has_connection_option("postgresql://h/db", "connect_timeout"));
}

}  // namespace
