#pragma once

// The one place the backend calls pqxx's exec_params (ad-hoc statements with parameters: schema
// checks, migrations, txid_status, pg_notify). libpqxx 8 deprecates it while Debian ships 6.4
// (STYLE.md): a move to 8 changes this function only. Prepared statements go through
// PreparedStatements::exec_prepared (pg_statements.hpp). Entered by any thread with a transaction.

#include <pqxx/pqxx>
#include <string>
#include <utility>

namespace durable_execution::postgres {

/** @brief Runs `sql` with `params` bound to $1, $2, ... in `tx`. */
template <class... Params>
pqxx::result exec_params(pqxx::transaction_base& tx, const std::string& sql, Params&&... params) {
  return tx.exec_params(sql, std::forward<Params>(params)...);
}

}  // namespace durable_execution::postgres
