// Runs an executor on a SQLite file until it is killed.
// Usage:
//   crash_worker <db path> <marker dir>            the crash test's tasks, every step blocking
//   crash_worker matrix <db path> <phase> <before|after> <flag file>
//                                                  the kill matrix's tasks; stops at <phase>
//   crash_worker poison <db path>                  runs "poison", whose every run kills this
//                                                  process, next to "inc"

#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>
#include <thread>

#include "crash_tasks.hpp"
#include "durable_execution/forwarding_storage.hpp"
#include "durable_execution/sqlite/sqlite_storage.hpp"

namespace de = durable_execution;
using namespace std::chrono_literals;

namespace {

/**
 * Stops at a storage phase of the engine: the ready claim, a run's result write, the children
 * step (its claim and its writes), the close path (mark, close claim, cancelling children). With
 * `before`, writes stop before the call reaches SQLite; otherwise after it committed.
 */
class PausingStorage : public de::ForwardingTaskExecutionsStorage {
 public:
  PausingStorage(de::TaskExecutionsStorage& inner, std::shared_ptr<crash::Pause> pause, bool before)
      : ForwardingTaskExecutionsStorage(inner), pause_(std::move(pause)), before_(before) {}

  std::vector<de::TaskExecutionRecord> update_by_status_and_start_at_less_than_and_return(
      const de::UpdateByStatusAndStartAtLessThanRequest& r) override {
    auto rows =
        ForwardingTaskExecutionsStorage::update_by_status_and_start_at_less_than_and_return(r);
    if (!rows.empty()) pause_->at("claim");
    return rows;
  }
  void update_many_by_id(const std::vector<de::UpdateByIdRequest>& r) override {
    const char* phase = phase_of(r);
    if (before_ && phase) pause_->at(phase);
    ForwardingTaskExecutionsStorage::update_many_by_id(r);
    if (phase) pause_->at(phase);
  }
  void update_many_by_id_and_insert_children_if_updated(
      const std::vector<de::UpdateByIdAndInsertChildrenRequest>& r) override {
    const char* phase = phase_of(r);
    if (before_ && phase) pause_->at(phase);
    ForwardingTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(r);
    if (phase) pause_->at(phase);
  }
  std::vector<de::TaskExecutionRecord>
  update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
      const de::UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& r) override {
    auto rows = ForwardingTaskExecutionsStorage::
        update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
            r);
    if (!rows.empty()) pause_->at("children");
    return rows;
  }
  std::vector<de::TaskExecutionRecord> update_by_close_status_and_return(
      const de::UpdateByCloseStatusRequest& r) override {
    auto rows = ForwardingTaskExecutionsStorage::update_by_close_status_and_return(r);
    if (!rows.empty()) pause_->at("close");
    return rows;
  }
  std::int64_t update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
      const de::UpdateAndDecrementParentActiveChildrenCountRequest& r) override {
    const auto n = ForwardingTaskExecutionsStorage::
        update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(r);
    if (n > 0) pause_->at("close");
    return n;
  }

 private:
  template <class Requests>
  static const char* phase_of(const Requests& requests) {
    for (const auto& req : requests) {
      if (req.filters.status == de::TaskExecutionStatus::running) return "write";
      if (req.filters.status == de::TaskExecutionStatus::waiting_for_children) return "children";
      if (req.filters.is_finished == true) return "close";
    }
    return nullptr;
  }

  std::shared_ptr<crash::Pause> pause_;
  bool before_;
};

int run_matrix(const char* db, const char* phase, const char* mode, const char* flag_file) {
  de::SqliteTaskExecutionsStorage sqlite{db};
  auto pause = std::make_shared<crash::Pause>();
  pause->target = phase;
  pause->flag_file = flag_file;
  PausingStorage storage{sqlite, pause, std::string_view{mode} == "before"};
  de::DurableExecutor executor{storage, crash::matrix_options()};
  [[maybe_unused]] auto tasks = crash::register_matrix_tasks(executor, pause);
  executor.start();
  std::this_thread::sleep_for(150s);  // bounded: the test kills this process long before
  std::_Exit(3);
}

int run_poison(const char* db) {
  de::SqliteTaskExecutionsStorage storage{db};
  de::DurableExecutor executor{storage, crash::poison_options()};
  [[maybe_unused]] auto tasks = crash::register_poison_tasks(executor);
  executor.start();
  std::this_thread::sleep_for(150s);
  std::_Exit(3);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::strcmp(argv[1], "matrix") == 0) {
    return run_matrix(argv[2], argv[3], argv[4], argv[5]);
  }
  if (argc == 3 && std::strcmp(argv[1], "poison") == 0) return run_poison(argv[2]);
  if (argc != 3) {
    std::fprintf(stderr, "usage: crash_worker <db path> <marker dir>\n");
    return 2;
  }
  de::SqliteTaskExecutionsStorage storage{argv[1]};
  // No leeway: the leases this worker takes lapse at claim + timeout, so the test's recovering
  // executor need not wait the default 5 minutes.
  de::DurableExecutor executor{storage,
                               {.expire_leeway = 0ms,
                                .background_process_intra_batch_sleep = 20ms,
                                .log_level = de::LogLevel::error}};
  [[maybe_unused]] auto tasks =
      crash::register_tasks(executor, {.block = true, .marker_dir = argv[2]});
  executor.start();
  // Bounded: the test kills this process long before; if it does not, exit instead of lingering.
  std::this_thread::sleep_for(150s);
  std::_Exit(3);
}
