#include "durable_execution/in_memory_storage.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <limits>
#include <mutex>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "durable_execution/detail/saturating_time.hpp"

namespace durable_execution {

namespace {

constexpr auto kMin = std::numeric_limits<std::int64_t>::min();

struct Entry;

// Execution ids start with their creation time (generate_execution_id), so hashing that prefix
// into the high bits puts executions created together in nearby buckets: the hot end of a large
// store stays in cache. 14 bits of the random rest spread the executions of one millisecond.
// Ids of another shape get the standard hash.
struct ExecutionIdHash {
  std::size_t operator()(std::string_view id) const noexcept {
    constexpr std::size_t kTimeEnd = 3 + 8;  // "te_" + 8 time characters
    if (id.size() != kTimeEnd + 16 || !id.starts_with("te_")) {
      return std::hash<std::string_view>{}(id);
    }
    std::size_t time = 0;
    for (std::size_t i = 3; i < kTimeEnd; ++i) time = time * 64 + static_cast<unsigned char>(id[i]);
    return (time << 14) ^ (std::hash<std::string_view>{}(id.substr(kTimeEnd)) & 0x3FFFU);
  }
};

// One shape of key for every ordered index: (h, a, b, c) then the insertion sequence as a tie
// breaker, so equal keys keep insertion order. `entry` is payload, not part of the order. String
// keys enter as a 64-bit hash `h` (integer compares keep the indexes fast); queries on them check
// the real string too, so a hash collision can never mix two ids.
struct Key {
  std::int64_t h = 0;
  std::int64_t a = kMin;
  std::int64_t b = kMin;
  std::int64_t c = kMin;
  std::uint64_t seq = 0;
  Entry* entry = nullptr;

