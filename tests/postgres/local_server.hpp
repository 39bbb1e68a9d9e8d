#pragma once

// A private PostgreSQL server for tests that restart, kill or replicate it (never the shared
// DE_TEST_PG_URL server, which other tests use at the same time): initdb in a temp dir, listening
// on 127.0.0.1 only on a free port, run as the `postgres` user when the tests run as root.

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace durable_execution::testing {

/** @brief The PostgreSQL server binaries (DE_TEST_PG_BIN, else /usr/lib/postgresql/<newest>/bin).
 */
inline std::string postgres_bin_dir() {
  if (const char* dir = std::getenv("DE_TEST_PG_BIN"); dir != nullptr && *dir != '\0') return dir;
  std::string best;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const auto bin = entry.path() / "bin";
    if (std::filesystem::exists(bin / "initdb") && bin.string() > best) best = bin.string();
  }
  return best;
}

/** @brief Why a private server cannot be started here ("" when it can). */
inline std::string local_server_unavailable_reason() {
  if (postgres_bin_dir().empty()) {
    return "PostgreSQL server binaries not found (install postgresql or set DE_TEST_PG_BIN)";
  }
  return {};
}

/** @brief A port nothing listens on now (the kernel's pick for an ephemeral bind). */
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("no free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

class LocalPostgresServer {
 public:
  /** @brief A new cluster (initdb), started. `conf` lines are appended to postgresql.conf. */
  explicit LocalPostgresServer(const std::string& conf = "") : LocalPostgresServer(Tag{}) {
    run("'" + bin_ + "/initdb' -D '" + data_ + "' -A trust -U postgres >'" + dir_ +
        "/initdb.log' 2>&1");
    append_conf(conf);
    start();
  }

  /** @brief A streaming standby of `primary` (pg_basebackup -R), started. */
  static LocalPostgresServer standby_of(const LocalPostgresServer& primary,
                                        const std::string& conf = "") {
    LocalPostgresServer s{Tag{}};
    s.run("'" + s.bin_ + "/pg_basebackup' -h 127.0.0.1 -p " + std::to_string(primary.port_) +
          " -U postgres -D '" + s.data_ + "' -R -X stream >'" + s.dir_ + "/basebackup.log' 2>&1");
    s.append_conf(conf);
    s.start();
    return s;
  }

  LocalPostgresServer(const LocalPostgresServer&) = delete;
  LocalPostgresServer& operator=(const LocalPostgresServer&) = delete;
  LocalPostgresServer(LocalPostgresServer&& other) noexcept
      : bin_(std::move(other.bin_)),
        dir_(std::move(other.dir_)),
        data_(std::move(other.data_)),
        port_(other.port_) {
    other.dir_.clear();
  }
  LocalPostgresServer& operator=(LocalPostgresServer&&) = delete;
  ~LocalPostgresServer() {
    if (dir_.empty()) return;
    (void)run_status("'" + bin_ + "/pg_ctl' -D '" + data_ +
                     "' -m immediate -w stop >/dev/null 2>&1");
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string url() const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres";
  }
  [[nodiscard]] const std::string& data_dir() const { return data_; }

  void start() {
    run("'" + bin_ + "/pg_ctl' -D '" + data_ + "' -l '" + dir_ + "/server.log' -w -t 60 -o \"-p " +
        std::to_string(port_) + " -k '" + dir_ +
        "' -c listen_addresses=127.0.0.1 -c max_connections=200\" start >/dev/null");
  }
  /** @brief Stops the server (`fast`: sessions are ended; `immediate`: like a crash). */
  void stop(const std::string& mode = "fast") {
    run("'" + bin_ + "/pg_ctl' -D '" + data_ + "' -m " + mode + " -w stop >/dev/null");
  }
  /**
   * @brief SIGKILL of the postmaster and of every process it started (backends, WAL sender):
   * the machine died. Waits until they are gone (bounded).
   */
  void kill_all() {
    std::ifstream pid_file{data_ + "/postmaster.pid"};
    int pid = 0;
    pid_file >> pid;
    if (pid <= 0) return;
    std::vector<int> children;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
      const auto name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream stat{entry.path() / "stat"};
      std::string line;
      std::getline(stat, line);
      // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
      const auto close = line.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream rest{line.substr(close + 1)};
      std::string state;
      int ppid = 0;
      rest >> state >> ppid;
      if (ppid == pid) children.push_back(std::stoi(name));
    }
    ::kill(pid, SIGKILL);
    for (const int child : children) ::kill(child, SIGKILL);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
    while (::kill(pid, 0) == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
  }
  void promote() { run("'" + bin_ + "/pg_ctl' -D '" + data_ + "' -w promote >/dev/null"); }
  void append_conf(const std::string& conf) {
    if (conf.empty()) return;
    std::ofstream{data_ + "/postgresql.conf", std::ios::app} << "\n" << conf << "\n";
  }

 private:
  struct Tag {};
  explicit LocalPostgresServer(Tag) : bin_(postgres_bin_dir()), port_(free_port()) {
    char pattern[] = "/tmp/de-test-postgres.XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    data_ = dir_ + "/data";
    if (::geteuid() == 0) run_plain("chown postgres '" + dir_ + "'");
  }

  static int run_plain(const std::string& command) { return std::system(command.c_str()); }
  [[nodiscard]] int run_status(const std::string& command) const {
    if (::geteuid() == 0) {
      std::string quoted;
      for (char c : command) {
        if (c == '\'') {
          quoted += "'\\''";
        } else {
          quoted += c;
        }
      }
      return run_plain("su postgres -s /bin/sh -c '" + quoted + "'");
    }
    return run_plain(command);
  }
  void run(const std::string& command) const {
    if (run_status(command) != 0) {
      throw std::runtime_error("PostgreSQL test server command failed: " + command + " (logs in " +
                               dir_ + ")");
    }
  }

  std::string bin_;
  std::string dir_;
  std::string data_;
  int port_ = 0;
};

}  // namespace durable_execution::testing
