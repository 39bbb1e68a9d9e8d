// The untyped engine's whole state machine (SPEC.md §3): parents with children, finalize
// functions and tasks, sequential chains, sleeping tasks and wake-ups, cancellation of
// descendants — the base issue 4's typed front builds on. Also: store faults.

#include <algorithm>
#include <map>

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using detail::RunParentResult;
using detail::TaskDefinition;
using nlohmann::json;

using ExecutorEngine = ExecutorTest;

TaskDefinition simple(const std::string& id, std::function<std::string(const std::string&)> f,
                      std::chrono::milliseconds timeout = 2s) {
  TaskDefinition d;
  d.options = {.id = id, .timeout = timeout};
  d.run = [f = std::move(f)](TaskRunContext&, const std::string& in) {
    return RunParentResult{f(in), {}};
  };
  return d;
}

std::string add(const std::string& in, int n) {
  return json(json::parse(in).get<int>() + n).dump();
}

TaskExecutionRecord wait_record(detail::Engine& engine, const std::string& task,
                                const std::string& id) {
  return engine.wait_finished(task, id, bounded_wait());
}

TEST_P(ExecutorEngine, ParentWithChildrenCompletesAllSettledInDeclarationOrder) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  auto child =
      engine.register_task(simple("child", [](const std::string& in) { return add(in, 1); }));
  auto failing = engine.register_task(simple("failing", [](const std::string&) -> std::string {
    throw DurableExecutionError::non_retryable("child failed");
  }));
  TaskDefinition parent;
  parent.options = {.id = "parent", .timeout = 2s};
  parent.is_parent = true;
  parent.run = [](TaskRunContext&, const std::string& in) {
    return RunParentResult{
        in,
        {ChildTask{"child", "1", {}}, ChildTask{"failing", "0", {}}, ChildTask{"child", "10", {}}}};
  };
  auto p = engine.register_task(std::move(parent));
  engine.start();
  auto id = engine.enqueue(p, "\"hello\"", {});
  auto rec = wait_record(engine, "parent", id);
  ASSERT_EQ(rec.status, TaskExecutionStatus::completed);
  auto out = json::parse(*rec.output);
  EXPECT_EQ(out["output"], "hello");
  ASSERT_EQ(out["children"].size(), 3U);
  EXPECT_EQ(out["children"][0]["output"], 2);
  EXPECT_EQ(out["children"][0]["status"], "completed");
  EXPECT_EQ(out["children"][1]["status"], "failed");
  EXPECT_EQ(out["children"][1]["error"]["message"], "child failed");
  EXPECT_EQ(out["children"][2]["output"], 11);
  ASSERT_TRUE(rec.children);
  EXPECT_EQ(rec.children->size(), 3U);
  // The children know their parent and root.
  auto c0 = engine.get_execution("child", (*rec.children)[0].execution_id);
  ASSERT_TRUE(c0.parent && c0.root);
  EXPECT_EQ(c0.parent->execution_id, id);
  EXPECT_EQ(c0.parent->index_in_parent_children, 0);
  EXPECT_EQ(c0.root->execution_id, id);
  // The parent reaches processed, then closed after the processing finished.
  ASSERT_TRUE(wait_until(
      [&] { return engine.get_execution("parent", id).close_status == CloseStatus::closed; }));
  auto closed = engine.get_execution("parent", id);
  EXPECT_EQ(closed.on_children_finished_processing_status,
            OnChildrenFinishedProcessingStatus::processed);
  ASSERT_TRUE(closed.closed_at && closed.on_children_finished_processing_finished_at);
  EXPECT_GE(*closed.closed_at, *closed.on_children_finished_processing_finished_at);
  (void)child;
  (void)failing;
}