  friend bool operator<(const Key& l, const Key& r) {
    return std::tie(l.h, l.a, l.b, l.c, l.seq) < std::tie(r.h, r.a, r.b, r.c, r.seq);
  }
  friend bool operator==(const Key& l, const Key& r) {
    return std::tie(l.h, l.a, l.b, l.c, l.seq) == std::tie(r.h, r.a, r.b, r.c, r.seq);
  }
};

// The ordered indexes, one per query shape of the storage contract. Five are partial: they hold
// only the rows the engine's own queries select (ready rows for the claim, parents waiting with
// zero active children, and so on; see is_hot). A finished row then leaves those indexes for good
// instead of being re-keyed on every update (their keys hold updated_at), which cuts index upkeep
// per execution by two thirds. A query for other values (no engine makes one) scans the store.
enum Index : std::size_t {
  kByStatusStartAt,            // claim: (status, start_at)
  kByProcessingWithZeroCount,  // children claim: (status, processing status, updated_at), count 0
  kByCloseStatus,              // close claim: (close status, updated_at)
  kBySleepingExpiresAt,        // (is sleeping, expires_at), rows with expires_at
  kByProcessingExpiresAt,      // (processing expires_at), rows with it
  kByCloseExpiresAt,           // (close expires_at), rows with it
  kByExecutorCancellation,     // (executor id, needs cancellation, updated_at), rows with executor
  kByParent,                   // (parent id, is finished), children only
  kByFinishedCloseStatus,      // mark: (is finished, close status, updated_at)
  kIndexCount,
};

std::int64_t ms(Timestamp t) { return to_unix_ms(t); }
std::int64_t num(auto e) { return static_cast<std::int64_t>(e); }
std::int64_t hash(const std::string& text) {
  return static_cast<std::int64_t>(std::hash<std::string>{}(text));
}

using IndexSet = std::set<Key>;

struct Entry {
  TaskExecutionRecord record;
  std::uint64_t seq = 0;
  // Where the entry sits in each index (valid where `indexed` is set), so that re-keying it is
  // an O(1) unlink plus a hinted insert of the same node: no lookup, no allocation.
  std::array<IndexSet::iterator, kIndexCount> positions{};
  std::array<bool, kIndexCount> indexed{};
};

// Whether rows with this key prefix are held by the (possibly partial) index.
bool is_hot(Index index, const Key& k) {
  switch (index) {
    case kByStatusStartAt:
      return k.a == num(TaskExecutionStatus::ready);
    case kByProcessingWithZeroCount:
      return k.a == num(TaskExecutionStatus::waiting_for_children) &&
             k.b == num(OnChildrenFinishedProcessingStatus::idle);
    case kByCloseStatus:
      return k.a == num(CloseStatus::ready);
    case kByExecutorCancellation:
      return k.a == 1;
    case kByFinishedCloseStatus:
      return k.a == 1 && k.b == num(CloseStatus::idle);
    default:
      return true;
  }
}

// The row's key in `index`, or nullopt if the index cannot hold it (a missing field, or, with
// `hot_only`, a row outside a partial index).
std::optional<Key> key_for(Index index, Entry& e, bool hot_only = true) {
  const auto& r = e.record;
  Key k;
  k.seq = e.seq;
  k.entry = &e;
  switch (index) {
    case kByStatusStartAt:
      k.a = num(r.status);
      k.b = ms(r.start_at);
      break;
    case kByProcessingWithZeroCount:
      if (r.active_children_count != 0) return std::nullopt;
      k.a = num(r.status);
      k.b = num(r.on_children_finished_processing_status);
      k.c = ms(r.updated_at);
      break;
    case kByCloseStatus:
      k.a = num(r.close_status);
      k.b = ms(r.updated_at);
      break;
    case kBySleepingExpiresAt:
      if (!r.expires_at) return std::nullopt;
      k.a = r.is_sleeping_task ? 1 : 0;
      k.b = ms(*r.expires_at);
      break;
    case kByProcessingExpiresAt:
      if (!r.on_children_finished_processing_expires_at) return std::nullopt;
      k.a = ms(*r.on_children_finished_processing_expires_at);
      break;
    case kByCloseExpiresAt:
      if (!r.close_expires_at) return std::nullopt;
      k.a = ms(*r.close_expires_at);
      break;
    case kByExecutorCancellation:
      if (!r.executor_id) return std::nullopt;
      k.a = r.needs_promise_cancellation ? 1 : 0;
      if (hot_only && !is_hot(index, k)) return std::nullopt;  // before hashing the id
      k.h = hash(*r.executor_id);
      k.b = ms(r.updated_at);
      break;
    case kByParent:
      if (!r.parent) return std::nullopt;
      k.h = hash(r.parent->execution_id);
      k.a = r.is_finished ? 1 : 0;
      break;
    case kByFinishedCloseStatus:
      k.a = r.is_finished ? 1 : 0;
      k.b = num(r.close_status);
      k.c = ms(r.updated_at);
      break;
    case kIndexCount:
      return std::nullopt;
  }
  if (hot_only && !is_hot(index, k)) return std::nullopt;
  return k;
}

}  // namespace

struct InMemoryTaskExecutionsStorage::Impl {
  mutable std::mutex mutex;
  // Keys view the entry's own strings (execution and unique ids never change): one allocation
  // per execution fewer, and no copies.
  std::unordered_map<std::string_view, std::unique_ptr<Entry>, ExecutionIdHash> by_id;
  std::unordered_map<std::string_view, Entry*> by_unique_id;
  std::array<IndexSet, kIndexCount> indexes;
  std::uint64_t next_seq = 0;

  // Brings every index up to date with the entry's record. New keys usually sort last (updated_at
  // and start_at grow with time), hence the end() hint.
  void index(Entry& e) {
    for (std::size_t i = 0; i < kIndexCount; ++i) {
      auto key = key_for(static_cast<Index>(i), e);
      auto& set = indexes[i];
      if (e.indexed[i]) {
        if (key && *key == *e.positions[i]) continue;
        auto node = set.extract(e.positions[i]);
        if (key) {
          node.value() = *key;
          e.positions[i] = set.insert(set.end(), std::move(node));
        } else {
          e.indexed[i] = false;
        }
      } else if (key) {
        e.positions[i] = set.insert(set.end(), *key);
        e.indexed[i] = true;
      }
    }
  }

  void unindex(Entry& e) {
    for (std::size_t i = 0; i < kIndexCount; ++i) {
      if (e.indexed[i]) indexes[i].erase(e.positions[i]);
      e.indexed[i] = false;
    }
    if (e.record.sleeping_task_unique_id) by_unique_id.erase(*e.record.sleeping_task_unique_id);
  }

