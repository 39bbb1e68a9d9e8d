// TaskExecutionsStorageWithBatching: coalescing, the window and batch-size bounds, per-caller
// results and errors (split and retry), shutdown with a blocked storage, and the executor option.
// Interleavings are forced with a gate in the wrapped storage; every wait is bounded.

#include "durable_execution/batching_storage.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "durable_execution/durable_execution.hpp"

namespace de = durable_execution;
using de::StorageOperation;
using namespace std::chrono_literals;

namespace {

constexpr auto kBound = 10s;  // every wait in these tests fails after this

de::TaskExecutionRecord record(const std::string& id, const std::string& task_id = "t") {
  de::NewTaskExecution n;
  n.task_id = task_id;
  n.execution_id = id;
  n.timeout = 1000ms;
  n.input = "null";
  return de::make_task_execution_record(de::now_timestamp(), std::move(n));
}

de::UpdateByIdRequest set_output(const std::string& id, const std::string& output) {
  de::TaskExecutionUpdate u;
  u.output = output;
  return {id, {}, de::normalize_update(de::now_timestamp(), std::move(u))};
}

/** Rows e0 ... e<n-1>. */
void insert_rows(de::TaskExecutionsStorage& storage, int n) {
  for (int i = 0; i < n; ++i) storage.insert_many({record("e" + std::to_string(i))});
}

/** Waits (bounded) until `done` holds; fails the test on timeout. */
template <class F>
bool eventually(F&& done) {
  const auto deadline = std::chrono::steady_clock::now() + kBound;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

/**
 * Counts the calls that reach the wrapped storage, and while closed holds every call of the
 * batchable methods at its entry until open() (or kBound, then throws).
 */
class GatedStorage final : public de::ForwardingTaskExecutionsStorage {
 public:
  using ForwardingTaskExecutionsStorage::ForwardingTaskExecutionsStorage;

  void close() {
    std::lock_guard lock(mutex_);
    open_ = false;
  }
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }
  [[nodiscard]] int waiting() const {
    std::lock_guard lock(mutex_);
    return waiting_;
  }
  std::atomic<int> calls{0};
  std::atomic<int> requests{0};
  /** Whether one update call held two requests for one row (storage.hpp: not supported). */
  std::atomic<bool> same_row_twice{false};

  void insert_many(const std::vector<de::TaskExecutionRecord>& e) override {
    enter(e.size());
    ForwardingTaskExecutionsStorage::insert_many(e);
  }
  std::vector<std::optional<de::TaskExecutionRecord>> get_many_by_id(
      const std::vector<de::GetByIdRequest>& r) override {
    enter(r.size());
    return ForwardingTaskExecutionsStorage::get_many_by_id(r);
  }
  void update_many_by_id(const std::vector<de::UpdateByIdRequest>& r) override {
    std::set<std::string> ids;
    for (const auto& req : r) {
      if (!ids.insert(req.execution_id).second) same_row_twice.store(true);
    }
    enter(r.size());
    ForwardingTaskExecutionsStorage::update_many_by_id(r);
  }
  void update_many_by_id_and_insert_children_if_updated(
      const std::vector<de::UpdateByIdAndInsertChildrenRequest>& r) override {
    enter(r.size());
    ForwardingTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(r);
  }
  std::vector<std::vector<de::TaskExecutionRecord>> get_many_by_parent_execution_id(
      const std::vector<de::GetByParentExecutionIdRequest>& r) override {
    enter(r.size());
    return ForwardingTaskExecutionsStorage::get_many_by_parent_execution_id(r);
  }

 private:
  void enter(std::size_t n) {
    calls.fetch_add(1);
    requests.fetch_add(static_cast<int>(n));
    std::unique_lock lock(mutex_);
    ++waiting_;
    const bool opened = cv_.wait_for(lock, kBound, [&] { return open_; });
    --waiting_;
    if (!opened) throw de::DurableExecutionError::non_retryable("test gate never opened");
  }

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = true;
  int waiting_ = 0;
};

de::StorageBatchingOperationStats op_stats(const de::TaskExecutionsStorageWithBatching& s,
                                           StorageOperation op) {
  return s.stats().at(std::string{de::to_string(op)});
}

/** Starts one call in the gate (alone, in flight), then `n` more that must queue behind it. */
template <class Call>
std::vector<std::future<void>> queue_behind_a_blocked_call(GatedStorage& gate,
                                                           de::TaskExecutionsStorageWithBatching& s,
                                                           StorageOperation op, int n, Call call) {
  std::vector<std::future<void>> futures;
  const auto before = op_stats(s, op).calls;
  gate.close();
  futures.push_back(std::async(std::launch::async, call, 0));
  EXPECT_TRUE(eventually([&] { return gate.waiting() == 1; }));
  for (int i = 1; i <= n; ++i) futures.push_back(std::async(std::launch::async, call, i));
  EXPECT_TRUE(eventually([&] { return op_stats(s, op).calls == before + n + 1; }));
  return futures;
}

TEST(StorageBatching, ALoneCallerGoesAtOnceWithoutWaitingTheWindow) {
  de::InMemoryTaskExecutionsStorage memory;
  de::TaskExecutionsStorageWithBatching s{memory, {.window = 1'000'000us}};  // 1 s
  const auto t0 = std::chrono::steady_clock::now();
  s.insert_many({record("a")});
  s.update_many_by_id({set_output("a", "\"x\"")});
  const auto got = s.get_many_by_id({{"a", {}}});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  ASSERT_TRUE(got.front().has_value());
  EXPECT_EQ(got.front()->output, "\"x\"");
  const auto st = op_stats(s, StorageOperation::update_many_by_id);
  EXPECT_EQ(st.calls, 1);
  EXPECT_EQ(st.batches, 1);
  EXPECT_EQ(st.mean_wait_ms, 0);  // it never queued
}

TEST(StorageBatching, CallsQueuedBehindABatchInFlightShareOneCallAndGetTheirOwnResults) {
  de::InMemoryTaskExecutionsStorage memory;
  constexpr int kCallers = 16;
  insert_rows(memory, kCallers + 1);
  GatedStorage gate{memory};
  de::TaskExecutionsStorageWithBatching s{
      gate, {.window = 1'000'000us, .max_batch_size = 100, .max_batches_in_flight = 1}};
  std::vector<std::string> outputs(kCallers + 1);
  auto futures =
      queue_behind_a_blocked_call(gate, s, StorageOperation::get_many_by_id, kCallers, [&](int i) {
        auto got = s.get_many_by_id({{"e" + std::to_string(i), {}}, {"missing", {}}});
        ASSERT_EQ(got.size(), 2U);
        ASSERT_TRUE(got[0].has_value());
        EXPECT_FALSE(got[1].has_value());
        outputs[static_cast<std::size_t>(i)] = got[0]->execution_id;
      });
  gate.open();
  for (auto& f : futures) ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);
  for (auto& f : futures) f.get();
  for (int i = 0; i <= kCallers; ++i) {
    EXPECT_EQ(outputs[static_cast<std::size_t>(i)], "e" + std::to_string(i));
  }
  EXPECT_EQ(gate.calls.load(), 2);  // the blocked one, then all the others together
  const auto st = op_stats(s, StorageOperation::get_many_by_id);
  EXPECT_EQ(st.batches, 2);
  EXPECT_EQ(st.max_calls_per_batch, kCallers);
  EXPECT_DOUBLE_EQ(st.mean_requests_per_batch, (kCallers + 1) * 2.0 / 2);
}

