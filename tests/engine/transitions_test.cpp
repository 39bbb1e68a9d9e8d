// Transitions: the state machine of SPEC.md §3 as pure planning, checked transition by
// transition on records built here — no storage, no threads, no clock (time is a parameter).

#include "engine/transitions.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "durable_execution/detail/saturating_time.hpp"

namespace de = durable_execution;
namespace dd = durable_execution::detail;
using namespace std::chrono_literals;
using Status = de::TaskExecutionStatus;

namespace {

const de::Timestamp kNow{std::chrono::milliseconds{1'700'000'000'000}};

dd::TaskDefinition task(const std::string& id, std::function<void(dd::TaskDefinition&)> more = {}) {
  dd::TaskDefinition def;
  def.options = de::TaskOptions{.id = id, .timeout = 1s};
  def.run = [](de::TaskRunContext&, const std::string&) { return dd::RunParentResult{}; };
  if (more) more(def);
  return def;
}

class TransitionsTest : public ::testing::Test {
 protected:
  TransitionsTest() {
    (void)registry.add(task("simple"));
    (void)registry.add(task("retrying", [](auto& d) {
      d.options.retry = de::RetryOptions{.max_attempts = 2, .base_delay = 100ms};
    }));
    (void)registry.add(task("sleeper", [](auto& d) {
      d.is_sleeping_task = true;
      d.run = nullptr;
    }));
    (void)registry.add(task("parent", [](auto& d) { d.is_parent = true; }));
    (void)registry.add(task("sequence", [](auto& d) {
      d.is_parent = true;
      d.are_children_sequential = true;
    }));
    (void)registry.add(task("finalize_fn", [](auto& d) {
      d.is_parent = true;
      d.finalize_function = [](const dd::ParentResultView& result) {
        return nlohmann::json(result.children.size()).dump();
      };
    }));
    (void)registry.add(task("finalize_throws", [](auto& d) {
      d.is_parent = true;
      d.finalize_function = [](const dd::ParentResultView&) -> std::string {
        throw std::runtime_error("finalize broke");
      };
    }));
    (void)registry.add(task("finalize_task_parent", [](auto& d) {
      d.is_parent = true;
      d.finalize_task_id = "simple";
    }));
    options.max_serialized_output_data_size = 1024;
    options.max_serialized_input_data_size = 1024;
    options.max_children_per_task_execution = 3;
  }

  /** A running execution of `task_id`, as a claim returns it. */
  de::TaskExecutionRecord running(const std::string& task_id, const std::string& id = "te_run") {
    de::TaskExecutionRecord r;
    r.task_id = task_id;
    r.execution_id = id;
    r.status = Status::running;
    r.retry_options = registry.find(task_id)->options.retry;
    return r;
  }

  /** A finished child of `parent` at `index`. */
  static de::TaskExecutionRecord child(const de::TaskExecutionRecord& parent, std::int32_t index,
                                       Status status, std::optional<std::string> output,
                                       const std::string& task_id = "simple") {
    de::TaskExecutionRecord c;
    c.task_id = task_id;
    c.execution_id = "te_child" + std::to_string(index);
    c.parent =
        de::ParentTaskExecutionSummary{parent.task_id, parent.execution_id, index, false, false};
    c.status = status;
    c.is_finished = true;
    c.output = std::move(output);
    if (status != Status::completed) {
      c.error = de::StoredError{de::ErrorType::generic, false, false, "child broke"};
    }
    return c;
  }

