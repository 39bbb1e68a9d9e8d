#pragma once

// The typed front (DESIGN.md, layer 1): Task<Input, Output>, typed execution views and handles,
// and the JSON glue that turns values into the strings the engine stores. User types plug in
// through nlohmann's to_json/from_json, found by ADL.

#include <chrono>
#include <concepts>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "durable_execution/detail/engine.hpp"
#include "durable_execution/detail/json_text.hpp"
#include "durable_execution/errors.hpp"
#include "durable_execution/options.hpp"
#include "durable_execution/task_context.hpp"
#include "durable_execution/task_descriptor.hpp"
#include "durable_execution/task_execution.hpp"

namespace durable_execution {

/** @brief The input of a task whose run takes none, and the output of one that returns void. */
struct Empty {
  /// All Empty values are equal.
  friend bool operator==(const Empty&, const Empty&) = default;
};
/// @brief The JSON form of Empty: `null`.
inline void to_json(nlohmann::json& j, const Empty& /*unused*/) { j = nullptr; }
/// @brief Accepts any JSON as Empty.
inline void from_json(const nlohmann::json& /*unused*/, Empty& /*unused*/) {}

/// @cond DETAIL
namespace detail {

/** @brief Serializes a value as JSON; failures become "Error serializing value: ...". */
template <class T>
[[nodiscard]] std::string serialize_value(const T& value) {
  try {
    return JsonCodec<T>::serialize(value);
  } catch (const DurableExecutionError&) {
    throw;
  } catch (const std::exception& e) {
    throw DurableExecutionError::non_retryable(std::string{"Error serializing value: "} + e.what());
  }
}

/**
 * @brief Serializes `value` as an `I`, without a copy when it already is one: a copy of a deeply
 * nested nlohmann::json recurses, and must not happen before the nesting check.
 */
template <class I, class V>
[[nodiscard]] std::string serialize_as(V&& value) {
  if constexpr (std::is_same_v<std::remove_cvref_t<V>, I>) {
    return serialize_value<I>(value);
  } else {
    return serialize_value(static_cast<const I&>(I(std::forward<V>(value))));
  }
}

/** @brief Parses a JSON value; failures become "Error deserializing value: ...". */
template <class T>
[[nodiscard]] T deserialize_value(std::string_view text) {
  try {
    if constexpr (std::is_same_v<T, Empty>) {
      return Empty{};
    } else {
      // Stored text may come from anywhere: bound the recursion of what decodes it.
      if constexpr (!std::is_same_v<T, std::string>) {
        check_json_text_nesting(text, max_stored_nesting_depth);
      }
      return JsonCodec<T>::deserialize(text);
    }
  } catch (const DurableExecutionError&) {
    throw;
  } catch (const std::exception& e) {
    throw DurableExecutionError::non_retryable(std::string{"Error deserializing value: "} +
                                               e.what());
  }
}

/** @brief Marker for "deduce from the run callable". */
struct Deduce {};

template <class T>
struct CallableTraits : CallableTraits<decltype(&T::operator())> {};
template <class R, class... A>
struct CallableTraits<R (*)(A...)> {
  using Result = R;
  using Args = std::tuple<A...>;
};
template <class R, class... A>
struct CallableTraits<R (*)(A...) noexcept> : CallableTraits<R (*)(A...)> {};
template <class C, class R, class... A>
struct CallableTraits<R (C::*)(A...)> : CallableTraits<R (*)(A...)> {};
template <class C, class R, class... A>
struct CallableTraits<R (C::*)(A...) const> : CallableTraits<R (*)(A...)> {};
template <class C, class R, class... A>
struct CallableTraits<R (C::*)(A...) noexcept> : CallableTraits<R (*)(A...)> {};
template <class C, class R, class... A>
struct CallableTraits<R (C::*)(A...) const noexcept> : CallableTraits<R (*)(A...)> {};

/**
 * @brief The output type of a function returning `R`: void gives Empty, and text that does not
 * own its characters (`return "hello";` returns a `const char*`) gives std::string, which is what
 * a reader of the stored output gets back.
 */
template <class R>
struct OutputOfResultImpl {
  using T = std::remove_cvref_t<R>;
  using type = std::conditional_t<
      std::is_void_v<T>, Empty,
      std::conditional_t<std::is_same_v<T, const char*> || std::is_same_v<T, char*> ||
                             std::is_same_v<T, std::string_view>,
                         std::string, T>>;
};
template <class R>
using OutputOfResult = typename OutputOfResultImpl<R>::type;

/** @brief Input and output types deduced from `run(ctx, input)`, `run(input)`, `run(ctx)` or
 * `run()`. */
template <class F>
struct RunSignature {
  using Traits = CallableTraits<std::decay_t<F>>;
  using Args = typename Traits::Args;
  static constexpr std::size_t arity = std::tuple_size_v<Args>;
  template <std::size_t N>
  using Arg = std::remove_cvref_t<std::tuple_element_t<N, Args>>;
  static constexpr bool first_is_context = [] {
    if constexpr (arity == 0) {
      return false;
    } else {
      return std::is_same_v<Arg<0>, TaskRunContext>;
    }
  }();
  using Input = typename decltype([] {
    if constexpr (arity == 2) {
      return std::type_identity<Arg<1>>{};
    } else if constexpr (arity == 1 && !first_is_context) {
      return std::type_identity<Arg<0>>{};
    } else {
      return std::type_identity<Empty>{};
    }
  }())::type;
  using Output = OutputOfResult<typename Traits::Result>;
};

/** @brief Calls a run callable in whichever of the four shapes it has. */
template <class I, class F>
decltype(auto) invoke_run(F& run, TaskRunContext& ctx, const I& input) {
  if constexpr (std::is_invocable_v<F&, TaskRunContext&, const I&>) {
    return std::invoke(run, ctx, input);
  } else if constexpr (std::is_invocable_v<F&, const I&>) {
    return std::invoke(run, input);
  } else if constexpr (std::is_invocable_v<F&, TaskRunContext&>) {
    return std::invoke(run, ctx);
  } else {
    static_assert(std::is_invocable_v<F&>,
                  "run must be callable as run(ctx, input), run(input), run(ctx) or run()");
    return std::invoke(run);
  }
}

template <class O, class F, class I>
O run_to_output(F& run, TaskRunContext& ctx, const I& input) {
  using R = decltype(invoke_run<I>(run, ctx, input));
  if constexpr (std::is_void_v<R>) {
    invoke_run<I>(run, ctx, input);
    return O{};
  } else {
    return O(invoke_run<I>(run, ctx, input));
  }
}

/**
 * @brief Whether every value of the arithmetic type `From` is exactly a value of `To` (the
 * conversions C++ does not call narrowing, plus an integer to a floating type wide enough for
 * all of its values: `int` to `double`, but not `std::int64_t` to `double`). bool and the
 * numbers never mix: passing `true` for a count is a slip, not a conversion.
 */
template <class From, class To>
constexpr bool is_value_preserving() {
  if constexpr (std::is_same_v<From, bool> || std::is_same_v<To, bool>) {
    return std::is_same_v<From, To>;
  } else if constexpr (std::is_integral_v<From> && std::is_floating_point_v<To>) {
    return std::numeric_limits<From>::digits <= std::numeric_limits<To>::digits;
  } else {
    return requires(From f) { To{f}; };  // list-initialization refuses narrowing
  }
}

/** @brief InputFor's rule, one case at a time. */
template <class V, class I>
constexpr bool is_input_for() {
  using T = std::remove_cvref_t<V>;
  if constexpr (std::is_same_v<T, I>) {
    return true;
  } else if constexpr (std::is_arithmetic_v<T> && std::is_arithmetic_v<I>) {
    return is_value_preserving<T, I>();
  } else {
    return std::is_convertible_v<V, I> && requires(V && v) { I{std::forward<V>(v)}; };
  }
}

}  // namespace detail
/// @endcond

/**
 * @brief A value a caller may pass as a task's input (or a sleeping task's output): the type
 * itself, or a type that converts to it without narrowing — a string literal for std::string,
 * an `int` for `std::int64_t` or `double`. Narrowing conversions (`double` to `int`,
 * `std::int64_t` to `std::int32_t` or to `double`) and anything else do not compile.
 */
template <class V, class I>
concept InputFor = detail::is_input_for<V, I>();

/**
 * @brief A registered task: a cheap, copyable descriptor that carries the input and output
 * types, so that enqueueing the wrong input or reading the wrong output does not compile.
 *
 * @tparam Input what enqueue_task takes (after any validation step: the raw input type).
 * @tparam Output what a completed execution's `output` holds.
 * @note Thread safety: immutable; safe to copy and share.
 */
template <class Input, class Output>
class Task {
 public:
  /// The input type, for generic code.
  using InputType = Input;
  /// The output type, for generic code.
  using OutputType = Output;

