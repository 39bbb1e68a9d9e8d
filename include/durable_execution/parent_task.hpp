#pragma once

// Typed pieces of workflows (SPEC.md §1.2, §3.7-§3.10): children declared by a parent run, the
// children's results a parent or its finalize step sees, and the results of polling tasks.

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "durable_execution/task.hpp"
#include "durable_execution/task_descriptor.hpp"

namespace durable_execution {

/**
 * @brief Declares a child of a parent run: `child(task, input)`, type-checked like enqueue_task;
 * `options` override the child task's registered options for this execution.
 */
template <class I, class O, class V>
requires InputFor<V, I>
[[nodiscard]] ChildTask child(const Task<I, O>& task, V&& input, EnqueueOptions options = {}) {
  return ChildTask{task.id(), detail::serialize_task_input(task, std::forward<V>(input)),
                   std::move(options)};
}

/** @brief A child without input. */
template <class O>
[[nodiscard]] ChildTask child(const Task<Empty, O>& task, EnqueueOptions options = {}) {
  return ChildTask{task.id(), "null", std::move(options)};
}

/** @brief What a parent run returns: its own output and the children to run. */
template <class O>
struct ParentRunResult {
  /// The parent run's own output, passed on to the finalize step or the parent's output.
  O output{};
  /// The children to run, built with child(); none completes the parent at once.
  std::vector<ChildTask> children{};
};

namespace detail {

/** @brief The engine's form of a parent run's result: the one place the output is serialized. */
template <class O>
[[nodiscard]] RunParentResult to_run_result(ParentRunResult<O>&& result) {
  return RunParentResult{serialize_value(result.output), std::move(result.children)};
}

}  // namespace detail

/**
 * @brief The result of one child, as its parent's output or finalize step sees it: `output` is
 * set when the child completed, `error` otherwise. Children may have different output types, so
 * the output stays JSON; read it with output_as<T>().
 */
struct ChildExecutionResult {
  /// The child's task id.
  std::string task_id{};
  /// The child's execution id.
  std::string execution_id{};
  /// The child's finished status.
  TaskExecutionStatus status = TaskExecutionStatus::completed;
  /// The child's output as JSON, when it completed.
  std::optional<nlohmann::json> output{};
  /// The child's error, when it did not complete.
  std::optional<StoredError> error{};

  /// @brief Whether the child completed (its output is set).
  [[nodiscard]] bool is_completed() const noexcept {
    return status == TaskExecutionStatus::completed;
  }
  /** @throws DurableExecutionError if the child did not complete or its output is not a T. */
  template <class T>
  [[nodiscard]] T output_as() const {
    if (!output) {
      throw DurableExecutionError::non_retryable("Child task " + task_id + " has no output");
    }
    try {
      return output->get<T>();
    } catch (const std::exception& e) {
      throw DurableExecutionError::non_retryable(std::string{"Error deserializing value: "} +
                                                 e.what());
    }
  }
};

/// @brief The JSON form: `{"taskId", "executionId", "status", "output"?, "error"?}`.
inline void to_json(nlohmann::json& j, const ChildExecutionResult& c) {
  j = nlohmann::json{
      {"taskId", c.task_id}, {"executionId", c.execution_id}, {"status", to_string(c.status)}};
  if (c.output) j["output"] = *c.output;
  if (c.error) j["error"] = *c.error;
}
/// @brief Reads the JSON form written by to_json().
inline void from_json(const nlohmann::json& j, ChildExecutionResult& c) {
  c.task_id = j.at("taskId").get<std::string>();
  c.execution_id = j.at("executionId").get<std::string>();
  c.status = parse_task_execution_status(j.at("status").get<std::string>());
  if (j.contains("output")) {
    c.output = j.at("output");
  } else {
    c.output.reset();
  }
  if (j.contains("error")) {
    c.error = j.at("error").get<StoredError>();
  } else {
    c.error.reset();
  }
}

/**
 * @brief The output of a parent task without finalize, and the input of a finalize step: the
 * parent run's output and one result per child, in declaration order. Failed children do not
 * fail the parent ("all settled"); a finalize step decides.
 */
template <class O>
struct ParentTaskOutput {
  /// The parent run's output (ParentRunResult::output).
  O output{};
  /// One result per child, in declaration order.
  std::vector<ChildExecutionResult> children{};
};

template <class O>
/// @brief The JSON form: `{"output", "children"}`.
void to_json(nlohmann::json& j, const ParentTaskOutput<O>& p) {
  j = nlohmann::json{{"output", p.output}, {"children", p.children}};
}
template <class O>
/// @brief Reads the JSON form written by to_json().
void from_json(const nlohmann::json& j, ParentTaskOutput<O>& p) {
  if constexpr (!std::is_same_v<O, Empty>) {
    p.output = j.at("output").get<O>();
  }
  p.children = j.at("children").get<std::vector<ChildExecutionResult>>();
}

namespace detail {

/** Reads one child's result object; false if a required member is missing. */
inline bool read_child_result(JsonCursor& in, ChildExecutionResult& c) {
  bool has_task_id = false;
  bool has_execution_id = false;
  bool has_status = false;
  in.object([&](std::string_view key) {
    if (key == "taskId") {
      c.task_id = in.string();
      has_task_id = true;
    } else if (key == "executionId") {
      c.execution_id = in.string();
      has_execution_id = true;
    } else if (key == "status") {
      c.status = parse_task_execution_status(in.string());
      has_status = true;
    } else if (key == "output") {
      c.output = parse_json_value(in.value());
    } else if (key == "error") {
      const auto raw = in.value();
      c.error = nlohmann::json::parse(raw.begin(), raw.end()).get<StoredError>();
    } else {
      in.value();
    }
  });
  return has_task_id && has_execution_id && has_status;
}

/**
 * The input of every finalize step, read without a DOM of the whole document: a wide parent's
 * children are read straight into their results, and only each child's output (and error) is
 * parsed. Any surprise (malformed text, a missing member, a value of the wrong type) falls back
 * to nlohmann's from_json, so results and error messages are the same as without this path.
 */
template <class O>
struct JsonCodec<ParentTaskOutput<O>> {
  /** A composed document (the children's outputs inside): the stored nesting limit applies. */
  static std::string serialize(const ParentTaskOutput<O>& value) {
    const nlohmann::json j(value);
    check_json_value(j, max_stored_nesting_depth);
    return j.dump();
  }

