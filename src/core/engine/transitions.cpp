#include "transitions.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>

#include "../executor_validation.hpp"
#include "durable_execution/detail/json_limits.hpp"
#include "durable_execution/detail/json_text.hpp"
#include "durable_execution/detail/saturating_time.hpp"
#include "durable_execution/limits.hpp"

namespace durable_execution::detail {

using Status = TaskExecutionStatus;

StoredError to_stored_error(std::exception_ptr ep) {
  try {
    std::rethrow_exception(std::move(ep));
  } catch (const DurableExecutionError& e) {
    return e.to_stored();
  } catch (const std::exception& e) {
    std::string message = e.what();
    if (message.empty()) message = "Unknown error";
    return StoredError{ErrorType::generic, true, false, std::move(message)};
  } catch (...) {
    return StoredError{ErrorType::generic, true, false, "Unknown error"};
  }
}

std::string json_safe_message(std::string message) {
  if (!is_plain_json_text(message)) {
    message = nlohmann::json::parse(nlohmann::json(message).dump(
                                        -1, ' ', false, nlohmann::json::error_handler_t::replace))
                  .get<std::string>();
  }
  if (message.size() > max_error_message_size) {
    // At a character boundary: never split a UTF-8 sequence (continuation bytes are 10xxxxxx).
    auto cut = max_error_message_size;
    while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0U) == 0x80U) --cut;
    const auto dropped = message.size() - cut;
    message.resize(cut);
    message += fmt::format("... [{} bytes truncated]", dropped);
  }
  return message;
}

std::string error_message(std::exception_ptr ep) {
  try {
    std::rethrow_exception(std::move(ep));
  } catch (const std::exception& e) {
    return e.what()[0] != '\0' ? std::string{e.what()} : std::string{"Unknown error"};
  } catch (...) {
    return "Unknown error";
  }
}

std::optional<std::string> unique_id_from_output(const std::string& output) {
  try {
    return JsonCodec<std::string>::deserialize(output);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // not JSON, or not a string
  }
}

std::string abbreviated(std::string_view text) {
  constexpr std::size_t kMax = 100;
  std::string out;
  for (const char ch : text.substr(0, kMax)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c > 0x7E) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
  }
  if (text.size() > kMax) out += "...";
  return out;
}

namespace {

/** Size limit, then the nesting limit of everything stored (a cheap scan; none for short data). */
void check_size(const std::string& data, std::int64_t limit) {
  if (static_cast<std::int64_t>(data.size()) > limit) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Serialized data size ({} bytes) exceeds maximum allowed size ({} bytes)",
                    data.size(), limit));
  }
  if (json_nesting_exceeds(data, max_stored_nesting_depth)) {
    throw DurableExecutionError::non_retryable("Serialized data " +
                                               nesting_error_message(max_stored_nesting_depth));
  }
}

Status status_for_error(const StoredError& e) {
  switch (e.error_type) {
    case ErrorType::timed_out:
      return Status::timed_out;
    case ErrorType::cancelled:
      return Status::cancelled;
    default:
      return Status::failed;
  }
}

/** Whether `text` is one JSON value (a plain string is checked without the parser). */
bool is_json_text(std::string_view text) {
  if (plain_json_string(text)) return true;
  return nlohmann::json::accept(text.begin(), text.end());
}

TaskExecutionSummary root_for_children(const TaskExecutionRecord& parent) {
  return parent.root ? *parent.root : TaskExecutionSummary{parent.task_id, parent.execution_id};
}

void validate_unique_id(const std::string& id) {
  if (id.empty()) {
    throw DurableExecutionError::non_retryable(
        "A non-empty unique id string is required for a sleeping task");
  }
  if (id.size() > 255) {
    throw DurableExecutionError::non_retryable(
        "A unique id string for a sleeping task must be shorter than 256 characters");
  }
}