  /**
   * @brief An unset task (empty id), to be assigned a registered one later: what a recursive
   * task's run captures by reference to name itself (docs/workflows.md, "Recursive tasks").
   * Enqueueing it, or declaring it as a child, throws not-found.
   */
  Task() = default;

  /** @brief Wraps a descriptor; used by the executor and to name a task on a client. */
  explicit Task(TaskDescriptor descriptor) : descriptor_(std::move(descriptor)) {}

  /**
   * @brief A typed reference to a task registered by executors elsewhere, for a
   * DurableExecutorClient (which runs nothing). The options must match the registration.
   */
  [[nodiscard]] static Task reference(const TaskOptions& options) {
    detail::validate_task_options(options);
    return Task{TaskDescriptor{.id = options.id,
                               .is_sleeping_task = false,
                               .retry = options.retry,
                               .sleep_before_run = options.sleep_before_run,
                               .timeout = options.timeout,
                               .are_children_sequential = false}};
  }

  /**
   * @brief A typed reference to a sleeping task (DurableExecutor::sleeping_task) registered by
   * executors elsewhere: a client enqueues it with a unique id and wakes or fails it by that id.
   */
  [[nodiscard]] static Task sleeping_reference(
      const SleepingTaskOptions& options) requires std::same_as<Input, std::string> {
    detail::validate_task_options(TaskOptions{.id = options.id, .timeout = options.timeout});
    return Task{
        TaskDescriptor{.id = options.id, .is_sleeping_task = true, .timeout = options.timeout}};
  }

