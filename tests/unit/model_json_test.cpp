// Enum names, status classes and the JSON forms of the model (camelCase keys, integer ms).

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "durable_execution/errors.hpp"
#include "durable_execution/task_execution.hpp"

namespace de = durable_execution;
using de::CloseStatus;
using de::OnChildrenFinishedProcessingStatus;
using de::TaskExecutionStatus;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

const de::Timestamp kNow = de::from_unix_ms(1'700'000'000'123);

std::string error_message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const de::DurableExecutionError& e) {
    return e.what();
  }
  return "<no DurableExecutionError>";
}

de::TaskExecutionRecord full_record() {
  de::TaskExecutionRecord r;
  r.root = de::TaskExecutionSummary{"root_task", "te_root"};
  r.parent = de::ParentTaskExecutionSummary{"parent_task", "te_parent", 3, true, true};
  r.task_id = "task";
  r.execution_id = "te_exec";
  r.is_sleeping_task = true;
  r.sleeping_task_unique_id = "unique";
  r.retry_options = {.max_attempts = 5,
                     .base_delay = milliseconds{100},
                     .delay_multiplier = 2.5,
                     .max_delay = milliseconds{1000}};
  r.sleep_before_run = milliseconds{10};
  r.timeout = milliseconds{20};
  r.are_children_sequential = true;
  r.input = "{\"a\":[1,2]}";
  r.executor_id = "de_exec";
  r.status = TaskExecutionStatus::waiting_for_finalize;
  r.is_finished = false;
  r.run_output = "run";
  r.output = "out";
  r.error = de::StoredError{de::ErrorType::not_found, false, true, "missing"};
  r.retry_attempts = 2;
  r.start_at = kNow;
  r.started_at = kNow + milliseconds{1};
  r.expires_at = kNow + milliseconds{2};
  r.finished_at = kNow + milliseconds{3};
  r.children = std::vector<de::TaskExecutionSummary>{{"c", "te_c"}, {"d", "dummy"}};
  r.active_children_count = -1;
  r.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::processing;
  r.on_children_finished_processing_expires_at = kNow + milliseconds{4};
  r.on_children_finished_processing_finished_at = kNow + milliseconds{5};
  r.finalize = de::TaskExecutionSummary{"f", "te_f"};
  r.close_status = CloseStatus::closing;
  r.close_expires_at = kNow + milliseconds{6};
  r.closed_at = kNow + milliseconds{7};
  r.needs_promise_cancellation = true;
  r.created_at = kNow - milliseconds{1};
  r.updated_at = kNow + milliseconds{8};
  return r;
}

template <class T>
T round_trip(const T& value) {
  const json j = value;
  // Through text too: what a SQL store or a file would hold.
  return json::parse(j.dump()).get<T>();
}

}  // namespace

// ---- enums ----------------------------------------------------------------------------------

TEST(Enums, StatusNamesRoundTrip) {
  const std::vector<std::pair<TaskExecutionStatus, std::string>> names{
      {TaskExecutionStatus::ready, "ready"},
      {TaskExecutionStatus::running, "running"},
      {TaskExecutionStatus::failed, "failed"},
      {TaskExecutionStatus::timed_out, "timed_out"},
      {TaskExecutionStatus::waiting_for_children, "waiting_for_children"},
      {TaskExecutionStatus::waiting_for_finalize, "waiting_for_finalize"},
      {TaskExecutionStatus::finalize_failed, "finalize_failed"},
      {TaskExecutionStatus::completed, "completed"},
      {TaskExecutionStatus::cancelled, "cancelled"},
  };
  for (const auto& [status, text] : names) {
    EXPECT_EQ(de::to_string(status), text);
    EXPECT_EQ(de::parse_task_execution_status(text), status);
    EXPECT_EQ(json(status), json(text));
    EXPECT_EQ(json(text).get<TaskExecutionStatus>(), status);
  }
}