/** T20: a parent's outcome, decided by its finalize child's final status. */
TaskExecutionUpdate settle_parent_update(Status status, const std::optional<std::string>& output,
                                         const std::optional<StoredError>& error,
                                         const std::string& finalize_task_id) {
  TaskExecutionUpdate u;
  if (status == Status::completed) {
    u.status = Status::completed;
    u.output = output.value_or("null");
  } else {
    u.status = Status::finalize_failed;
    u.error = error.value_or(StoredError{
        ErrorType::generic, false, false,
        fmt::format("Finalize task {} failed with an unknown error", finalize_task_id)});
  }
  return u;
}

/**
 * Closes an execution in the write that finishes it when the close path would have nothing more
 * to do than mark it closed: no descendants to cancel (T11) — or it completed. A child's parent
 * count is decremented in the same storage call, as the mark step would. A finalize child also
 * settles its parent there (T20, guarded by `waiting_for_finalize`), and a settled top-level
 * parent that completed is closed with it. Two to three fewer storage round trips per execution,
 * and none on the background thread.
 */
void close_in_write(UpdateByIdRequest& req, const TaskExecutionRecord& rec, bool has_descendants,
                    Timestamp now) {
  auto& u = req.update;
  if (!u.status || !is_finished(*u.status)) return;
  if (has_descendants && *u.status != Status::completed) return;
  if (rec.parent && rec.parent->is_finalize_of_parent) {
    auto settle = settle_parent_update(*u.status, u.output, u.error, rec.task_id);
    // A child's root is its parent exactly when the parent is top-level: nothing to notify.
    const bool parent_is_top_level = rec.root && rec.root->execution_id == rec.parent->execution_id;
    if (parent_is_top_level && settle.status == Status::completed) {
      settle.close_status = CloseStatus::closed;
      settle.closed_at = now;
    }
    req.parent_update = ParentUpdateRequest{{.status = Status::waiting_for_finalize},
                                            normalize_update(now, std::move(settle))};
  }
  u.close_status = CloseStatus::closed;
  u.closed_at = now;
  req.decrement_parent_active_children_count = rec.parent.has_value();
}

/** Sets the run's guarded result write (no children) and notes a parent it settles. */
void set_running_update(RunWrite& c, const TaskExecutionRecord& rec, TaskExecutionUpdate update,
                        Timestamp now) {
  UpdateByIdRequest req{rec.execution_id, GetByIdFilters{.status = Status::running},
                        std::move(update)};
  close_in_write(req, rec, false, now);
  req.update = normalize_update(now, std::move(req.update));
  c.update = std::move(req);
  if (c.update->parent_update && rec.parent) c.settled_parent_id = rec.parent->execution_id;
}

/** A child's entry of its parent's result: views into `child`, which must outlive it. */
ChildResultView child_result_view(const TaskExecutionRecord& child) {
  ChildResultView v{child.task_id, child.execution_id, child.status, std::nullopt, std::nullopt};
  if (child.status == Status::completed) {
    v.output = child.output ? std::string_view{*child.output} : std::string_view{"null"};
  } else {
    v.error = child.error.value_or(StoredError{ErrorType::generic, false, false, "Unknown error"});
    v.error->message = json_safe_message(std::move(v.error->message));
  }
  return v;
}

/** The view of a run's result before any child ran (no children). */
ParentResultView run_result_view(const std::string& run_output) {
  ParentResultView view;  // its output "null" unless the run returned one
  if (!run_output.empty()) view.output = run_output;
  return view;
}

/** The parent's guarded write (its outcome, or its next children), appended to `writes`. */
void plan_parent_write(const TaskExecutionRecord& parent, TaskExecutionUpdate u, Timestamp now,
                       ParentWrites& writes, std::vector<TaskExecutionRecord> children = {}) {
  if (!u.on_children_finished_processing_status) {
    u.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::processed;
    u.on_children_finished_processing_finished_at = now;
  }
  GetByIdFilters guard{.status = Status::waiting_for_children};
  if (children.empty()) {
    UpdateByIdRequest req{parent.execution_id, guard, std::move(u)};
    close_in_write(req, parent, true, now);
    req.update = normalize_update(now, std::move(req.update));
    writes.updates.push_back(std::move(req));
  } else {
    writes.with_children.push_back(UpdateByIdAndInsertChildrenRequest{
        parent.execution_id, guard, normalize_update(now, std::move(u)), std::move(children)});
  }
}

}  // namespace

