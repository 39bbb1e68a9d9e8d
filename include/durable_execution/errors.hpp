#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "durable_execution/export.hpp"

namespace durable_execution {

/** @brief The kind of a DurableExecutionError, as stored in an execution record. */
enum class ErrorType { generic, not_found, timed_out, cancelled };

/// @brief The stored name of an error type: "generic", "not_found", "timed_out" or "cancelled".
[[nodiscard]] DURABLE_EXECUTION_EXPORT std::string_view to_string(ErrorType type) noexcept;
/** @brief Parses "generic", "not_found", "timed_out" or "cancelled"; throws on anything else. */
[[nodiscard]] DURABLE_EXECUTION_EXPORT ErrorType parse_error_type(std::string_view text);

/**
 * @brief The stored form of an error: what an execution record's `error` holds and what a run
 * context exposes as the previous attempt's error.
 */
struct StoredError {
  /// The kind of error.
  ErrorType error_type = ErrorType::generic;
  /// Whether a retry may succeed.
  bool is_retryable = false;
  /// The error comes from the engine (expiry, serialization, limits), not the task's code.
  bool is_internal = false;
  /// The exception's message.
  std::string message{};

  /// Equal when every field is equal.
  friend bool operator==(const StoredError&, const StoredError&) = default;
};

/// @brief The JSON form: `{"errorType", "isRetryable", "isInternal", "message"}`.
DURABLE_EXECUTION_EXPORT void to_json(nlohmann::json& j, const StoredError& e);
/// @brief Reads the JSON form written by to_json().
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
  /// @brief An error with a message, a type and the two flags (by default generic, not retryable,
  /// not internal).
  explicit DurableExecutionError(const std::string& message, ErrorType type = ErrorType::generic,
                                 bool is_retryable = false, bool is_internal = false);
  /// Copyable, as exceptions must be.
  DurableExecutionError(const DurableExecutionError&) = default;
  /// Copy assignment.
  DurableExecutionError& operator=(const DurableExecutionError&) = default;
  /// Move construction.
  DurableExecutionError(DurableExecutionError&&) = default;
  /// Move assignment.
  DurableExecutionError& operator=(DurableExecutionError&&) = default;
  /// Defined in the library, so the class's vtable and typeinfo exist once and `catch` works across
  /// shared objects.
  ~DurableExecutionError() override;

  /// @brief A generic error that the engine retries while attempts remain.
  [[nodiscard]] static DurableExecutionError retryable(const std::string& message,
                                                       bool is_internal = false);
  /// @brief A generic error that fails the execution at once, whatever attempts remain.
  [[nodiscard]] static DurableExecutionError non_retryable(const std::string& message,
                                                           bool is_internal = false);
  /** @brief Rebuilds the exception from its stored form (the type picks the subclass's type). */
  [[nodiscard]] static DurableExecutionError from_stored(const StoredError& stored);

  /// @brief The kind of error.
  [[nodiscard]] ErrorType type() const noexcept { return type_; }
  /// @brief Whether a retry may succeed.
  [[nodiscard]] bool is_retryable() const noexcept { return is_retryable_; }
  /// @brief Whether the error comes from the engine rather than from task code.
  [[nodiscard]] bool is_internal() const noexcept { return is_internal_; }
  /// @brief The stored form: type, flags and message.
  [[nodiscard]] StoredError to_stored() const;

 private:
  ErrorType type_{};
  bool is_retryable_{};
  bool is_internal_{};
};

/**
 * @brief An unknown task, execution or unique id. Never retryable.
 *
 * @note Thread safety: immutable after construction; safe to share.
 */
class DURABLE_EXECUTION_EXPORT DurableExecutionNotFoundError : public DurableExecutionError {
 public:
  /// @brief A not-found error with this message.
  explicit DurableExecutionNotFoundError(const std::string& message, bool is_internal = false);
  /// Out of line, like the base class's.
  ~DurableExecutionNotFoundError() override;
};

/**
 * @brief A run that exceeded its timeout. Retryable while attempts remain.
 *
 * @note Thread safety: immutable after construction; safe to share.
 */
class DURABLE_EXECUTION_EXPORT DurableExecutionTimedOutError : public DurableExecutionError {
 public:
  /// @brief A timed-out error (retryable) with this message.
  explicit DurableExecutionTimedOutError(const std::string& message = "Task execution timed out",
                                         bool is_internal = false);
  /// Out of line, like the base class's.
  ~DurableExecutionTimedOutError() override;
};

/**
 * @brief A cancelled execution or wait. Never retryable.
 *
 * @note Thread safety: immutable after construction; safe to share.
 */
class DURABLE_EXECUTION_EXPORT DurableExecutionCancelledError : public DurableExecutionError {
 public:
  /// @brief A cancelled error (never retryable) with this message.
  explicit DurableExecutionCancelledError(const std::string& message = "Task execution cancelled",
                                          bool is_internal = false);
  /// Out of line, like the base class's.
  ~DurableExecutionCancelledError() override;
};

}  // namespace durable_execution