  using Entries = std::vector<std::unique_ptr<Entry>>;

  // New entries holding copies of `records`. Made before the store's lock is taken: the copies'
  // allocations then do not lengthen the critical section that every thread queues on.
  static Entries make_entries(const std::vector<TaskExecutionRecord>& records) {
    Entries out;
    out.reserve(records.size());
    for (const auto& r : records) {
      auto& e = out.emplace_back(std::make_unique<Entry>());
      e->record = r;
    }
    return out;
  }

  [[noreturn]] static void throw_duplicate_id(const TaskExecutionRecord& r) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Task execution {} already exists", r.execution_id));
  }
  [[noreturn]] static void throw_duplicate_unique_id(const TaskExecutionRecord& r) {
    throw DurableExecutionError::non_retryable(
        fmt::format("Sleeping task execution with unique id {} already exists",
                    r.sleeping_task_unique_id.value_or("")));
  }

  // Checks records to be inserted by one call (in groups: one per request) before any of it is
  // written, so a rejected call leaves no trace.
  void check_insertable(const std::vector<const Entries*>& groups) const {
    std::size_t count = 0;
    for (const auto* g : groups) count += g->size();
    // Duplicates within the call need the local sets only when there is more than one record.
    const bool batch = count > 1;
    std::unordered_set<std::string_view> ids;
    std::unordered_set<std::string_view> unique_ids;
    for (const auto* g : groups) {
      for (const auto& e : *g) {
        const auto& r = e->record;
        if (by_id.contains(r.execution_id) || (batch && !ids.insert(r.execution_id).second)) {
          throw_duplicate_id(r);
        }
        if (r.sleeping_task_unique_id &&
            (by_unique_id.contains(*r.sleeping_task_unique_id) ||
             (batch && !unique_ids.insert(*r.sleeping_task_unique_id).second))) {
          throw_duplicate_unique_id(r);
        }
      }
    }
  }

  void insert(Entries& entries) {
    // A batch is checked whole first; a single record is checked by its own insertion (one hash
    // lookup instead of two).
    if (entries.size() > 1) check_insertable({&entries});
    add(entries);
  }

  // Inserts entries checked as a whole already, or a single one (checked here, undone if its
  // unique id is taken).
  void add(Entries& entries) {
    for (auto& entry : entries) {
      auto& e = *entry;
      auto [it, inserted] = by_id.try_emplace(e.record.execution_id, nullptr);
      if (!inserted) throw_duplicate_id(e.record);
      if (e.record.sleeping_task_unique_id &&
          !by_unique_id.try_emplace(*e.record.sleeping_task_unique_id, &e).second) {
        by_id.erase(it);
        throw_duplicate_unique_id(e.record);
      }
      it->second = std::move(entry);
      e.seq = next_seq++;
      index(e);
    }
  }

  Entry* find(const std::string& execution_id, const GetByIdFilters& filters) const {
    auto it = by_id.find(execution_id);
    if (it == by_id.end() || !filters.matches(it->second->record)) return nullptr;
    return it->second.get();
  }

  void update(Entry& e, const TaskExecutionUpdate& u) {
    apply_update(e.record, u);
    index(e);
  }

  void decrement_parent_active_children_count(const Entry& child) {
    if (!child.record.parent) return;
    if (auto* parent = find(child.record.parent->execution_id, {})) {
      --parent->record.active_children_count;
      index(*parent);
    }
  }

  // Entries of `index` from `from` onwards while `in_range` holds and `accept`ed, at most `limit`.
  template <class InRange, class Accept = bool (*)(const Entry&)>
  std::vector<Entry*> select(
      Index index, const Key& from, InRange in_range, std::int64_t limit,
      Accept accept = [](const Entry&) { return true; }) const {
    std::vector<Entry*> out;
    if (limit <= 0) return out;
    if (!is_hot(index, from)) return scan(index, in_range, limit, accept);
    const auto& set = indexes[index];
    for (auto it = set.lower_bound(from);
         it != set.end() && in_range(*it) && std::cmp_less(out.size(), limit); ++it) {
      if (accept(*it->entry)) out.push_back(it->entry);
    }
    return out;
  }