TEST_P(ExecutorEngine, ParentWithoutChildrenOutputsEmptyChildren) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  TaskDefinition parent;
  parent.options = {.id = "parent", .timeout = 2s};
  parent.is_parent = true;
  parent.run = [](TaskRunContext&, const std::string&) { return RunParentResult{"1", {}}; };
  auto p = engine.register_task(std::move(parent));
  engine.start();
  auto rec = wait_record(engine, "parent", engine.enqueue(p, "null", {}));
  ASSERT_EQ(rec.status, TaskExecutionStatus::completed);
  EXPECT_EQ(json::parse(*rec.output), json::parse(R"({"output":1,"children":[]})"));
}

TEST_P(ExecutorEngine, FinalizeFunctionAndFinalizeTask) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  (void)engine.register_task(simple("child", [](const std::string& in) { return add(in, 1); }));
  auto sum_children = [](const std::string& in) {
    auto j = json::parse(in);
    int sum = j["output"].get<int>();
    for (const auto& c : j["children"]) sum += c["output"].get<int>();
    return json(sum).dump();
  };
  (void)engine.register_task(simple("fin", sum_children));
  auto make_parent = [&](const std::string& id, bool with_fn) {
    TaskDefinition parent;
    parent.options = {.id = id, .timeout = 2s};
    parent.is_parent = true;
    parent.run = [](TaskRunContext&, const std::string&) {
      return RunParentResult{"100", {ChildTask{"child", "1", {}}, ChildTask{"child", "2", {}}}};
    };
    if (with_fn) {
      parent.finalize_function = [](const detail::ParentResultView& r) {
        int sum = json::parse(r.output).get<int>();
        for (const auto& c : r.children) sum += json::parse(*c.output).get<int>();
        return json(sum).dump();
      };
    } else {
      parent.finalize_task_id = "fin";
    }
    return engine.register_task(std::move(parent));
  };
  auto with_fn = make_parent("with_fn", true);
  auto with_task = make_parent("with_task", false);
  engine.start();
  auto a = wait_record(engine, "with_fn", engine.enqueue(with_fn, "null", {}));
  auto b = wait_record(engine, "with_task", engine.enqueue(with_task, "null", {}));
  EXPECT_EQ(a.status, TaskExecutionStatus::completed);
  EXPECT_EQ(json::parse(*a.output), 105);
  EXPECT_EQ(b.status, TaskExecutionStatus::completed);
  EXPECT_EQ(json::parse(*b.output), 105);
  ASSERT_TRUE(b.finalize);
  EXPECT_EQ(b.finalize->task_id, "fin");
}

TEST_P(ExecutorEngine, ThrowingFinalizeFunctionGivesFinalizeFailed) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  TaskDefinition parent;
  parent.options = {.id = "parent", .timeout = 2s};
  parent.is_parent = true;
  parent.run = [](TaskRunContext&, const std::string&) { return RunParentResult{"1", {}}; };
  parent.finalize_function = [](const detail::ParentResultView&) -> std::string {
    throw std::runtime_error("Children failed");
  };
  auto p = engine.register_task(std::move(parent));
  engine.start();
  auto rec = wait_record(engine, "parent", engine.enqueue(p, "null", {}));
  EXPECT_EQ(rec.status, TaskExecutionStatus::finalize_failed);
  ASSERT_TRUE(rec.error);
  EXPECT_EQ(rec.error->message, "Children failed");
  EXPECT_FALSE(rec.error->is_retryable);
}

TaskDefinition sequence(const std::string& id, std::vector<std::string> steps) {
  TaskDefinition d;
  d.options = {.id = id, .timeout = 30s};
  d.is_parent = true;
  d.are_children_sequential = true;
  d.run = [steps](TaskRunContext&, const std::string& in) {
    RunParentResult r{"null", {}};
    for (std::size_t i = 0; i < steps.size(); ++i) {
      r.children.push_back(ChildTask{steps[i], i == 0 ? in : "null", {}});
    }
    return r;
  };
  const auto n = steps.size();
  d.finalize_function = [n](const detail::ParentResultView& r) {
    const auto& last = r.children[n - 1];
    if (last.status != TaskExecutionStatus::completed) {
      throw DurableExecutionError::non_retryable("Task at index " + std::to_string(n - 1) +
                                                 " failed: " + last.error->message);
    }
    return std::string{*last.output};
  };
  return d;
}

