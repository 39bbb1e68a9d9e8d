// No poison (issue 10, items 1, 2, 3 and 13): a write the storage rejects for good, a children
// step that can never succeed, a sleeping step of a sequential chain and invalid child overrides
// end their own execution with a clear error; nothing else waits on them.

#include <set>

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using detail::RunParentResult;
using detail::TaskDefinition;
using nlohmann::json;

using ExecutorPoison = ExecutorTest;

TaskDefinition simple(const std::string& id, std::function<std::string(const std::string&)> f) {
  TaskDefinition d;
  d.options = {.id = id, .timeout = 5s};
  d.run = [f = std::move(f)](TaskRunContext&, const std::string& in) {
    return RunParentResult{f(in), {}};
  };
  return d;
}

TaskDefinition sleeping(const std::string& id) {
  TaskDefinition d;
  d.options = {.id = id, .timeout = 30s};
  d.is_sleeping_task = true;
  return d;
}

/** A task that echoes its input once `gate` opens (so that runs finish together). */
TaskDefinition gated_echo(const std::string& id, Gate& gate) {
  TaskDefinition d = simple(id, [](const std::string& in) { return in; });
  d.run = [&gate](TaskRunContext& ctx, const std::string& in) {
    (void)gate.wait(ctx.stop_token());
    return RunParentResult{in, {}};
  };
  return d;
}

/** A parent whose run declares `children(input)`. */
TaskDefinition parent_of(const std::string& id,
                         std::function<std::vector<ChildTask>(const std::string&)> children) {
  TaskDefinition d;
  d.options = {.id = id, .timeout = 5s};
  d.is_parent = true;
  d.run = [children = std::move(children)](TaskRunContext&, const std::string& in) {
    return RunParentResult{"null", children(in)};
  };
  return d;
}

/** Every wait here is short: the old engine left these executions unfinished for minutes. */
TaskExecutionRecord finished(detail::Engine& engine, const std::string& task,
                             const std::string& id) {
  return engine.wait_finished(task, id, bounded_wait(8s));
}

bool contains(const std::optional<StoredError>& error, const std::string& text) {
  return error && error->message.find(text) != std::string::npos;
}

std::string message_of(const TaskExecutionRecord& r) {
  return r.error ? r.error->message : std::string{"(no error)"};
}

std::optional<TaskExecutionRecord> by_unique_id(TaskExecutionsStorage& s, const std::string& id) {
  return s.get_many_by_sleeping_task_unique_id({GetBySleepingTaskUniqueIdRequest{id}}).front();
}

// ---- item 1: a write the storage rejects for good -------------------------------------------

TEST_P(ExecutorPoison, ASleepingChildWhoseUniqueIdIsTakenFailsOnlyItsParent) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  auto hook = engine.register_task(sleeping("hook"));
  (void)engine.register_task(simple("echo", [](const std::string& in) { return in; }));
  auto p = engine.register_task(parent_of("parent", [](const std::string& in) {
    return std::vector<ChildTask>{ChildTask{"hook", json::parse(in).get<std::string>(), {}}};
  }));
  auto plain = engine.register_task(parent_of("plain", [](const std::string&) {
    return std::vector<ChildTask>{ChildTask{"echo", "1", {}}};
  }));
  (void)engine.enqueue(hook, "taken", {});
  engine.start();
  // Runs that finish together are written together: the bad one among good ones.
  std::vector<std::string> good;
  for (int i = 0; i < 10; ++i) good.push_back(engine.enqueue(plain, "null", {}));
  const auto bad = engine.enqueue(p, R"("taken")", {});
  const auto bad_rec = finished(engine, "parent", bad);
  EXPECT_EQ(bad_rec.status, TaskExecutionStatus::failed);
  EXPECT_TRUE(contains(bad_rec.error, "unique id")) << message_of(bad_rec);
  EXPECT_TRUE(bad_rec.error && !bad_rec.error->is_retryable);
  for (const auto& id : good) {
    EXPECT_EQ(finished(engine, "plain", id).status, TaskExecutionStatus::completed);
  }
  // The sleeping execution that owns the id is untouched, and a good parent still gets it.
  auto owner = by_unique_id(storage(), "taken");
  ASSERT_TRUE(owner);
  EXPECT_FALSE(owner->parent);
  const auto ok = engine.enqueue(p, R"("free")", {});
  ASSERT_TRUE(wait_until([&] { return by_unique_id(storage(), "free").has_value(); }));
  (void)engine.wakeup_sleeping(hook, "free", TaskExecutionStatus::completed, "7");
  EXPECT_EQ(finished(engine, "parent", ok).status, TaskExecutionStatus::completed);
}

