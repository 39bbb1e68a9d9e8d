// Storage conformance, part 1: the fixture, inserts, lookups, by-id updates, update-and-insert,
// by-parent methods, deletes, copy semantics and bad input (SPEC.md §4.1, §4.3 Part B).

#include "durable_execution/testing/storage_conformance.hpp"

#include <algorithm>
#include <atomic>
#include <stdexcept>

#include "durable_execution/errors.hpp"
#include "storage_conformance_parts.hpp"

using durable_execution::CloseStatus;
using durable_execution::DeleteByIdRequest;
using durable_execution::DurableExecutionError;
using durable_execution::ErrorType;
using durable_execution::GetByIdFilters;
using durable_execution::GetByIdRequest;
using durable_execution::GetByParentExecutionIdRequest;
using durable_execution::GetBySleepingTaskUniqueIdRequest;
using durable_execution::NewTaskExecution;
using durable_execution::OnChildrenFinishedProcessingStatus;
using durable_execution::ParentTaskExecutionSummary;
using durable_execution::StoredError;
using durable_execution::TaskExecutionStatus;
using durable_execution::TaskExecutionSummary;
using durable_execution::UpdateByIdAndInsertChildrenRequest;
using durable_execution::UpdateByIdRequest;
using durable_execution::UpdateByParentExecutionIdAndIsFinishedRequest;
using durable_execution::testing::new_task_id;
using durable_execution::testing::StorageConformance;
using std::chrono::milliseconds;

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StorageConformance);

// ---- fixture --------------------------------------------------------------------------------