TEST_P(ExecutorEngine, SequentialChainPassesOutputsAlong) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  (void)engine.register_task(simple("plus1", [](const std::string& in) { return add(in, 1); }));
  (void)engine.register_task(simple(
      "times2", [](const std::string& in) { return json(json::parse(in).get<int>() * 2).dump(); }));
  std::atomic<int> third_runs{0};
  (void)engine.register_task(simple("boom", [&](const std::string&) -> std::string {
    ++third_runs;
    throw DurableExecutionError::non_retryable("Task 2 failed");
  }));
  (void)engine.register_task(simple("never", [&](const std::string& in) {
    ++third_runs;
    return in;
  }));
  auto ok = engine.register_task(sequence("seq", {"plus1", "times2", "plus1"}));
  auto bad = engine.register_task(sequence("seq_bad", {"plus1", "boom", "never"}));
  engine.start();
  auto a = wait_record(engine, "seq", engine.enqueue(ok, "5", {}));
  EXPECT_EQ(a.status, TaskExecutionStatus::completed);
  EXPECT_EQ(json::parse(*a.output), 13);
  auto b = wait_record(engine, "seq_bad", engine.enqueue(bad, "5", {}));
  EXPECT_EQ(b.status, TaskExecutionStatus::finalize_failed);
  ASSERT_TRUE(b.error);
  EXPECT_EQ(b.error->message, "Task at index 1 failed: Task 2 failed");
  EXPECT_EQ(third_runs.load(), 1);  // "never" never ran
}

TEST_P(ExecutorEngine, SleepingTaskIsWokenByUniqueIdOrTimesOut) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  TaskDefinition sleeper;
  sleeper.options = {.id = "sleeper", .timeout = 10s};
  sleeper.is_sleeping_task = true;
  auto s = engine.register_task(std::move(sleeper));
  TaskDefinition short_sleeper;
  short_sleeper.options = {.id = "short_sleeper", .timeout = 50ms};
  short_sleeper.is_sleeping_task = true;
  auto ss = engine.register_task(std::move(short_sleeper));
  auto plain = engine.register_task(simple("plain", [](const std::string& in) { return in; }));
  engine.start();
  auto id = engine.enqueue(s, "uid_1", {});
  EXPECT_EQ(engine.get_execution("sleeper", id).status, TaskExecutionStatus::running);
  auto woken = engine.wakeup_sleeping(s, "uid_1", TaskExecutionStatus::completed, "\"woken\"");
  EXPECT_EQ(woken.status, TaskExecutionStatus::completed);
  EXPECT_EQ(woken.output, "\"woken\"");
  // Waking a finished one returns it unchanged.
  EXPECT_EQ(engine.wakeup_sleeping(s, "uid_1", TaskExecutionStatus::failed, "x").status,
            TaskExecutionStatus::completed);
  auto id2 = engine.enqueue(s, "uid_2", {});
  auto failed = engine.wakeup_sleeping(s, "uid_2", TaskExecutionStatus::failed, "nope");
  EXPECT_EQ(failed.status, TaskExecutionStatus::failed);
  EXPECT_FALSE(failed.error->is_retryable);
  EXPECT_THROW((void)engine.wakeup_sleeping(plain, "uid_1", TaskExecutionStatus::completed, "1"),
               DurableExecutionError);
  EXPECT_THROW((void)engine.wakeup_sleeping(s, "missing", TaskExecutionStatus::completed, "1"),
               DurableExecutionNotFoundError);
  EXPECT_THROW((void)engine.wakeup_sleeping(ss, "uid_1", TaskExecutionStatus::completed, "1"),
               DurableExecutionNotFoundError);  // belongs to another task
  EXPECT_THROW((void)engine.enqueue(s, "uid_1", {}), DurableExecutionError);  // duplicate
  EXPECT_THROW((void)engine.enqueue(s, "", {}), DurableExecutionError);
  auto id3 = engine.enqueue(ss, "uid_3", {});
  auto timed_out = wait_record(engine, "short_sleeper", id3);
  EXPECT_EQ(timed_out.status, TaskExecutionStatus::timed_out);
  (void)id2;
}

