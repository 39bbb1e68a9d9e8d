// Failover onto a streaming standby: a primary with a synchronous standby (pg_basebackup -R,
// synchronous_standby_names = '*', so no acknowledged commit is lost), an executor on a
// multi-host URL with target_session_attrs=read-write; the primary is SIGKILLed mid-workload
// (the postmaster and all its processes) and the standby promoted. The executor reconnects to
// the new primary and finishes everything: none lost, none doubled. Label: failover.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "disrupted_workload.hpp"
#include "local_server.hpp"
#include "postgres_support.hpp"

namespace {

namespace de = durable_execution;
using namespace std::chrono_literals;
using de::testing::LocalPostgresServer;
using de::testing::workload::run_disrupted_workload;

TEST(PostgresFailover, ExecutorsFinishEverythingOnceAfterThePrimaryDiesAndTheStandbyIsPromoted) {
  DE_SKIP_WITHOUT_SERVER_BINARIES();
  LocalPostgresServer primary{
      "wal_level = replica\nmax_wal_senders = 5\nsynchronous_standby_names = '*'\n"
      "synchronous_commit = on"};
  // The standby inherits the primary's settings; once promoted it has no standby of its own, so
  // it must not wait for one (a real deployment reconfigures here, or uses ANY 1 of several).
  auto standby =
      LocalPostgresServer::standby_of(primary, "hot_standby = on\nsynchronous_standby_names = ''");
  // The standby must be streaming (and synchronous) before the workload starts.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline &&
         de::testing::postgres_query(primary.url(),
                                     "SELECT count(*) FROM pg_stat_replication WHERE sync_state = "
                                     "'sync' AND state = 'streaming'")[0][0] != "1") {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(de::testing::postgres_query(primary.url(),
                                        "SELECT count(*) FROM pg_stat_replication WHERE "
                                        "sync_state = 'sync'")[0][0],
            "1");
  const std::string url = "postgresql://postgres@127.0.0.1:" + std::to_string(primary.port()) +
                          ",127.0.0.1:" + std::to_string(standby.port()) +
                          "/postgres?target_session_attrs=read-write&connect_timeout=2";
  run_disrupted_workload(
      url,
      [&] {
        primary.kill_all();
        std::this_thread::sleep_for(300ms);  // the executor sees errors meanwhile
        standby.promote();
      },
      [&] { return standby.url(); });
}

}  // namespace