TEST(StorageBatching, AFullBatchLeavesAtOnceAndTheWindowBoundsTheWait) {
  de::InMemoryTaskExecutionsStorage memory;
  insert_rows(memory, 8);
  GatedStorage gate{memory};
  // Window 10 s: only a full batch (4 requests) can leave while the first call is held.
  de::TaskExecutionsStorageWithBatching s{
      gate, {.window = 1'000'000us, .max_batch_size = 4, .max_batches_in_flight = 1}};
  auto futures = queue_behind_a_blocked_call(
      gate, s, StorageOperation::update_many_by_id, 4,
      [&](int i) { s.update_many_by_id({set_output("e" + std::to_string(i), "\"o\"")}); });
  // The full batch is in the gate too, while the first call still is, long before the window.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(eventually([&] { return gate.waiting() == 2; }));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  EXPECT_EQ(gate.requests.load(), 1 + 4);
  gate.open();
  for (auto& f : futures) ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);

  // Window 20 ms: a lone call queued behind a held one leaves after the window.
  de::TaskExecutionsStorageWithBatching w{gate, {.window = 20'000us, .max_batches_in_flight = 1}};
  gate.close();
  auto first =
      std::async(std::launch::async, [&] { w.update_many_by_id({set_output("e5", "1")}); });
  ASSERT_TRUE(eventually([&] { return gate.waiting() == 1; }));
  const auto t1 = std::chrono::steady_clock::now();
  auto second =
      std::async(std::launch::async, [&] { w.update_many_by_id({set_output("e6", "1")}); });
  ASSERT_TRUE(eventually([&] { return gate.waiting() == 2; }));
  EXPECT_GE(std::chrono::steady_clock::now() - t1, 19ms);
  gate.open();
  ASSERT_EQ(first.wait_for(kBound), std::future_status::ready);
  ASSERT_EQ(second.wait_for(kBound), std::future_status::ready);
  EXPECT_GE(op_stats(w, StorageOperation::update_many_by_id).p99_wait_ms, 15.0);
}

TEST(StorageBatching, UpToMaxBatchesInFlightCallsGoAtOnceThenTheyQueueAndCoalesce) {
  de::InMemoryTaskExecutionsStorage memory;
  insert_rows(memory, 6);
  GatedStorage gate{memory};
  de::TaskExecutionsStorageWithBatching s{gate,
                                          {.window = 1'000'000us, .max_batches_in_flight = 2}};
  auto update = [&](int i) { s.update_many_by_id({set_output("e" + std::to_string(i), "1")}); };
  gate.close();
  std::vector<std::future<void>> futures;
  futures.push_back(std::async(std::launch::async, update, 0));
  futures.push_back(std::async(std::launch::async, update, 1));
  // Both in the wrapped storage at once: neither waited for the other.
  ASSERT_TRUE(eventually([&] { return gate.waiting() == 2; }));
  for (int i = 2; i < 6; ++i) futures.push_back(std::async(std::launch::async, update, i));
  ASSERT_TRUE(
      eventually([&] { return op_stats(s, StorageOperation::update_many_by_id).calls == 6; }));
  EXPECT_EQ(gate.waiting(), 2);  // the other four queue behind the two in flight
  gate.open();
  for (auto& f : futures) ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(gate.calls.load(), 3);
  EXPECT_EQ(op_stats(s, StorageOperation::update_many_by_id).max_calls_per_batch, 4);
}

TEST(StorageBatching, UpdatesOfOneRowNeverShareACallAndAllLand) {
  de::InMemoryTaskExecutionsStorage memory;
  insert_rows(memory, 4);
  GatedStorage gate{memory};
  de::TaskExecutionsStorageWithBatching s{gate,
                                          {.window = 1'000'000us, .max_batches_in_flight = 1}};
  // Callers 1 and 3 update different fields of row e1; 2 and 4 other rows.
  auto futures =
      queue_behind_a_blocked_call(gate, s, StorageOperation::update_many_by_id, 4, [&](int i) {
        de::TaskExecutionUpdate u;
        std::string id = "e" + std::to_string(i % 4);
        if (i == 1) u.output = "\"out\"";
        if (i == 3) {
          id = "e1";
          u.run_output = "\"run\"";
        }
        if (i != 1 && i != 3) u.output = "1";
        s.update_many_by_id({{id, {}, de::normalize_update(de::now_timestamp(), std::move(u))}});
      });
  gate.open();
  for (auto& f : futures) ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);
  EXPECT_FALSE(gate.same_row_twice.load());
  EXPECT_EQ(gate.calls.load(), 3);  // held; 1, 2 and 4 together; then 3 alone
  const auto row = memory.get_many_by_id({{"e1", {}}}).front();
  EXPECT_EQ(row->output, "\"out\"");
  EXPECT_EQ(row->run_output, "\"run\"");
}