namespace durable_execution::testing {

namespace detail {

int link_storage_conformance_suite() noexcept {
  return storage_conformance_claims_part() + storage_conformance_concurrency_part();
}

}  // namespace detail

std::string new_task_id() {
  static std::atomic<std::uint64_t> counter{0};
  return "task_" + generate_execution_id().substr(3) + "_" + std::to_string(counter.fetch_add(1));
}

void StorageConformance::SetUp() {
  DE_SKIP_IF_STORAGE_UNAVAILABLE(GetParam());
  storage_ = GetParam().make();
  ASSERT_NE(storage_, nullptr);
  now_ = durable_execution::now_timestamp();
}

void StorageConformance::TearDown() {
  if (storage_) storage_->delete_all();
  storage_.reset();
}

StorageConformance::Record StorageConformance::new_record() const {
  NewTaskExecution v;
  v.task_id = new_task_id();
  v.execution_id = durable_execution::generate_execution_id();
  v.timeout = milliseconds{1000};
  v.input = "input";
  return durable_execution::make_task_execution_record(now_, std::move(v));
}

StorageConformance::Record StorageConformance::new_sleeping_record(
    const std::string& unique_id) const {
  NewTaskExecution v;
  v.task_id = new_task_id();
  v.execution_id = durable_execution::generate_execution_id();
  v.is_sleeping_task = true;
  v.sleeping_task_unique_id = unique_id;
  v.timeout = milliseconds{1000};
  v.input = "undefined";
  return durable_execution::make_task_execution_record(now_, std::move(v));
}

StorageConformance::Record StorageConformance::new_child_record(const Record& parent,
                                                                std::int32_t index,
                                                                bool is_finalize) const {
  auto r = new_record();
  r.root = TaskExecutionSummary{parent.task_id, parent.execution_id};
  r.parent =
      ParentTaskExecutionSummary{parent.task_id, parent.execution_id, index, false, is_finalize};
  return r;
}

StorageConformance::Record StorageConformance::fully_populated_record() const {
  Record r;
  r.root = TaskExecutionSummary{new_task_id(), durable_execution::generate_execution_id()};
  r.parent = ParentTaskExecutionSummary{new_task_id(), durable_execution::generate_execution_id(),
                                        2, true, true};
  r.task_id = new_task_id();
  r.execution_id = durable_execution::generate_execution_id();
  r.is_sleeping_task = true;
  r.sleeping_task_unique_id = "unique_" + r.execution_id;
  r.retry_options = {.max_attempts = 3,
                     .base_delay = milliseconds{100},
                     .delay_multiplier = 1.5,
                     .max_delay = milliseconds{5000}};
  r.sleep_before_run = milliseconds{250};
  r.timeout = milliseconds{4000};
  r.are_children_sequential = true;
  r.input = "{\"text\":\"quoted \\\" and \xC3\xBC\xC3\xB1\xC3\xAF\"}";
  r.executor_id = "de_executor";
  r.status = TaskExecutionStatus::finalize_failed;
  r.is_finished = true;
  r.run_output = "run_output";
  r.output = "output";
  r.error = StoredError{ErrorType::timed_out, true, true, "error message"};
  r.retry_attempts = 2;
  r.start_at = now_ - milliseconds{1000};
  r.started_at = now_ - milliseconds{900};
  r.expires_at = now_ + milliseconds{5000};
  r.finished_at = now_ - milliseconds{100};
  r.children = std::vector<TaskExecutionSummary>{
      {new_task_id(), durable_execution::generate_execution_id()},
      {new_task_id(), "dummy"},
  };
  r.active_children_count = -1;  // may go negative (SPEC.md §3.11)
  r.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::processed;
  r.on_children_finished_processing_expires_at = now_ + milliseconds{120'000};
  r.on_children_finished_processing_finished_at = now_ - milliseconds{200};
  r.finalize = TaskExecutionSummary{new_task_id(), durable_execution::generate_execution_id()};
  r.close_status = CloseStatus::closing;
  r.close_expires_at = now_ + milliseconds{130'000};
  r.closed_at = now_ - milliseconds{10};
  r.needs_promise_cancellation = true;
  r.created_at = now_ - milliseconds{2000};
  r.updated_at = now_ - milliseconds{50};
  r.lease_expirations = 2;
  return r;
}

std::optional<StorageConformance::Record> StorageConformance::find(
    const std::string& execution_id) {
  auto found = storage().get_many_by_id({GetByIdRequest{execution_id, {}}});
  if (found.size() != 1) {
    throw std::runtime_error("get_many_by_id returned " + std::to_string(found.size()) +
                             " results for 1 request");
  }
  return std::move(found.front());
}

StorageConformance::Record StorageConformance::fetch(const std::string& execution_id) {
  auto r = find(execution_id);
  if (!r) throw std::runtime_error("execution " + execution_id + " is not stored");
  return std::move(*r);
}

std::vector<StorageConformance::Record> StorageConformance::fetch_all(
    const std::vector<std::string>& ids) {
  std::vector<Record> out;
  out.reserve(ids.size());
  for (const auto& id : ids) out.push_back(fetch(id));
  return out;
}

StorageConformance::Update StorageConformance::normalized(Timestamp now, Update update) {
  return durable_execution::normalize_update(now, std::move(update));
}

}  // namespace durable_execution::testing

// ---- shared data ----------------------------------------------------------------------------

namespace {

using durable_execution::TaskExecutionRecord;
using durable_execution::TaskExecutionUpdate;

// The filter sets of SPEC.md §4.3 for a completed, non-sleeping row.
std::vector<GetByIdFilters> completed_row_matching_filters() {
  const auto completed = TaskExecutionStatus::completed;
  return {
      {},
      {.status = completed},
      {.status = completed, .is_finished = true},
      {.is_finished = true},
      {.is_sleeping_task = false},
      {.is_sleeping_task = false, .status = completed},
      {.is_sleeping_task = false, .status = completed, .is_finished = true},
      {.is_sleeping_task = false, .is_finished = true},
  };
}

std::vector<GetByIdFilters> completed_row_non_matching_filters() {
  const auto completed = TaskExecutionStatus::completed;
  return {
      {.status = TaskExecutionStatus::ready},
      {.status = completed, .is_finished = false},
      {.is_finished = false},
      {.is_sleeping_task = true},
      {.is_sleeping_task = true, .status = completed},
      {.is_sleeping_task = true, .status = completed, .is_finished = true},
      {.is_sleeping_task = true, .is_finished = true},
  };
}

// The filter sets of SPEC.md §4.3 for a fresh ready, non-sleeping row.
std::vector<GetByIdFilters> ready_row_matching_filters() {
  const auto ready = TaskExecutionStatus::ready;
  return {
      {},
      {.status = ready},
      {.status = ready, .is_finished = false},
      {.is_finished = false},
      {.is_sleeping_task = false},
      {.is_sleeping_task = false, .status = ready},
      {.is_sleeping_task = false, .status = ready, .is_finished = false},
      {.is_sleeping_task = false, .is_finished = false},
  };
}

std::vector<GetByIdFilters> ready_row_non_matching_filters() {
  const auto ready = TaskExecutionStatus::ready;
  return {
      {.status = TaskExecutionStatus::running},
      {.status = TaskExecutionStatus::completed},
      {.is_finished = true},
      {.is_sleeping_task = true},
      {.is_sleeping_task = true, .status = ready},
      {.is_sleeping_task = true, .status = ready, .is_finished = false},
      {.is_sleeping_task = true, .is_finished = false},
  };
}

std::string describe(const GetByIdFilters& f) {
  nlohmann::json j = f;
  return j.dump();
}

std::vector<std::string> sorted_ids(const std::vector<TaskExecutionRecord>& records) {
  std::vector<std::string> ids;
  ids.reserve(records.size());
  for (const auto& r : records) ids.push_back(r.execution_id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

TaskExecutionSummary summary_of(const TaskExecutionRecord& r) {
  return {r.task_id, r.execution_id};
}

}  // namespace

// ---- insert ---------------------------------------------------------------------------------

TEST_P(StorageConformance, InsertRoundTripsEveryField) {
  const auto full = fully_populated_record();
  auto plain = new_record();
  plain.root = TaskExecutionSummary{new_task_id(), durable_execution::generate_execution_id()};
  plain.parent = ParentTaskExecutionSummary{
      new_task_id(), durable_execution::generate_execution_id(), 0, false, false};
  insert({full, plain});
  EXPECT_EQ(fetch(full.execution_id), full);
  EXPECT_EQ(fetch(plain.execution_id), plain);
}

TEST_P(StorageConformance, InsertKeepsZeroAndEmptyOptionalsSet) {
  // A set-but-zero optional (time 0, empty string, empty children list) is not "unset": the
  // public view distinguishes `children: []` from no children, and SQL stores must test NULL,
  // not truthiness (SPEC.md §9.2 quirk).
  auto r = new_record();
  r.executor_id = "";
  r.run_output = "";
  r.output = "";
  r.error = StoredError{ErrorType::generic, false, false, ""};
  r.retry_options = {.max_attempts = 0,
                     .base_delay = milliseconds{0},
                     .delay_multiplier = 0.0,
                     .max_delay = milliseconds{0}};
  r.started_at = durable_execution::from_unix_ms(0);
  r.expires_at = durable_execution::from_unix_ms(0);
  r.finished_at = durable_execution::from_unix_ms(0);
  r.children = std::vector<TaskExecutionSummary>{};
  r.on_children_finished_processing_expires_at = durable_execution::from_unix_ms(0);
  r.on_children_finished_processing_finished_at = durable_execution::from_unix_ms(0);
  r.close_expires_at = durable_execution::from_unix_ms(0);
  r.closed_at = durable_execution::from_unix_ms(0);
  r.parent = ParentTaskExecutionSummary{new_task_id(), durable_execution::generate_execution_id(),
                                        0, false, false};
  insert({r});
  EXPECT_EQ(fetch(r.execution_id), r);
}

TEST_P(StorageConformance, FreshRowHasNoOptionalFieldSet) {
  const auto r = new_record();
  insert({r});
  const auto got = fetch(r.execution_id);
  EXPECT_EQ(got, r);
  EXPECT_FALSE(got.root.has_value());
  EXPECT_FALSE(got.parent.has_value());
  EXPECT_FALSE(got.sleeping_task_unique_id.has_value());
  EXPECT_FALSE(got.executor_id.has_value());
  EXPECT_FALSE(got.run_output.has_value());
  EXPECT_FALSE(got.output.has_value());
  EXPECT_FALSE(got.error.has_value());
  EXPECT_FALSE(got.started_at.has_value());
  EXPECT_FALSE(got.expires_at.has_value());
  EXPECT_FALSE(got.finished_at.has_value());
  EXPECT_FALSE(got.children.has_value());
  EXPECT_FALSE(got.on_children_finished_processing_expires_at.has_value());
  EXPECT_FALSE(got.on_children_finished_processing_finished_at.has_value());
  EXPECT_FALSE(got.finalize.has_value());
  EXPECT_FALSE(got.close_expires_at.has_value());
  EXPECT_FALSE(got.closed_at.has_value());
  EXPECT_EQ(got.status, TaskExecutionStatus::ready);
  EXPECT_FALSE(got.is_finished);
  EXPECT_EQ(got.retry_attempts, 0);
  EXPECT_EQ(got.active_children_count, 0);
  EXPECT_EQ(got.on_children_finished_processing_status, OnChildrenFinishedProcessingStatus::idle);
  EXPECT_EQ(got.close_status, CloseStatus::idle);
  EXPECT_FALSE(got.needs_promise_cancellation);
  EXPECT_EQ(got.created_at, now_);
  EXPECT_EQ(got.updated_at, now_);
  EXPECT_EQ(got.start_at, now_);
}

TEST_P(StorageConformance, FreshSleepingRowIsRunningWithExpiryAndUniqueId) {
  const auto r = new_sleeping_record("sleep_" + durable_execution::generate_execution_id());
  insert({r});
  const auto got = fetch(r.execution_id);
  EXPECT_EQ(got, r);
  EXPECT_EQ(got.status, TaskExecutionStatus::running);
  EXPECT_TRUE(got.is_sleeping_task);
  EXPECT_EQ(got.sleeping_task_unique_id, r.sleeping_task_unique_id);
  ASSERT_TRUE(got.expires_at.has_value());
  EXPECT_EQ(*got.expires_at, now_ + milliseconds{1000});
  EXPECT_FALSE(got.started_at.has_value());
}

TEST_P(StorageConformance, ManyRowsWithoutUniqueIdCoexist) {
  // Non-sleeping rows have no unique id; "nulls may repeat" in the unique index.
  std::vector<TaskExecutionRecord> rows;
  for (int i = 0; i < 5; ++i) rows.push_back(new_record());
  insert(rows);
  for (const auto& r : rows) EXPECT_EQ(fetch(r.execution_id), r);
}

TEST_P(StorageConformance, DuplicateExecutionIdIsRejectedAndNothingOfTheCallIsInserted) {
  const auto existing = new_record();
  insert({existing});

  auto fresh = new_record();
  auto duplicate = new_record();
  duplicate.execution_id = existing.execution_id;
  duplicate.task_id = "other_task";
  EXPECT_THROW(insert({fresh, duplicate}), DurableExecutionError);
  EXPECT_FALSE(find(fresh.execution_id).has_value());
  EXPECT_EQ(fetch(existing.execution_id), existing);

  // The duplicate first, the fresh row after it: still nothing of the call.
  EXPECT_THROW(insert({duplicate, fresh}), DurableExecutionError);
  EXPECT_FALSE(find(fresh.execution_id).has_value());
  EXPECT_EQ(fetch(existing.execution_id), existing);

  // The store is still usable after the rejected calls.
  insert({fresh});
  EXPECT_EQ(fetch(fresh.execution_id), fresh);
}

TEST_P(StorageConformance, DuplicateExecutionIdWithinOneCallIsRejected) {
  const auto a = new_record();
  auto b = new_record();
  b.execution_id = a.execution_id;
  EXPECT_THROW(insert({a, b}), DurableExecutionError);
  EXPECT_FALSE(find(a.execution_id).has_value());
}

TEST_P(StorageConformance, DuplicateSleepingTaskUniqueIdIsRejectedAndNothingIsInserted) {
  const auto unique_id = "unique_" + durable_execution::generate_execution_id();
  const auto existing = new_sleeping_record(unique_id);
  insert({existing});

  const auto fresh = new_record();
  const auto duplicate = new_sleeping_record(unique_id);
  EXPECT_THROW(insert({fresh, duplicate}), DurableExecutionError);
  EXPECT_FALSE(find(fresh.execution_id).has_value());
  EXPECT_FALSE(find(duplicate.execution_id).has_value());
  EXPECT_EQ(fetch(existing.execution_id), existing);
  auto by_unique = storage().get_many_by_sleeping_task_unique_id({{unique_id}});
  ASSERT_EQ(by_unique.size(), 1U);
  ASSERT_TRUE(by_unique[0].has_value());
  EXPECT_EQ(by_unique[0]->execution_id, existing.execution_id);

  // Two new rows sharing a unique id in one call are rejected too.
  const auto other_id = "unique_" + durable_execution::generate_execution_id();
  const auto a = new_sleeping_record(other_id);
  const auto b = new_sleeping_record(other_id);
  EXPECT_THROW(insert({a, b}), DurableExecutionError);
  EXPECT_FALSE(find(a.execution_id).has_value());
  EXPECT_FALSE(find(b.execution_id).has_value());
}

TEST_P(StorageConformance, InsertedInputIsCopied) {
  std::vector<TaskExecutionRecord> rows{new_record()};
  const auto original = rows[0];
  insert(rows);
  rows[0].status = TaskExecutionStatus::failed;
  rows[0].input = "mutated";
  EXPECT_EQ(fetch(original.execution_id), original);
}

// ---- get by id / unique id ------------------------------------------------------------------

TEST_P(StorageConformance, GetByIdAppliesFilters) {
  const auto ready = new_record();
  auto completed = new_record();
  completed.status = TaskExecutionStatus::completed;
  completed.is_finished = true;
  completed.output = "output";
  completed.retry_attempts = 1;
  completed.finished_at = now_;
  completed.children = std::vector<TaskExecutionSummary>{{new_task_id(), "te_child"}};
  completed.close_status = CloseStatus::closing;
  completed.close_expires_at = now_;
  insert({ready, completed});

  EXPECT_EQ(fetch(ready.execution_id), ready);
  for (const auto& f : completed_row_matching_filters()) {
    auto got = storage().get_many_by_id({{completed.execution_id, f}});
    ASSERT_EQ(got.size(), 1U);
    ASSERT_TRUE(got[0].has_value()) << describe(f);
    EXPECT_EQ(*got[0], completed) << describe(f);
  }
  for (const auto& f : completed_row_non_matching_filters()) {
    auto got = storage().get_many_by_id({{completed.execution_id, f}});
    ASSERT_EQ(got.size(), 1U);
    EXPECT_FALSE(got[0].has_value()) << describe(f);
  }
}

TEST_P(StorageConformance, GetByIdUnknownIdIsNulloptAndResultsFollowRequestOrder) {
  const auto a = new_record();
  const auto b = new_record();
  const auto c = new_record();
  insert({a, b, c});

  auto unknown = storage().get_many_by_id({{"te_unknown", {}}});
  ASSERT_EQ(unknown.size(), 1U);
  EXPECT_FALSE(unknown[0].has_value());

  auto got = storage().get_many_by_id({{c.execution_id, {}},
                                       {"te_unknown", {}},
                                       {a.execution_id, {}},
                                       {b.execution_id, {.status = TaskExecutionStatus::running}},
                                       {b.execution_id, {}},
                                       {a.execution_id, {}}});
  ASSERT_EQ(got.size(), 6U);
  ASSERT_TRUE(got[0] && got[2] && got[4] && got[5]);
  EXPECT_EQ(got[0]->execution_id, c.execution_id);
  EXPECT_FALSE(got[1].has_value());
  EXPECT_EQ(got[2]->execution_id, a.execution_id);
  EXPECT_FALSE(got[3].has_value());
  EXPECT_EQ(got[4]->execution_id, b.execution_id);
  EXPECT_EQ(got[5]->execution_id, a.execution_id);

  EXPECT_TRUE(storage().get_many_by_id({}).empty());
}

TEST_P(StorageConformance, GetBySleepingTaskUniqueId) {
  const auto id1 = "unique1_" + durable_execution::generate_execution_id();
  const auto id2 = "unique2_" + durable_execution::generate_execution_id();
  const auto s1 = new_sleeping_record(id1);
  const auto s2 = new_sleeping_record(id2);
  const auto plain = new_record();
  insert({s1, s2, plain});

  auto one = storage().get_many_by_sleeping_task_unique_id({{id1}});
  ASSERT_EQ(one.size(), 1U);
  ASSERT_TRUE(one[0].has_value());
  EXPECT_EQ(*one[0], s1);

  auto unknown = storage().get_many_by_sleeping_task_unique_id({{"unknown_unique_id"}});
  ASSERT_EQ(unknown.size(), 1U);
  EXPECT_FALSE(unknown[0].has_value());

  auto ordered = storage().get_many_by_sleeping_task_unique_id({{id2}, {"missing"}, {id1}});
  ASSERT_EQ(ordered.size(), 3U);
  ASSERT_TRUE(ordered[0] && ordered[2]);
  EXPECT_EQ(ordered[0]->execution_id, s2.execution_id);
  EXPECT_FALSE(ordered[1].has_value());
  EXPECT_EQ(ordered[2]->execution_id, s1.execution_id);

  EXPECT_TRUE(storage().get_many_by_sleeping_task_unique_id({}).empty());
}

// ---- update by id ---------------------------------------------------------------------------

TEST_P(StorageConformance, UpdateByIdSetsEveryFieldForEveryMatchingFilter) {
  for (const auto& f : ready_row_matching_filters()) {
    SCOPED_TRACE(describe(f));
    const auto row = new_record();
    const auto other = new_record();
    insert({row, other});

    // A raw update (not normalized) so that every settable field is set at once.
    const auto t = now_ + milliseconds{10};
    TaskExecutionUpdate u;
    u.executor_id = "executor_id";
    u.status = TaskExecutionStatus::running;
    u.run_output = "run_output";
    u.output = "output";
    u.error = StoredError{ErrorType::cancelled, false, true, "error_message"};
    u.retry_attempts = 1;
    u.start_at = t + milliseconds{1};
    u.started_at = t + milliseconds{2};
    u.expires_at = t + milliseconds{3};
    u.children = std::vector<TaskExecutionSummary>{{"child_task", "te_child"}};
    u.active_children_count = 1;
    u.on_children_finished_processing_status = OnChildrenFinishedProcessingStatus::processing;
    u.on_children_finished_processing_expires_at = t + milliseconds{4};
    u.on_children_finished_processing_finished_at = t + milliseconds{5};
    u.finalize = TaskExecutionSummary{"finalize_task", "te_finalize"};
    u.close_status = CloseStatus::closing;
    u.close_expires_at = t + milliseconds{6};
    u.closed_at = t + milliseconds{7};
    u.needs_promise_cancellation = true;
    u.is_finished = true;
    u.finished_at = t + milliseconds{8};
    u.updated_at = t;
    u.increment_lease_expirations = true;
    storage().update_many_by_id({{row.execution_id, f, u}});

    auto expected = row;
    expected.executor_id = "executor_id";
    expected.status = TaskExecutionStatus::running;
    expected.run_output = "run_output";
    expected.output = "output";
    expected.error = StoredError{ErrorType::cancelled, false, true, "error_message"};
    expected.retry_attempts = 1;
    expected.start_at = t + milliseconds{1};
    expected.started_at = t + milliseconds{2};
    expected.expires_at = t + milliseconds{3};
    expected.children = std::vector<TaskExecutionSummary>{{"child_task", "te_child"}};
    expected.active_children_count = 1;
    expected.on_children_finished_processing_status =
        OnChildrenFinishedProcessingStatus::processing;
    expected.on_children_finished_processing_expires_at = t + milliseconds{4};
    expected.on_children_finished_processing_finished_at = t + milliseconds{5};
    expected.finalize = TaskExecutionSummary{"finalize_task", "te_finalize"};
    expected.close_status = CloseStatus::closing;
    expected.close_expires_at = t + milliseconds{6};
    expected.closed_at = t + milliseconds{7};
    expected.needs_promise_cancellation = true;
    expected.is_finished = true;
    expected.finished_at = t + milliseconds{8};
    expected.updated_at = t;
    expected.lease_expirations = row.lease_expirations + 1;
    EXPECT_EQ(fetch(row.execution_id), expected);
    EXPECT_EQ(fetch(other.execution_id), other);  // only the addressed row changes

    // All six unset directives, each together with a set value of the same field: unset wins.
    const auto t2 = t + milliseconds{100};
    TaskExecutionUpdate unset;
    unset.executor_id = "ignored";
    unset.run_output = "ignored";
    unset.error = StoredError{ErrorType::generic, true, false, "ignored"};
    unset.expires_at = t2;
    unset.on_children_finished_processing_expires_at = t2;
    unset.close_expires_at = t2;
    unset.unset_executor_id = true;
    unset.unset_run_output = true;
    unset.unset_error = true;
    unset.unset_expires_at = true;
    unset.unset_on_children_finished_processing_expires_at = true;
    unset.unset_close_expires_at = true;
    unset.needs_promise_cancellation = false;
    unset.updated_at = t2;
    storage().update_many_by_id({{row.execution_id, {}, unset}});

    expected.executor_id.reset();
    expected.run_output.reset();
    expected.error.reset();
    expected.expires_at.reset();
    expected.on_children_finished_processing_expires_at.reset();
    expected.close_expires_at.reset();
    expected.needs_promise_cancellation = false;
    expected.updated_at = t2;
    EXPECT_EQ(fetch(row.execution_id), expected);

    // Two rows in one call.
    const auto a = new_record();
    const auto b = new_record();
    insert({a, b});
    const auto t3 = t2 + milliseconds{100};
    const auto cancel = normalized(
        t3, {.status = TaskExecutionStatus::cancelled,
             .error = StoredError{ErrorType::cancelled, false, false, "Task execution cancelled"},
             .needs_promise_cancellation = true});
    storage().update_many_by_id({{a.execution_id, f, cancel}, {b.execution_id, f, cancel}});
    for (const auto& r : fetch_all({a.execution_id, b.execution_id})) {
      EXPECT_EQ(r.status, TaskExecutionStatus::cancelled);
      EXPECT_TRUE(r.is_finished);
      EXPECT_EQ(r.finished_at, t3);
      EXPECT_EQ(r.updated_at, t3);
      EXPECT_TRUE(r.needs_promise_cancellation);
      ASSERT_TRUE(r.error.has_value());
      EXPECT_EQ(r.error->error_type, ErrorType::cancelled);
    }
    storage().delete_all();
  }
}

TEST_P(StorageConformance, UpdateByIdWithNonMatchingFilterChangesNothing) {
  for (const auto& f : ready_row_non_matching_filters()) {
    SCOPED_TRACE(describe(f));
    const auto row = new_record();
    insert({row});
    storage().update_many_by_id(
        {{row.execution_id, f,
          normalized(now_ + milliseconds{5},
                     {.executor_id = "executor", .status = TaskExecutionStatus::running})}});
    EXPECT_EQ(fetch(row.execution_id), row);
  }
}

TEST_P(StorageConformance, UpdateByIdAppliesEachRequestsOwnGuard) {
  const auto a = new_record();
  const auto b = new_record();
  insert({a, b});
  const auto t = now_ + milliseconds{5};
  const auto run =
      normalized(t, {.executor_id = "executor", .status = TaskExecutionStatus::running});
  storage().update_many_by_id({{a.execution_id, {.status = TaskExecutionStatus::running}, run},
                               {b.execution_id, {.status = TaskExecutionStatus::ready}, run}});
  EXPECT_EQ(fetch(a.execution_id), a);
  const auto got_b = fetch(b.execution_id);
  EXPECT_EQ(got_b.status, TaskExecutionStatus::running);
  EXPECT_EQ(got_b.executor_id, "executor");
  EXPECT_EQ(got_b.updated_at, t);
}

TEST_P(StorageConformance, NormalizedCompletionClearsRunFields) {
  // The engine's T4 write: running → completed clears the lease, the executor and run output.
  auto row = new_record();
  row.status = TaskExecutionStatus::running;
  row.executor_id = "executor";
  row.started_at = now_;
  row.expires_at = now_ + milliseconds{1000};
  row.run_output = "stale";
  row.error = StoredError{ErrorType::generic, true, false, "previous attempt"};
  insert({row});

  const auto t = now_ + milliseconds{20};
  storage().update_many_by_id({{row.execution_id,
                                {.status = TaskExecutionStatus::running},
                                normalized(t, {.status = TaskExecutionStatus::completed,
                                               .output = "result",
                                               .children = std::vector<TaskExecutionSummary>{}})}});
  const auto got = fetch(row.execution_id);
  EXPECT_EQ(got.status, TaskExecutionStatus::completed);
  EXPECT_TRUE(got.is_finished);
  EXPECT_EQ(got.finished_at, t);
  EXPECT_EQ(got.output, "result");
  EXPECT_FALSE(got.executor_id.has_value());
  EXPECT_FALSE(got.expires_at.has_value());
  EXPECT_FALSE(got.run_output.has_value());
  EXPECT_FALSE(got.error.has_value());
  ASSERT_TRUE(got.children.has_value());
  EXPECT_TRUE(got.children->empty());
  EXPECT_EQ(got.started_at, now_);  // kept
  EXPECT_EQ(got.updated_at, t);
}

TEST_P(StorageConformance, UpdateOfUnknownIdIsANoOp) {
  const auto row = new_record();
  insert({row});
  const auto t = now_ + milliseconds{5};
  EXPECT_NO_THROW(storage().update_many_by_id(
      {{"te_unknown", {}, normalized(t, {.status = TaskExecutionStatus::running})}}));
  const auto child = new_child_record(row, 0);
  EXPECT_NO_THROW(storage().update_many_by_id_and_insert_children_if_updated(
      {{"te_unknown",
        {},
        normalized(t, {.status = TaskExecutionStatus::waiting_for_children}),
        {child}}}));
  EXPECT_FALSE(find(child.execution_id).has_value());
  EXPECT_FALSE(find("te_unknown").has_value());
  EXPECT_EQ(fetch(row.execution_id), row);
  EXPECT_NO_THROW(storage().update_many_by_parent_execution_id_and_is_finished(
      {{"te_unknown", false, normalized(t, {.close_status = CloseStatus::ready})}}));
  EXPECT_NO_THROW(storage().update_many_by_id({}));
  EXPECT_EQ(fetch(row.execution_id), row);
}

TEST_P(StorageConformance, UpdateViolatingTheNormalizerThrowsAndLeavesTheStoreUnchanged) {
  const auto row = new_record();
  insert({row});
  const auto t = now_ + milliseconds{5};
  EXPECT_THROW(storage().update_many_by_id(
                   {{row.execution_id,
                     {},
                     normalized(t, {.status = TaskExecutionStatus::completed,
                                    .run_output = "run output of a finished run"})}}),
               DurableExecutionError);
  EXPECT_THROW(storage().update_many_by_id(
                   {{row.execution_id,
                     {},
                     normalized(t, {.status = TaskExecutionStatus::failed, .output = "x"})}}),
               DurableExecutionError);
  EXPECT_EQ(fetch(row.execution_id), row);
}

// ---- update by id and insert children -------------------------------------------------------

TEST_P(StorageConformance, UpdateAndInsertChildrenWithMatchingFilter) {
  for (const auto& f : ready_row_matching_filters()) {
    SCOPED_TRACE(describe(f));
    const auto parent = new_record();
    insert({parent});
    const std::vector<TaskExecutionRecord> children{new_child_record(parent, 0),
                                                    new_child_record(parent, 1)};
    const auto t = now_ + milliseconds{5};
    const std::vector<TaskExecutionSummary> summaries{summary_of(children[0]),
                                                      summary_of(children[1])};
    storage().update_many_by_id_and_insert_children_if_updated(
        {{parent.execution_id, f,
          normalized(t, {.status = TaskExecutionStatus::waiting_for_children,
                         .run_output = "run_output",
                         .children = summaries,
                         .active_children_count = 2}),
          children}});

    const auto got = fetch(parent.execution_id);
    EXPECT_EQ(got.status, TaskExecutionStatus::waiting_for_children);
    EXPECT_EQ(got.children, summaries);
    EXPECT_EQ(got.active_children_count, 2);
    EXPECT_EQ(got.run_output, "run_output");
    EXPECT_EQ(got.updated_at, t);
    for (const auto& child : children) EXPECT_EQ(fetch(child.execution_id), child);
  }
}

TEST_P(StorageConformance, UpdateAndInsertChildrenWithNonMatchingFilterChangesAndInsertsNothing) {
  for (const auto& f : ready_row_non_matching_filters()) {
    SCOPED_TRACE(describe(f));
    const auto parent = new_record();
    insert({parent});
    const auto child = new_child_record(parent, 0);
    storage().update_many_by_id_and_insert_children_if_updated(
        {{parent.execution_id,
          f,
          normalized(now_ + milliseconds{5},
                     {.status = TaskExecutionStatus::waiting_for_children,
                      .children = std::vector<TaskExecutionSummary>{summary_of(child)},
                      .active_children_count = 1}),
          {child}}});
    EXPECT_EQ(fetch(parent.execution_id), parent);
    EXPECT_FALSE(find(child.execution_id).has_value());
    EXPECT_TRUE(storage().get_many_by_parent_execution_id({{parent.execution_id}}).at(0).empty());
  }
}

TEST_P(StorageConformance, UpdateAndInsertChildrenIsAtomicPerRequest) {
  const auto p1 = new_record();
  const auto p2 = new_record();
  const auto p3 = new_record();
  insert({p1, p2, p3});
  const auto c1 = new_child_record(p1, 0);
  const auto c2 = new_child_record(p2, 0);
  const auto c3 = new_child_record(p3, 0);
  const auto t = now_ + milliseconds{5};
  const auto wait = normalized(
      t, {.status = TaskExecutionStatus::waiting_for_children, .active_children_count = 1});
  storage().update_many_by_id_and_insert_children_if_updated(
      {{p1.execution_id, {.status = TaskExecutionStatus::ready}, wait, {c1}},
       {p2.execution_id, {.status = TaskExecutionStatus::running}, wait, {c2}},
       {p3.execution_id, {}, wait, {}}});
  EXPECT_EQ(fetch(p1.execution_id).status, TaskExecutionStatus::waiting_for_children);
  EXPECT_EQ(fetch(c1.execution_id), c1);
  EXPECT_EQ(fetch(p2.execution_id), p2);
  EXPECT_FALSE(find(c2.execution_id).has_value());
  // No children to insert: a plain guarded update.
  EXPECT_EQ(fetch(p3.execution_id).status, TaskExecutionStatus::waiting_for_children);
  EXPECT_FALSE(find(c3.execution_id).has_value());
}

TEST_P(StorageConformance, UpdateAndInsertChildrenRollsBackTheUpdateWhenTheInsertFails) {
  // The update and the children insert are one transaction: a duplicate child id must not leave
  // the parent transitioned without its children (the engine would never insert them).
  const auto parent = new_record();
  const auto existing = new_record();
  insert({parent, existing});
  const auto fresh_child = new_child_record(parent, 0);
  auto duplicate_child = new_child_record(parent, 1);
  duplicate_child.execution_id = existing.execution_id;
  EXPECT_THROW(
      storage().update_many_by_id_and_insert_children_if_updated(
          {{parent.execution_id,
            {},
            normalized(now_ + milliseconds{5}, {.status = TaskExecutionStatus::waiting_for_children,
                                                .active_children_count = 2}),
            {fresh_child, duplicate_child}}}),
      DurableExecutionError);
  EXPECT_EQ(fetch(parent.execution_id), parent);
  EXPECT_EQ(fetch(existing.execution_id), existing);
  EXPECT_FALSE(find(fresh_child.execution_id).has_value());
}

// ---- by parent ------------------------------------------------------------------------------

TEST_P(StorageConformance, GetByParentReturnsAllChildrenIncludingTheFinalizeChild) {
  const auto parent1 = new_record();
  const auto parent2 = new_record();
  const std::vector<TaskExecutionRecord> children1{new_child_record(parent1, 0),
                                                   new_child_record(parent1, 1),
                                                   new_child_record(parent1, 0, true)};
  const auto child2 = new_child_record(parent2, 0);
  const auto childless = new_record();
  const auto grandchild = new_child_record(children1[0], 0);
  insert(
      {parent1, parent2, children1[0], children1[1], children1[2], child2, childless, grandchild});

  auto found = storage().get_many_by_parent_execution_id({{parent1.execution_id}});
  ASSERT_EQ(found.size(), 1U);
  EXPECT_EQ(sorted_ids(found[0]), sorted_ids(children1));
  for (const auto& child : found[0]) {
    const auto expected = std::find_if(children1.begin(), children1.end(), [&](const auto& c) {
      return c.execution_id == child.execution_id;
    });
    ASSERT_NE(expected, children1.end());
    EXPECT_EQ(child, *expected);
  }

  auto none = storage().get_many_by_parent_execution_id(
      {{"te_unknown"}, {childless.execution_id}, {child2.execution_id}});
  ASSERT_EQ(none.size(), 3U);
  EXPECT_TRUE(none[0].empty());
  EXPECT_TRUE(none[1].empty());
  EXPECT_TRUE(none[2].empty());

  auto both = storage().get_many_by_parent_execution_id(
      {{parent2.execution_id}, {parent1.execution_id}, {children1[0].execution_id}});
  ASSERT_EQ(both.size(), 3U);
  ASSERT_EQ(both[0].size(), 1U);
  EXPECT_EQ(both[0][0], child2);
  EXPECT_EQ(both[1].size(), 3U);
  ASSERT_EQ(both[2].size(), 1U);
  EXPECT_EQ(both[2][0], grandchild);

  EXPECT_TRUE(storage().get_many_by_parent_execution_id({}).empty());
}

TEST_P(StorageConformance, UpdateByParentAndIsFinished) {
  const auto parent = new_record();
  auto ready_child = new_child_record(parent, 0);
  auto completed_child = new_child_record(parent, 1);
  completed_child.status = TaskExecutionStatus::completed;
  completed_child.is_finished = true;
  completed_child.output = "done";
  completed_child.finished_at = now_ - milliseconds{10};
  auto running_child = new_child_record(parent, 2);
  running_child.status = TaskExecutionStatus::running;
  running_child.executor_id = "executor";
  running_child.expires_at = now_ + milliseconds{1000};
  const auto other_parent = new_record();
  const auto unrelated_child = new_child_record(other_parent, 0);
  insert({parent, ready_child, completed_child, running_child, other_parent, unrelated_child});

  // T11: the cancel update skips finished children.
  const auto t1 = now_ + milliseconds{10};
  const StoredError cancelled{ErrorType::cancelled, false, false, "Parent task cancelled"};
  storage().update_many_by_parent_execution_id_and_is_finished(
      {{parent.execution_id, false,
        normalized(t1, {.status = TaskExecutionStatus::cancelled,
                        .error = cancelled,
                        .needs_promise_cancellation = true})}});
  for (const auto& r : fetch_all({ready_child.execution_id, running_child.execution_id})) {
    EXPECT_EQ(r.status, TaskExecutionStatus::cancelled);
    EXPECT_TRUE(r.is_finished);
    EXPECT_EQ(r.finished_at, t1);
    EXPECT_EQ(r.error, cancelled);
    EXPECT_TRUE(r.needs_promise_cancellation);
    EXPECT_EQ(r.updated_at, t1);
  }
  // Cancelled keeps the executor id so that its executor can abort the run (SPEC.md §2.3).
  EXPECT_EQ(fetch(running_child.execution_id).executor_id, "executor");
  EXPECT_FALSE(fetch(running_child.execution_id).expires_at.has_value());
  EXPECT_EQ(fetch(completed_child.execution_id), completed_child);
  EXPECT_EQ(fetch(unrelated_child.execution_id), unrelated_child);
  EXPECT_EQ(fetch(parent.execution_id), parent);

  // The is_finished=true update skips unfinished children.
  auto late_child = new_child_record(parent, 3);
  late_child.status = TaskExecutionStatus::running;
  insert({late_child});
  const auto t2 = t1 + milliseconds{10};
  storage().update_many_by_parent_execution_id_and_is_finished(
      {{parent.execution_id, true, normalized(t2, {.close_status = CloseStatus::ready})}});
  for (const auto& r : fetch_all(
           {ready_child.execution_id, completed_child.execution_id, running_child.execution_id})) {
    EXPECT_EQ(r.close_status, CloseStatus::ready);
    EXPECT_EQ(r.updated_at, t2);
  }
  EXPECT_EQ(fetch(late_child.execution_id), late_child);
  EXPECT_EQ(fetch(unrelated_child.execution_id), unrelated_child);
}

TEST_P(StorageConformance, UpdateByParentHandlesSeveralParentsInOneCall) {
  const auto p1 = new_record();
  const auto p2 = new_record();
  const auto c1 = new_child_record(p1, 0);
  const auto c2 = new_child_record(p2, 0);
  insert({p1, p2, c1, c2});
  const auto t = now_ + milliseconds{10};
  storage().update_many_by_parent_execution_id_and_is_finished(
      {{p1.execution_id, false,
        normalized(t, {.status = TaskExecutionStatus::cancelled,
                       .error = StoredError{ErrorType::cancelled, false, false, "p1"}})},
       {p2.execution_id, false,
        normalized(t, {.status = TaskExecutionStatus::cancelled,
                       .error = StoredError{ErrorType::cancelled, false, false, "p2"}})}});
  EXPECT_EQ(fetch(c1.execution_id).error->message, "p1");
  EXPECT_EQ(fetch(c2.execution_id).error->message, "p2");
}

// ---- delete ---------------------------------------------------------------------------------

TEST_P(StorageConformance, DeleteByIdRemovesOnlyThatRow) {
  const auto unique_id = "unique_" + durable_execution::generate_execution_id();
  const auto a = new_sleeping_record(unique_id);
  const auto b = new_record();
  insert({a, b});
  storage().delete_by_id(DeleteByIdRequest{a.execution_id});
  EXPECT_FALSE(find(a.execution_id).has_value());
  EXPECT_FALSE(storage().get_many_by_sleeping_task_unique_id({{unique_id}}).at(0).has_value());
  EXPECT_EQ(fetch(b.execution_id), b);
  EXPECT_NO_THROW(storage().delete_by_id(DeleteByIdRequest{"te_unknown"}));
  EXPECT_NO_THROW(storage().delete_by_id(DeleteByIdRequest{a.execution_id}));
  EXPECT_EQ(fetch(b.execution_id), b);

  // The ids are free again.
  const auto again = new_sleeping_record(unique_id);
  auto same_id = new_record();
  same_id.execution_id = a.execution_id;
  insert({again, same_id});
  EXPECT_EQ(fetch(again.execution_id), again);
  EXPECT_EQ(fetch(same_id.execution_id), same_id);
}

TEST_P(StorageConformance, DeleteByIdOfAParentKeepsItsChildrenIndexedByParent) {
  const auto parent = new_record();
  const auto child = new_child_record(parent, 0);
  insert({parent, child});
  storage().delete_by_id(DeleteByIdRequest{child.execution_id});
  EXPECT_TRUE(storage().get_many_by_parent_execution_id({{parent.execution_id}}).at(0).empty());
  const auto child2 = new_child_record(parent, 1);
  insert({child2});
  auto found = storage().get_many_by_parent_execution_id({{parent.execution_id}});
  ASSERT_EQ(found.at(0).size(), 1U);
  EXPECT_EQ(found[0][0], child2);
}

TEST_P(StorageConformance, DeleteAllEmptiesEveryIndex) {
  const auto unique_id = "unique_" + durable_execution::generate_execution_id();
  const auto parent = new_record();
  auto child = new_child_record(parent, 0);
  child.status = TaskExecutionStatus::completed;
  child.is_finished = true;
  const auto sleeping = new_sleeping_record(unique_id);
  insert({parent, child, sleeping});
  storage().delete_all();

  EXPECT_FALSE(find(parent.execution_id).has_value());
  EXPECT_FALSE(find(child.execution_id).has_value());
  EXPECT_FALSE(storage().get_many_by_sleeping_task_unique_id({{unique_id}}).at(0).has_value());
  EXPECT_TRUE(storage().get_many_by_parent_execution_id({{parent.execution_id}}).at(0).empty());
  const auto later = now_ + milliseconds{60'000};
  EXPECT_TRUE(storage()
                  .update_by_status_and_start_at_less_than_and_return(
                      {.status = TaskExecutionStatus::ready,
                       .start_at_less_than = later,
                       .update = normalized(later, {.status = TaskExecutionStatus::running}),
                       .update_expires_at_with_started_at = later,
                       .limit = 10})
                  .empty());
  EXPECT_EQ(
      storage().update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
          {.is_finished = true,
           .close_status = CloseStatus::idle,
           .update = normalized(later, {.close_status = CloseStatus::ready}),
           .limit = 10}),
      0);
  EXPECT_EQ(storage().update_by_is_sleeping_task_and_expires_at_less_than(
                {.is_sleeping_task = true,
                 .expires_at_less_than = later,
                 .update = normalized(later, {.status = TaskExecutionStatus::timed_out}),
                 .limit = 10}),
            0);

  // Everything can be inserted again.
  insert({parent, child, sleeping});
  EXPECT_EQ(fetch(sleeping.execution_id), sleeping);
  EXPECT_EQ(storage().get_many_by_parent_execution_id({{parent.execution_id}}).at(0).size(), 1U);
}

// ---- copies ---------------------------------------------------------------------------------

TEST_P(StorageConformance, ReturnedRecordsAreCopies) {
  const auto parent = new_record();
  auto child = new_child_record(parent, 0);
  child.children = std::vector<TaskExecutionSummary>{{"t", "te_x"}};
  insert({parent, child});

  auto got = storage().get_many_by_id({{child.execution_id, {}}});
  ASSERT_TRUE(got.at(0).has_value());
  got[0]->status = TaskExecutionStatus::failed;
  got[0]->children->push_back({"t", "te_y"});
  got[0]->parent->execution_id = "te_other";
  EXPECT_EQ(fetch(child.execution_id), child);

  auto by_parent = storage().get_many_by_parent_execution_id({{parent.execution_id}});
  ASSERT_EQ(by_parent.at(0).size(), 1U);
  by_parent[0][0].children->clear();
  by_parent[0][0].input = "mutated";
  EXPECT_EQ(fetch(child.execution_id), child);

  const auto t = now_ + milliseconds{10};
  auto claimed = storage().update_by_status_and_start_at_less_than_and_return(
      {.status = TaskExecutionStatus::ready,
       .start_at_less_than = t,
       .update = normalized(
           t, {.executor_id = "executor", .status = TaskExecutionStatus::running, .started_at = t}),
       .update_expires_at_with_started_at = t,
       .limit = 10});
  ASSERT_EQ(claimed.size(), 2U);
  const auto stored = fetch(claimed[0].execution_id);
  EXPECT_EQ(claimed[0], stored);
  claimed[0].status = TaskExecutionStatus::completed;
  claimed[0].executor_id = "someone else";
  EXPECT_EQ(fetch(stored.execution_id), stored);
}
