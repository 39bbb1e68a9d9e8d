// Deferred durability on PostgreSQL (storage.hpp): a write that defers its durability returns
// before it is durable, every other write and every read of a finished execution waits until
// what it wrote or saw is. Shown on a private server whose synchronous standby never answers
// (synchronous_standby_names names one that does not exist): a commit that waits for durability
// then waits for ever, one that does not returns at once. The standby is named only after the
// storage has set its table up; clearing the name at the end releases every waiting commit.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "disrupted_workload.hpp"
#include "durable_execution/postgres/postgres_storage.hpp"
#include "local_server.hpp"
#include "postgres_support.hpp"

namespace {

namespace de = durable_execution;
using namespace std::chrono_literals;
using de::testing::LocalPostgresServer;

class PostgresDeferredDurability : public ::testing::Test {
 protected:
  void SetUp() override {
    DE_SKIP_WITHOUT_SERVER_BINARIES();
    server_.emplace();
    storage_.emplace(server_->url(), de::PostgresStorageOptions{.pool_size = 8});
    insert(finished_, true);
    insert(unfinished_);
    insert(target_);
    set_standby("absent_standby");
  }

  void TearDown() override {
    if (!server_) return;
    set_standby("");  // releases the commits still waiting
    for (auto& f : pending_) f.wait();
  }

  /**
   * Names the synchronous standby (reloaded; no session needs to reconnect). A name takes effect
   * when the server's checkpointer has read it: waits until a durable commit waits for it.
   */
  void set_standby(const std::string& name) {
    (void)de::testing::postgres_query(
        server_->url(), "ALTER SYSTEM SET synchronous_standby_names = '" + name + "'");
    (void)de::testing::postgres_query(server_->url(), "SELECT pg_reload_conf()");
    if (name.empty()) {
      std::this_thread::sleep_for(200ms);  // backends read the change at their next command
      return;
    }
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (!returns_within(200ms, [&] {
            (void)de::testing::postgres_query(server_->url(),
                                              "SELECT pg_logical_emit_message(true, 'probe', '')");
          })) {
        return;
      }
    }
    FAIL() << "synchronous_standby_names never took effect";
  }

