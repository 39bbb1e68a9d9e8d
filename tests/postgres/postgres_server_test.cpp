// The executor on PostgreSQL keeps working through a server restart: a workload of parents with
// children, sequential chains and simple tasks runs while a private server (never the shared
// DE_TEST_PG_URL one) is stopped and started again. Every execution must end completed with the
// right output, once: no child inserted twice, none lost.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "disrupted_workload.hpp"
#include "local_server.hpp"

namespace {

using namespace std::chrono_literals;
using durable_execution::testing::LocalPostgresServer;
using durable_execution::testing::workload::run_disrupted_workload;

class PostgresRestart : public ::testing::TestWithParam<std::string> {};

TEST_P(PostgresRestart, TheExecutorFinishesEverythingOnceAcrossAServerRestart) {
  DE_SKIP_WITHOUT_SERVER_BINARIES();
  LocalPostgresServer server;
  run_disrupted_workload(
      server.url(),
      [&] {
        server.stop(GetParam());
        std::this_thread::sleep_for(500ms);  // the executor sees errors meanwhile, and retries
        server.start();
      },
      [&] { return server.url(); });
}

// `fast`: the server ends every session and shuts down cleanly; `immediate`: as after a crash
// (crash recovery on start).
INSTANTIATE_TEST_SUITE_P(Modes, PostgresRestart, ::testing::Values("fast", "immediate"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