TEST(StorageBatching, ADuplicateInsertFailsOnlyItsOwnCallerAsSeparateCallsWould) {
  de::InMemoryTaskExecutionsStorage memory;
  memory.insert_many({record("taken")});
  GatedStorage gate{memory};
  de::TaskExecutionsStorageWithBatching s{gate,
                                          {.window = 1'000'000us, .max_batches_in_flight = 1}};
  constexpr int kCallers = 9;
  std::vector<int> failed(kCallers + 1, 0);
  auto futures =
      queue_behind_a_blocked_call(gate, s, StorageOperation::insert_many, kCallers, [&](int i) {
        // Caller 4 reuses an existing id; callers 6 and
        // 7 insert the same new id as each other.
        std::string id = "n" + std::to_string(i);
        if (i == 4) id = "taken";
        if (i == 6 || i == 7) id = "twice";
        try {
          s.insert_many({record(id + "_own"), record(id)});
        } catch (const de::DurableExecutionError& e) {
          EXPECT_FALSE(e.is_retryable()) << e.what();
          failed[static_cast<std::size_t>(i)] = 1;
        }
      });
  gate.open();
  for (auto& f : futures) ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(failed[4], 1);
  EXPECT_EQ(failed[6] + failed[7], 1);  // one of the two, as two separate calls
  for (int i = 0; i <= kCallers; ++i) {
    if (i == 4 || i == 6 || i == 7) continue;
    EXPECT_EQ(failed[static_cast<std::size_t>(i)], 0) << i;
    EXPECT_TRUE(memory.get_many_by_id({{"n" + std::to_string(i), {}}}).front()) << i;
  }
  // Nothing of a failed call is written (its first record neither).
  EXPECT_FALSE(memory.get_many_by_id({{"taken_own", {}}}).front());
  EXPECT_GT(op_stats(s, StorageOperation::insert_many).split_calls, 0);
}

