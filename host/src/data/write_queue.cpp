#include "data/write_queue.h"

#include "core/event_loop.h"

namespace lampyr::data {

WriteQueue::WriteQueue(std::string index_prefix) : index_prefix_(std::move(index_prefix)) {}

size_t WriteQueue::ShardOf(const std::string& key) const { return Fnv1a(key) % kIndexShards; }

std::string WriteQueue::ShardKey(size_t shard) const { return index_prefix_ + ":" + std::to_string(shard); }

std::string WriteQueue::ShardText(size_t shard) const {
  std::string text;
  for (const auto& k : shard_keys_[shard]) text += k + "\n";
  return text;
}

void WriteQueue::InsertLocked(const std::string& key, DirtyEntry e) {
  shard_keys_[ShardOf(key)].insert(key);
  entries_[key] = std::move(e);
}

McResult WriteQueue::EnsureListed(McClient* mc, const std::string& key, const std::string& table,
                                  const std::string& pk, bool force) {
  const size_t shard = ShardOf(key);
  std::lock_guard<std::mutex> slk(shard_mu_[shard]);
  bool queued = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    queued = entries_.count(key) != 0;
    if (queued && !force) return McResult::kOk;
  }
  McResult r = mc->Append(ShardKey(shard), key + "\n");
  if (r == McResult::kNotStored) {
    // The shard item is gone (first use, or memcached restarted and lost it
    // with the keys it listed): write it whole, this key included.
    std::string text;
    {
      std::lock_guard<std::mutex> lk(mu_);
      text = ShardText(shard);
    }
    r = mc->Set(ShardKey(shard), text + key + "\n", 0);
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (entries_.count(key)) return r;
  DirtyEntry e;
  e.table = table;
  e.pk = pk;
  e.seq = next_seq_++;
  e.created_us = EventLoop::NowMicros();
  InsertLocked(key, std::move(e));
  return r;
}

McResult WriteQueue::Record(McClient* mc, const std::string& key, const std::string& table, const std::string& pk,
                           const Row& row, bool deleted, uint64_t version) {
  McResult r = McResult::kOk;
  bool queued;
  {
    std::lock_guard<std::mutex> lk(mu_);
    queued = entries_.count(key) != 0;
  }
  if (!queued) r = EnsureListed(mc, key, table, pk);
  std::lock_guard<std::mutex> lk(mu_);
  // Two workers of this process can finish CAS v -> v+1 and v+1 -> v+2 and
  // then record in the opposite order. The queue must keep the newest: it is
  // what MySQL gets if memcached loses the record (versions only grow, see
  // record_codec.h).
  if (auto it = entries_.find(key); it != entries_.end() && it->second.has_data && it->second.version > version)
    return r;
  DirtyEntry e;
  e.table = table;
  e.pk = pk;
  e.seq = next_seq_++;
  e.has_data = true;
  e.deleted = deleted;
  e.version = version;
  e.row = row;
  InsertLocked(key, std::move(e));
  return r;
}

void WriteQueue::RecordIfQueued(const std::string& key, const Row& row, bool deleted) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  it->second.seq = next_seq_++;
  it->second.has_data = true;
  it->second.deleted = deleted;
  it->second.row = row;
}

void WriteQueue::AddPlaceholder(const std::string& key, const std::string& table, const std::string& pk) {
  std::lock_guard<std::mutex> lk(mu_);
  if (entries_.count(key)) return;
  DirtyEntry e;
  e.table = table;
  e.pk = pk;
  e.seq = next_seq_++;
  e.recovered = true;
  InsertLocked(key, std::move(e));
}

std::optional<DirtyEntry> WriteQueue::Find(const std::string& key) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<std::string, DirtyEntry>> WriteQueue::Snapshot(bool with_rows) const {
  std::lock_guard<std::mutex> lk(mu_);
  if (with_rows) return {entries_.begin(), entries_.end()};
  std::vector<std::pair<std::string, DirtyEntry>> out;
  out.reserve(entries_.size());
  for (const auto& [k, e] : entries_) {
    DirtyEntry copy;
    copy.table = e.table;
    copy.pk = e.pk;
    copy.seq = e.seq;
    copy.has_data = e.has_data;
    copy.deleted = e.deleted;
    copy.version = e.version;
    copy.recovered = e.recovered;
    copy.created_us = e.created_us;
    out.emplace_back(k, std::move(copy));
  }
  return out;
}

void WriteQueue::DoneMany(const std::vector<std::pair<const std::string*, uint64_t>>& done) {
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& [key, seq] : done) {
    auto it = entries_.find(*key);
    if (it == entries_.end() || it->second.seq != seq) continue;
    entries_.erase(it);
    const size_t shard = ShardOf(*key);
    shard_keys_[shard].erase(*key);
    shards_to_compact_.insert(shard);
  }
}

bool WriteQueue::Done(const std::string& key, uint64_t seq) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.seq != seq) return false;
  entries_.erase(it);
  const size_t shard = ShardOf(key);
  shard_keys_[shard].erase(key);
  shards_to_compact_.insert(shard);
  return true;
}

size_t WriteQueue::size() const {
  std::lock_guard<std::mutex> lk(mu_);
  return entries_.size();
}

void WriteQueue::CompactIndex(McClient* mc) {
  std::set<size_t> shards;
  {
    std::lock_guard<std::mutex> lk(mu_);
    shards.swap(shards_to_compact_);
  }
  for (size_t shard : shards) {
    std::lock_guard<std::mutex> slk(shard_mu_[shard]);
    std::string text;
    {
      std::lock_guard<std::mutex> lk(mu_);
      text = ShardText(shard);
    }
    if (mc->Set(ShardKey(shard), text, 0) != McResult::kOk) {
      std::lock_guard<std::mutex> lk(mu_);
      shards_to_compact_.insert(shard);  // try again next time
    }
  }
}

McResult WriteQueue::ReadIndex(McClient* mc, std::vector<std::string>* keys) {
  std::vector<std::string> shard_keys;
  for (size_t i = 0; i < kIndexShards; ++i) shard_keys.push_back(ShardKey(i));
  std::map<std::string, McItem> items;
  McResult r = mc->MultiGet(shard_keys, &items);
  if (r != McResult::kOk) return r;
  std::set<std::string> seen;
  for (const auto& [k, item] : items) {
    size_t start = 0;
    while (start < item.value.size()) {
      size_t nl = item.value.find('\n', start);
      if (nl == std::string::npos) nl = item.value.size();
      if (nl > start) seen.insert(item.value.substr(start, nl - start));
      start = nl + 1;
    }
  }
  keys->assign(seen.begin(), seen.end());
  return McResult::kOk;
}

}  // namespace lampyr::data