  /// @brief The task id.
  [[nodiscard]] const std::string& id() const noexcept { return descriptor_.id; }
  /// @brief The options the task was registered with, as a DurableExecutorClient takes them.
  [[nodiscard]] const TaskDescriptor& descriptor() const noexcept { return descriptor_; }

 private:
  TaskDescriptor descriptor_;
};

/**
 * @brief A typed view of one execution (SPEC.md §2.5): status, typed output, error, attempts
 * and timestamps. Optional fields are unset where the status has no such value.
 */
template <class Output>
struct TaskExecution {
  /// The top-level execution of the tree; unset on a top-level execution.
  std::optional<TaskExecutionSummary> root{};
  /// The parent, on children and finalize executions.
  std::optional<ParentTaskExecutionSummary> parent{};
  /// The task id.
  std::string task_id{};
  /// The execution id.
  std::string execution_id{};
  /// The effective retry policy.
  RetryOptions retry_options{};
  /// The effective delay before the first run.
  std::chrono::milliseconds sleep_before_run{0};
  /// The effective timeout of one run.
  std::chrono::milliseconds timeout{0};
  /** The serialized input (JSON; "null" for a sleeping task). Decoded: input_as(). */
  std::string input{};
  /// The status; see is_finished().
  TaskExecutionStatus status = TaskExecutionStatus::ready;
  /** Set when completed. */
  std::optional<Output> output{};
  /** Set when errored; on `ready` the previous attempt's error. */
  std::optional<StoredError> error{};
  /// Retries scheduled so far.
  std::int32_t retry_attempts = 0;
  /// When the execution was enqueued.
  Timestamp created_at{};
  /// The time of the latest change.
  Timestamp updated_at{};
  /// The time of the latest claim.
  std::optional<Timestamp> started_at{};
  /// The lease deadline while running.
  std::optional<Timestamp> expires_at{};
  /// When it finished.
  std::optional<Timestamp> finished_at{};
  /// A parent's children, in declaration order.
  std::optional<std::vector<TaskExecutionSummary>> children{};
  /// Children not yet closed.
  std::int32_t active_children_count = 0;
  /// A parent's finalize execution, once enqueued.
  std::optional<TaskExecutionSummary> finalize{};
  /// Whether a parent's finished children have been processed.
  OnChildrenFinishedProcessingStatus on_children_finished_processing_status =
      OnChildrenFinishedProcessingStatus::idle;
  /// When a parent's children outcome was written.
  std::optional<Timestamp> on_children_finished_processing_finished_at{};
  /// The close sub-state.
  CloseStatus close_status = CloseStatus::idle;
  /// When closing completed.
  std::optional<Timestamp> closed_at{};
  /**
   * Set when the execution is completed but its stored output does not decode as an Output (a
   * value written by another version of the task, say): the non-retryable error "Error
   * deserializing value: ...". `output` is then unset; the status and every other field are
   * still read.
   */
  std::optional<StoredError> output_error{};