TEST_P(ExecutorEngine, SleepingChildSuppliesTheParentsOutput) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  TaskDefinition sleeper;
  sleeper.options = {.id = "webhook", .timeout = 10s};
  sleeper.is_sleeping_task = true;
  auto s = engine.register_task(std::move(sleeper));
  TaskDefinition parent;
  parent.options = {.id = "parent", .timeout = 2s};
  parent.is_parent = true;
  parent.run = [](TaskRunContext&, const std::string&) {
    return RunParentResult{"null", {ChildTask{"webhook", "hook_1", {}}}};
  };
  parent.finalize_function = [](const detail::ParentResultView& r) {
    return std::string{*r.children[0].output};
  };
  auto p = engine.register_task(std::move(parent));
  engine.start();
  auto id = engine.enqueue(p, "null", {});
  ASSERT_TRUE(wait_until([&] {
    return engine.get_execution("parent", id).status == TaskExecutionStatus::waiting_for_children;
  }));
  (void)engine.wakeup_sleeping(s, "hook_1", TaskExecutionStatus::completed, "42");
  auto rec = wait_record(engine, "parent", id);
  EXPECT_EQ(rec.status, TaskExecutionStatus::completed);
  EXPECT_EQ(rec.output, "42");
}

TEST_P(ExecutorEngine, CancellingAParentCancelsItsRunningChild) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  Gate started;
  std::atomic<bool> child_saw_cancel{false};
  TaskDefinition child;
  child.options = {.id = "child", .timeout = 10s};
  child.run = [&](TaskRunContext& ctx, const std::string&) {
    started.open();
    Gate never;
    (void)never.wait(ctx.stop_token(), 5s);
    child_saw_cancel = ctx.stop_reason() == StopReason::cancelled;
    return RunParentResult{"1", {}};
  };
  (void)engine.register_task(std::move(child));
  TaskDefinition parent;
  parent.options = {.id = "parent", .timeout = 2s};
  parent.is_parent = true;
  parent.run = [](TaskRunContext&, const std::string&) {
    return RunParentResult{"null", {ChildTask{"child", "null", {}}}};
  };
  auto p = engine.register_task(std::move(parent));
  engine.start();
  auto id = engine.enqueue(p, "null", {});
  ASSERT_TRUE(started.wait());
  engine.cancel(id);
  EXPECT_EQ(wait_record(engine, "parent", id).status, TaskExecutionStatus::cancelled);
  auto parent_rec = engine.get_execution("parent", id);
  ASSERT_TRUE(parent_rec.children && parent_rec.children->size() == 1);
  auto child_rec = wait_record(engine, "child", (*parent_rec.children)[0].execution_id);
  EXPECT_EQ(child_rec.status, TaskExecutionStatus::cancelled);
  ASSERT_TRUE(child_rec.error);
  EXPECT_NE(child_rec.error->message.find("Parent task parent with execution id"),
            std::string::npos);
  ASSERT_TRUE(wait_until([&] { return child_saw_cancel.load(); }));
}

TEST_P(ExecutorEngine, TooManyChildrenFails) {
  auto o = fast_options();
  o.max_children_per_task_execution = 2;
  detail::Engine engine{storage(), o, detail::Engine::Mode::executor};
  (void)engine.register_task(simple("child", [](const std::string& in) { return in; }));
  TaskDefinition parent;
  parent.options = {.id = "parent", .timeout = 2s};
  parent.is_parent = true;
  parent.run = [](TaskRunContext&, const std::string&) {
    RunParentResult r{"null", {}};
    for (int i = 0; i < 3; ++i) r.children.push_back(ChildTask{"child", "1", {}});
    return r;
  };
  auto p = engine.register_task(std::move(parent));
  engine.start();
  auto rec = wait_record(engine, "parent", engine.enqueue(p, "null", {}));
  EXPECT_EQ(rec.status, TaskExecutionStatus::failed);
  EXPECT_NE(rec.error->message.find("cannot spawn more than 2 children tasks. Attempted: 3"),
            std::string::npos);
}