TEST_P(ExecutorPoison, OneRejectedRequestOfABatchDoesNotHoldBackTheOthers) {
  FaultInjectingTaskExecutionsStorage faulty{storage()};
  detail::Engine engine{faulty, fast_options(), detail::Engine::Mode::executor};
  (void)engine.register_task(simple("echo", [](const std::string& in) { return in; }));
  Gate gate;
  TaskDefinition gated = parent_of("parent", [](const std::string&) {
    return std::vector<ChildTask>{ChildTask{"echo", "1", {}}};
  });
  gated.run = [&gate](TaskRunContext& ctx, const std::string&) {
    (void)gate.wait(ctx.stop_token());
    return RunParentResult{"null", {ChildTask{"echo", "1", {}}}};
  };
  auto p = engine.register_task(std::move(gated));
  engine.start();
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(engine.enqueue(p, "null", {}));
  const std::string bad = ids[7];
  // The storage rejects (for good) every children insert of `bad`, and with it the whole call.
  faulty.fail_requests([bad](StorageOperation op, const std::string& id) {
    return op == StorageOperation::update_many_by_id_and_insert_children_if_updated && id == bad;
  });
  ASSERT_TRUE(wait_until([&] { return engine.running_execution_ids().size() == ids.size(); }));
  gate.open();
  const auto rec = finished(engine, "parent", bad);
  EXPECT_EQ(rec.status, TaskExecutionStatus::failed);
  EXPECT_TRUE(contains(rec.error, "Injected fault")) << message_of(rec);
  for (const auto& id : ids) {
    if (id != bad) {
      EXPECT_EQ(finished(engine, "parent", id).status, TaskExecutionStatus::completed);
    }
  }
  EXPECT_GE(faulty.injected_failures(), 1);
}

TEST_P(ExecutorPoison, AParentWhoseChildrenCannotBeReadFailsAloneInItsBatch) {
  FaultInjectingTaskExecutionsStorage faulty{storage()};
  detail::Engine engine{faulty, fast_options(), detail::Engine::Mode::executor};
  Gate gate;
  (void)engine.register_task(gated_echo("wait", gate));
  auto p = engine.register_task(parent_of("parent", [](const std::string&) {
    return std::vector<ChildTask>{ChildTask{"wait", "1", {}}};
  }));
  engine.start();
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(engine.enqueue(p, "null", {}));
  const std::string bad = ids[4];
  // A read of `bad`'s children is rejected for good (as a damaged row would make it).
  faulty.fail_requests([bad](StorageOperation op, const std::string& id) {
    return op == StorageOperation::get_many_by_parent_execution_id && id == bad;
  });
  gate.open();  // the children finish together: their parents are processed in one batch
  const auto rec = finished(engine, "parent", bad);
  EXPECT_EQ(rec.status, TaskExecutionStatus::failed);
  EXPECT_TRUE(contains(rec.error, "Children of parent task parent cannot be read: Injected fault"))
      << message_of(rec);
  for (const auto& id : ids) {
    if (id != bad) {
      EXPECT_EQ(finished(engine, "parent", id).status, TaskExecutionStatus::completed);
    }
  }
}

