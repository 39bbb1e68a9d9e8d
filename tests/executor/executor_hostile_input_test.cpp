// A randomized hostile-input test (issue 10): malformed and deep JSON, huge and empty values, odd
// ids and stored records nobody validated, thrown at the public API of an executor on every
// storage. Every call either works or throws DurableExecutionError; a rejected call writes
// nothing; the executor finishes every accepted execution; nothing crashes or hangs (every wait is
// bounded; the asan preset adds leak and UB checks). Seeded and reproducible: the seed is printed,
// and DE_HOSTILE_SEED=<n> replays a run (DE_HOSTILE_ROUNDS=<n> makes it longer).

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <random>

#include "executor_test_support.hpp"

namespace durable_execution::testing {
namespace {

using ExecutorHostileInput = ExecutorTest;
using nlohmann::json;

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

/** Counts the rows inserted through it. */
class CountingStorage final : public ForwardingTaskExecutionsStorage {
 public:
  using ForwardingTaskExecutionsStorage::ForwardingTaskExecutionsStorage;
  void insert_many(const std::vector<TaskExecutionRecord>& executions) override {
    ForwardingTaskExecutionsStorage::insert_many(executions);
    inserts_ += static_cast<int>(executions.size());
  }
  [[nodiscard]] int inserts() const { return inserts_.load(); }

 private:
  std::atomic<int> inserts_{0};
};

/** Generates hostile texts: valid JSON of every shape, then broken, deep, huge or binary. */
class HostileText {
 public:
  explicit HostileText(std::uint64_t seed) : rng_(seed) {}

  std::string next() {
    switch (pick(12)) {
      case 0:
        return valid(pick(4));
      case 1:
        return mutate(valid(pick(4)));
      case 2: {  // deep, sometimes beyond every limit, sometimes unbalanced
        const std::size_t depth = pick(4) == 0 ? 100'000 : pick(1200);
        std::string open(depth, pick(2) == 0 ? '[' : '{');
        if (open.front() == '{') {
          std::string keyed;
          for (std::size_t i = 0; i < depth; ++i) keyed += "{\"k\":";
          return keyed + "1" + std::string(pick(2) == 0 ? depth : depth / 2, '}');
        }
        return open + std::string(pick(2) == 0 ? depth : depth / 2, ']');
      }
      case 3:
        return std::string{};
      case 4: {  // large, and now and then right at the 1 MiB input limit
        const std::size_t n = pick(4) == 0 ? (1U << 20) - 8 + pick(32) : 1000 + pick(64'000);
        return "\"" + std::string(n, 'x') + "\"";
      }
      case 5: {  // binary, NUL bytes and invalid UTF-8 included
        std::string s(pick(64), '\0');
        for (auto& c : s) c = static_cast<char>(pick(256));
        return s;
      }
      case 6: {
        static const char* const specials[] = {"NaN",
                                               "Infinity",
                                               "-Infinity",
                                               "1e999",
                                               "-1e999",
                                               "-0",
                                               "1e-400",
                                               "18446744073709551616",
                                               "-9223372036854775809",
                                               "\"\\ud800\"",
                                               "\"\\u0000\"",
                                               "{\"a\":1,\"a\":2}",
                                               "[1,]",
                                               "{\"a\"}",
                                               "\"\xff\xfe\"",
                                               "nul",
                                               "tru",
                                               "[\"\\x\"]",
                                               "  ",
                                               "\t\n",
                                               "[1 2]",
                                               "\"unterminated"};
        return specials[pick(std::size(specials))];
      }
      default:
        return valid(pick(3));
    }
  }

  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }

 private:
  std::string valid(std::size_t depth) {
    json j;
    build(j, depth);
    return j.dump();
  }
  void build(json& j, std::size_t depth) {
    switch (depth == 0 ? pick(5) : pick(7)) {
      case 0:
        j = nullptr;
        break;
      case 1:
        j = static_cast<std::int64_t>(rng_());
        break;
      case 2:
        j = std::uniform_real_distribution<double>(-1e300, 1e300)(rng_);
        break;
      case 3:
        j = pick(2) == 0;
        break;
      case 4: {
        std::string s(pick(20), ' ');
        for (auto& c : s) c = static_cast<char>(32 + pick(95));
        j = s;
        break;
      }
      case 5:
        j = json::array();
        for (std::size_t i = pick(4); i > 0; --i) build(j.emplace_back(), depth - 1);
        break;
      default:
        j = json::object();
        for (std::size_t i = pick(4); i > 0; --i)
          build(j["k" + std::to_string(pick(5))], depth - 1);
        break;
    }
  }
  std::string mutate(std::string s) {
    if (s.empty()) return "{";
    switch (pick(4)) {
      case 0:
        return s.substr(0, pick(s.size()));  // truncated
      case 1:
        s[pick(s.size())] = static_cast<char>(pick(256));
        return s;
      case 2:
        return s + s;
      default:
        return s.insert(pick(s.size()), 1, "[]{}\",:\\"[pick(8)]);
    }
  }