  dd::TaskRegistry registry;
  de::DurableExecutorOptions options;
  dd::Transitions transitions{registry, options};
};

// ---- a run's failure: T5-T10 ----------------------------------------------------------------

TEST_F(TransitionsTest, ErrorsEndInTheStatusOfTheirKind) {
  struct Case {
    de::StoredError error;
    Status expected;
  };
  const std::vector<Case> cases{
      {{de::ErrorType::generic, false, false, "x"}, Status::failed},
      {{de::ErrorType::generic, true, false, "x"}, Status::failed},  // no attempts left
      {{de::ErrorType::not_found, false, false, "x"}, Status::failed},
      {{de::ErrorType::timed_out, true, false, "x"}, Status::timed_out},
      {{de::ErrorType::cancelled, false, false, "x"}, Status::cancelled},
  };
  for (const auto& c : cases) {
    const auto w = transitions.run_failed(running("simple"), c.error, kNow);
    ASSERT_TRUE(w.update) << c.error.message;
    EXPECT_EQ(w.update->update.status, c.expected);
    EXPECT_EQ(w.update->update.error, c.error);
    EXPECT_EQ(w.update->filters.status, Status::running);  // guarded: only the live run writes
    EXPECT_FALSE(w.wake_at);
    // Nothing left to close (no children): closed in the same write.
    EXPECT_EQ(w.update->update.close_status, de::CloseStatus::closed);
    EXPECT_EQ(w.update->update.is_finished, true);
  }
}

TEST_F(TransitionsTest, ARetryableErrorWithAttemptsLeftReturnsToReadyAfterTheBackOff) {
  const de::StoredError error{de::ErrorType::generic, true, false, "flaky"};
  for (std::int32_t attempt = 0; attempt < 2; ++attempt) {
    auto rec = running("retrying");
    rec.retry_attempts = attempt;
    const auto w = transitions.run_failed(rec, error, kNow);
    ASSERT_TRUE(w.update);
    EXPECT_EQ(w.update->update.status, Status::ready);
    EXPECT_EQ(w.update->update.retry_attempts, attempt + 1);
    const auto expected_start = kNow + dd::retry_delay(rec.retry_options, attempt);
    EXPECT_EQ(w.update->update.start_at, expected_start);
    EXPECT_EQ(w.wake_at, expected_start);  // the dispatcher claims it then
    EXPECT_FALSE(w.update->update.close_status);
  }
  auto last = running("retrying");
  last.retry_attempts = 2;
  EXPECT_EQ(transitions.run_failed(last, error, kNow).update->update.status, Status::failed);
}

TEST_F(TransitionsTest, AChildsFinalWriteDecrementsItsParent) {
  auto rec = running("simple");
  rec.parent = de::ParentTaskExecutionSummary{"parent", "te_parent", 0, true, false};
  const auto w = transitions.run_failed(rec, {de::ErrorType::generic, false, false, "x"}, kNow);
  EXPECT_TRUE(w.update->decrement_parent_active_children_count);
  EXPECT_FALSE(w.update->parent_update);
  EXPECT_TRUE(w.settled_parent_id.empty());
}

TEST_F(TransitionsTest, AFinalizeChildSettlesItsParentInTheSameWrite) {
  auto rec = running("simple");
  rec.parent = de::ParentTaskExecutionSummary{"parent", "te_parent", 0, false, true};
  rec.root = de::TaskExecutionSummary{"parent", "te_parent"};  // the parent is top-level
  const auto failed =
      transitions.run_failed(rec, {de::ErrorType::generic, false, false, "no"}, kNow);
  ASSERT_TRUE(failed.update->parent_update);
  EXPECT_EQ(failed.update->parent_update->filters.status, Status::waiting_for_finalize);
  EXPECT_EQ(failed.update->parent_update->update.status, Status::finalize_failed);
  EXPECT_EQ(failed.update->parent_update->update.error->message, "no");
  EXPECT_EQ(failed.settled_parent_id, "te_parent");

  const auto done = transitions.run_succeeded(rec, *registry.find("simple"), {"42", {}}, kNow);
  ASSERT_TRUE(done.update->parent_update);
  EXPECT_EQ(done.update->parent_update->update.status, Status::completed);
  EXPECT_EQ(done.update->parent_update->update.output, "42");
  // A completed top-level parent is closed with it.
  EXPECT_EQ(done.update->parent_update->update.close_status, de::CloseStatus::closed);
}

TEST_F(TransitionsTest, ARejectedWriteFailsItsRunNonRetryably) {
  dd::RunWrite write;
  write.has_parent = true;
  const auto update =
      transitions.write_rejected(write, "te_x", {de::ErrorType::generic, true, false, "dup"}, kNow);
  ASSERT_TRUE(update);
  EXPECT_EQ(update->execution_id, "te_x");
  EXPECT_EQ(update->update.status, Status::failed);
  EXPECT_FALSE(update->update.error->is_retryable);
  EXPECT_TRUE(update->decrement_parent_active_children_count);
}

// ---- a run's success: T4, T12 -----------------------------------------------------------------

TEST_F(TransitionsTest, ASimpleTaskCompletesWithItsOutputVerbatim) {
  const auto w = transitions.run_succeeded(running("simple"), *registry.find("simple"),
                                           {R"({"a":1})", {}}, kNow);
  ASSERT_TRUE(w.update);
  EXPECT_FALSE(w.update_with_children);
  EXPECT_EQ(w.update->update.status, Status::completed);
  EXPECT_EQ(w.update->update.output, R"({"a":1})");
  EXPECT_EQ(w.update->update.close_status, de::CloseStatus::closed);
}

TEST_F(TransitionsTest, AnOutputOverTheLimitIsRefused) {
  EXPECT_THROW((void)transitions.run_succeeded(running("simple"), *registry.find("simple"),
                                               {'"' + std::string(2000, 'x') + '"', {}}, kNow),
               de::DurableExecutionError);
}

TEST_F(TransitionsTest, AParentWithoutChildrenCompletesWithItsResult) {
  const auto w =
      transitions.run_succeeded(running("parent"), *registry.find("parent"), {"7", {}}, kNow);
  EXPECT_EQ(w.update->update.output, R"({"children":[],"output":7})");
}

TEST_F(TransitionsTest, AParentsChildrenAreInsertedUnderIt) {
  const auto parent = running("parent", "te_p");
  dd::RunParentResult result{"1", {{"simple", "10", {}}, {"simple", "11", {.timeout = 5s}}}};
  const auto w = transitions.run_succeeded(parent, *registry.find("parent"), result, kNow);
  ASSERT_TRUE(w.update_with_children);
  const auto& req = *w.update_with_children;
  EXPECT_EQ(req.update.status, Status::waiting_for_children);
  EXPECT_EQ(req.update.run_output, "1");
  EXPECT_EQ(req.update.active_children_count, 2);
  ASSERT_EQ(req.children_to_insert_if_updated.size(), 2U);
  const auto& second = req.children_to_insert_if_updated[1];
  EXPECT_EQ(second.input, "11");
  EXPECT_EQ(second.timeout, 5s);  // the override wins over the task's 1 s
  EXPECT_EQ(second.parent->execution_id, "te_p");
  EXPECT_EQ(second.parent->index_in_parent_children, 1);
  EXPECT_EQ(second.root->execution_id, "te_p");
  EXPECT_EQ(second.status, Status::ready);
  ASSERT_EQ(req.update.children->size(), 2U);
  EXPECT_EQ((*req.update.children)[1].execution_id, second.execution_id);
}

TEST_F(TransitionsTest, ASequenceInsertsOnlyItsFirstStep) {
  dd::RunParentResult result{"null", {{"simple", "1", {}}, {"simple", "", {}}, {"simple", "", {}}}};
  const auto w =
      transitions.run_succeeded(running("sequence"), *registry.find("sequence"), result, kNow);
  const auto& req = *w.update_with_children;
  EXPECT_EQ(req.children_to_insert_if_updated.size(), 1U);
  EXPECT_EQ(req.update.active_children_count, 1);
  ASSERT_EQ(req.update.children->size(), 3U);
  EXPECT_EQ((*req.update.children)[1].execution_id, "dummy");
  EXPECT_EQ((*req.update.children)[2].execution_id, "dummy");
}

TEST_F(TransitionsTest, ChildrenBeyondTheLimitOrOfUnknownTasksAreRefused) {
  dd::RunParentResult too_many{"null", std::vector<de::ChildTask>(4, {"simple", "1", {}})};
  EXPECT_THROW(
      (void)transitions.run_succeeded(running("parent"), *registry.find("parent"), too_many, kNow),
      de::DurableExecutionError);
  dd::RunParentResult unknown{"null", {{"nope", "1", {}}}};
  EXPECT_THROW(
      (void)transitions.run_succeeded(running("parent"), *registry.find("parent"), unknown, kNow),
      de::DurableExecutionNotFoundError);
  dd::RunParentResult bad_override{"null", {{"simple", "1", {.timeout = 0ms}}}};
  EXPECT_THROW((void)transitions.run_succeeded(running("parent"), *registry.find("parent"),
                                               bad_override, kNow),
               de::DurableExecutionError);
}

TEST_F(TransitionsTest, AFinalizeFunctionDecidesTheOutput) {
  const auto w = transitions.run_succeeded(running("finalize_fn"), *registry.find("finalize_fn"),
                                           {"null", {}}, kNow);
  EXPECT_EQ(w.update->update.status, Status::completed);
  EXPECT_EQ(w.update->update.output, "0");
  const auto broken = transitions.run_succeeded(
      running("finalize_throws"), *registry.find("finalize_throws"), {"null", {}}, kNow);
  EXPECT_EQ(broken.update->update.status, Status::finalize_failed);
  EXPECT_EQ(broken.update->update.error->message, "finalize broke");
}

TEST_F(TransitionsTest, AFinalizeTaskBecomesTheOnlyChild) {
  const auto w = transitions.run_succeeded(running("finalize_task_parent", "te_p"),
                                           *registry.find("finalize_task_parent"), {"3", {}}, kNow);
  ASSERT_TRUE(w.update_with_children);
  EXPECT_EQ(w.update_with_children->update.status, Status::waiting_for_finalize);
  ASSERT_EQ(w.update_with_children->children_to_insert_if_updated.size(), 1U);
  const auto& fin = w.update_with_children->children_to_insert_if_updated[0];
  EXPECT_EQ(fin.task_id, "simple");
  EXPECT_TRUE(fin.parent->is_finalize_of_parent);
  EXPECT_EQ(fin.input, R"({"children":[],"output":3})");
}

// ---- the children step: T15-T17 --------------------------------------------------------------

TEST_F(TransitionsTest, AParentCompletesWithEveryChildsResultInOrder) {
  auto parent = running("parent", "te_p");
  parent.status = Status::waiting_for_children;
  parent.run_output = "1";
  parent.children =
      std::vector<de::TaskExecutionSummary>{{"simple", "te_child0"}, {"simple", "te_child1"}};
  const std::vector<de::TaskExecutionRecord> children{
      child(parent, 1, Status::failed, std::nullopt), child(parent, 0, Status::completed, "\"a\"")};
  dd::ParentWrites writes;
  transitions.plan_parent(parent, children, kNow, writes);
  ASSERT_EQ(writes.updates.size(), 1U);
  const auto& u = writes.updates[0];
  EXPECT_EQ(u.filters.status, Status::waiting_for_children);
  EXPECT_EQ(u.update.status, Status::completed);
  const auto out = nlohmann::json::parse(*u.update.output);
  EXPECT_EQ(out["output"], 1);
  ASSERT_EQ(out["children"].size(), 2U);
  EXPECT_EQ(out["children"][0]["output"], "a");
  EXPECT_EQ(out["children"][1]["status"], "failed");
  EXPECT_EQ(out["children"][1]["error"]["message"], "child broke");
  EXPECT_EQ(u.update.on_children_finished_processing_status,
            de::OnChildrenFinishedProcessingStatus::processed);
  // The output is nlohmann's own text of the same value.
  EXPECT_EQ(*u.update.output, out.dump());
}

TEST_F(TransitionsTest, DeterministicChildrenStepFailuresEndTheParent) {
  auto parent = running("parent", "te_p");
  parent.status = Status::waiting_for_children;
  parent.children =
      std::vector<de::TaskExecutionSummary>{{"simple", "te_child0"}, {"simple", "te_child1"}};
  struct Case {
    const char* name;
    std::vector<de::TaskExecutionRecord> children;
    const char* message_part;
  };
  const std::vector<Case> cases{
      {"a missing child", {child(parent, 0, Status::completed, "1")}, "not found: 1/2"},
      {"a child output that is not JSON",
       {child(parent, 0, Status::completed, "{oops"), child(parent, 1, Status::completed, "1")},
       "cannot be decoded"},
      {"results over the output limit",
       {child(parent, 0, Status::completed, '"' + std::string(600, 'x') + '"'),
        child(parent, 1, Status::completed, '"' + std::string(600, 'y') + '"')},
       "over the output limit"},
  };
  for (const auto& c : cases) {
    dd::ParentWrites writes;
    transitions.plan_parent(parent, c.children, kNow, writes);
    ASSERT_EQ(writes.updates.size(), 1U) << c.name;
    EXPECT_EQ(writes.updates[0].update.status, Status::failed) << c.name;
    EXPECT_NE(writes.updates[0].update.error->message.find(c.message_part), std::string::npos)
        << c.name << ": " << writes.updates[0].update.error->message;
    EXPECT_FALSE(writes.updates[0].update.error->is_retryable) << c.name;
  }
}

TEST_F(TransitionsTest, ASequenceLaunchesItsNextStepWithThePreviousOutput) {
  auto parent = running("sequence", "te_p");
  parent.status = Status::waiting_for_children;
  parent.children =
      std::vector<de::TaskExecutionSummary>{{"simple", "te_child0"}, {"sleeper", "dummy"}};
  dd::ParentWrites writes;
  transitions.plan_parent(parent, {child(parent, 0, Status::completed, "\"order-7\"")}, kNow,
                          writes);
  ASSERT_EQ(writes.with_children.size(), 1U);
  const auto& req = writes.with_children[0];
  ASSERT_EQ(req.children_to_insert_if_updated.size(), 1U);
  const auto& step = req.children_to_insert_if_updated[0];
  // A sleeping step takes the previous string output as its unique id.
  EXPECT_TRUE(step.is_sleeping_task);
  EXPECT_EQ(step.sleeping_task_unique_id, "order-7");
  EXPECT_EQ(step.parent->index_in_parent_children, 1);
  EXPECT_EQ((*req.update.children)[1].execution_id, step.execution_id);
  EXPECT_EQ(req.update.on_children_finished_processing_status,
            de::OnChildrenFinishedProcessingStatus::idle);

  dd::ParentWrites bad;
  transitions.plan_parent(parent, {child(parent, 0, Status::completed, "42")}, kNow, bad);
  ASSERT_EQ(bad.updates.size(), 1U);
  EXPECT_NE(bad.updates[0].update.error->message.find("must be a unique id string"),
            std::string::npos);

  dd::ParentWrites failed;
  transitions.plan_parent(parent, {child(parent, 0, Status::failed, std::nullopt)}, kNow, failed);
  ASSERT_EQ(failed.updates.size(), 1U);
  EXPECT_EQ(failed.updates[0].update.status, Status::finalize_failed);
  EXPECT_EQ(failed.updates[0].update.error->message, "Task at index 0 failed: child broke");
}

TEST_F(TransitionsTest, AnUnknownParentTaskFailsTheParent) {
  auto parent = running("parent", "te_p");
  parent.task_id = "gone";
  dd::ParentWrites writes;
  transitions.plan_parent(parent, {}, kNow, writes);
  ASSERT_EQ(writes.updates.size(), 1U);
  EXPECT_EQ(writes.updates[0].update.error->error_type, de::ErrorType::not_found);
}

// ---- the close step: T19-T21, T11 -------------------------------------------------------------

TEST_F(TransitionsTest, CloseSettlesParentsCancelsOrphansAndClosesEveryRow) {
  de::TaskExecutionRecord finalize_child;
  finalize_child.execution_id = "te_f";
  finalize_child.task_id = "simple";
  finalize_child.status = Status::completed;
  finalize_child.output = "9";
  finalize_child.parent = de::ParentTaskExecutionSummary{"parent", "te_p", 0, false, true};
  de::TaskExecutionRecord failed_parent;
  failed_parent.execution_id = "te_q";
  failed_parent.task_id = "parent";
  failed_parent.status = Status::failed;
  failed_parent.children = std::vector<de::TaskExecutionSummary>{{"simple", "te_c"}};
  const auto w = transitions.plan_close({finalize_child, failed_parent}, kNow);
  ASSERT_EQ(w.parent_updates.size(), 1U);
  EXPECT_EQ(w.parent_updates[0].execution_id, "te_p");
  EXPECT_EQ(w.parent_updates[0].update.output, "9");
  ASSERT_EQ(w.cancel_children.size(), 1U);
  EXPECT_EQ(w.cancel_children[0].parent_execution_id, "te_q");
  EXPECT_EQ(w.cancel_children[0].update.status, Status::cancelled);
  ASSERT_EQ(w.closes.size(), 2U);
  EXPECT_EQ(w.closes[1].update.close_status, de::CloseStatus::closed);
}

// ---- new executions and the application's requests -------------------------------------------

TEST_F(TransitionsTest, NewExecutionsLayOverridesOverTheTaskAndValidateThem) {
  const auto n =
      transitions.new_execution(*registry.find("retrying"), "1", {.sleep_before_run = 2s});
  EXPECT_EQ(n.sleep_before_run, 2s);
  EXPECT_EQ(n.retry_options.max_attempts, 2);
  EXPECT_THROW((void)transitions.new_execution(*registry.find("simple"), "1",
                                               {.retry = de::RetryOptions{.max_attempts = -1}}),
               de::DurableExecutionError);
  EXPECT_THROW((void)transitions.new_execution(*registry.find("simple"),
                                               '"' + std::string(2000, 'x') + '"', {}),
               de::DurableExecutionError);
  const auto sleeping = transitions.new_execution(*registry.find("sleeper"), "id-1", {});
  EXPECT_EQ(sleeping.sleeping_task_unique_id, "id-1");
  EXPECT_EQ(sleeping.input, "null");
  EXPECT_THROW((void)transitions.new_execution(*registry.find("sleeper"), "", {}),
               de::DurableExecutionError);
}

TEST_F(TransitionsTest, WakingASleepingExecutionTakesCompletedOrFailedOnly) {
  const auto done = dd::Transitions::wake_sleeping("te_s", Status::completed, "\"ok\"", kNow);
  EXPECT_EQ(done.filters.is_sleeping_task, true);
  EXPECT_EQ(done.filters.is_finished, false);
  EXPECT_EQ(done.update.output, "\"ok\"");
  const auto failed = dd::Transitions::wake_sleeping("te_s", Status::failed, "", kNow);
  EXPECT_EQ(failed.update.error->message, "Unknown error");
  EXPECT_THROW((void)dd::Transitions::wake_sleeping("te_s", Status::cancelled, "", kNow),
               de::DurableExecutionError);
}

TEST_F(TransitionsTest, ClaimsAndStepsCarryTheOptionsBatchSizesAndLeases) {
  const auto claim = transitions.claim_ready("de_x", 7, kNow);
  EXPECT_EQ(claim.limit, 7);
  EXPECT_EQ(claim.update.executor_id, "de_x");
  EXPECT_EQ(claim.update.status, Status::running);
  EXPECT_EQ(claim.start_at_less_than, kNow + 1ms);  // due this very millisecond runs now
  const auto close = transitions.claim_close(kNow);
  EXPECT_EQ(close.update.close_expires_at, kNow + options.close_step_lease + options.expire_leeway);
  const auto expiry = transitions.expire(kNow);
  EXPECT_EQ(expiry.running.max_lease_expirations, options.max_lease_expirations);
  EXPECT_EQ(expiry.running.update.status, Status::ready);
  EXPECT_EQ(expiry.running.exhausted_update.status, Status::failed);
  EXPECT_EQ(expiry.sleeping.update.status, Status::timed_out);
  const auto cancel = dd::Transitions::cancel("te_c", kNow);
  EXPECT_EQ(cancel.update.status, Status::cancelled);
  EXPECT_EQ(cancel.update.needs_promise_cancellation, true);
}

}  // namespace