/** A storage that fails the next N calls of chosen methods, then forwards. */
class FaultyStorage final : public ForwardingTaskExecutionsStorage {
 public:
  using ForwardingTaskExecutionsStorage::ForwardingTaskExecutionsStorage;
  std::atomic<int> fail_inserts{0};
  std::atomic<int> fail_reads{0};
  std::atomic<int> fail_updates{0};

  void insert_many(const std::vector<TaskExecutionRecord>& e) override {
    maybe_fail(fail_inserts);
    ForwardingTaskExecutionsStorage::insert_many(e);
  }
  std::vector<std::optional<TaskExecutionRecord>> get_many_by_id(
      const std::vector<GetByIdRequest>& r) override {
    maybe_fail(fail_reads);
    return ForwardingTaskExecutionsStorage::get_many_by_id(r);
  }
  void update_many_by_id(const std::vector<UpdateByIdRequest>& r) override {
    maybe_fail(fail_updates);
    ForwardingTaskExecutionsStorage::update_many_by_id(r);
  }
  void update_many_by_id_and_insert_children_if_updated(
      const std::vector<UpdateByIdAndInsertChildrenRequest>& r) override {
    maybe_fail(fail_updates);
    ForwardingTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(r);
  }

 private:
  static void maybe_fail(std::atomic<int>& counter) {
    int n = counter.load();
    while (n > 0) {
      if (counter.compare_exchange_weak(n, n - 1)) throw std::runtime_error("injected fault");
    }
  }
};

TEST_P(ExecutorEngine, StoreFaultsPropagateToCallersAndNeverWedgeExecutions) {
  FaultyStorage faulty{GetParam().make()};
  auto o = fast_options();
  std::mutex log_mutex;
  std::vector<std::string> errors;
  o.log_sink = [&](LogLevel level, std::string_view msg) {  // the injected faults are logged
    std::lock_guard lock(log_mutex);
    if (level == LogLevel::error) errors.emplace_back(msg);
  };
  DurableExecutor executor{faulty, o};
  auto t = executor.task({.id = "t", .timeout = 1s}, [](const int& x) { return x; });
  executor.start();
  // Insert and read faults reach the caller after the retry budget (1 retry), and the next
  // call works.
  faulty.fail_inserts = 2;
  EXPECT_THROW((void)executor.enqueue_task(t, 1), std::exception);
  auto h = executor.enqueue_task(t, 2);
  faulty.fail_reads = 2;
  EXPECT_THROW((void)h.get_execution(), std::exception);
  EXPECT_EQ(h.wait_and_get_finished_execution(bounded_wait()).output, 2);
  // One failure is absorbed by the retry wrapper.
  faulty.fail_inserts = 1;
  auto h2 = executor.enqueue_task(t, 3);
  // Update faults: the result write is retried (one retry layer: the storage caller's, 5
  // retries for result writes); the execution still completes.
  EXPECT_EQ(h2.wait_and_get_finished_execution(bounded_wait()).output, 3);
  const auto writes_before = executor.stats().storage_calls["update_many_by_id"].count;
  faulty.fail_updates = 3;
  auto h3 = executor.enqueue_task(t, 4);
  EXPECT_EQ(h3.wait_and_get_finished_execution(bounded_wait()).output, 4);
  EXPECT_GE(executor.stats().storage_calls["update_many_by_id"].count - writes_before, 4);
  // A write that fails past its retries is logged; the execution keeps its lease.
  faulty.fail_updates = 100;
  auto h4 = executor.enqueue_task(t, 5);
  EXPECT_TRUE(wait_until([&] {
    std::lock_guard lock(log_mutex);
    return std::any_of(errors.begin(), errors.end(), [](const std::string& m) {
      return m.find("Error in complete") != std::string::npos;
    });
  }));
  EXPECT_EQ(h4.get_execution().status, TaskExecutionStatus::running);
  faulty.fail_updates = 0;
  executor.shutdown();
}