std::string parent_result_json(const ParentResultView& result) {
  std::size_t size = 32 + result.output.size();
  for (const auto& c : result.children) size += 96 + (c.output ? c.output->size() : 64);
  std::string out;
  out.reserve(size);
  out += R"({"children":[)";
  for (const auto& child : result.children) {
    if (&child != result.children.data()) out += ',';
    // Keys in nlohmann's (sorted) order; a completed child has "output", the others "error".
    if (child.output) {
      out += R"({"executionId":)";
      append_json_string(out, child.execution_id);
      out += R"(,"output":)";
      out += *child.output;
    } else {
      out += R"({"error":)";
      out += nlohmann::json(child.error.value_or(StoredError{}))
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      out += R"(,"executionId":)";
      append_json_string(out, child.execution_id);
    }
    out += R"(,"status":)";
    append_json_string(out, to_string(child.status));
    out += R"(,"taskId":)";
    append_json_string(out, child.task_id);
    out += '}';
  }
  out += R"(],"output":)";
  out += result.output;
  out += '}';
  return out;
}

// ---- new executions ---------------------------------------------------------------------------

NewTaskExecution Transitions::new_execution(const TaskDefinition& def, std::string input,
                                            const EnqueueOptions& overrides,
                                            bool check_input_size) const {
  const auto& id = def.options.id;
  NewTaskExecution n;
  n.task_id = id;
  n.execution_id = generate_execution_id();
  n.is_sleeping_task = def.is_sleeping_task;
  n.are_children_sequential = def.are_children_sequential;
  n.retry_options = def.options.retry;
  n.sleep_before_run = def.options.sleep_before_run;
  n.timeout = def.options.timeout;
  if (overrides.retry) {
    validate_retry_options(id, *overrides.retry);
    n.retry_options = *overrides.retry;
  }
  if (overrides.sleep_before_run) {
    validate_sleep_before_run(id, *overrides.sleep_before_run);
    n.sleep_before_run = *overrides.sleep_before_run;
  }
  if (overrides.timeout) {
    validate_timeout(id, *overrides.timeout);
    n.timeout = *overrides.timeout;
  }
  if (def.is_sleeping_task) {
    validate_unique_id(input);
    n.sleeping_task_unique_id = std::move(input);
    n.input = "null";
    n.retry_options = RetryOptions{};
    n.sleep_before_run = std::chrono::milliseconds{0};
  } else {
    if (check_input_size) check_size(input, options_.max_serialized_input_data_size);
    n.input = std::move(input);
  }
  return n;
}

TaskExecutionRecord Transitions::child_record(const TaskExecutionRecord& parent,
                                              const TaskDefinition& child_def, std::string input,
                                              const EnqueueOptions& overrides,
                                              ParentTaskExecutionSummary parent_summary,
                                              Timestamp now, bool check_input_size) const {
  auto n = new_execution(child_def, std::move(input), overrides, check_input_size);
  n.root = root_for_children(parent);
  n.parent = std::move(parent_summary);
  return make_task_execution_record(now, std::move(n));
}

// ---- a run's outcome ---------------------------------------------------------------------------