  static ParentTaskOutput<O> deserialize(std::string_view text) {
    try {
      ParentTaskOutput<O> p;
      bool has_output = std::is_same_v<O, Empty>;
      bool has_children = false;
      JsonCursor in{text};
      in.object([&](std::string_view key) {
        if (key == "children") {
          p.children.clear();
          in.array([&] {
            if (!read_child_result(in, p.children.emplace_back())) throw JsonCursor::Malformed{};
          });
          has_children = true;
        } else if (key == "output") {
          const auto raw = in.value();
          if constexpr (!std::is_same_v<O, Empty>) p.output = JsonCodec<O>::deserialize(raw);
          has_output = true;
        } else {
          in.value();
        }
      });
      if (in.at_end() && has_output && has_children) return p;
    } catch (const JsonCursor::Malformed&) {  // NOLINT(bugprone-empty-catch): falls back below
    } catch (const std::exception&) {         // NOLINT(bugprone-empty-catch): falls back below
    }
    return nlohmann::json::parse(text.begin(), text.end()).template get<ParentTaskOutput<O>>();
  }
};

/**
 * @brief What a finalize function of the typed front sees: its parent's result, read from the
 * engine's view (no JSON text of the whole result is written or parsed). Errors become
 * "Error deserializing value: ...", as when the result is read from stored text.
 */
template <class O>
[[nodiscard]] ParentTaskOutput<O> to_parent_task_output(const ParentResultView& view) {
  ParentTaskOutput<O> p;
  if constexpr (!std::is_same_v<O, Empty>) p.output = deserialize_value<O>(view.output);
  try {
    p.children.reserve(view.children.size());
    for (const auto& c : view.children) {
      auto& r = p.children.emplace_back();
      r.task_id = c.task_id;
      r.execution_id = c.execution_id;
      r.status = c.status;
      if (c.output) r.output = parse_json_value(*c.output);
      r.error = c.error;
    }
  } catch (const std::exception& e) {
    throw DurableExecutionError::non_retryable(std::string{"Error deserializing value: "} +
                                               e.what());
  }
  return p;
}

}  // namespace detail

/** @brief What a poll function returns: done with an output, or not yet. */
template <class O>
struct PollResult {
  /// The value has appeared: stop polling.
  bool is_done = false;
  /// The value, when done.
  std::optional<O> output{};
};

template <class O>
/// @brief The JSON form: `{"isDone", "output"?}`.
void to_json(nlohmann::json& j, const PollResult<O>& p) {
  j = nlohmann::json{{"isDone", p.is_done}};
  if (p.is_done && p.output) j["output"] = *p.output;
}
template <class O>
/// @brief Reads the JSON form written by to_json().
void from_json(const nlohmann::json& j, PollResult<O>& p) {
  p.is_done = j.at("isDone").get<bool>();
  if (p.is_done && j.contains("output")) {
    p.output = j.at("output").get<O>();
  } else {
    p.output.reset();
  }
}

/** @brief The output of a polling task: success with the poll's output, or none after the
 * last attempt. */
template <class O>
struct PollingResult {
  /// A poll found the value before the attempts ran out.
  bool is_success = false;
  /// The value, on success.
  std::optional<O> output{};
};

template <class O>
/// @brief The JSON form: `{"isSuccess", "output"?}`.
void to_json(nlohmann::json& j, const PollingResult<O>& p) {
  j = nlohmann::json{{"isSuccess", p.is_success}};
  if (p.is_success && p.output) j["output"] = *p.output;
}
template <class O>
/// @brief Reads the JSON form written by to_json().
void from_json(const nlohmann::json& j, PollingResult<O>& p) {
  p.is_success = j.at("isSuccess").get<bool>();
  if (p.is_success && j.contains("output")) {
    p.output = j.at("output").get<O>();
  } else {
    p.output.reset();
  }
}

}  // namespace durable_execution