TEST(Enums, InvalidStatusIsRejectedWithTheReferenceMessage) {
  EXPECT_EQ(error_message_of([] { (void)de::parse_task_execution_status("bogus"); }),
            "Invalid task execution status: bogus");
  EXPECT_EQ(error_message_of([] { (void)de::parse_task_execution_status("Ready"); }),
            "Invalid task execution status: Ready");
  EXPECT_EQ(error_message_of([] { (void)json("").get<TaskExecutionStatus>(); }),
            "Invalid task execution status: ");
  EXPECT_THROW((void)de::parse_on_children_finished_processing_status("done"),
               de::DurableExecutionError);
  EXPECT_THROW((void)de::parse_close_status("open"), de::DurableExecutionError);
  EXPECT_THROW((void)de::parse_error_type("fatal"), de::DurableExecutionError);
}

TEST(Enums, SubStateAndErrorTypeNamesRoundTrip) {
  for (const auto& [s, text] :
       std::vector<std::pair<OnChildrenFinishedProcessingStatus, std::string>>{
           {OnChildrenFinishedProcessingStatus::idle, "idle"},
           {OnChildrenFinishedProcessingStatus::processing, "processing"},
           {OnChildrenFinishedProcessingStatus::processed, "processed"}}) {
    EXPECT_EQ(de::to_string(s), text);
    EXPECT_EQ(de::parse_on_children_finished_processing_status(text), s);
    EXPECT_EQ(json(text).get<OnChildrenFinishedProcessingStatus>(), s);
  }
  for (const auto& [s, text] :
       std::vector<std::pair<CloseStatus, std::string>>{{CloseStatus::idle, "idle"},
                                                        {CloseStatus::ready, "ready"},
                                                        {CloseStatus::closing, "closing"},
                                                        {CloseStatus::closed, "closed"}}) {
    EXPECT_EQ(de::to_string(s), text);
    EXPECT_EQ(de::parse_close_status(text), s);
    EXPECT_EQ(json(text).get<CloseStatus>(), s);
  }
  for (const auto& [t, text] : std::vector<std::pair<de::ErrorType, std::string>>{
           {de::ErrorType::generic, "generic"},
           {de::ErrorType::not_found, "not_found"},
           {de::ErrorType::timed_out, "timed_out"},
           {de::ErrorType::cancelled, "cancelled"}}) {
    EXPECT_EQ(de::to_string(t), text);
    EXPECT_EQ(de::parse_error_type(text), t);
  }
}

TEST(Enums, StatusClasses) {
  using S = TaskExecutionStatus;
  for (const auto s : {S::ready, S::running, S::waiting_for_children, S::waiting_for_finalize}) {
    EXPECT_TRUE(de::is_active(s)) << de::to_string(s);
    EXPECT_FALSE(de::is_finished(s)) << de::to_string(s);
    EXPECT_FALSE(de::is_errored(s)) << de::to_string(s);
  }
  for (const auto s : {S::failed, S::timed_out, S::finalize_failed, S::cancelled}) {
    EXPECT_FALSE(de::is_active(s)) << de::to_string(s);
    EXPECT_TRUE(de::is_finished(s)) << de::to_string(s);
    EXPECT_TRUE(de::is_errored(s)) << de::to_string(s);
  }
  EXPECT_TRUE(de::is_finished(S::completed));
  EXPECT_FALSE(de::is_errored(S::completed));
  EXPECT_FALSE(de::is_active(S::completed));
}

// ---- JSON -----------------------------------------------------------------------------------