TEST(StorageBatching, ABadRequestFailsOnlyItsCallerAndRetryableErrorsReachEveryCaller) {
  de::InMemoryTaskExecutionsStorage memory;
  insert_rows(memory, 9);
  de::FaultInjectingTaskExecutionsStorage faults{memory};
  GatedStorage gate{faults};
  de::TaskExecutionsStorageWithBatching s{gate,
                                          {.window = 1'000'000us, .max_batches_in_flight = 1}};
  faults.fail_requests([](StorageOperation, const std::string& id) { return id == "e3"; });
  std::vector<std::string> errors(9);
  auto update = [&](int i) {
    try {
      s.update_many_by_id({set_output("e" + std::to_string(i), "\"done\"")});
    } catch (const de::DurableExecutionError& e) {
      errors[static_cast<std::size_t>(i)] = e.what();
    }
  };
  auto futures =
      queue_behind_a_blocked_call(gate, s, StorageOperation::update_many_by_id, 8, update);
  gate.open();
  for (auto& f : futures) ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);
  for (int i = 0; i <= 8; ++i) {
    const auto row = memory.get_many_by_id({{"e" + std::to_string(i), {}}}).front();
    if (i == 3) {
      EXPECT_NE(errors[3].find("Injected fault"), std::string::npos) << errors[3];
      EXPECT_FALSE(row->output);
    } else {
      EXPECT_EQ(errors[static_cast<std::size_t>(i)], "") << i;
      EXPECT_EQ(row->output, "\"done\"") << i;
    }
  }

  // A retryable failure of the combined call goes to each of its callers, unchanged.
  faults.clear_faults();
  errors.assign(9, "");
  std::atomic<int> retryable{0};
  auto update_counting = [&](int i) {
    try {
      s.update_many_by_id({set_output("e" + std::to_string(i), "\"again\"")});
    } catch (const de::DurableExecutionError& e) {
      if (e.is_retryable()) retryable.fetch_add(1);
    }
  };
  futures =
      queue_behind_a_blocked_call(gate, s, StorageOperation::update_many_by_id, 8, update_counting);
  ASSERT_EQ(op_stats(s, StorageOperation::update_many_by_id).calls, 9 + 9);
  const int calls_before = gate.calls.load();
  // The held call reaches the faults first, then the combined one (8 callers): both fail.
  faults.fail_next(StorageOperation::update_many_by_id, 2, /*retryable=*/true);
  gate.open();
  for (auto& f : futures) ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(retryable.load(), 9);
  EXPECT_EQ(gate.calls.load() - calls_before, 1);  // the combined call, not split or retried
}