  std::mt19937_64 rng_;
};

/** Whether PostgreSQL can store `text` in a text column: valid UTF-8, no NUL byte. */
bool storable_as_postgres_text(const std::string& text) {
  if (text.find('\0') != std::string::npos) return false;
  try {
    (void)json(text).dump();  // strict: throws on invalid UTF-8
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

/** Whether a call either worked or threw DurableExecutionError; anything else fails the test. */
template <class F>
bool survives(const char* what, const std::string& text, F&& call) {
  try {
    call();
    return true;
  } catch (const DurableExecutionError&) {
    return false;
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << " threw a non-engine exception (" << e.what()
                  << ") for a text of size " << text.size();
    return false;
  }
}

TEST_P(ExecutorHostileInput, HostileValuesGetClearErrorsAndRejectedCallsWriteNothing) {
  const auto seed = env_number("DE_HOSTILE_SEED", 20'261'201);
  const auto rounds = env_number("DE_HOSTILE_ROUNDS", 100);
  std::cout << "[ seed     ] DE_HOSTILE_SEED=" << seed << " (" << rounds << " rounds)\n";
  SCOPED_TRACE("DE_HOSTILE_SEED=" + std::to_string(seed));
  HostileText gen{seed};
  CountingStorage counting{storage()};
  DurableExecutor executor{counting, fast_options()};
  auto echo = executor.task({.id = "echo", .timeout = 5s}, [](const json& j) { return j; });
  auto text_len = executor.task({.id = "text_len", .timeout = 5s},
                                [](const std::string& s) { return s.size(); });
  auto webhook = executor.sleeping_task<json>({.id = "webhook", .timeout = 60s});
  executor.start();

  std::vector<std::string> accepted;      // execution ids the executor must finish
  std::vector<std::string> sleeping_ids;  // unique ids of accepted sleeping executions
  for (std::uint64_t round = 0; round < rounds; ++round) {
    const std::string text = gen.next();
    // 1. As a JSON input, if it parses (nlohmann's parser does not recurse).
    std::optional<json> parsed;
    try {
      parsed = json::parse(text);
    } catch (const json::exception&) {
    }
    if (parsed) {
      const int before = counting.inserts();
      std::string id;
      if (survives("enqueue(json)", text,
                   [&] { id = executor.enqueue_task(echo, *parsed).execution_id(); })) {
        EXPECT_EQ(counting.inserts(), before + 1);
        accepted.push_back(id);
      } else {
        EXPECT_EQ(counting.inserts(), before) << "a rejected enqueue wrote";
      }
    }
    // 2. As a string input (escaping, invalid UTF-8, size limit).
    {
      const int before = counting.inserts();
      std::string id;
      if (survives("enqueue(string)", text,
                   [&] { id = executor.enqueue_task(text_len, text).execution_id(); })) {
        EXPECT_EQ(counting.inserts(), before + 1);
        accepted.push_back(id);
      } else {
        EXPECT_EQ(counting.inserts(), before) << "a rejected enqueue wrote";
      }
    }
    // 3. As ids: handles, cancellation and wake-ups of executions that do not exist.
    {
      const int before = counting.inserts();
      (void)survives("get_task_execution_handle", text,
                     [&] { (void)executor.get_task_execution_handle(echo, text); });
      (void)survives("wakeup", text, [&] {
        (void)executor.wakeup_sleeping_task_execution(webhook, text, json(1));
      });
      EXPECT_EQ(counting.inserts(), before);
    }
    // 4. As a sleeping task's unique id (empty and over-long ones are refused, repeats too).
    {
      const int before = counting.inserts();
      std::string id;
      if (survives("enqueue(sleeping)", text,
                   [&] { id = executor.enqueue_task(webhook, text).execution_id(); })) {
        EXPECT_EQ(counting.inserts(), before + 1);
        accepted.push_back(id);
        sleeping_ids.push_back(text);
      } else {
        EXPECT_EQ(counting.inserts(), before);
      }
    }
    // 5. As a stored input nobody validated (a row written by another program). PostgreSQL's
    // text holds only valid UTF-8 without NUL bytes (the server refuses anything else, so no
    // program can have written it there): such texts are skipped on PostgreSQL.
    if (GetParam().name != "Postgres" || storable_as_postgres_text(text)) {
      NewTaskExecution n;
      n.task_id = gen.pick(2) == 0 ? "echo" : "text_len";
      n.execution_id = generate_execution_id();
      n.timeout = 5s;
      n.input = text;
      accepted.push_back(n.execution_id);
      counting.insert_many({make_task_execution_record(now_timestamp(), std::move(n))});
    }
  }
  // Wake the sleeping executions with hostile outputs; then everything must finish.
  for (const auto& unique_id : sleeping_ids) {
    const std::string payload = gen.next();
    std::optional<json> value;
    try {
      value = json::parse(payload);
    } catch (const json::exception&) {
    }
    const bool woken = survives("wakeup(existing)", payload, [&] {
      if (value) {
        (void)executor.wakeup_sleeping_task_execution(webhook, unique_id, *value);
      } else {
        (void)executor.fail_sleeping_task_execution(webhook, unique_id, payload);
      }
    });
    // A refused output (too deep, say) leaves it sleeping: fail it then, as a caller would.
    if (!woken) {
      EXPECT_TRUE(survives("fail(existing)", unique_id, [&] {
        (void)executor.fail_sleeping_task_execution(webhook, unique_id, "refused output");
      }));
    }
  }
  for (const auto& id : accepted) {
    if (id.empty()) continue;
    const auto rec = storage().get_many_by_id({{id, {}}}).at(0);
    ASSERT_TRUE(rec.has_value()) << id;
    const bool finished = wait_until(
        [&] {
          const auto r = storage().get_many_by_id({{id, {}}}).at(0);
          return r && r->is_finished;
        },
        20s);
    EXPECT_TRUE(finished) << "execution " << id << " of task " << rec->task_id << " never finished";
  }
  executor.shutdown();
}

INSTANTIATE_TEST_SUITE_P(Storages, ExecutorHostileInput,
                         ::testing::ValuesIn(all_storage_factories()), factory_name);

}  // namespace
}  // namespace durable_execution::testing