  /** Set for an execution of a sleeping task: the unique id it was enqueued with (its input). */
  std::optional<std::string> sleeping_task_unique_id{};

  /// @brief Whether the status is a finished one (it will not change again).
  [[nodiscard]] bool is_finished() const noexcept { return durable_execution::is_finished(status); }

  /**
   * @brief The input, decoded as the task's input type `I` (a sleeping task's: its unique id,
   * as a std::string).
   * @throws DurableExecutionError "Error deserializing value: ..." when the stored input is not
   *   an `I`.
   */
  template <class I>
  [[nodiscard]] I input_as() const {
    if (sleeping_task_unique_id) {
      if constexpr (std::is_constructible_v<I, const std::string&>) {
        return I(*sleeping_task_unique_id);
      } else {
        throw DurableExecutionError::non_retryable(
            "Error deserializing value: the input of sleeping task " + task_id +
            " is its unique id, a string");
      }
    } else {
      return detail::deserialize_value<I>(input);
    }
  }

  /**
   * @brief Builds the view of a record; the output is parsed only when completed. Never throws
   * for an output that does not decode: that sets `output_error` instead.
   */
  [[nodiscard]] static TaskExecution from_record(const TaskExecutionRecord& r) {
    TaskExecution v;
    v.root = r.root;
    v.parent = r.parent;
    v.task_id = r.task_id;
    v.execution_id = r.execution_id;
    v.retry_options = r.retry_options;
    v.sleep_before_run = r.sleep_before_run;
    v.timeout = r.timeout;
    v.input = r.input;
    v.status = r.status;
    if (r.is_sleeping_task) v.sleeping_task_unique_id = r.sleeping_task_unique_id;
    if (r.status == TaskExecutionStatus::completed && r.output) {
      try {
        v.output = detail::deserialize_value<Output>(*r.output);
      } catch (const DurableExecutionError& e) {
        v.output_error = StoredError{ErrorType::generic, false, false, e.what()};
      }
    }
    v.error = r.error;
    v.retry_attempts = r.retry_attempts;
    v.created_at = r.created_at;
    v.updated_at = r.updated_at;
    v.started_at = r.started_at;
    v.expires_at = r.expires_at;
    v.finished_at = r.finished_at;
    v.children = r.children;
    v.active_children_count = r.active_children_count;
    v.finalize = r.finalize;
    v.on_children_finished_processing_status = r.on_children_finished_processing_status;
    v.on_children_finished_processing_finished_at = r.on_children_finished_processing_finished_at;
    v.close_status = r.close_status;
    v.closed_at = r.closed_at;
    return v;
  }
};

/**
 * @brief A handle on one execution: reads it, waits for it to finish, cancels it.
 *
 * Holds only the two ids and the engine, so it stays valid after the executor shuts down or is
 * destroyed (it reads the storage, which must outlive it).
 *
 * @note Thread safety: thread-safe; copies may be used from any thread.
 */
template <class Output>
class TaskExecutionHandle {
 public:
  /// @brief Made by the executor and the client (enqueue_task, get_task_execution_handle).
  TaskExecutionHandle(std::shared_ptr<detail::Engine> engine, std::string task_id,
                      std::string execution_id)
      : engine_(std::move(engine)),
        task_id_(std::move(task_id)),
        execution_id_(std::move(execution_id)) {}