RunWrite Transitions::run_failed(const TaskExecutionRecord& rec, StoredError error,
                                 Timestamp now) const {
  RunWrite c;
  TaskExecutionUpdate u;
  error.message = json_safe_message(std::move(error.message));
  if (error.is_retryable && rec.retry_attempts < rec.retry_options.max_attempts) {
    const auto start_at = saturating_add(now, retry_delay(rec.retry_options, rec.retry_attempts));
    u.status = Status::ready;
    u.error = std::move(error);
    u.retry_attempts = rec.retry_attempts + 1;
    u.start_at = start_at;
    c.wake_at = start_at;
  } else {
    u.status = status_for_error(error);
    u.error = std::move(error);
  }
  set_running_update(c, rec, std::move(u), now);
  return c;
}

std::optional<UpdateByIdRequest> Transitions::write_rejected(const RunWrite& write,
                                                             std::string execution_id,
                                                             const StoredError& error,
                                                             Timestamp now) const {
  TaskExecutionRecord rec;
  rec.execution_id = std::move(execution_id);
  if (write.has_parent) {
    rec.parent = ParentTaskExecutionSummary{.is_finalize_of_parent = write.is_finalize_of_parent};
  }
  auto failure = error;
  failure.is_retryable = false;
  return std::move(run_failed(rec, std::move(failure), now).update);
}

RunWrite Transitions::run_succeeded(const TaskExecutionRecord& rec, const TaskDefinition& def,
                                    RunParentResult result, Timestamp now) const {
  RunWrite c;
  if (result.children.empty()) {
    if (def.finalize_task_id) {
      auto fin = registry_.find(*def.finalize_task_id);
      if (!fin) {
        throw DurableExecutionNotFoundError(
            fmt::format("Finalize task {} not found", *def.finalize_task_id));
      }
      if (fin->is_sleeping_task) {
        throw DurableExecutionError::non_retryable(
            fmt::format("Finalize task {} cannot be a sleeping task", fin->options.id));
      }
      auto input = parent_result_json(run_result_view(result.output));
      check_size(input, options_.max_serialized_input_data_size);
      auto child = child_record(
          rec, *fin, std::move(input), EnqueueOptions{},
          ParentTaskExecutionSummary{rec.task_id, rec.execution_id, 0, false, true}, now);
      TaskExecutionUpdate u;
      u.status = Status::waiting_for_finalize;
      u.children = std::vector<TaskExecutionSummary>{};
      u.finalize = TaskExecutionSummary{child.task_id, child.execution_id};
      u.active_children_count = 1;  // the finalize child's close brings it back to 0
      c.update_with_children =
          UpdateByIdAndInsertChildrenRequest{rec.execution_id,
                                             GetByIdFilters{.status = Status::running},
                                             normalize_update(now, std::move(u)),
                                             {std::move(child)}};
      return c;
    }
    std::string output;
    if (def.finalize_function) {
      try {
        output = def.finalize_function(run_result_view(result.output));
      } catch (...) {
        TaskExecutionUpdate u;
        u.status = Status::finalize_failed;
        u.error =
            StoredError{ErrorType::generic, false, false, error_message(std::current_exception())};
        u.children = std::vector<TaskExecutionSummary>{};
        set_running_update(c, rec, std::move(u), now);
        return c;
      }
    } else if (def.is_parent) {
      output = parent_result_json(run_result_view(result.output));
    } else {
      output = std::move(result.output);
    }
    check_size(output, options_.max_serialized_output_data_size);
    TaskExecutionUpdate u;
    u.status = Status::completed;
    u.output = std::move(output);
    u.children = std::vector<TaskExecutionSummary>{};
    set_running_update(c, rec, std::move(u), now);
    return c;
  }

  const auto count = result.children.size();
  if (count > static_cast<std::size_t>(options_.max_children_per_task_execution)) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Parent task {} cannot spawn more than {} children tasks. Attempted: {}",
                    rec.task_id, options_.max_children_per_task_execution, count));
  }
  check_size(result.output, options_.max_serialized_output_data_size);
  std::vector<TaskExecutionSummary> summaries;
  std::vector<TaskExecutionRecord> inserts;
  summaries.reserve(count);
  inserts.reserve(def.are_children_sequential ? 1 : count);
  std::shared_ptr<const TaskDefinition> child_def;
  for (std::size_t i = 0; i < count; ++i) {
    auto& spec = result.children[i];
    // Children usually share a task: one registry lookup per run of equal task ids.
    if (!child_def || child_def->options.id != spec.task_id)
      child_def = registry_.find(spec.task_id);
    if (!child_def) {
      throw DurableExecutionNotFoundError(
          spec.task_id.empty() ? std::string{"Child task not found: an unset Task (no id)"}
                               : fmt::format("Child task {} not found", spec.task_id));
    }
    if (def.are_children_sequential && i > 0) {
      summaries.push_back(TaskExecutionSummary{spec.task_id, "dummy"});
      continue;
    }
    auto child =
        child_record(rec, *child_def, std::move(spec.input), spec.options,
                     ParentTaskExecutionSummary{rec.task_id, rec.execution_id,
                                                static_cast<std::int32_t>(i), count == 1, false},
                     now);
    summaries.push_back(TaskExecutionSummary{child.task_id, child.execution_id});
    inserts.push_back(std::move(child));
  }
  TaskExecutionUpdate u;
  u.status = Status::waiting_for_children;
  u.run_output = std::move(result.output);
  u.children = std::move(summaries);
  u.active_children_count = static_cast<std::int32_t>(inserts.size());
  c.update_with_children = UpdateByIdAndInsertChildrenRequest{
      rec.execution_id, GetByIdFilters{.status = Status::running},
      normalize_update(now, std::move(u)), std::move(inserts)};
  return c;
}