TEST_P(ExecutorPoison, TransientWriteFailuresAreRetriedAndWritten) {
  FaultInjectingTaskExecutionsStorage faulty{storage()};
  detail::Engine engine{faulty, fast_options(), detail::Engine::Mode::executor};
  auto echo = engine.register_task(simple("echo", [](const std::string& in) { return in; }));
  auto p = engine.register_task(parent_of("parent", [](const std::string&) {
    return std::vector<ChildTask>{ChildTask{"echo", "1", {}}, ChildTask{"echo", "2", {}}};
  }));
  engine.start();
  // 5 failed calls: more than the storage retries (1), fewer than the write's back-off rounds.
  faulty.fail_next(StorageOperation::update_many_by_id, 5);
  faulty.fail_next(StorageOperation::update_many_by_id_and_insert_children_if_updated, 5);
  faulty.fail_next(StorageOperation::get_many_by_parent_execution_id, 5);
  const auto a = engine.enqueue(echo, "3", {});
  const auto b = engine.enqueue(p, "null", {});
  EXPECT_EQ(finished(engine, "echo", a).status, TaskExecutionStatus::completed);
  EXPECT_EQ(finished(engine, "parent", b).status, TaskExecutionStatus::completed);
  EXPECT_GE(faulty.injected_failures(), 10);
}

TEST_P(ExecutorPoison, ACloseTheStorageRejectsDoesNotHoldBackTheOtherCloses) {
  FaultInjectingTaskExecutionsStorage faulty{storage()};
  detail::Engine engine{faulty, fast_options(), detail::Engine::Mode::executor};
  Gate gate;
  (void)engine.register_task(gated_echo("wait", gate));
  // Parents that end finalize_failed with children: they take the mark and close path.
  auto def = parent_of("parent", [](const std::string&) {
    return std::vector<ChildTask>{ChildTask{"wait", "1", {}}};
  });
  def.finalize_function = [](const detail::ParentResultView&) -> std::string {
    throw DurableExecutionError::non_retryable("finalize says no");
  };
  auto p = engine.register_task(std::move(def));
  engine.start();
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(engine.enqueue(p, "null", {}));
  const std::string bad = ids[3];
  // Once `bad` is finished, the storage rejects every update of it: its close is refused.
  auto& inner = storage();
  faulty.fail_requests([bad, &inner](StorageOperation op, const std::string& id) {
    if (op != StorageOperation::update_many_by_id || id != bad) return false;
    const auto rec = inner.get_many_by_id({GetByIdRequest{id, {}}}).front();
    return rec && rec->is_finished;
  });
  gate.open();
  const auto closed = [&](const std::string& id) {
    const auto rec = inner.get_many_by_id({GetByIdRequest{id, {}}}).front();
    return rec && rec->close_status == CloseStatus::closed;
  };
  for (const auto& id : ids) {
    if (id == bad) continue;
    EXPECT_TRUE(wait_until([&] { return closed(id); }, 8s)) << id;
  }
  EXPECT_EQ(finished(engine, "parent", bad).status, TaskExecutionStatus::finalize_failed);
  EXPECT_FALSE(closed(bad));
}

// ---- item 3 (and 1): sleeping steps of sequential chains --------------------------------------

TEST_P(ExecutorPoison, ASleepingStepOfASequentialChainUsesThePreviousOutputAsItsUniqueId) {
  DurableExecutor executor{storage(), fast_options()};
  auto make_id = executor.task({.id = "make_id", .timeout = 5s},
                               [](const int& n) { return "order_" + std::to_string(n); });
  auto webhook = executor.sleeping_task<std::string>({.id = "webhook", .timeout = 30s});
  auto shout =
      executor.task({.id = "shout", .timeout = 5s}, [](const std::string& s) { return s + "!"; });
  auto chain = executor.sequential_tasks("chain", make_id, webhook, shout);
  executor.start();
  auto h1 = executor.enqueue_task(chain, 1);
  auto h2 = executor.enqueue_task(chain, 2);
  ASSERT_TRUE(wait_until([&] {
    return by_unique_id(storage(), "order_1").has_value() &&
           by_unique_id(storage(), "order_2").has_value();
  }));
  const auto step = by_unique_id(storage(), "order_1");
  EXPECT_EQ(step->input, "null");  // exactly as if enqueued with the id
  ASSERT_TRUE(step->parent);
  EXPECT_EQ(step->parent->index_in_parent_children, 1);
  (void)executor.wakeup_sleeping_task_execution(webhook, "order_1", "paid");
  (void)executor.wakeup_sleeping_task_execution(webhook, "order_2", "declined");
  const auto r1 = h1.wait_and_get_finished_execution(bounded_wait(8s));
  const auto r2 = h2.wait_and_get_finished_execution(bounded_wait(8s));
  ASSERT_EQ(r1.status, TaskExecutionStatus::completed);
  EXPECT_EQ(r1.output, "paid!");
  EXPECT_EQ(r2.output, "declined!");
}

