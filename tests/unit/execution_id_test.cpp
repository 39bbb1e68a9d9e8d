// generate_execution_id: "te_" + 24 characters of the 56-letter alphabet, time-ordered, unique.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <future>
#include <latch>
#include <string_view>
#include <thread>
#include <unordered_set>

#include "durable_execution/task_execution.hpp"

namespace de = durable_execution;

namespace {

constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz";

bool well_formed(const std::string& id) {
  if (id.size() != 27 || id.compare(0, 3, "te_") != 0) return false;
  return std::all_of(id.begin() + 3, id.end(),
                     [](char c) { return kAlphabet.find(c) != std::string_view::npos; });
}

// The first 8 characters after "te_" encode the creation time in milliseconds, base 56.
std::int64_t decode_time(const std::string& id) {
  std::int64_t ms = 0;
  for (std::size_t i = 3; i < 11; ++i) {
    ms = ms * 56 + static_cast<std::int64_t>(kAlphabet.find(id[i]));
  }
  return ms;
}

// Waits (bounded) until the millisecond clock has moved past `t`.
void wait_past(de::Timestamp t) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{5};
  while (de::now_timestamp() <= t) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "clock did not advance";
    std::this_thread::sleep_for(std::chrono::microseconds{200});
  }
}

}  // namespace

TEST(ExecutionId, AlphabetHas56LettersWithoutLookalikes) {
  EXPECT_EQ(kAlphabet.size(), 56U);
  for (const char c : std::string_view{"ILOilo"}) {
    EXPECT_EQ(kAlphabet.find(c), std::string_view::npos) << c;
  }
}

TEST(ExecutionId, Format) {
  for (int i = 0; i < 1000; ++i) {
    const auto id = de::generate_execution_id();
    ASSERT_TRUE(well_formed(id)) << id;
  }
}

TEST(ExecutionId, PrefixEncodesCreationTime) {
  const auto before = de::to_unix_ms(de::now_timestamp());
  const auto id = de::generate_execution_id();
  const auto after = de::to_unix_ms(de::now_timestamp());
  EXPECT_GE(decode_time(id), before);
  EXPECT_LE(decode_time(id), after);
}

TEST(ExecutionId, LaterIdsSortAfterEarlierOnesAcrossMilliseconds) {
  for (int round = 0; round < 20; ++round) {
    const auto first = de::generate_execution_id();
    // Past the millisecond stamped in `first` (the clock may have ticked between a reading taken
    // before it and its own), so the two ids differ in their time prefix.
    wait_past(de::Timestamp{std::chrono::milliseconds{decode_time(first)}});
    const auto second = de::generate_execution_id();
    EXPECT_LT(first, second) << "round " << round;
  }
}

TEST(ExecutionId, UniqueAcrossThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25'000;
  std::latch start{kThreads};
  std::vector<std::future<std::vector<std::string>>> futures;
  for (int t = 0; t < kThreads; ++t) {
    futures.push_back(std::async(std::launch::async, [&start] {
      start.arrive_and_wait();
      std::vector<std::string> ids;
      ids.reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) ids.push_back(de::generate_execution_id());
      return ids;
    }));
  }
  std::unordered_set<std::string> all;
  all.reserve(kThreads * kPerThread);
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds{60}), std::future_status::ready);
    for (auto& id : f.get()) {
      ASSERT_TRUE(well_formed(id)) << id;
      all.insert(std::move(id));
    }
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

// A child process does not repeat its parent's random sequence (nor a sibling's): forked
// workers of one parent that had generated ids before would otherwise collide.
TEST(ExecutionId, ForkedChildrenDrawDifferentRandomCharacters) {
  (void)de::generate_execution_id();  // this thread's generator exists before the fork
  constexpr int kChildren = 2;
  std::array<std::string, kChildren> random_parts;
  for (int c = 0; c < kChildren; ++c) {
    std::array<int, 2> fds{};
    ASSERT_EQ(pipe(fds.data()), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      const auto id = de::generate_execution_id();
      const auto written = write(fds[1], id.data() + 11, 16);
      _exit(written == 16 ? 0 : 1);
    }
    close(fds[1]);
    std::array<char, 16> buf{};
    std::size_t got = 0;
    while (got < buf.size()) {
      const auto n = read(fds[0], buf.data() + got, buf.size() - got);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    close(fds[0]);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT_EQ(got, buf.size());
    random_parts[static_cast<std::size_t>(c)].assign(buf.data(), buf.size());
  }
  const auto own = de::generate_execution_id().substr(11);
  EXPECT_NE(random_parts[0], random_parts[1]);
  EXPECT_NE(random_parts[0], own);
  EXPECT_NE(random_parts[1], own);
}

// Every random position draws from the whole alphabet, about evenly.
TEST(ExecutionId, RandomCharactersCoverTheAlphabetEvenly) {
  constexpr int kIds = 56 * 400;
  std::array<std::array<int, 56>, 16> counts{};
  for (int i = 0; i < kIds; ++i) {
    const auto id = de::generate_execution_id();
    for (std::size_t p = 0; p < 16; ++p) ++counts[p][kAlphabet.find(id[11 + p])];
  }
  for (std::size_t p = 0; p < 16; ++p) {
    for (std::size_t c = 0; c < 56; ++c) {
      // 400 expected; 250-550 is more than 7 standard deviations either side.
      EXPECT_GT(counts[p][c], 250) << "position " << p << ", character " << kAlphabet[c];
      EXPECT_LT(counts[p][c], 550) << "position " << p << ", character " << kAlphabet[c];
    }
  }
}