  /// @brief The task id.
  [[nodiscard]] const std::string& task_id() const noexcept { return task_id_; }
  /// @brief The execution id.
  [[nodiscard]] const std::string& execution_id() const noexcept { return execution_id_; }

  /** @brief The current view. @throws DurableExecutionNotFoundError if the record is gone. */
  [[nodiscard]] TaskExecution<Output> get_execution() const {
    return TaskExecution<Output>::from_record(engine_->get_execution(task_id_, execution_id_));
  }

  /**
   * @brief Blocks until the execution is finished and returns its view.
   * @throws DurableExecutionTimedOutError past `options.timeout`;
   *   DurableExecutionCancelledError on a stop request; DurableExecutionNotFoundError if the
   *   record is gone.
   */
  [[nodiscard]] TaskExecution<Output> wait_and_get_finished_execution(
      const WaitOptions& options = {}) const {
    return TaskExecution<Output>::from_record(
        engine_->wait_finished(task_id_, execution_id_, options));
  }

  /** @brief Cancels the execution (no-op if it is finished or missing). */
  void cancel() const { engine_->cancel(execution_id_); }

 private:
  std::shared_ptr<detail::Engine> engine_{};
  std::string task_id_{};
  std::string execution_id_{};
};

namespace detail {

/** @brief The input string the engine stores: JSON, or a sleeping task's unique id verbatim. */
template <class I, class O, class V>
[[nodiscard]] std::string serialize_task_input(const Task<I, O>& task, V&& value) {
  if (task.descriptor().is_sleeping_task) {
    if constexpr (std::is_convertible_v<V, std::string>) {
      return std::string(std::forward<V>(value));
    } else {
      throw DurableExecutionError::non_retryable(
          "Input must be a unique id string for sleeping task " + task.id());
    }
  } else {
    return serialize_as<I>(std::forward<V>(value));
  }
}

/** @brief Enqueue shared by executor and client: typed input to a string, then the engine. */
template <class I, class O, class V>
[[nodiscard]] TaskExecutionHandle<O> enqueue_typed(const std::shared_ptr<Engine>& engine,
                                                   const Task<I, O>& task, V&& input,
                                                   const EnqueueOptions& options) {
  std::string serialized = serialize_task_input(task, std::forward<V>(input));
  auto id = engine->enqueue(task.descriptor(), std::move(serialized), options);
  return TaskExecutionHandle<O>{engine, task.id(), std::move(id)};
}

/**
 * @brief A run's input: the stored text deserialized, through `validate` if set. Whatever the
 * validator throws rejects the input: a non-retryable "Invalid input to task <id>: <message>".
 */
template <class Raw, class I>
[[nodiscard]] I read_input(const std::string& task_id, const std::function<I(const Raw&)>& validate,
                           const std::string& text) {
  if (!validate) return deserialize_value<I>(text);
  Raw raw = deserialize_value<Raw>(text);
  try {
    return validate(raw);
  } catch (const std::exception& e) {
    throw DurableExecutionError::non_retryable("Invalid input to task " + task_id + ": " +
                                               e.what());
  } catch (...) {  // a rejection all the same, whatever was thrown
    throw DurableExecutionError::non_retryable("Invalid input to task " + task_id +
                                               ": Unknown error");
  }
}

/** @brief The engine-side run function of a simple task, with an optional validation step. */
template <class Raw, class I, class O, class F>
[[nodiscard]] RunFunction make_simple_run(std::string task_id,
                                          std::function<I(const Raw&)> validate, F run) {
  return [task_id = std::move(task_id), validate = std::move(validate), run = std::move(run)](
             TaskRunContext& ctx, const std::string& text) mutable {
    auto input = read_input<Raw, I>(task_id, validate, text);
    O output = run_to_output<O>(run, ctx, input);
    return RunParentResult{serialize_value(output), {}};
  };
}

}  // namespace detail

}  // namespace durable_execution
