// Generated tasks of workflows: sequential chains and polling tasks (SPEC.md §3.8, §3.9), built
// from engine task definitions with JSON payloads.

#include <fmt/format.h>

#include "durable_execution/detail/engine.hpp"
#include "durable_execution/detail/json_limits.hpp"

namespace durable_execution::detail {

namespace {

using nlohmann::json;
constexpr std::chrono::milliseconds kGeneratedTaskTimeout{30'000};

/** Stored JSON, its nesting bounded before anything recursive (copy, dump) touches it. */
json parse(const std::string& text) {
  try {
    return parse_stored_json(text);
  } catch (const std::domain_error& e) {
    throw DurableExecutionError::non_retryable(std::string{"Error deserializing value: "} +
                                               e.what());
  }
}

std::string child_error_message(const json& child) {
  if (child.contains("error") && child["error"].contains("message")) {
    return child["error"]["message"].get<std::string>();
  }
  return "Unknown error";
}

}  // namespace

FinalizeFunction sequential_finalize(std::size_t count) {
  return [count](const std::string& text) {
    const auto j = parse(text);
    const auto& children = j.at("children");
    if (children.size() < count || count == 0) {
      throw DurableExecutionError::non_retryable(
          fmt::format("Task at index {} not found", count == 0 ? 0 : count - 1));
    }
    const auto& last = children[count - 1];
    if (last.at("status").get<std::string>() != "completed") {
      throw DurableExecutionError::non_retryable(
          fmt::format("Task at index {} failed: {}", count - 1, child_error_message(last)));
    }
    return last.contains("output") ? last["output"].dump() : std::string{"null"};
  };
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
    return RunParentResult{R"({"isSuccess":false})", {ChildSpec{inner_id, next.dump(), {}}}};
  };
  fin.finalize_function = [](const std::string& text) {
    const auto j = parse(text);
    const auto& out = j.at("output");
    if (out.value("isSuccess", false)) return out.dump();
    const auto& children = j.at("children");
    if (children.empty()) return std::string{R"({"isSuccess":false})"};
    if (children[0].at("status").get<std::string>() != "completed") {
      throw DurableExecutionError::non_retryable(child_error_message(children[0]));
    }
    return children[0].contains("output") ? children[0]["output"].dump()
                                          : std::string{R"({"isSuccess":false})"};
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
    return RunParentResult{text, {ChildSpec{poll_task_id, state.at("input").dump(), options}}};
  };
  (void)register_task(std::move(inner));

  // <id>(input): starts attempt 0 and passes its result (or error) through.
  TaskDefinition outer;
  outer.options = TaskOptions{.id = id, .timeout = kGeneratedTaskTimeout};
  outer.is_parent = true;
  outer.run = [inner_id](TaskRunContext&, const std::string& text) {
    json first{{"input", parse(text)}, {"attempt", 0}};
    return RunParentResult{"null", {ChildSpec{inner_id, first.dump(), {}}}};
  };
  outer.finalize_function = [](const std::string& text) {
    const auto j = parse(text);
    const auto& children = j.at("children");
    if (children.empty()) return std::string{R"({"isSuccess":false})"};
    if (children[0].at("status").get<std::string>() != "completed") {
      throw DurableExecutionError::non_retryable(child_error_message(children[0]));
    }
    return children[0].contains("output") ? children[0]["output"].dump()
                                          : std::string{R"({"isSuccess":false})"};
  };
  (void)register_task(std::move(outer));
}

}  // namespace durable_execution::detail