TEST_P(ExecutorPoison, ChainsWhoseSleepingStepsCollideDoNotStallTheOthers) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  (void)engine.register_task(simple("name", [](const std::string& in) {
    return json("id_" + json::parse(in).get<std::string>()).dump();
  }));
  auto hook = engine.register_task(sleeping("hook"));
  auto chain = engine.register_sequential_task("chain", {"name", "hook"});
  // 10 chains whose sleeping step gets an id already taken, enqueued among 50 unrelated ones.
  for (int i = 0; i < 10; ++i) (void)engine.enqueue(hook, "id_dup" + std::to_string(i), {});
  std::vector<std::pair<std::string, std::string>> good;  // execution id, unique id
  std::vector<std::string> colliding;
  for (int i = 0; i < 60; ++i) {
    const bool bad = i % 6 == 0;
    const auto key = bad ? "dup" + std::to_string(i / 6) : "ok" + std::to_string(i);
    const auto id = engine.enqueue(chain, json(key).dump(), {});
    if (bad) {
      colliding.push_back(id);
    } else {
      good.emplace_back(id, "id_" + key);
    }
  }
  engine.start();
  for (const auto& id : colliding) {
    const auto rec = finished(engine, "chain", id);
    EXPECT_EQ(rec.status, TaskExecutionStatus::failed);
    EXPECT_TRUE(contains(rec.error, "unique id")) << message_of(rec);
  }
  for (const auto& [id, unique_id] : good) {
    ASSERT_TRUE(wait_until([&] { return by_unique_id(storage(), unique_id).has_value(); }, 8s))
        << unique_id;
    (void)engine.wakeup_sleeping(hook, unique_id, TaskExecutionStatus::completed, "1");
  }
  for (const auto& [id, unique_id] : good) {
    EXPECT_EQ(finished(engine, "chain", id).status, TaskExecutionStatus::completed);
  }
}

TEST_P(ExecutorPoison, ASleepingStepAfterANonStringOutputFailsTheChain) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  (void)engine.register_task(simple("number", [](const std::string&) { return "42"; }));
  (void)engine.register_task(sleeping("hook"));
  auto chain = engine.register_sequential_task("chain", {"number", "hook"});
  engine.start();
  const auto rec = finished(engine, "chain", engine.enqueue(chain, "null", {}));
  EXPECT_EQ(rec.status, TaskExecutionStatus::failed);
  EXPECT_TRUE(contains(rec.error, "must be a unique id string, got 42")) << message_of(rec);
}

// ---- item 2: children steps that can never succeed -------------------------------------------

TEST_P(ExecutorPoison, ChildrenResultsOverTheOutputLimitFailTheParent) {
  auto o = fast_options();
  o.max_serialized_output_data_size = 1024;
  detail::Engine engine{storage(), o, detail::Engine::Mode::executor};
  (void)engine.register_task(
      simple("big", [](const std::string&) { return json(std::string(600, 'x')).dump(); }));
  auto p = engine.register_task(parent_of("parent", [](const std::string&) {
    return std::vector<ChildTask>{ChildTask{"big", "1", {}}, ChildTask{"big", "2", {}}};
  }));
  engine.start();
  const auto rec = finished(engine, "parent", engine.enqueue(p, "null", {}));
  EXPECT_EQ(rec.status, TaskExecutionStatus::failed);
  EXPECT_TRUE(contains(rec.error, "2 children's results")) << message_of(rec);
  EXPECT_TRUE(contains(rec.error, "over the output limit of 1024 bytes")) << message_of(rec);
  EXPECT_TRUE(rec.error && !rec.error->is_retryable);
}