TEST(Json, FullRecordRoundTripsWithCamelCaseKeys) {
  const auto r = full_record();
  const json j = r;
  EXPECT_EQ(round_trip(r), r);
  for (const char* key : {"root",
                          "parent",
                          "taskId",
                          "executionId",
                          "isSleepingTask",
                          "sleepingTaskUniqueId",
                          "retryOptions",
                          "sleepMsBeforeRun",
                          "timeoutMs",
                          "areChildrenSequential",
                          "input",
                          "executorId",
                          "status",
                          "isFinished",
                          "runOutput",
                          "output",
                          "error",
                          "retryAttempts",
                          "startAt",
                          "startedAt",
                          "expiresAt",
                          "finishedAt",
                          "children",
                          "activeChildrenCount",
                          "onChildrenFinishedProcessingStatus",
                          "onChildrenFinishedProcessingExpiresAt",
                          "onChildrenFinishedProcessingFinishedAt",
                          "finalize",
                          "closeStatus",
                          "closeExpiresAt",
                          "closedAt",
                          "needsPromiseCancellation",
                          "createdAt",
                          "updatedAt",
                          "leaseExpirations"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.size(), 35U);
  EXPECT_EQ(j.at("startAt"), de::to_unix_ms(kNow));
  EXPECT_EQ(j.at("timeoutMs"), 20);
  EXPECT_EQ(j.at("status"), "waiting_for_finalize");
  EXPECT_EQ(j.at("parent").at("indexInParentChildren"), 3);
  EXPECT_EQ(j.at("parent").at("isFinalizeOfParent"), true);
  EXPECT_EQ(j.at("retryOptions").at("baseDelayMs"), 100);
  EXPECT_EQ(j.at("retryOptions").at("delayMultiplier"), 2.5);
  EXPECT_EQ(j.at("error").at("errorType"), "not_found");
  EXPECT_EQ(j.at("children").at(1).at("executionId"), "dummy");
}

TEST(Json, FreshRecordOmitsUnsetFieldsAndRoundTrips) {
  const auto r = de::make_task_execution_record(
      kNow, {.task_id = "t", .execution_id = "te_x", .timeout = milliseconds{1000}, .input = ""});
  const json j = r;
  for (const char* key :
       {"root", "parent", "sleepingTaskUniqueId", "executorId", "runOutput", "output", "error",
        "startedAt", "expiresAt", "finishedAt", "children", "onChildrenFinishedProcessingExpiresAt",
        "onChildrenFinishedProcessingFinishedAt", "finalize", "closeExpiresAt", "closedAt"}) {
    EXPECT_FALSE(j.contains(key)) << key;
  }
  EXPECT_EQ(round_trip(r), r);
  // Explicit nulls read as unset too.
  auto with_nulls = j;
  with_nulls["executorId"] = nullptr;
  with_nulls["children"] = nullptr;
  EXPECT_EQ(with_nulls.get<de::TaskExecutionRecord>(), r);
}

TEST(Json, EmptyChildrenListStaysSet) {
  auto r = de::make_task_execution_record(kNow, {.task_id = "t", .execution_id = "te_x"});
  r.children = std::vector<de::TaskExecutionSummary>{};
  const auto back = round_trip(r);
  ASSERT_TRUE(back.children.has_value());
  EXPECT_TRUE(back.children->empty());
}

TEST(Json, UpdateRoundTripsWithDirectives) {
  de::TaskExecutionUpdate u;
  u.executor_id = "e";
  u.status = TaskExecutionStatus::cancelled;
  u.error = de::StoredError{de::ErrorType::cancelled, false, false, "Task execution cancelled"};
  u.retry_attempts = 1;
  u.start_at = kNow;
  u.started_at = kNow;
  u.children = std::vector<de::TaskExecutionSummary>{{"c", "te_c"}};
  u.active_children_count = 1;
  u.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::processed;
  u.on_children_finished_processing_finished_at = kNow;
  u.finalize = de::TaskExecutionSummary{"f", "te_f"};
  u.close_status = CloseStatus::closed;
  u.closed_at = kNow;
  u.needs_promise_cancellation = true;
  u = de::normalize_update(kNow, u);
  EXPECT_EQ(round_trip(u), u);
  const json j = u;
  EXPECT_EQ(j.at("isFinished"), true);
  EXPECT_EQ(j.at("finishedAt"), de::to_unix_ms(kNow));
  EXPECT_EQ(j.at("unsetRunOutput"), true);
  EXPECT_EQ(j.at("unsetExpiresAt"), true);
  EXPECT_EQ(j.at("unsetOnChildrenFinishedProcessingExpiresAt"), true);
  EXPECT_EQ(j.at("unsetCloseExpiresAt"), true);
  EXPECT_FALSE(j.contains("unsetExecutorId"));  // cancelled keeps the executor
  EXPECT_FALSE(j.contains("output"));

  // Every set field and every directive at once (raw, not normalized).
  de::TaskExecutionUpdate all = u;
  all.run_output = "r";
  all.output = "o";
  all.expires_at = kNow;
  all.on_children_finished_processing_expires_at = kNow;
  all.close_expires_at = kNow;
  all.unset_executor_id = true;
  all.unset_error = true;
  EXPECT_EQ(round_trip(all), all);
  EXPECT_EQ(round_trip(de::TaskExecutionUpdate{}), de::TaskExecutionUpdate{});
}

TEST(Json, FiltersSummariesErrorsAndRetryOptionsRoundTrip) {
  for (const auto& f : std::vector<de::GetByIdFilters>{
           {},
           {.is_sleeping_task = true},
           {.status = TaskExecutionStatus::completed, .is_finished = true},
           {.is_sleeping_task = false,
           .status = TaskExecutionStatus::ready,
           .is_finished = false}}) {
    EXPECT_EQ(round_trip(f), f);
  }
  EXPECT_EQ(json(de::GetByIdFilters{}), json::object());
  EXPECT_EQ(json(de::GetByIdFilters{.status = TaskExecutionStatus::running}),
            json({{"status", "running"}}));

  const de::TaskExecutionSummary s{"task", "te_1"};
  EXPECT_EQ(round_trip(s), s);
  EXPECT_EQ(json(s), json({{"taskId", "task"}, {"executionId", "te_1"}}));
  const de::ParentTaskExecutionSummary p{"task", "te_1", 7, true, false};
  EXPECT_EQ(round_trip(p), p);
  // Missing index and flags default to 0 and false (SPEC.md §9.2).
  EXPECT_EQ(
      (json{{"taskId", "task"}, {"executionId", "te_1"}}.get<de::ParentTaskExecutionSummary>()),
      (de::ParentTaskExecutionSummary{"task", "te_1", 0, false, false}));

  for (const auto& e : std::vector<de::StoredError>{{de::ErrorType::generic, true, false, "a"},
                                                    {de::ErrorType::not_found, false, true, "b"},
                                                    {de::ErrorType::timed_out, true, true, "c"},
                                                    {de::ErrorType::cancelled, false, false, ""}}) {
    EXPECT_EQ(round_trip(e), e);
  }
  EXPECT_EQ(json(de::StoredError{de::ErrorType::timed_out, true, false, "m"}),
            json({{"errorType", "timed_out"},
                  {"isRetryable", true},
                  {"isInternal", false},
                  {"message", "m"}}));

  const de::RetryOptions minimal{.max_attempts = 1};
  EXPECT_EQ(round_trip(minimal), minimal);
  EXPECT_EQ(json(minimal), json({{"maxAttempts", 1}}));
  const de::RetryOptions full{.max_attempts = 3,
                              .base_delay = milliseconds{10},
                              .delay_multiplier = 1.5,
                              .max_delay = milliseconds{0}};
  EXPECT_EQ(round_trip(full), full);
  EXPECT_EQ(json(full).at("maxDelayMs"), 0);
}

TEST(Json, InvalidStatusInARecordIsRejected) {
  json j = de::make_task_execution_record(kNow, {.task_id = "t", .execution_id = "te_x"});
  j["status"] = "paused";
  EXPECT_EQ(error_message_of([&] { (void)j.get<de::TaskExecutionRecord>(); }),
            "Invalid task execution status: paused");
}
