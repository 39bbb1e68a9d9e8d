// Generated tasks of workflows: sequential chains and polling tasks (SPEC.md §3.8, §3.9), built
// from engine task definitions with JSON payloads. The typed front's sequential_tasks and
// polling_task only check types and call the registrations here.

#include <fmt/format.h>

#include "durable_execution/detail/engine.hpp"
#include "durable_execution/detail/json_limits.hpp"
#include "engine/transitions.hpp"

namespace durable_execution::detail {

namespace {

using nlohmann::json;
/** The timeout of every generated task: sequential chains and the three tasks of a polling task. */
constexpr std::chrono::milliseconds kGeneratedTaskTimeout{30'000};

/** Stored JSON, its nesting bounded before anything recursive (copy, dump) touches it. */
json parse(std::string_view text) {
  try {
    return parse_stored_json(text);
  } catch (const std::domain_error& e) {
    throw DurableExecutionError::non_retryable(std::string{"Error deserializing value: "} +
                                               e.what());
  }
}

/** A child's error message, from a finalize task's (JSON) input. */
std::string child_error_message(const json& child) {
  if (child.contains("error") && child["error"].contains("message")) {
    return child["error"]["message"].get<std::string>();
  }
  return "Unknown error";
}

/** A child's error message, from a finalize function's view. */
std::string child_error_message(const ChildResultView& child) {
  return child.error ? child.error->message : std::string{"Unknown error"};
}

/** A child's output as the parent's output ("null" if it stored none). */
std::string output_of(const ChildResultView& child) {
  return std::string{child.output.value_or("null")};
}

/**
 * The finalize function of a sequential chain of `count` tasks: the last step's output, or a
 * non-retryable "Task at index n-1 failed: <message>".
 */
FinalizeFunction sequential_finalize(std::size_t count) {
  return [count](const ParentResultView& result) {
    const auto& children = result.children;
    if (children.size() < count || count == 0) {
      throw DurableExecutionError::non_retryable(
          fmt::format("Task at index {} not found", count == 0 ? 0 : count - 1));
    }
    const auto& last = children[count - 1];
    if (last.status != TaskExecutionStatus::completed) {
      throw DurableExecutionError::non_retryable(
          fmt::format("Task at index {} failed: {}", count - 1, child_error_message(last)));
    }
    return output_of(last);
  };
}

/** A polling task's outcome from its one child (the attempt): passed through, or its error. */
std::string attempt_outcome(const ParentResultView& result) {
  if (result.children.empty()) return std::string{R"({"isSuccess":false})"};
  const auto& attempt = result.children[0];
  if (attempt.status != TaskExecutionStatus::completed) {
    throw DurableExecutionError::non_retryable(child_error_message(attempt));
  }
  return output_of(attempt);
}

}  // namespace

TaskDescriptor Engine::register_sequential_task(const std::string& id,
                                                const std::vector<std::string>& step_ids) {
  if (step_ids.empty()) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Sequential task {} needs at least one task", id));
  }
  // Every step must be registered now, as a polling task's poll and a parent's finalize task
  // must: a chain with an unknown step would fail every execution.
  for (const auto& step : step_ids) (void)find_descriptor(step);
  const bool first_is_sleeping = find_descriptor(step_ids.front()).is_sleeping_task;
  TaskDefinition def;
  def.options = TaskOptions{.id = id, .timeout = kGeneratedTaskTimeout};
  def.is_parent = true;
  def.are_children_sequential = true;
  // Only the first step's input is known now; the engine gives each later step its
  // predecessor's output when that finishes (transitions.cpp, advance_sequence).
  def.run = [step_ids, first_is_sleeping, id](TaskRunContext&, const std::string& input) {
    std::string first_input = input;
    // A sleeping first step gets the chain's input, a JSON string, as its unique id: the id the
    // chain was enqueued with, as a later sleeping step gets its predecessor's output.
    if (first_is_sleeping) {
      auto unique_id = unique_id_from_output(input);
      if (!unique_id) {
        throw DurableExecutionError::non_retryable(fmt::format(
            "Task at index 0 is sleeping task {}: the input of sequential task {} must be a "
            "unique id string",
            step_ids[0], id));
      }
      first_input = std::move(*unique_id);
    }
    RunParentResult r{"null", {}};
    r.children.reserve(step_ids.size());
    for (std::size_t i = 0; i < step_ids.size(); ++i) {
      r.children.push_back(ChildTask{step_ids[i], i == 0 ? std::move(first_input) : "null", {}});
    }
    return r;
  };
  def.finalize_function = sequential_finalize(step_ids.size());
  return register_task(std::move(def));
}

void Engine::register_polling_task(const std::string& id, const std::string& poll_task_id,
                                   std::int32_t max_attempts,
                                   std::function<std::chrono::milliseconds(std::int32_t)> sleep) {
  if (max_attempts <= 0) {
    throw DurableExecutionError::non_retryable("Max attempts must be greater than 0");
  }
  (void)find_descriptor(poll_task_id);
  const std::string inner_id = id + "_inner";
  const std::string finalize_id = id + "_inner_finalize";

  // <id>_inner_finalize: decides after each poll: done, out of attempts, or poll again.
  TaskDefinition fin;
  fin.options = TaskOptions{.id = finalize_id, .timeout = kGeneratedTaskTimeout};
  fin.is_parent = true;
  fin.run = [inner_id, poll_task_id, max_attempts](TaskRunContext&, const std::string& text) {
    const auto j = parse(text);
    const auto& state = j.at("output");
    const auto& children = j.at("children");
    if (children.empty() || children[0].at("status").get<std::string>() != "completed") {
      throw DurableExecutionError::non_retryable(fmt::format(
          "Poll task {} failed: {}", poll_task_id,
          children.empty() ? std::string{"unknown error"} : child_error_message(children[0])));
    }
    const auto& poll = children[0].at("output");
    if (poll.value("isDone", false)) {
      json out{{"isSuccess", true}};
      if (poll.contains("output")) out["output"] = poll["output"];
      return RunParentResult{out.dump(), {}};
    }
    const auto attempt = state.at("attempt").get<std::int32_t>();
    if (attempt >= max_attempts - 1) return RunParentResult{R"({"isSuccess":false})", {}};
    json next{{"input", state.at("input")}, {"attempt", attempt + 1}};
    return RunParentResult{R"({"isSuccess":false})", {ChildTask{inner_id, next.dump(), {}}}};
  };
  fin.finalize_function = [](const ParentResultView& result) {
    const auto out = parse(result.output);
    if (out.value("isSuccess", false)) return out.dump();
    return attempt_outcome(result);
  };
  (void)register_task(std::move(fin));

  // <id>_inner({input, attempt}): one poll, then its finalize task.
  TaskDefinition inner;
  inner.options = TaskOptions{.id = inner_id, .timeout = kGeneratedTaskTimeout};
  inner.is_parent = true;
  inner.finalize_task_id = finalize_id;
  inner.run = [poll_task_id, sleep](TaskRunContext&, const std::string& text) {
    const auto state = parse(text);
    EnqueueOptions options;
    if (sleep) options.sleep_before_run = sleep(state.at("attempt").get<std::int32_t>());
    return RunParentResult{text, {ChildTask{poll_task_id, state.at("input").dump(), options}}};
  };
  (void)register_task(std::move(inner));

  // <id>(input): starts attempt 0 and passes its result (or error) through.
  TaskDefinition outer;
  outer.options = TaskOptions{.id = id, .timeout = kGeneratedTaskTimeout};
  outer.is_parent = true;
  outer.run = [inner_id](TaskRunContext&, const std::string& text) {
    json first{{"input", parse(text)}, {"attempt", 0}};
    return RunParentResult{"null", {ChildTask{inner_id, first.dump(), {}}}};
  };
  outer.finalize_function = attempt_outcome;
  (void)register_task(std::move(outer));
}

}  // namespace durable_execution::detail
