// Schema and migrations of the PostgreSQL backend (see pg_schema.hpp). Entered by the storage
// constructor's thread only.
#include "pg_schema.hpp"

#include <algorithm>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <span>

#include "durable_execution/errors.hpp"
#include "durable_execution/postgres/postgres_storage.hpp"
#include "pg_exec.hpp"
#include "pg_text.hpp"

namespace durable_execution::postgres {

namespace {

using sql::IndexDef;
using sql::kColumns;
using sql::kColumnsV1;

// Version 2: the crash-loop bound counts lease expirations per execution.
constexpr std::string_view kMigrateV2Column = "lease_expirations integer NOT NULL DEFAULT 0";

// Version 3: the indexes of the executor's claims hold only the rows those claims select (the
// values the executor asks for), instead of every row. Every write of a row inserted an entry
// into all 11 indexes (a changed indexed column defeats heap-only updates); with these, a row
// enters an index only while a claim can select it: per-row insert and update cost roughly
// halved (20,000-row updates: 409 -> 236 ms). Claims for other values are still answered, by a
// scan. The predicates name the values as literals, as the statements do (see claim_literal):
// PostgreSQL uses a partial index only for a query whose WHERE implies its predicate.
constexpr std::array<std::string_view, 5> kDroppedV3Indexes{
    "status_start_at", "status_ocfp_status_acc_updated_at", "close_status_updated_at",
    "executor_id_npc_updated_at", "is_finished_close_status_updated_at"};
constexpr std::array<IndexDef, 5> kIndexesV3{{
    {"ready_start_at", "start_at", false, "status = 'ready'"},
    {"children_finished_updated_at", "updated_at", false,
     "status = 'waiting_for_children' AND on_children_finished_processing_status = 'idle' AND "
     "active_children_count = 0"},
    {"close_ready_updated_at", "updated_at", false, "close_status = 'ready'"},
    {"cancellation_executor_id_updated_at", "executor_id, updated_at", false,
     "needs_promise_cancellation"},
    {"finished_close_idle_updated_at", "updated_at", false,
     "is_finished AND close_status = 'idle'"},
}};

DurableExecutionError setup_error(std::string message) {
  return DurableExecutionError(std::move(message), ErrorType::generic, false, false);
}

/** The migration steps of one table, in one transaction. */
class Migration {
 public:
  Migration(const TableSchema& table, pqxx::transaction_base& tx)
      : table_(table),
        tx_(tx),
        versions_(quote_identifier(table.schema()) + "." + std::string{kSchemaTable}) {}

  std::optional<std::int64_t> read_version() const {
    const auto exists = exec_params(tx_, "SELECT to_regclass($1) IS NOT NULL", versions_);
    if (exists.empty() || !exists[0][0].as<bool>()) return std::nullopt;
    const auto r = exec_params(tx_, "SELECT version FROM " + versions_ + " WHERE table_name = $1",
                               table_.table());
    if (r.empty()) return std::nullopt;
    return r[0][0].as<std::int64_t>();
  }

  void refuse_newer(std::optional<std::int64_t> version) const {
    if (version && *version > PostgresTaskExecutionsStorage::schema_version) {
      throw setup_error("PostgreSQL table " + table_.qualified() + " has schema version " +
                        std::to_string(*version) +
                        ", newer than the version this library supports (" +
                        std::to_string(PostgresTaskExecutionsStorage::schema_version) +
                        "); upgrade durable_execution to open it");
    }
  }

  void run() {
    // One migration at a time per database: executors starting together do not race.
    tx_.exec("SELECT pg_advisory_xact_lock(7283640195117260817)");
    tx_.exec("CREATE SCHEMA IF NOT EXISTS " + quote_identifier(table_.schema()));
    tx_.exec("CREATE TABLE IF NOT EXISTS " + versions_ +
             " (table_name text PRIMARY KEY, version integer NOT NULL)");
    auto version = read_version();
    refuse_newer(version);  // again, under the lock
    if (!version) {
      const auto exists =
          exec_params(tx_, "SELECT to_regclass($1) IS NOT NULL", table_.qualified());
      if (exists[0][0].as<bool>()) {
        adopt_existing_table();
      } else {
        tx_.exec(table_.create_table_v1_sql());
      }
      create_indexes(sql::kIndexesV1);
      set_version(1);
      version = 1;
    }
    // Each later version is a step in this same transaction: a failed migration changes nothing.
    if (*version < 2) {
      // An adopted table may have the column already.
      tx_.exec("ALTER TABLE " + table_.qualified() + " ADD COLUMN IF NOT EXISTS " +
               std::string{kMigrateV2Column});
      set_version(2);
      version = 2;
    }
    if (*version < 3) {
      for (auto suffix : kDroppedV3Indexes) {
        tx_.exec("DROP INDEX IF EXISTS " + quote_identifier(table_.schema()) + "." +
                 table_.index_name(suffix));
      }
      create_indexes(kIndexesV3);
      set_version(3);
      version = 3;
    }
  }