/** An error type of a wrapped storage's own, not a DurableExecutionError. */
struct CustomStorageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/** Throws CustomStorageError from update_many_by_id while `failing` is set. */
class ThrowingStorage final : public de::ForwardingTaskExecutionsStorage {
 public:
  using ForwardingTaskExecutionsStorage::ForwardingTaskExecutionsStorage;
  std::atomic<bool> failing{true};
  void update_many_by_id(const std::vector<de::UpdateByIdRequest>& r) override {
    if (failing.load()) throw CustomStorageError{"custom failure"};
    ForwardingTaskExecutionsStorage::update_many_by_id(r);
  }
};

TEST(StorageBatching, CallersGetTheWrappedStoragesOwnExceptionType) {
  de::InMemoryTaskExecutionsStorage memory;
  insert_rows(memory, 9);
  ThrowingStorage thrower{memory};
  GatedStorage gate{thrower};
  de::TaskExecutionsStorageWithBatching s{gate,
                                          {.window = 1'000'000us, .max_batches_in_flight = 1}};
  // A lone call, sent at once.
  EXPECT_THROW(s.update_many_by_id({set_output("e0", "\"x\"")}), CustomStorageError);
  // The callers of a combined call: each gets it (not a DurableExecutionError: retryable, so the
  // batch is not split).
  std::atomic<int> custom{0};
  auto futures =
      queue_behind_a_blocked_call(gate, s, StorageOperation::update_many_by_id, 8, [&](int i) {
        try {
          s.update_many_by_id({set_output("e" + std::to_string(i), "\"x\"")});
        } catch (const CustomStorageError& e) {
          EXPECT_STREQ(e.what(), "custom failure");
          custom.fetch_add(1);
        }
      });
  const int calls_before = gate.calls.load();
  gate.open();
  for (auto& f : futures) ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(custom.load(), 9);
  EXPECT_EQ(gate.calls.load() - calls_before, 1);  // the combined call, not split
  EXPECT_EQ(op_stats(s, StorageOperation::update_many_by_id).split_calls, 0);
}