TEST_P(ExecutorPoison, AThousandChildrenOfAKilobyteEachFailTheParentAtTheDefaultLimit) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  (void)engine.register_task(
      simple("big", [](const std::string&) { return json(std::string(1100, 'x')).dump(); }));
  auto p = engine.register_task(parent_of("parent", [](const std::string&) {
    return std::vector<ChildTask>(1000, ChildTask{"big", "1", {}});
  }));
  engine.start();
  const auto rec = engine.wait_finished("parent", engine.enqueue(p, "null", {}), bounded_wait(30s));
  EXPECT_EQ(rec.status, TaskExecutionStatus::failed);
  EXPECT_TRUE(contains(rec.error, "1000 children's results")) << message_of(rec);
  EXPECT_TRUE(contains(rec.error, "over the output limit of 1048576 bytes")) << message_of(rec);
}

TEST_P(ExecutorPoison, AFinalizeInputOverTheInputLimitFailsTheParent) {
  auto o = fast_options();
  o.max_serialized_input_data_size = 1024;
  detail::Engine engine{storage(), o, detail::Engine::Mode::executor};
  (void)engine.register_task(
      simple("big", [](const std::string&) { return json(std::string(600, 'x')).dump(); }));
  (void)engine.register_task(simple("fin", [](const std::string&) { return "1"; }));
  auto def = parent_of("parent", [](const std::string&) {
    return std::vector<ChildTask>{ChildTask{"big", "1", {}}, ChildTask{"big", "2", {}}};
  });
  def.finalize_task_id = "fin";
  auto p = engine.register_task(std::move(def));
  engine.start();
  const auto rec = finished(engine, "parent", engine.enqueue(p, "null", {}));
  EXPECT_EQ(rec.status, TaskExecutionStatus::failed);
  EXPECT_TRUE(contains(rec.error, "Input of finalize task fin")) << message_of(rec);
  EXPECT_TRUE(contains(rec.error, "over the input limit of 1024 bytes")) << message_of(rec);
}

TEST_P(ExecutorPoison, AFinalizeFunctionOutputOverTheLimitIsTheFinalizesFault) {
  auto o = fast_options();
  o.max_serialized_output_data_size = 1024;
  detail::Engine engine{storage(), o, detail::Engine::Mode::executor};
  (void)engine.register_task(simple("echo", [](const std::string& in) { return in; }));
  auto def = parent_of("parent", [](const std::string&) {
    return std::vector<ChildTask>{ChildTask{"echo", "1", {}}};
  });
  def.finalize_function = [](const detail::ParentResultView&) {
    return json(std::string(2000, 'y')).dump();
  };
  auto p = engine.register_task(std::move(def));
  engine.start();
  const auto rec = finished(engine, "parent", engine.enqueue(p, "null", {}));
  EXPECT_EQ(rec.status, TaskExecutionStatus::finalize_failed);
  EXPECT_TRUE(contains(rec.error,
                       "Output of the finalize function of parent task parent is 2002 "
                       "bytes, over the output limit of 1024 bytes"))
      << message_of(rec);
}

TEST_P(ExecutorPoison, AChildOutputThatCannotBeDecodedFailsTheParent) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  auto hook = engine.register_task(sleeping("hook"));
  (void)engine.register_task(simple("echo", [](const std::string& in) { return in; }));
  auto p = engine.register_task(parent_of("parent", [](const std::string&) {
    return std::vector<ChildTask>{ChildTask{"echo", "1", {}}, ChildTask{"hook", "h1", {}}};
  }));
  engine.start();
  const auto id = engine.enqueue(p, "null", {});
  ASSERT_TRUE(wait_until([&] { return by_unique_id(storage(), "h1").has_value(); }));
  // The untyped engine (another program, in effect) stores text that is not JSON.
  (void)engine.wakeup_sleeping(hook, "h1", TaskExecutionStatus::completed, "{not json");
  const auto rec = finished(engine, "parent", id);
  EXPECT_EQ(rec.status, TaskExecutionStatus::failed);
  EXPECT_TRUE(contains(rec.error, "Output of child 1 (task hook")) << message_of(rec);
  EXPECT_TRUE(contains(rec.error, "cannot be decoded: it is not JSON (9 bytes: {not json)"))
      << message_of(rec);
}