// ---- parents -----------------------------------------------------------------------------------

void Transitions::fail_parent(const TaskExecutionRecord& parent, Status status, StoredError error,
                              Timestamp now, ParentWrites& writes) const {
  TaskExecutionUpdate u;
  u.status = status;
  u.error = std::move(error);
  plan_parent_write(parent, std::move(u), now, writes);
}

void Transitions::plan_parent(const TaskExecutionRecord& parent,
                              const std::vector<TaskExecutionRecord>& children, Timestamp now,
                              ParentWrites& writes) const {
  const auto fail = [&](Status status, StoredError error) {
    fail_parent(parent, status, std::move(error), now, writes);
  };
  auto def = registry_.find(parent.task_id);
  if (!def) {
    fail(Status::failed,
         DurableExecutionNotFoundError(fmt::format("Task {} not found", parent.task_id))
             .to_stored());
    return;
  }
  std::unordered_map<std::string_view, const TaskExecutionRecord*> by_id;
  by_id.reserve(children.size());
  for (const auto& c : children) by_id.emplace(c.execution_id, &c);
  static const std::vector<TaskExecutionSummary> kNone;
  const auto& declared = parent.children ? *parent.children : kNone;
  if (def->are_children_sequential) {
    const auto it = std::find_if(declared.begin(), declared.end(),
                                 [](const auto& c) { return c.execution_id == "dummy"; });
    if (it != declared.end() && it != declared.begin()) {
      const auto j = static_cast<std::size_t>(it - declared.begin());
      const auto prev = by_id.find(declared[j - 1].execution_id);
      advance_sequence(parent, declared, j, prev == by_id.end() ? nullptr : prev->second, now,
                       writes);
      return;
    }
  }
  std::shared_ptr<const TaskDefinition> fin;
  if (def->finalize_task_id) {
    fin = registry_.find(*def->finalize_task_id);
    if (!fin || fin->is_sleeping_task) {
      fail(Status::failed,
           DurableExecutionNotFoundError(
               fin ? fmt::format("Finalize task {} cannot be a sleeping task",
                                 *def->finalize_task_id)
                   : fmt::format("Finalize task {} not found", *def->finalize_task_id))
               .to_stored());
      return;
    }
  }
  ParentResultView view;  // its output "null" unless the run stored one
  if (parent.run_output && !parent.run_output->empty()) view.output = *parent.run_output;
  view.children.reserve(declared.size());
  std::size_t missing = 0;
  for (std::size_t k = 0; k < declared.size(); ++k) {
    auto found = by_id.find(declared[k].execution_id);
    if (found == by_id.end()) {
      ++missing;
      continue;
    }
    const auto& child = *found->second;
    if (child.status == Status::completed && child.output && !is_json_text(*child.output)) {
      // Spliced verbatim, it would make the whole result undecodable.
      fail(Status::failed,
           DurableExecutionError::non_retryable(
               fmt::format("Output of child {} (task {}, execution {}) of parent task {} "
                           "cannot be decoded: it is not JSON ({} bytes: {})",
                           k, child.task_id, child.execution_id, parent.task_id,
                           child.output->size(), abbreviated(*child.output)))
               .to_stored());
      return;
    }
    view.children.push_back(child_result_view(child));
  }
  if (missing > 0) {
    fail(Status::failed, DurableExecutionNotFoundError(
                             fmt::format("Some children task executions not found: {}/{} not found",
                                         missing, declared.size()))
                             .to_stored());
    return;
  }
  // The sizes below are deterministic: the parent ends with an error naming them instead of
  // failing again at every attempt of the step.
  if (fin) {
    auto result = parent_result_json(view);
    if (static_cast<std::int64_t>(result.size()) > options_.max_serialized_input_data_size) {
      fail(Status::failed,
           DurableExecutionError::non_retryable(
               fmt::format("Input of finalize task {} of parent task {} (its output and {} "
                           "children's results) is {} bytes, over the input limit of {} bytes "
                           "(max_serialized_input_data_size)",
                           fin->options.id, parent.task_id, declared.size(), result.size(),
                           options_.max_serialized_input_data_size))
               .to_stored());
      return;
    }
    auto child = child_record(
        parent, *fin, std::move(result), EnqueueOptions{},
        ParentTaskExecutionSummary{parent.task_id, parent.execution_id, 0, false, true}, now);
    TaskExecutionUpdate u;
    u.status = Status::waiting_for_finalize;
    u.finalize = TaskExecutionSummary{child.task_id, child.execution_id};
    u.active_children_count = 1;  // the finalize child's close brings it back to 0
    std::vector<TaskExecutionRecord> inserts;
    inserts.push_back(std::move(child));
    plan_parent_write(parent, std::move(u), now, writes, std::move(inserts));
    return;
  }
  const auto limit = options_.max_serialized_output_data_size;
  TaskExecutionUpdate u;
  if (def->finalize_function) {
    std::string output;
    try {
      output = def->finalize_function(view);
    } catch (...) {
      fail(Status::finalize_failed,
           StoredError{ErrorType::generic, false, false, error_message(std::current_exception())});
      return;
    }
    if (static_cast<std::int64_t>(output.size()) > limit) {
      fail(Status::finalize_failed,
           DurableExecutionError::non_retryable(
               fmt::format("Output of the finalize function of parent task {} is {} "
                           "bytes, over the output limit of {} bytes "
                           "(max_serialized_output_data_size)",
                           parent.task_id, output.size(), limit))
               .to_stored());
      return;
    }
    u.status = Status::completed;
    u.output = std::move(output);
  } else {
    auto result = parent_result_json(view);
    if (static_cast<std::int64_t>(result.size()) > limit) {
      fail(Status::failed,
           DurableExecutionError::non_retryable(
               fmt::format("Output of parent task {} (its output and {} children's "
                           "results) is {} bytes, over the output limit of {} bytes "
                           "(max_serialized_output_data_size)",
                           parent.task_id, declared.size(), result.size(), limit))
               .to_stored());
      return;
    }
    u.status = Status::completed;
    u.output = std::move(result);
  }
  plan_parent_write(parent, std::move(u), now, writes);
}

