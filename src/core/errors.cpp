#include "durable_execution/errors.hpp"

#include <fmt/format.h>

namespace durable_execution {

std::string_view to_string(ErrorType type) noexcept {
  switch (type) {
    case ErrorType::generic:
      return "generic";
    case ErrorType::not_found:
      return "not_found";
    case ErrorType::timed_out:
      return "timed_out";
    case ErrorType::cancelled:
      return "cancelled";
  }
  return "generic";
}

ErrorType parse_error_type(std::string_view text) {
  for (auto t :
       {ErrorType::generic, ErrorType::not_found, ErrorType::timed_out, ErrorType::cancelled}) {
    if (to_string(t) == text) return t;
  }
  throw DurableExecutionError(fmt::format("Invalid error type: {}", text));
}

void to_json(nlohmann::json& j, const StoredError& e) {
  j = nlohmann::json{{"errorType", to_string(e.error_type)},
                     {"isRetryable", e.is_retryable},
                     {"isInternal", e.is_internal},
                     {"message", e.message}};
}

void from_json(const nlohmann::json& j, StoredError& e) {
  e.error_type = parse_error_type(j.value("errorType", std::string{"generic"}));
  e.is_retryable = j.value("isRetryable", false);
  e.is_internal = j.value("isInternal", false);
  e.message = j.value("message", std::string{});
}

DurableExecutionError::DurableExecutionError(const std::string& message, ErrorType type,
                                             bool is_retryable, bool is_internal)
    : std::runtime_error(message),
      type_(type),
      // Not-found and cancelled errors are never retryable, whatever the caller asked for.
      is_retryable_(is_retryable && type != ErrorType::not_found && type != ErrorType::cancelled),
      is_internal_(is_internal) {}

DurableExecutionError::~DurableExecutionError() = default;

DurableExecutionError DurableExecutionError::retryable(const std::string& message,
                                                       bool is_internal) {
  return DurableExecutionError(message, ErrorType::generic, true, is_internal);
}

DurableExecutionError DurableExecutionError::non_retryable(const std::string& message,
                                                           bool is_internal) {
  return DurableExecutionError(message, ErrorType::generic, false, is_internal);
}

DurableExecutionError DurableExecutionError::from_stored(const StoredError& stored) {
  return DurableExecutionError(stored.message, stored.error_type, stored.is_retryable,
                               stored.is_internal);
}

StoredError DurableExecutionError::to_stored() const {
  return StoredError{type_, is_retryable_, is_internal_, what()};
}

DurableExecutionNotFoundError::DurableExecutionNotFoundError(const std::string& message,
                                                             bool is_internal)
    : DurableExecutionError(message, ErrorType::not_found, false, is_internal) {}
DurableExecutionNotFoundError::~DurableExecutionNotFoundError() = default;

DurableExecutionTimedOutError::DurableExecutionTimedOutError(const std::string& message,
                                                             bool is_internal)
    : DurableExecutionError(message, ErrorType::timed_out, true, is_internal) {}
DurableExecutionTimedOutError::~DurableExecutionTimedOutError() = default;

DurableExecutionCancelledError::DurableExecutionCancelledError(const std::string& message,
                                                               bool is_internal)
    : DurableExecutionError(message, ErrorType::cancelled, false, is_internal) {}
DurableExecutionCancelledError::~DurableExecutionCancelledError() = default;

}  // namespace durable_execution