 private:
  void set_version(std::int64_t version) {
    exec_params(tx_,
                "INSERT INTO " + versions_ +
                    " (table_name, version) VALUES ($1, $2) ON CONFLICT (table_name) DO "
                    "UPDATE SET version = excluded.version",
                table_.table(), version);
  }

  // A table of that name without a version row (e.g. the reference engine's drizzle schema,
  // same columns): adopt it if every column is there, refuse otherwise.
  void adopt_existing_table() {
    const auto r = exec_params(
        tx_,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND "
        "table_name = $2",
        table_.schema(), table_.table());
    std::set<std::string> present;
    for (const auto& row : r) present.insert(row[0].c_str());
    for (auto c : std::span{kColumns}.first(kColumnsV1)) {
      if (present.count(std::string{c}) == 0) {
        throw setup_error("PostgreSQL table " + table_.qualified() +
                          " exists but is not a task executions table (missing column " +
                          std::string{c} + ")");
      }
    }
  }

  template <std::size_t N>
  void create_indexes(const std::array<IndexDef, N>& indexes) {
    for (const auto& ix : indexes) tx_.exec(table_.create_index_sql(ix));
  }

  const TableSchema& table_;
  pqxx::transaction_base& tx_;
  std::string versions_;  // "schema".durable_execution_schema
};

}  // namespace

std::string quote_identifier(std::string_view identifier) {
  return "\"" + std::string{identifier} + "\"";
}

TableSchema::TableSchema(std::string schema, std::string table)
    : schema_(std::move(schema)), table_(std::move(table)) {
  if (!is_valid_identifier(schema_)) {
    throw setup_error("Invalid PostgreSQL schema name '" + schema_ +
                      "': it must match [A-Za-z_][A-Za-z0-9_]* (at most 63 bytes)");
  }
  if (!is_valid_identifier(table_) || table_ == kSchemaTable) {
    throw setup_error("Invalid PostgreSQL table name '" + table_ +
                      "': it must match [A-Za-z_][A-Za-z0-9_]* (at most 63 bytes) and must not "
                      "be durable_execution_schema");
  }
  qualified_ = quote_identifier(schema_) + "." + quote_identifier(table_);
}

std::string TableSchema::create_table_v1_sql() const {
  // A bigint identity key keeps rows in insertion order for ties; execution ids are
  // time-ordered, so their unique index also grows at its right edge.
  std::string sql =
      "CREATE TABLE " + qualified_ + " (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY";
  for (std::size_t i = 0; i < kColumnsV1; ++i) {
    sql += ", ";
    sql += kColumns[i];
    sql += ' ';
    sql += kColumnTypes[i].type;
    if (kColumnTypes[i].not_null) sql += " NOT NULL";
  }
  sql += ")";
  return sql;
}

std::string TableSchema::index_name(std::string_view suffix) const {
  // PostgreSQL cuts identifiers at 63 bytes: past that, the names of a long table's indexes would
  // collide and all but one would silently not be created (the unique ones among them). Such a
  // name keeps a prefix of the table name and gains a hash of the whole name.
  std::string name = "ix_" + table_ + "_" + std::string{suffix};
  if (name.size() > kMaxIdentifierBytes) {
    const auto hash = fnv1a_hex(table_).substr(0, 8);
    const auto keep = kMaxIdentifierBytes - (std::size("ix___") - 1 + hash.size() + suffix.size());
    name = "ix_" + table_.substr(0, keep) + "_" + hash + "_" + std::string{suffix};
  }
  return quote_identifier(name);
}

std::string TableSchema::create_index_sql(const IndexDef& index) const {
  return std::string{"CREATE "} + (index.unique ? "UNIQUE " : "") + "INDEX IF NOT EXISTS " +
         index_name(index.suffix) + " ON " + qualified_ + " (" + std::string{index.columns} + ")" +
         (index.where.empty() ? std::string{} : " WHERE " + std::string{index.where});
}

void TableSchema::migrate(pqxx::connection_base& conn) const {
  {
    // Refuse a newer schema before anything is written (not even the schema).
    pqxx::read_transaction tx(conn);
    Migration m{*this, tx};
    m.refuse_newer(m.read_version());
    tx.commit();
  }
  pqxx::work tx(conn);
  Migration{*this, tx}.run();
  tx.commit();
}

}  // namespace durable_execution::postgres