void Transitions::advance_sequence(const TaskExecutionRecord& parent,
                                   std::vector<TaskExecutionSummary> declared, std::size_t j,
                                   const TaskExecutionRecord* prev, Timestamp now,
                                   ParentWrites& writes) const {
  const auto fail = [&](Status status, StoredError error) {
    fail_parent(parent, status, std::move(error), now, writes);
  };
  auto child_def = registry_.find(declared[j].task_id);
  if (!child_def) {
    fail(Status::failed,
         DurableExecutionNotFoundError(fmt::format("Child task {} not found", declared[j].task_id))
             .to_stored());
    return;
  }
  if (!prev) {
    fail(Status::failed,
         DurableExecutionNotFoundError(fmt::format("Task at index {} not found", j - 1))
             .to_stored());
    return;
  }
  if (prev->status != Status::completed) {
    fail(Status::finalize_failed,
         StoredError{
             ErrorType::generic, false, false,
             fmt::format("Task at index {} failed: {}", j - 1,
                         prev->error ? prev->error->message : std::string{"Unknown error"})});
    return;
  }
  // The step's input is the previous step's output, verbatim (no size check, SPEC.md §3.8); a
  // sleeping step is enqueued with that output, a string, as its unique id.
  std::string input = prev->output.value_or("null");
  if (child_def->is_sleeping_task) {
    auto unique_id = unique_id_from_output(input);
    if (!unique_id) {
      fail(Status::failed,
           DurableExecutionError::non_retryable(
               fmt::format("Task at index {} is sleeping task {}: the output of the task at "
                           "index {} must be a unique id string, got {}",
                           j, child_def->options.id, j - 1, abbreviated(input)))
               .to_stored());
      return;
    }
    input = std::move(*unique_id);
  }
  auto child = child_record(parent, *child_def, std::move(input), EnqueueOptions{},
                            ParentTaskExecutionSummary{parent.task_id, parent.execution_id,
                                                       static_cast<std::int32_t>(j), false, false},
                            now, false);
  declared[j].execution_id = child.execution_id;
  TaskExecutionUpdate u;
  u.children = std::move(declared);
  u.active_children_count = 1;
  u.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::idle;
  std::vector<TaskExecutionRecord> inserts;
  inserts.push_back(std::move(child));
  plan_parent_write(parent, std::move(u), now, writes, std::move(inserts));
}

