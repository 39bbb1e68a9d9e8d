#pragma once

// Text helpers of the PostgreSQL backend that need no libpq: array literals for `unnest`
// parameters, identifier validation, and connection strings with the password hidden.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace durable_execution::postgres {

/**
 * Builds the text of a one-dimensional PostgreSQL array literal (`{"a",NULL,"b"}`), bound as one
 * statement parameter and cast in SQL (`$1::text[]`): a whole column of a batch in one value.
 * Strings are always quoted and their `"` and `\` escaped, so any text (quotes, commas, braces,
 * the word NULL) round-trips verbatim.
 */
class ArrayLiteral {
 public:
  ArrayLiteral() : text_("{") {}

  void add(std::string_view value);
  void add(std::int64_t value);
  void add_null();
  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  /** The literal; the builder is left empty. */
  [[nodiscard]] std::string take();

 private:
  void separator();

  std::string text_;
  std::size_t count_ = 0;
};

/** PostgreSQL's identifier limit (NAMEDATALEN - 1): longer names are cut, not refused. */
constexpr std::size_t kMaxIdentifierBytes = 63;

/**
 * True for a name this backend accepts as a schema or table name: `[A-Za-z_][A-Za-z0-9_]*`, at
 * most 63 bytes (PostgreSQL's identifier limit). Names are always double-quoted in SQL, so their
 * case is kept.
 */
[[nodiscard]] bool is_valid_identifier(std::string_view name);

/** The 64-bit FNV-1a hash of `text` as 16 lowercase hex digits: stable names derived from names. */
[[nodiscard]] std::string fnv1a_hex(std::string_view text);

/** The password of a libpq connection string (URL or `key=value` form), if it has one. */
[[nodiscard]] std::optional<std::string> connection_password(std::string_view conninfo);

/**
 * The connection string with its password replaced by `***` (URL userinfo, a `password=` query
 * parameter, or a `password=` keyword): the form used in every error message and log line.
 */
[[nodiscard]] std::string redact_connection_string(std::string_view conninfo);

/** `text` with every occurrence of `secret` (if it is at least 3 bytes) replaced by `***`. */
[[nodiscard]] std::string redact_secret(std::string text, const std::optional<std::string>& secret);

/** The connection string with `key=value` added (as a URL query parameter or a keyword). */
[[nodiscard]] std::string with_connection_option(std::string_view conninfo, std::string_view key,
                                                 std::string_view value);

/** True if the connection string already sets the keyword (or URL parameter) `key`. */
[[nodiscard]] bool has_connection_option(std::string_view conninfo, std::string_view key);

}  // namespace durable_execution::postgres