  /** Inserts a running execution (`finished`: a completed one) into `r`. */
  void insert(de::TaskExecutionRecord& r, bool finished = false) {
    const de::Timestamp t{std::chrono::milliseconds{1'000}};
    r = de::make_task_execution_record(t, {.task_id = "t",
                                           .execution_id = "te_" + std::to_string(next_id_++),
                                           .timeout = 1s,
                                           .input = "in"});
    r.status = finished ? de::TaskExecutionStatus::completed : de::TaskExecutionStatus::running;
    if (finished) {
      r.is_finished = true;
      r.output = "done";
      r.finished_at = t;
    } else {
      r.executor_id = "executor";
      r.started_at = t;
      r.expires_at = t + 1s;
    }
    storage_->insert_many({r});
  }

  /** Runs `call` on its own thread; true if it returned within `limit`. */
  template <class F>
  bool returns_within(std::chrono::milliseconds limit, F call) {
    auto f = std::async(std::launch::async, std::move(call));
    const bool returned = f.wait_for(limit) == std::future_status::ready;
    if (returned) {
      f.get();
    } else {
      pending_.push_back(std::move(f));
    }
    return returned;
  }

  de::UpdateByIdRequest complete(const de::TaskExecutionRecord& r, bool defer) const {
    const auto t = r.updated_at + 5ms;
    return {.execution_id = r.execution_id,
            .filters = {.status = de::TaskExecutionStatus::running},
            .update = de::normalize_update(
                t, {.status = de::TaskExecutionStatus::completed, .output = std::string{"out"}}),
            .defer_durability = defer};
  }

  std::optional<LocalPostgresServer> server_;
  std::optional<de::PostgresTaskExecutionsStorage> storage_;
  de::TaskExecutionRecord finished_;
  de::TaskExecutionRecord unfinished_;
  de::TaskExecutionRecord target_;
  std::vector<std::future<void>> pending_;
  int next_id_ = 0;
};

TEST_F(PostgresDeferredDurability, ADeferredWriteReturnsBeforeItIsDurableAndADurableOneDoesNot) {
  EXPECT_TRUE(returns_within(5s, [&] { storage_->update_many_by_id({complete(target_, true)}); }));
  // The same write without the flag waits for the standby.
  EXPECT_FALSE(
      returns_within(1s, [&] { storage_->update_many_by_id({complete(unfinished_, false)}); }));
}

TEST_F(PostgresDeferredDurability, WithDeferRunResultsOffEveryWriteIsDurable) {
  de::PostgresTaskExecutionsStorage strict{
      server_->url(), de::PostgresStorageOptions{.pool_size = 2, .defer_run_results = false}};
  EXPECT_FALSE(returns_within(1s, [&] { strict.update_many_by_id({complete(target_, true)}); }));
  EXPECT_FALSE(returns_within(1s, [&] {
    strict.update_many_by_id_and_insert_children_if_updated(
        {{.execution_id = unfinished_.execution_id,
          .filters = {.status = de::TaskExecutionStatus::running},
          .update = complete(unfinished_, true).update,
          .defer_durability = true}});
  }));
  set_standby("");  // `strict` must not be destroyed with its commits still waiting
  for (auto& f : pending_) f.wait();
}

TEST_F(PostgresDeferredDurability, OneDurableRequestMakesTheWholeCallDurable) {
  EXPECT_FALSE(returns_within(1s, [&] {
    storage_->update_many_by_id({complete(target_, true), complete(unfinished_, false)});
  }));
}

TEST_F(PostgresDeferredDurability, AReadOfAFinishedExecutionWaitsUntilItIsDurable) {
  // Unfinished rows are returned at once; a finished one only once the view is durable.
  EXPECT_TRUE(returns_within(5s, [&] {
    EXPECT_TRUE(storage_->get_many_by_id({{unfinished_.execution_id}}).at(0).has_value());
  }));
  EXPECT_FALSE(
      returns_within(1s, [&] { (void)storage_->get_many_by_id({{finished_.execution_id}}); }));
  // One finished row among others is enough.
  EXPECT_FALSE(returns_within(1s, [&] {
    (void)storage_->get_many_by_id({{unfinished_.execution_id}, {finished_.execution_id}});
  }));
}

TEST_F(PostgresDeferredDurability, AReadOnAServerWithNothingToFlushWritesNothing) {
  set_standby("");
  const auto insert_lsn = [&] {
    return de::testing::postgres_query(server_->url(), "SELECT pg_current_wal_insert_lsn()")[0][0];
  };
  // With every record flushed, the read adds no WAL. A background record (the server logs one
  // now and then) can land in between: a few tries tell it from a read that always writes.
  bool quiet = false;
  for (int attempt = 0; attempt < 5 && !quiet; ++attempt) {
    std::this_thread::sleep_for(300ms);  // the WAL writer flushes what is left
    const auto before = insert_lsn();
    EXPECT_TRUE(storage_->get_many_by_id({{finished_.execution_id}}).at(0).has_value());
    quiet = insert_lsn() == before;
  }
  EXPECT_TRUE(quiet);
}

TEST_F(PostgresDeferredDurability, ClaimsAreDurable) {
  de::UpdateByStatusAndStartAtLessThanRequest claim;
  claim.status = de::TaskExecutionStatus::ready;
  claim.start_at_less_than = de::Timestamp{std::chrono::milliseconds{10'000}};
  claim.update =
      de::normalize_update(de::Timestamp{std::chrono::milliseconds{2'000}},
                           {.executor_id = "executor", .status = de::TaskExecutionStatus::running});
  claim.update_expires_at_with_started_at = de::Timestamp{std::chrono::milliseconds{2'000}};
  claim.limit = 10;
  // Put a row back to ready with a deferred write (returns), then claim it (waits).
  auto back = complete(target_, true);
  back.update =
      de::normalize_update(target_.updated_at + 5ms, {.status = de::TaskExecutionStatus::ready});
  EXPECT_TRUE(returns_within(5s, [&] { storage_->update_many_by_id({back}); }));
  EXPECT_FALSE(returns_within(
      1s, [&] { (void)storage_->update_by_status_and_start_at_less_than_and_return(claim); }));
}

}  // namespace