  // select() for values a partial index does not hold: every row's full key, in index order.
  template <class InRange, class Accept>
  std::vector<Entry*> scan(Index index, InRange in_range, std::int64_t limit, Accept accept) const {
    std::vector<Key> keys;
    for (const auto& [id, entry] : by_id) {
      auto key = key_for(index, *entry, false);
      if (key && in_range(*key) && accept(*entry)) keys.push_back(*key);
    }
    std::sort(keys.begin(), keys.end());
    std::vector<Entry*> out;
    for (const auto& k : keys) {
      if (!std::cmp_less(out.size(), limit)) break;
      out.push_back(k.entry);
    }
    return out;
  }

  std::vector<Entry*> children_of(const std::string& parent_id,
                                  std::optional<bool> is_finished) const {
    const auto h = hash(parent_id);
    const std::int64_t finished = is_finished.value_or(false) ? 1 : 0;
    return select(
        kByParent, Key{.h = h, .a = is_finished ? finished : kMin},
        [&](const Key& k) { return k.h == h && (!is_finished || k.a == finished); },
        std::numeric_limits<std::int64_t>::max(),
        [&](const Entry& e) { return e.record.parent->execution_id == parent_id; });
  }

  std::vector<TaskExecutionRecord> update_and_return(const std::vector<Entry*>& entries,
                                                     const TaskExecutionUpdate& u) {
    std::vector<TaskExecutionRecord> out;
    out.reserve(entries.size());
    for (auto* e : entries) {
      update(*e, u);
      out.push_back(e->record);
    }
    return out;
  }

  std::int64_t update_count(const std::vector<Entry*>& entries, const TaskExecutionUpdate& u) {
    for (auto* e : entries) update(*e, u);
    return static_cast<std::int64_t>(entries.size());
  }
};

InMemoryTaskExecutionsStorage::InMemoryTaskExecutionsStorage() : impl_(std::make_unique<Impl>()) {}
InMemoryTaskExecutionsStorage::~InMemoryTaskExecutionsStorage() = default;

std::size_t InMemoryTaskExecutionsStorage::size() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->by_id.size();
}

void InMemoryTaskExecutionsStorage::insert_many(const std::vector<TaskExecutionRecord>& records) {
  auto entries = Impl::make_entries(records);
  std::lock_guard lock(impl_->mutex);
  impl_->insert(entries);
}

std::vector<std::optional<TaskExecutionRecord>> InMemoryTaskExecutionsStorage::get_many_by_id(
    const std::vector<GetByIdRequest>& requests) {
  std::vector<std::optional<TaskExecutionRecord>> out;
  out.reserve(requests.size());
  std::lock_guard lock(impl_->mutex);
  for (const auto& req : requests) {
    auto* e = impl_->find(req.execution_id, req.filters);
    out.push_back(e ? std::optional{e->record} : std::nullopt);
  }
  return out;
}

std::vector<std::optional<TaskExecutionRecord>>
InMemoryTaskExecutionsStorage::get_many_by_sleeping_task_unique_id(
    const std::vector<GetBySleepingTaskUniqueIdRequest>& requests) {
  std::vector<std::optional<TaskExecutionRecord>> out;
  out.reserve(requests.size());
  std::lock_guard lock(impl_->mutex);
  for (const auto& req : requests) {
    auto it = impl_->by_unique_id.find(req.sleeping_task_unique_id);
    out.push_back(it == impl_->by_unique_id.end() ? std::nullopt
                                                  : std::optional{it->second->record});
  }
  return out;
}

void InMemoryTaskExecutionsStorage::update_many_by_id(
    const std::vector<UpdateByIdRequest>& requests) {
  std::lock_guard lock(impl_->mutex);
  for (const auto& req : requests) {
    auto* e = impl_->find(req.execution_id, req.filters);
    if (!e) continue;
    impl_->update(*e, req.update);
    if (req.decrement_parent_active_children_count) {
      impl_->decrement_parent_active_children_count(*e);
    }
    if (req.parent_update && e->record.parent) {
      if (auto* parent = impl_->find(e->record.parent->execution_id, req.parent_update->filters)) {
        impl_->update(*parent, req.parent_update->update);
      }
    }
  }
}

