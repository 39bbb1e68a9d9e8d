#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "durable_execution/export.hpp"

namespace durable_execution {

/** @brief The kind of a DurableExecutionError, as stored in an execution record. */
enum class ErrorType { generic, not_found, timed_out, cancelled };

[[nodiscard]] DURABLE_EXECUTION_EXPORT std::string_view to_string(ErrorType type) noexcept;
/** @brief Parses "generic", "not_found", "timed_out" or "cancelled"; throws on anything else. */
[[nodiscard]] DURABLE_EXECUTION_EXPORT ErrorType parse_error_type(std::string_view text);

/**
 * @brief The stored form of an error: what an execution record's `error` holds and what a run
 * context exposes as the previous attempt's error.
 */
struct StoredError {
  ErrorType error_type = ErrorType::generic;
  bool is_retryable = false;
  bool is_internal = false;
  std::string message{};

  friend bool operator==(const StoredError&, const StoredError&) = default;
};

DURABLE_EXECUTION_EXPORT void to_json(nlohmann::json& j, const StoredError& e);
DURABLE_EXECUTION_EXPORT void from_json(const nlohmann::json& j, StoredError& e);

/**
 * @brief The one exception type of the public API.
 *
 * Carries a type (generic, not found, timed out, cancelled) and two flags: whether a retry may
 * succeed and whether the error comes from the engine itself. Task code may throw it to control
 * retries: `throw DurableExecutionError::non_retryable("bad input")`.
 *
 * @note Thread safety: immutable after construction; safe to share.
 */
class DURABLE_EXECUTION_EXPORT DurableExecutionError : public std::runtime_error {
 public:
  explicit DurableExecutionError(const std::string& message, ErrorType type = ErrorType::generic,
                                 bool is_retryable = false, bool is_internal = false);
  DurableExecutionError(const DurableExecutionError&) = default;
  DurableExecutionError& operator=(const DurableExecutionError&) = default;
  DurableExecutionError(DurableExecutionError&&) = default;
  DurableExecutionError& operator=(DurableExecutionError&&) = default;
  ~DurableExecutionError() override;

  [[nodiscard]] static DurableExecutionError retryable(const std::string& message,
                                                       bool is_internal = false);
  [[nodiscard]] static DurableExecutionError non_retryable(const std::string& message,
                                                           bool is_internal = false);
  /** @brief Rebuilds the exception from its stored form (the type picks the subclass's type). */
  [[nodiscard]] static DurableExecutionError from_stored(const StoredError& stored);

  [[nodiscard]] ErrorType type() const noexcept { return type_; }
  [[nodiscard]] bool is_retryable() const noexcept { return is_retryable_; }
  [[nodiscard]] bool is_internal() const noexcept { return is_internal_; }
  [[nodiscard]] StoredError to_stored() const;

 private:
  ErrorType type_{};
  bool is_retryable_{};
  bool is_internal_{};
};

/** @brief An unknown task, execution or unique id. Never retryable. */
class DURABLE_EXECUTION_EXPORT DurableExecutionNotFoundError : public DurableExecutionError {
 public:
  explicit DurableExecutionNotFoundError(const std::string& message, bool is_internal = false);
  ~DurableExecutionNotFoundError() override;
};

/** @brief A run that exceeded its timeout. Retryable while attempts remain. */
class DURABLE_EXECUTION_EXPORT DurableExecutionTimedOutError : public DurableExecutionError {
 public:
  explicit DurableExecutionTimedOutError(const std::string& message = "Task execution timed out",
                                         bool is_internal = false);
  ~DurableExecutionTimedOutError() override;
};

/** @brief A cancelled execution or wait. Never retryable. */
class DURABLE_EXECUTION_EXPORT DurableExecutionCancelledError : public DurableExecutionError {
 public:
  explicit DurableExecutionCancelledError(const std::string& message = "Task execution cancelled",
                                          bool is_internal = false);
  ~DurableExecutionCancelledError() override;
};

}  // namespace durable_execution