TEST(StorageBatching, AnUnguardedUpdateWithADuplicateChildFailsOnlyItsCaller) {
  // The in-memory store applies nothing of a call that fails on a duplicate child, so the other
  // requests of a split batch are not found applied when they are sent again.
  de::InMemoryTaskExecutionsStorage memory;
  insert_rows(memory, 9);
  memory.insert_many({record("taken")});
  auto with_child = [](int i, const std::string& child_id) {
    de::TaskExecutionUpdate u;
    u.output = "\"parent\"";
    de::UpdateByIdAndInsertChildrenRequest r;
    r.execution_id = "e" + std::to_string(i);  // no filters: the update always applies
    r.update = de::normalize_update(de::now_timestamp(), std::move(u));
    r.children_to_insert_if_updated = {record(child_id)};
    return r;
  };
  EXPECT_THROW(memory.update_many_by_id_and_insert_children_if_updated(
                   {with_child(0, "fresh"), with_child(1, "taken")}),
               de::DurableExecutionError);
  EXPECT_FALSE(memory.get_many_by_id({{"e0", {}}}).front()->output);  // nothing applied
  EXPECT_FALSE(memory.get_many_by_id({{"fresh", {}}}).front());

  GatedStorage gate{memory};
  de::TaskExecutionsStorageWithBatching s{gate,
                                          {.window = 1'000'000us, .max_batches_in_flight = 1}};
  std::vector<std::string> errors(9);
  auto futures = queue_behind_a_blocked_call(
      gate, s, StorageOperation::update_many_by_id_and_insert_children_if_updated, 8, [&](int i) {
        try {
          s.update_many_by_id_and_insert_children_if_updated(
              {with_child(i, i == 4 ? std::string{"taken"} : "c" + std::to_string(i))});
        } catch (const de::DurableExecutionError& e) {
          errors[static_cast<std::size_t>(i)] = e.what();
        }
      });
  gate.open();
  for (auto& f : futures) ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);
  for (int i = 0; i <= 8; ++i) {
    const auto row = memory.get_many_by_id({{"e" + std::to_string(i), {}}}).front();
    if (i == 4) {
      EXPECT_NE(errors[4].find("already exists"), std::string::npos) << errors[4];
      EXPECT_FALSE(row->output);
    } else {
      EXPECT_EQ(errors[static_cast<std::size_t>(i)], "") << i;
      EXPECT_EQ(row->output, "\"parent\"") << i;
      EXPECT_TRUE(memory.get_many_by_id({{"c" + std::to_string(i), {}}}).front()) << i;
    }
  }
  EXPECT_GT(
      op_stats(s, StorageOperation::update_many_by_id_and_insert_children_if_updated).split_calls,
      0);
}

TEST(StorageBatching, ShutdownWithABlockedStorageFailsTheWaitingCallersAndNeverHangs) {
  de::InMemoryTaskExecutionsStorage memory;
  insert_rows(memory, 7);
  GatedStorage gate{memory};
  auto s = std::make_unique<de::TaskExecutionsStorageWithBatching>(
      gate, de::StorageBatchingOptions{
                .window = 1'000'000us, .shutdown_timeout = 100ms, .max_batches_in_flight = 1});
  std::vector<std::string> errors(7);
  auto futures =
      queue_behind_a_blocked_call(gate, *s, StorageOperation::update_many_by_id, 6, [&](int i) {
        try {
          s->update_many_by_id({set_output("e" + std::to_string(i), "\"o\"")});
        } catch (const de::DurableExecutionError& e) {
          errors[static_cast<std::size_t>(i)] = e.what();
        }
      });
  // Shutdown sends the queued calls at once (their collector then waits in the gate too), waits
  // 100 ms for the two combined calls, then releases their other callers with an error.
  auto shutdown = std::async(std::launch::async, [&] { s->shutdown(); });
  ASSERT_EQ(shutdown.wait_for(kBound), std::future_status::ready);
  EXPECT_TRUE(eventually([&] { return gate.waiting() == 2; }));
  // Released: all but the two threads in the wrapped storage (the held call, the collector).
  auto released = [&] {
    int n = 0;
    for (auto& f : futures) n += f.wait_for(0s) == std::future_status::ready ? 1 : 0;
    return n;
  };
  ASSERT_TRUE(eventually([&] { return released() == 5; }));
  EXPECT_TRUE(errors[0].empty());
  int shut_down_errors = 0;
  for (const auto& e : errors) {
    if (e.rfind("storage batching shut down", 0) == 0) ++shut_down_errors;
  }
  EXPECT_EQ(shut_down_errors, 5);
  EXPECT_EQ(op_stats(*s, StorageOperation::update_many_by_id).failed_at_shutdown, 5);
  // A second shutdown returns at once (the first one already waited its 100 ms).
  const auto t_again = std::chrono::steady_clock::now();
  s->shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - t_again, 100ms);
  // After shutdown calls go straight through; the destructor does not wait again.
  EXPECT_FALSE(s->get_many_by_sleeping_task_unique_id({{"u"}}).front());
  EXPECT_EQ(op_stats(*s, StorageOperation::get_many_by_sleeping_task_unique_id).bypassed, 1);
  const auto t0 = std::chrono::steady_clock::now();
  auto destroy = std::async(std::launch::async, [&] { s.reset(); });
  ASSERT_EQ(destroy.wait_for(kBound), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  // The two senders return once the storage does, after the wrapper is gone.
  gate.open();
  for (auto& f : futures) ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(memory.get_many_by_id({{"e0", {}}}).front()->output, "\"o\"");
}

