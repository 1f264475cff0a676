// WriteQueue: this writer's own record of what it made dirty and MySQL has
// not seen yet, with the data itself, plus the memcached "dirty index" that
// lists those keys so a restarted writer can find them after a crash (no
// `stats cachedump`). Two copies on purpose: the queue survives a memcached
// restart, the index survives a process crash (docs/data.md).
//
// The index is kIndexShards memcached items "<prefix>:d:<writer>:<n>", each a
// '\n'-separated list of record keys. Only this writer writes its shards; a
// per-shard mutex orders appends against compaction, so nothing is dropped.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/status.h"
#include "data/memcache_client.h"
#include "data/record_codec.h"

namespace lampyr::data {

struct DirtyEntry {
  std::string table;
  std::string pk;
  // Local change counter: a flush removes the entry only if no newer change
  // replaced the one it wrote.
  uint64_t seq = 0;
  // False for a placeholder: memcached may hold a dirty copy (recovered after
  // a crash, or a write still in flight) but this process has no data.
  bool has_data = false;
  bool deleted = false;
  uint64_t version = 0;  // cache version of the data
  Row row;
  bool recovered = false;   // placeholder read from the index at start
  int64_t created_us = 0;   // when the placeholder was queued (steady clock)
};

class WriteQueue : NonCopyable {
 public:
  static constexpr size_t kIndexShards = 64;

  // `index_prefix` = "<memcached prefix>:d:<writer id>".
  explicit WriteQueue(std::string index_prefix);

  // Call before a cache write that makes `key` dirty. Lists the key in the
  // memcached index unless already queued, and queues a placeholder.
  // Returns the memcached result of the index write (kOk when not needed).
  // `force` appends even when queued (the shard may have been lost with a
  // memcached restart while the queue kept the key).
  McResult EnsureListed(McClient* mc, const std::string& key, const std::string& table, const std::string& pk,
                        bool force = false);
  // After a successful cache write, before it is acknowledged: the queue now
  // holds its data, unless it already holds a newer version of the record. If a flush dropped the key since EnsureListed (it wrote
  // an older copy), the key is listed in the index again first.
  McResult Record(McClient* mc, const std::string& key, const std::string& table, const std::string& pk,
                  const Row& row, bool deleted, uint64_t version);
  // Same, only when `key` is already queued (a write that went straight to
  // MySQL must still supersede older queued data).
  void RecordIfQueued(const std::string& key, const Row& row, bool deleted);
  // Queues a placeholder without touching the index (recovery).
  void AddPlaceholder(const std::string& key, const std::string& table, const std::string& pk);

  std::optional<DirtyEntry> Find(const std::string& key) const;
  // Every entry; without row data unless `with_rows` (Find() fetches it).
  std::vector<std::pair<std::string, DirtyEntry>> Snapshot(bool with_rows = true) const;
  // Removes `key` if its seq is still `seq`. Returns true when removed.
  bool Done(const std::string& key, uint64_t seq);
  // Done() for many under one lock.
  void DoneMany(const std::vector<std::pair<const std::string*, uint64_t>>& done);
  size_t size() const;

  // Rewrites every shard that lost keys since the last call so it lists
  // exactly the queued keys. Best effort (memcached may be down).
  void CompactIndex(McClient* mc);
  // Reads every shard of this writer: keys a previous run left dirty.
  McResult ReadIndex(McClient* mc, std::vector<std::string>* keys);

 private:
  size_t ShardOf(const std::string& key) const;
  std::string ShardKey(size_t shard) const;
  std::string ShardText(size_t shard) const;  // needs mu_
  void InsertLocked(const std::string& key, DirtyEntry e);

  const std::string index_prefix_;
  std::array<std::mutex, kIndexShards> shard_mu_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, DirtyEntry> entries_;
  std::array<std::unordered_set<std::string>, kIndexShards> shard_keys_;
  std::set<size_t> shards_to_compact_;
  uint64_t next_seq_ = 1;
};

}  // namespace lampyr::data