CloseWrites Transitions::plan_close(const std::vector<TaskExecutionRecord>& rows,
                                    Timestamp now) const {
  CloseWrites w;
  for (const auto& row : rows) {
    if (row.parent && row.parent->is_finalize_of_parent) {
      // T20: the finalize child decides its parent's outcome.
      w.parent_updates.push_back(UpdateByIdRequest{
          row.parent->execution_id, GetByIdFilters{.status = Status::waiting_for_finalize},
          normalize_update(now,
                           settle_parent_update(row.status, row.output, row.error, row.task_id))});
    }
    const bool has_descendants = (row.children && !row.children->empty()) || row.finalize;
    if (row.status != Status::completed && has_descendants) {
      // T11: a parent that did not complete cancels whatever of its tree still runs.
      TaskExecutionUpdate cu;
      cu.status = Status::cancelled;
      cu.error = DurableExecutionCancelledError(
                     fmt::format("Parent task {} with execution id {} failed: {}", row.task_id,
                                 row.execution_id,
                                 row.error ? row.error->message : std::string{"Unknown error"}))
                     .to_stored();
      cu.needs_promise_cancellation = true;
      w.cancel_children.push_back(UpdateByParentExecutionIdAndIsFinishedRequest{
          row.execution_id, false, normalize_update(now, std::move(cu))});
    }
    TaskExecutionUpdate close;
    close.close_status = CloseStatus::closed;
    close.closed_at = now;
    w.closes.push_back(UpdateByIdRequest{row.execution_id, GetByIdFilters{.is_finished = true},
                                         normalize_update(now, std::move(close))});
  }
  return w;
}

}  // namespace durable_execution::detail