TEST_P(ExecutorPoison, AChildErrorThatIsNotUtf8DoesNotStallItsParent) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  auto hook = engine.register_task(sleeping("hook"));
  auto p = engine.register_task(parent_of("parent", [](const std::string&) {
    return std::vector<ChildTask>{ChildTask{"hook", "h1", {}}};
  }));
  engine.start();
  const auto id = engine.enqueue(p, "null", {});
  ASSERT_TRUE(wait_until([&] { return by_unique_id(storage(), "h1").has_value(); }));
  try {
    (void)engine.wakeup_sleeping(hook, "h1", TaskExecutionStatus::failed, "bad \xff\xfe message");
  } catch (const DurableExecutionError&) {
    GTEST_SKIP() << "this storage refuses a message that is not UTF-8";
  }
  const auto rec = finished(engine, "parent", id);
  ASSERT_EQ(rec.status, TaskExecutionStatus::completed);  // all settled, the message replaced
  EXPECT_EQ(json::parse(*rec.output)["children"][0]["status"], "failed");
}

// ---- item 13: children's overrides are validated like enqueue_task's --------------------------

TEST_P(ExecutorPoison, InvalidChildOverridesFailTheParentLikeAnInvalidEnqueue) {
  detail::Engine engine{storage(), fast_options(), detail::Engine::Mode::executor};
  auto echo = engine.register_task(simple("echo", [](const std::string& in) { return in; }));
  auto with = [&](const std::string& id, EnqueueOptions o) {
    return engine.register_task(parent_of(id, [o](const std::string&) {
      return std::vector<ChildTask>{ChildTask{"echo", "1", o}};
    }));
  };
  auto many = with("many_retries", {.retry = RetryOptions{.max_attempts = 500}});
  auto negative = with("negative_timeout", {.timeout = std::chrono::milliseconds{-5}});
  auto sleep = with("negative_sleep", {.sleep_before_run = std::chrono::milliseconds{-1}});
  engine.start();
  const std::vector<std::pair<std::string, std::string>> cases{
      {"many_retries", "max_attempts must be between 0 and 100 (got 500)"},
      {"negative_timeout", "Invalid timeout value for task echo: must be at least 1 ms (got -5)"},
      {"negative_sleep", "Invalid sleep ms before run for task echo"}};
  const std::vector<std::string> ids{engine.enqueue(many, "null", {}),
                                     engine.enqueue(negative, "null", {}),
                                     engine.enqueue(sleep, "null", {})};
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto rec = finished(engine, cases[i].first, ids[i]);
    EXPECT_EQ(rec.status, TaskExecutionStatus::failed) << cases[i].first;
    EXPECT_TRUE(contains(rec.error, cases[i].second)) << message_of(rec);
    // The same rule as an enqueue with those overrides.
    const EnqueueOptions o =
        i == 0   ? EnqueueOptions{.retry = RetryOptions{.max_attempts = 500}}
        : i == 1 ? EnqueueOptions{.timeout = std::chrono::milliseconds{-5}}
                 : EnqueueOptions{.sleep_before_run = std::chrono::milliseconds{-1}};
    try {
      (void)engine.enqueue(echo, "1", o);
      ADD_FAILURE() << "enqueue accepted " << cases[i].first;
    } catch (const DurableExecutionError& e) {
      EXPECT_NE(std::string{e.what()}.find(cases[i].second), std::string::npos) << e.what();
    }
  }
  // No child was stored for any of them.
  for (const auto& id : ids) {
    EXPECT_TRUE(storage().get_many_by_parent_execution_id({{id}}).front().empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorPoison, ::testing::ValuesIn(all_storage_factories()),
                         factory_name);

}  // namespace
}  // namespace durable_execution::testing