/** Records, per execution id, the defer_durability flag of every by-id write it gets. */
class DurabilityRecorder : public ForwardingTaskExecutionsStorage {
 public:
  using ForwardingTaskExecutionsStorage::ForwardingTaskExecutionsStorage;
  void update_many_by_id(const std::vector<UpdateByIdRequest>& requests) override {
    record(requests);
    ForwardingTaskExecutionsStorage::update_many_by_id(requests);
  }
  void update_many_by_id_and_insert_children_if_updated(
      const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) override {
    record(requests);
    ForwardingTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(requests);
  }
  std::vector<bool> flags(const std::string& id) {
    std::lock_guard lock(mutex_);
    return flags_[id];
  }

 private:
  template <class Req>
  void record(const std::vector<Req>& requests) {
    std::lock_guard lock(mutex_);
    for (const auto& r : requests) flags_[r.execution_id].push_back(r.defer_durability);
  }
  std::mutex mutex_;
  std::map<std::string, std::vector<bool>> flags_;
};

TEST_P(ExecutorEngine, RunResultsDeferTheirDurabilityAndCallersWritesDoNot) {
  DurabilityRecorder recorder{storage()};
  detail::Engine engine{recorder, fast_options(), detail::Engine::Mode::executor};
  auto leaf = engine.register_task(simple("leaf", [](const std::string& in) { return in; }));
  TaskDefinition parent;
  parent.options = {.id = "parent", .timeout = 2s};
  parent.is_parent = true;
  parent.run = [](TaskRunContext&, const std::string&) {
    return RunParentResult{"1", {ChildTask{"leaf", "2", {}}}};
  };
  auto p = engine.register_task(std::move(parent));
  TaskDefinition sleeper;
  sleeper.options = {.id = "sleeper", .timeout = 10s};
  sleeper.is_sleeping_task = true;
  auto s = engine.register_task(std::move(sleeper));
  engine.start();

  // Results of runs (a parent's with its children, a child's): written by the engine, which
  // re-runs them if a store crash loses them.
  const auto parent_id = engine.enqueue(p, "0", {});
  const auto parent_record = wait_record(engine, "parent", parent_id);
  ASSERT_EQ(parent_record.status, TaskExecutionStatus::completed);
  ASSERT_TRUE(parent_record.children.has_value());
  const auto child_id = parent_record.children->at(0).execution_id;
  EXPECT_EQ(recorder.flags(parent_id).front(), true);  // its run's result, with its children
  EXPECT_EQ(recorder.flags(child_id).front(), true);

  // A caller's writes are acknowledged to the caller: durable (and so are the background
  // steps' writes that close these executions afterwards).
  const auto all_durable = [](const std::vector<bool>& flags) {
    return !flags.empty() && std::none_of(flags.begin(), flags.end(), [](bool f) { return f; });
  };
  (void)engine.enqueue(s, "uid", {});
  const auto woken = engine.wakeup_sleeping(s, "uid", TaskExecutionStatus::completed, "1");
  EXPECT_TRUE(all_durable(recorder.flags(woken.execution_id)));
  const auto later = engine.enqueue(leaf, "3", {.sleep_before_run = 1h});
  engine.cancel(later);
  EXPECT_EQ(engine.get_execution("leaf", later).status, TaskExecutionStatus::cancelled);
  EXPECT_TRUE(all_durable(recorder.flags(later)));
  engine.shutdown();
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorEngine, ::testing::ValuesIn(all_storage_factories()),
                         factory_name);

}  // namespace
}  // namespace durable_execution::testing
