// LISTEN/NOTIFY wake-ups of the PostgreSQL backend (see pg_notify.hpp). Entered by storage
// callers (work_created), executors (subscribe, unsubscribe), and its own notifier and listener
// threads.
#include "pg_notify.hpp"

#include <chrono>
#include <memory>
#include <pqxx/pqxx>
#include <utility>

#include "pg_exec.hpp"
#include "pg_text.hpp"

namespace durable_execution::postgres {

std::string channel_name(std::string_view schema, std::string_view table) {
  return "de_" + fnv1a_hex(std::string{schema} + "." + std::string{table});
}

Notifications::Notifications(std::string conninfo, std::string channel, bool enabled)
    : conninfo_(std::move(conninfo)), channel_(std::move(channel)), enabled_(enabled) {}

Notifications::~Notifications() {
  {
    std::lock_guard lock(notify_mutex_);
    notify_stop_ = true;
  }
  notify_cv_.notify_all();
  listener_stop_.store(true);
  if (notifier_.joinable()) notifier_.join();
  if (listener_.joinable()) listener_.join();
}

void Notifications::work_created() {
  if (!enabled_) return;
  {
    std::lock_guard lock(notify_mutex_);
    if (notify_stop_) return;
    notify_pending_ = true;
    if (!notifier_.joinable()) {
      try {
        notifier_ = std::thread([this] { notifier_loop(); });
      } catch (...) {
        return;  // no thread: other processes poll, as without notify
      }
    }
  }
  notify_cv_.notify_one();
}

bool Notifications::wait_for_pending() {
  std::unique_lock lock(notify_mutex_);
  notify_cv_.wait(lock, [&] { return notify_pending_ || notify_stop_; });
  notify_pending_ = false;
  return !notify_stop_;
}

void Notifications::pause(std::chrono::milliseconds duration) {
  std::unique_lock lock(notify_mutex_);
  notify_cv_.wait_for(lock, duration, [&] { return notify_stop_; });
}

void Notifications::notifier_loop() {
  std::unique_ptr<pqxx::connection> conn;
  while (wait_for_pending()) {
    bool sent = false;
    try {
      if (!conn) {
        conn = std::make_unique<pqxx::connection>(conninfo_);
        // A notification is a hint: its commit need not wait for the WAL flush (a NOTIFY
        // assigns a transaction id, so it would otherwise cost an fsync each).
        pqxx::nontransaction setup(*conn);
        setup.exec("SET synchronous_commit = off");
        setup.commit();
        notifier_pid_.store(conn->backendpid());
      }
      pqxx::nontransaction tx(*conn);
      exec_params(tx, "SELECT pg_notify($1, '')", channel_);
      tx.commit();
      sent = true;
    } catch (...) {
      conn.reset();
    }
    // Sent: at most one NOTIFY per millisecond, so writes of a burst share one. Not sent (the
    // server is away): the next write tries again, after a pause (other processes poll
    // meanwhile).
    pause(std::chrono::milliseconds{sent ? 1 : 100});
  }
}

void Notifications::call_listeners() {
  std::lock_guard lock(listeners_mutex_);
  for (auto& [token, callback] : listeners_) {
    try {
      callback();
    } catch (...) {
      // A wake-up hint: a failing callback must not stop the others or the listener.
    }
  }
}

void Notifications::listener_loop() {
  struct Receiver final : pqxx::notification_receiver {
    Receiver(pqxx::connection_base& c, const std::string& ch, Notifications& n)
        : pqxx::notification_receiver(c, ch), owner(n) {}
    void operator()(const std::string& /*payload*/, int backend_pid) override {
      if (backend_pid != owner.notifier_pid_.load()) owner.call_listeners();
    }
    Notifications& owner;
  };
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<Receiver> receiver;
  while (!listener_stop_.load()) {
    try {
      if (!conn) {
        conn = std::make_unique<pqxx::connection>(conninfo_);
        receiver = std::make_unique<Receiver>(*conn, channel_, *this);
        call_listeners();  // work may have been created while this was not listening
      }
      // Bounded, so a shutdown is seen within 100 ms.
      (void)conn->await_notification(0, 100'000);
    } catch (...) {
      receiver.reset();
      conn.reset();
      for (int i = 0; i < 10 && !listener_stop_.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds{20});
      }
    }
  }
}

std::uint64_t Notifications::subscribe(std::function<void()> callback) {
  if (!enabled_ || !callback) return 0;
  std::uint64_t token = 0;
  {
    std::lock_guard lock(listeners_mutex_);
    token = next_listener_token_++;
    listeners_.emplace(token, std::move(callback));
  }
  std::lock_guard lock(notify_mutex_);  // guards starting the listener thread too
  if (!listener_.joinable() && !notify_stop_) {
    try {
      listener_ = std::thread([this] { listener_loop(); });
    } catch (...) {
      // No listener: the subscriber polls, as without notify.
    }
  }
  return token;
}

void Notifications::unsubscribe(std::uint64_t token) noexcept {
  if (token == 0) return;
  std::lock_guard lock(listeners_mutex_);
  listeners_.erase(token);
}

}  // namespace durable_execution::postgres