TEST(StorageBatching, ShutdownWithoutATimeoutReturnsAtOnceAndEveryCallerGetsAnOutcome) {
  de::InMemoryTaskExecutionsStorage memory;
  insert_rows(memory, 9);
  GatedStorage gate{memory};
  de::TaskExecutionsStorageWithBatching s{
      gate, {.window = 1'000'000us, .shutdown_timeout = 0ms, .max_batches_in_flight = 1}};
  std::atomic<int> ok{0};
  std::atomic<int> shut_down{0};
  auto futures =
      queue_behind_a_blocked_call(gate, s, StorageOperation::update_many_by_id, 8, [&](int i) {
        try {
          s.update_many_by_id({set_output("e" + std::to_string(i), "1")});
          ok.fetch_add(1);
        } catch (const de::DurableExecutionError& e) {
          if (std::string{e.what()}.rfind("storage batching shut down", 0) == 0) {
            shut_down.fetch_add(1);
          }
        }
      });
  auto shutdown = std::async(std::launch::async, [&] { s.shutdown(); });
  ASSERT_EQ(shutdown.wait_for(kBound), std::future_status::ready);
  gate.open();
  for (auto& f : futures) ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);
  // The held call succeeds; each queued one was either sent (and succeeded) or failed clearly.
  EXPECT_EQ(ok.load() + shut_down.load(), 9);
  EXPECT_GE(ok.load(), 1);
}

