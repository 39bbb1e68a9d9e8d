#pragma once

// The one owner of run result writes (group commit). Runs that finish together push their writes
// onto a lock-free stack; the first worker to find no flusher active becomes the flusher and
// writes everything queued meanwhile in one storage call per kind of write (failures isolated,
// storage_writes.hpp). Results produced on the timer thread (timeouts) are queued for the
// writer's own thread, so a slow storage call never holds the timer. After a batch is written it
// wakes who needs to know: the dispatcher (retries, new children), the background thread (close
// path), the waiters of finished executions, and the run table (shutdown counts pending writes).
// Entered by workers (submit), the timer (queue) and its own writer thread.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "loop_signals.hpp"
#include "run_table.hpp"
#include "storage_writes.hpp"
#include "transitions.hpp"
#include "waiters.hpp"

namespace durable_execution::detail {

class CompletionWriter {
 public:
  CompletionWriter(const Clock& clock, const Transitions& transitions, const StorageWrites& writes,
                   RunTable& runs, LoopSignals& signals, Waiters& waiters)
      : clock_(clock),
        transitions_(transitions),
        writes_(writes),
        runs_(runs),
        signals_(signals),
        waiters_(waiters) {}
  CompletionWriter(const CompletionWriter&) = delete;
  CompletionWriter& operator=(const CompletionWriter&) = delete;
  CompletionWriter(CompletionWriter&&) = delete;
  CompletionWriter& operator=(CompletionWriter&&) = delete;
  ~CompletionWriter();

  /** @brief A worker's result: queued, then written by this thread unless a flusher is active. */
  void submit(RunWrite write);
  /** @brief A result from the timer thread: written by an active flusher or the writer thread. */
  void queue(RunWrite write);

  /** @brief Starts the writer thread; `adopt` marks it as an engine thread. */
  void start(const StorageCaller& caller);
  /** @brief Writes what is queued, then stops the writer thread. */
  void stop();

  [[nodiscard]] ProcessBatchStats stats() const { return stats_.get(); }

 private:
  struct Node {
    RunWrite write;
    Node* next = nullptr;
  };
  using Batch = std::vector<std::unique_ptr<Node>>;

  void push(RunWrite write);
  void flush();
  void write(Batch& batch);
  void loop(const StorageCaller& caller);

  const Clock& clock_;
  const Transitions& transitions_;
  const StorageWrites& writes_;
  RunTable& runs_;
  LoopSignals& signals_;
  Waiters& waiters_;
  ProcessStats stats_;
  std::atomic<Node*> head_{nullptr};
  std::atomic<bool> flushing_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool wake_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace durable_execution::detail