void InMemoryTaskExecutionsStorage::update_many_by_id_and_insert_children_if_updated(
    const std::vector<UpdateByIdAndInsertChildrenRequest>& requests) {
  std::vector<Impl::Entries> children;
  children.reserve(requests.size());
  for (const auto& req : requests) {
    children.push_back(Impl::make_entries(req.children_to_insert_if_updated));
  }
  std::lock_guard lock(impl_->mutex);
  // Every child the call would insert is checked before anything is written: a duplicate id fails
  // the whole call with nothing applied, as the SQL backends' transaction does, so a caller that
  // sends the other requests again (the batching wrapper isolating the bad one) finds them
  // unapplied instead of failing on their own, already inserted, children.
  std::vector<const Impl::Entries*> inserting;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (!children[i].empty() && impl_->find(requests[i].execution_id, requests[i].filters)) {
      inserting.push_back(&children[i]);
    }
  }
  impl_->check_insertable(inserting);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto& req = requests[i];
    auto* e = impl_->find(req.execution_id, req.filters);
    if (!e) continue;
    impl_->update(*e, req.update);
    impl_->add(children[i]);
  }
}

std::vector<TaskExecutionRecord>
InMemoryTaskExecutionsStorage::update_by_status_and_start_at_less_than_and_return(
    const UpdateByStatusAndStartAtLessThanRequest& req) {
  std::lock_guard lock(impl_->mutex);
  const auto status = num(req.status);
  const auto bound = ms(req.start_at_less_than);
  auto entries = impl_->select(
      kByStatusStartAt, Key{.a = status},
      [&](const Key& k) { return k.a == status && k.b < bound; }, req.limit);
  std::vector<TaskExecutionRecord> out;
  out.reserve(entries.size());
  for (auto* e : entries) {
    // The shared update, then this row's own expiry: no copy of the update per row.
    apply_update(e->record, req.update);
    e->record.expires_at =
        detail::saturating_add(req.update_expires_at_with_started_at, e->record.timeout);
    impl_->index(*e);
    out.push_back(e->record);
  }
  return out;
}

std::vector<TaskExecutionRecord> InMemoryTaskExecutionsStorage::
    update_by_status_and_on_children_finished_processing_status_and_active_children_count_zero_and_return(
        const UpdateByStatusAndOnChildrenFinishedProcessingStatusRequest& req) {
  std::lock_guard lock(impl_->mutex);
  const auto status = num(req.status);
  const auto processing = num(req.on_children_finished_processing_status);
  auto entries = impl_->select(
      kByProcessingWithZeroCount, Key{.a = status, .b = processing},
      [&](const Key& k) { return k.a == status && k.b == processing; }, req.limit);
  return impl_->update_and_return(entries, req.update);
}

std::vector<TaskExecutionRecord> InMemoryTaskExecutionsStorage::update_by_close_status_and_return(
    const UpdateByCloseStatusRequest& req) {
  std::lock_guard lock(impl_->mutex);
  const auto close = num(req.close_status);
  auto entries = impl_->select(
      kByCloseStatus, Key{.a = close}, [&](const Key& k) { return k.a == close; }, req.limit);
  return impl_->update_and_return(entries, req.update);
}

std::int64_t InMemoryTaskExecutionsStorage::update_by_is_sleeping_task_and_expires_at_less_than(
    const UpdateByIsSleepingTaskAndExpiresAtLessThanRequest& req) {
  std::lock_guard lock(impl_->mutex);
  const std::int64_t sleeping = req.is_sleeping_task ? 1 : 0;
  const auto bound = ms(req.expires_at_less_than);
  auto entries = impl_->select(
      kBySleepingExpiresAt, Key{.a = sleeping},
      [&](const Key& k) { return k.a == sleeping && k.b < bound; }, req.limit);
  if (!req.max_lease_expirations) return impl_->update_count(entries, req.update);
  for (auto* e : entries) {
    impl_->update(*e, e->record.lease_expirations >= *req.max_lease_expirations
                          ? req.exhausted_update
                          : req.update);
  }
  return static_cast<std::int64_t>(entries.size());
}