TEST(StorageBatching, ShutdownCompletesQueuedCallsWhenTheStorageReturnsInTime) {
  de::InMemoryTaskExecutionsStorage memory;
  insert_rows(memory, 5);
  GatedStorage gate{memory};
  de::TaskExecutionsStorageWithBatching s{
      gate, {.window = 1'000'000us, .shutdown_timeout = 10'000ms, .max_batches_in_flight = 1}};
  std::atomic<int> ok{0};
  auto futures =
      queue_behind_a_blocked_call(gate, s, StorageOperation::get_many_by_id, 4, [&](int i) {
        if (s.get_many_by_id({{"e" + std::to_string(i), {}}}).front()) ok.fetch_add(1);
      });
  auto shutdown = std::async(std::launch::async, [&] { s.shutdown(); });
  ASSERT_TRUE(eventually([&] { return gate.waiting() == 2; }));  // the queued ones were sent
  gate.open();
  ASSERT_EQ(shutdown.wait_for(kBound), std::future_status::ready);
  for (auto& f : futures) ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(ok.load(), 5);
  EXPECT_EQ(op_stats(s, StorageOperation::get_many_by_id).failed_at_shutdown, 0);
}

TEST(StorageBatching, LargeCallsAndOtherMethodsGoStraightThrough) {
  de::InMemoryTaskExecutionsStorage memory;
  de::TaskExecutionsStorageWithBatching s{memory, {.max_batch_size = 2}};
  s.insert_many({record("a"), record("b")});  // >= max_batch_size: alone
  s.insert_many({});
  const auto parents = s.get_many_by_parent_execution_id({{"a"}, {"b"}});
  EXPECT_EQ(parents.size(), 2U);
  EXPECT_EQ(op_stats(s, StorageOperation::insert_many).bypassed, 2);
  de::UpdateByCloseStatusRequest close;
  close.limit = 10;
  EXPECT_TRUE(s.update_by_close_status_and_return(close).empty());
  s.delete_by_id({"a"});
  EXPECT_FALSE(memory.get_many_by_id({{"a", {}}}).front());
}

TEST(StorageBatching, InvalidOptionsAreRefusedByName) {
  de::InMemoryTaskExecutionsStorage memory;
  auto message = [&](const de::StorageBatchingOptions& o) {
    try {
      de::TaskExecutionsStorageWithBatching s{memory, o};
    } catch (const de::DurableExecutionError& e) {
      return std::string{e.what()};
    }
    return std::string{};
  };
  EXPECT_NE(message({.window = 0us}).find("storage_batching.window"), std::string::npos);
  EXPECT_NE(message({.max_batch_size = 0}).find("storage_batching.max_batch_size"),
            std::string::npos);
  EXPECT_NE(message({.shutdown_timeout = -1ms}).find("storage_batching.shutdown_timeout"),
            std::string::npos);
  EXPECT_NE(message({.max_batches_in_flight = 0}).find("storage_batching.max_batches_in_flight"),
            std::string::npos);
  try {
    de::DurableExecutor executor{memory, {.storage_batching = {.max_batch_size = 20'000}}};
    FAIL() << "accepted max_batch_size 20000";
  } catch (const de::DurableExecutionError& e) {
    EXPECT_NE(std::string{e.what()}.find("storage_batching.max_batch_size"), std::string::npos);
  }
}

TEST(StorageBatching, AnExecutorWithBatchingRunsWorkflowsAndReportsWhatBatchingDid) {
  de::InMemoryTaskExecutionsStorage memory;
  de::DurableExecutor executor{memory,
                               {.log_level = de::LogLevel::error, .enable_storage_batching = true}};
  auto child = executor.task({.id = "child", .timeout = 10s}, [](const int& i) { return i * 2; });
  auto parent = executor.parent_task(
      {.id = "parent", .timeout = 10s},
      [child](const int& n) {
        de::ParentRunResult<int> r{n, {}};
        for (int i = 0; i < n; ++i) r.children.push_back(de::child(child, i));
        return r;
      },
      [](const de::ParentTaskOutput<int>& p) {
        int sum = 0;
        for (const auto& c : p.children) sum += c.output_as<int>();
        return sum;
      });
  executor.start();
  std::vector<de::TaskExecutionHandle<int>> handles;
  for (int i = 0; i < 20; ++i) handles.push_back(executor.enqueue_task(parent, 5));
  for (auto& h : handles) {
    auto e = h.wait_and_get_finished_execution({.timeout = kBound});
    ASSERT_EQ(e.status, de::TaskExecutionStatus::completed);
    EXPECT_EQ(e.output, 2 * (0 + 1 + 2 + 3 + 4));
  }
  const auto stats = executor.stats();
  ASSERT_FALSE(stats.storage_batching.empty());
  EXPECT_GT(stats.storage_batching.at("insert_many").calls, 0);
  EXPECT_GT(stats.storage_batching.at("update_many_by_id").batches, 0);
  const auto& update = stats.storage_calls.at("update_many_by_id");
  EXPECT_GT(update.count, 0);
  EXPECT_GE(update.p99_duration_ms, 0);
  EXPECT_GT(update.calls_per_second, 0);
  executor.shutdown();

  de::DurableExecutor plain{memory, {.log_level = de::LogLevel::error}};
  EXPECT_TRUE(plain.stats().storage_batching.empty());
}

}  // namespace
