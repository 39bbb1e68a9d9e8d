#include "completion_writer.hpp"

#include <algorithm>
#include <set>

namespace durable_execution::detail {

CompletionWriter::~CompletionWriter() {
  stop();
  // Whatever no flusher took (results dropped by a shutdown that gave up) is freed here.
  for (auto* n = head_.exchange(nullptr); n != nullptr;) {
    std::unique_ptr<Node> owned(n);
    n = owned->next;
  }
}

void CompletionWriter::push(RunWrite write) {
  auto* node = new Node{std::move(write)};
  node->next = head_.load();
  while (!head_.compare_exchange_weak(node->next, node)) {
  }
}

void CompletionWriter::submit(RunWrite write) {
  push(std::move(write));
  flush();
}

void CompletionWriter::queue(RunWrite write) {
  push(std::move(write));
  if (flushing_.load()) return;  // the active flusher looks once more before it leaves
  {
    std::lock_guard lock(mutex_);
    wake_ = true;
  }
  cv_.notify_one();
}

void CompletionWriter::start(const StorageCaller& caller) {
  thread_ = std::thread([this, &caller] { loop(caller); });
}

void CompletionWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    wake_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void CompletionWriter::loop(const StorageCaller& caller) {
  caller.adopt_thread();
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return wake_ || stop_; });
    if (!wake_ && stop_) return;
    wake_ = false;
    lock.unlock();
    flush();
    lock.lock();
  }
}

void CompletionWriter::flush() {
  // Whoever sets `flushing_` writes everything queued, including what arrives meanwhile. After
  // clearing it, the flusher looks once more: a submitter that saw the flag set relied on it.
  // (Sequentially consistent throughout: the flag and the stack form a Dekker pair.)
  while (!flushing_.exchange(true)) {
    while (auto* head = head_.exchange(nullptr)) {
      Batch batch;  // the nodes themselves: a write is ~1.5 KB, moved once
      for (auto* n = head; n != nullptr;) {
        auto& owned = batch.emplace_back(n);
        n = owned->next;
      }
      std::reverse(batch.begin(), batch.end());  // arrival order
      write(batch);
    }
    flushing_.store(false);
    if (head_.load() == nullptr) return;
  }
}

void CompletionWriter::write(Batch& batch) {
  const auto start = SteadyClock::now();
  std::vector<UpdateByIdRequest> updates;
  std::vector<UpdateByIdAndInsertChildrenRequest> with_children;
  updates.reserve(batch.size());
  std::set<Timestamp> with_children_starts;
  // Work for the background thread's steps: executions left to the close path (mark), and
  // parents whose active children count a closed child decremented, possibly to zero, or that
  // were just given their children (children).
  unsigned wake_steps = 0;
  for (auto& node : batch) {
    auto& c = node->write;
    if (c.update) {
      // Its own row, or the parent a finalize child settles, left to the close path.
      const auto& settled = c.update->parent_update;
      if (c.update->update.close_status != CloseStatus::closed ||
          (settled && settled->update.close_status != CloseStatus::closed)) {
        wake_steps |= bit(BackgroundStep::mark);
      }
      if (c.update->decrement_parent_active_children_count) {
        wake_steps |= bit(BackgroundStep::children);
      }
      c.update->defer_durability = true;
      updates.push_back(std::move(*c.update));
    }
    if (c.update_with_children) {
      c.update_with_children->defer_durability = true;
      signals_.expect_children(c.update_with_children->children_to_insert_if_updated,
                               with_children_starts);
      with_children.push_back(std::move(*c.update_with_children));
      wake_steps |= bit(BackgroundStep::children);
    }
  }
  // Run results may reach the disk after the call returns (defer_durability): a store crash
  // that loses one loses only later writes with it, never a claim that acted on it, and the run
  // re-runs when its lease expires (storage.hpp, "Deferred durability"). Each kind of write is
  // one storage call; a failing one is retried or split so that one bad request never holds back
  // the others.
  const auto failure_of = [&](bool with_children_kind) {
    return [&, with_children_kind](std::size_t i, const StoredError& error) {
      // The failure path only: the run behind the i-th request of this kind.
      const auto& id = with_children_kind ? with_children[i].execution_id : updates[i].execution_id;
      for (const auto& node : batch) {
        const auto& c = node->write;
        const bool of_kind =
            with_children_kind ? c.update_with_children.has_value() : c.update.has_value();
        if (of_kind && i-- == 0) return transitions_.write_rejected(c, id, error, clock_.now());
      }
      return std::optional<UpdateByIdRequest>{};
    };
  };
  std::size_t poisoned = 0;
  if (!updates.empty()) poisoned += writes_.write_isolated("complete", updates, failure_of(false));
  if (!with_children.empty()) {
    poisoned += writes_.write_isolated("complete", with_children, failure_of(true));
  }
  if (poisoned > 0) wake_steps = all_background_steps;
  stats_.record(static_cast<std::int64_t>(batch.size()), SteadyClock::now() - start);
  for (const auto& node : batch) {
    if (node->write.wake_at) signals_.dispatch_at(*node->write.wake_at);
  }
  // Children inserted by these writes are ready work of this executor: claim them now.
  for (const auto& r : with_children_starts) signals_.dispatch_at(r);
  // Waiters are woken for their own execution only (and a finalize child's parent). Looked up
  // after the write: a waiter registers before its first read, so it is either seen here or its
  // read sees the write.
  if (waiters_.any()) {
    std::vector<std::string_view> finished;
    for (const auto& u : updates) {
      if (u.update.is_finished) finished.emplace_back(u.execution_id);
    }
    for (const auto& node : batch) {
      if (!node->write.settled_parent_id.empty()) {
        finished.emplace_back(node->write.settled_parent_id);
      }
    }
    waiters_.notify(finished);
  }
  runs_.completions_written(static_cast<std::int64_t>(batch.size()));
  if (wake_steps != 0) signals_.wake_background(wake_steps);
}

}  // namespace durable_execution::detail