std::int64_t
InMemoryTaskExecutionsStorage::update_by_on_children_finished_processing_expires_at_less_than(
    const UpdateByOnChildrenFinishedProcessingExpiresAtLessThanRequest& req) {
  std::lock_guard lock(impl_->mutex);
  const auto bound = ms(req.on_children_finished_processing_expires_at_less_than);
  auto entries = impl_->select(
      kByProcessingExpiresAt, Key{}, [&](const Key& k) { return k.a < bound; }, req.limit);
  return impl_->update_count(entries, req.update);
}

std::int64_t InMemoryTaskExecutionsStorage::update_by_close_expires_at_less_than(
    const UpdateByCloseExpiresAtLessThanRequest& req) {
  std::lock_guard lock(impl_->mutex);
  const auto bound = ms(req.close_expires_at_less_than);
  auto entries = impl_->select(
      kByCloseExpiresAt, Key{}, [&](const Key& k) { return k.a < bound; }, req.limit);
  return impl_->update_count(entries, req.update);
}

std::vector<TaskExecutionRecord>
InMemoryTaskExecutionsStorage::update_by_executor_id_and_needs_promise_cancellation_and_return(
    const UpdateByExecutorIdAndNeedsPromiseCancellationRequest& req) {
  std::lock_guard lock(impl_->mutex);
  const std::int64_t flag = req.needs_promise_cancellation ? 1 : 0;
  const auto h = hash(req.executor_id);
  auto entries = impl_->select(
      kByExecutorCancellation, Key{.h = h, .a = flag},
      [&](const Key& k) { return k.h == h && k.a == flag; }, req.limit,
      [&](const Entry& e) { return e.record.executor_id == req.executor_id; });
  return impl_->update_and_return(entries, req.update);
}

std::vector<std::vector<TaskExecutionRecord>>
InMemoryTaskExecutionsStorage::get_many_by_parent_execution_id(
    const std::vector<GetByParentExecutionIdRequest>& requests) {
  std::vector<std::vector<TaskExecutionRecord>> out;
  out.reserve(requests.size());
  std::lock_guard lock(impl_->mutex);
  for (const auto& req : requests) {
    auto entries = impl_->children_of(req.parent_execution_id, std::nullopt);
    auto& children = out.emplace_back();
    children.reserve(entries.size());
    for (auto* e : entries) children.push_back(e->record);
  }
  return out;
}

void InMemoryTaskExecutionsStorage::update_many_by_parent_execution_id_and_is_finished(
    const std::vector<UpdateByParentExecutionIdAndIsFinishedRequest>& requests) {
  std::lock_guard lock(impl_->mutex);
  for (const auto& req : requests) {
    auto entries = impl_->children_of(req.parent_execution_id, req.is_finished);
    impl_->update_count(entries, req.update);
  }
}

std::int64_t InMemoryTaskExecutionsStorage::
    update_and_decrement_parent_active_children_count_by_is_finished_and_close_status(
        const UpdateAndDecrementParentActiveChildrenCountRequest& req) {
  std::lock_guard lock(impl_->mutex);
  const std::int64_t finished = req.is_finished ? 1 : 0;
  const auto close = num(req.close_status);
  auto entries = impl_->select(
      kByFinishedCloseStatus, Key{.a = finished, .b = close},
      [&](const Key& k) { return k.a == finished && k.b == close; }, req.limit);
  for (auto* e : entries) {
    impl_->update(*e, req.update);
    impl_->decrement_parent_active_children_count(*e);
  }
  return static_cast<std::int64_t>(entries.size());
}

void InMemoryTaskExecutionsStorage::delete_by_id(const DeleteByIdRequest& req) {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->by_id.find(req.execution_id);
  if (it == impl_->by_id.end()) return;
  impl_->unindex(*it->second);
  impl_->by_id.erase(it);
}

void InMemoryTaskExecutionsStorage::delete_all() {
  std::lock_guard lock(impl_->mutex);
  for (auto& index : impl_->indexes) index.clear();
  impl_->by_unique_id.clear();
  impl_->by_id.clear();
}

}  // namespace durable_execution
