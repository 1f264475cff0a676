// EngineCore: what the request workers and the flusher share — schema, key
// names, the writer's queue, health and metrics — and the record operations
// that run on a worker thread with that thread's connections. Internal to
// the data layer; users see DataEngine (data_engine.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <string>
#include <tuple>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "core/status.h"
#include "data/cache_store.h"
#include "data/memcache_client.h"
#include "data/mysql_session.h"
#include "data/record_codec.h"
#include "data/schema.h"
#include "data/write_queue.h"

namespace lampyr::data {

// One per worker thread (and one for the flusher): never shared.
struct WorkerCtx {
  explicit WorkerCtx(const DbConfig& db, std::unique_ptr<McClient> m) : mysql(db), mc(std::move(m)) {}
  MysqlSession mysql;
  std::unique_ptr<McClient> mc;
};

struct DataMetrics {
  DataMetrics();
  Counter* hits;
  Counter* misses;
  Counter* mysql_reads;
  Counter* fallback_reads;
  Counter* cas_conflicts;
  Counter* refused;
  Counter* fences;
  Counter* memcached_errors;
  Counter* mysql_errors;
  Counter* flushed_rows;
  Counter* flush_failures;
  Counter* index_errors;
  Counter* recovered;
  Gauge* dirty;
  Gauge* memcached_up;
  Gauge* mysql_up;
};

// Up/down state of one service: counts every failure, logs only changes.
class Health {
 public:
  Health(const char* service, Gauge* up, Counter* errors) : service_(service), up_gauge_(up), errors_(errors) {
    up_gauge_->Set(1);
  }
  void Ok();
  void Failed(const std::string& detail);
  bool up() const { return up_.load(); }

 private:
  const char* service_;
  Gauge* up_gauge_;
  Counter* errors_;
  std::atomic<bool> up_{true};
};

// The cache-epoch marker of one memcached server ("<prefix>:epoch", stored
// on every server through *_by_key): "P 0" = memcached lost its data, the
// next epoch is being numbered; "P <n>" = epoch n waits until every live
// writer has written what it holds to MySQL; "O <n>" = epoch n is open,
// records stored under it are valid.
struct EpochMarker {
  enum State { kMissing, kPending, kOpen } state = kMissing;
  uint64_t epoch = 0;
  uint64_t cas = 0;
};

// Lets the flusher wait until every record operation that may have read the
// cache before a given moment has finished (and queued what it acknowledged),
// without stopping operations that start after it: two generations of
// in-flight counts, flipped by Barrier().
class OpGate : NonCopyable {
 public:
  uint64_t Enter();
  void Leave(uint64_t gen);
  void Barrier();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t gen_ = 0;
  int64_t inflight_[2] = {0, 0};
};

class EngineCore : NonCopyable {
 public:
  using Mutator = std::function<Status(Row& row)>;

  EngineCore(const Config& config, std::string writer_id);

  const Schema& schema() const { return schema_; }
  Schema* mutable_schema() { return &schema_; }
  const KeySpace& keys() const { return keys_; }
  WriteQueue& queue() { return queue_; }
  DataMetrics& metrics() { return metrics_; }
  Health& mc_health() { return mc_health_; }
  Health& mysql_health() { return mysql_health_; }
  const DbConfig& db() const { return db_; }
  uint32_t idle_exptime() const { return idle_exptime_; }
  const std::string& writer_id() const { return writer_id_; }

  // Record operations, on a worker thread with that worker's context.
  Status Get(WorkerCtx& w, const TableSchema& t, const std::string& pk, std::optional<Row>* out);
  Status GetMany(WorkerCtx& w, const TableSchema& t, const std::vector<std::string>& pks,
                 std::vector<std::optional<Row>>* out);
  Status GetByFk(WorkerCtx& w, const TableSchema& t, const std::string& fk, std::vector<Row>* out);
  Status Create(WorkerCtx& w, const TableSchema& t, const Row& row, std::string* pk);
  // `remove` turns the record into a tombstone (flushed as DELETE).
  Status Modify(WorkerCtx& w, const TableSchema& t, const std::string& pk, const Mutator& mutate, bool remove,
                Row* out);

  // --- Cache epochs (docs/data.md, "memcached losing its data") ---
  // Creates the engine's own tables (lampyr_rowver, lampyr_sync) if needed.
  Status EnsureMetaTables(MysqlSession& db);
  // On the flusher's connection: holds this writer's named lock (its
  // liveness for the others) and its row in lampyr_sync; reads the newest
  // epoch number handed out for this cache prefix into `*fence`.
  Status Register(MysqlSession& db, uint64_t* fence);
  // After a complete flush of everything queued before `fence` was read.
  Status MarkSynced(MysqlSession& db, uint64_t fence);
  uint64_t synced() const { return synced_.load(); }
  OpGate& gate() { return gate_; }
  // Set by DataEngine: wakes the flusher for a sync now.
  void set_sync_poke(std::function<void()> poke) { poke_ = std::move(poke); }
  // The versions MySQL holds for `pks` of table t (absent = never flushed).
  static Status RowVersions(MysqlSession& db, const TableSchema& t, const std::vector<std::string>& pks,
                            bool for_update, std::map<std::string, uint64_t>* out);
  static Status StoreRowVersions(MysqlSession& db, const std::vector<std::tuple<std::string, std::string, uint64_t>>& v);

 private:
  Status CheckKey(const std::string& key) const;
  // The freshest copy this process can rebuild: its own queued data, else MySQL.
  Status LoadForCache(WorkerCtx& w, const TableSchema& t, const std::string& pk, const std::string& key,
                      CachedRecord* rec, bool* found);
  Status SelectRow(WorkerCtx& w, const TableSchema& t, const std::string& pk, bool for_update, std::optional<Row>* out);
  // Reads the record and its server's epoch marker in one round trip. kOk
  // only for a copy of the open epoch; a copy of another epoch is kNotFound
  // with slot->cas set (replace it with CAS, not add).
  McResult ReadRecord(McClient* mc, const std::string& key, CacheSlot* slot, EpochMarker* m);
  McResult ReadMarker(McClient* mc, const std::string& key, EpochMarker* m);
  // Drives the marker of key's server to "open": starts a new epoch when it
  // is missing, waits (bounded) for the writers to sync when pending. Error
  // when it stays closed: the caller refuses the operation.
  Status AwaitOpen(WorkerCtx& w, const std::string& key, EpochMarker* m);
  Status AllSynced(WorkerCtx& w, uint64_t epoch, bool* all);
  Status NewEpoch(WorkerCtx& w, uint64_t* epoch);
  Status CheckMutation(const TableSchema& t, const std::string& pk, const Row& row) const;
  // Keeps cached fk lists in step with a change of a row's fk (or removal).
  void FkChanged(WorkerCtx& w, const TableSchema& t, const std::string& pk, const Row& before, const Row& after,
                 bool removed);
  void FkListEdit(WorkerCtx& w, const TableSchema& t, const std::string& fk, const std::string& pk, bool add,
                  bool load_if_absent);
  Status SelectFkList(WorkerCtx& w, const TableSchema& t, const std::string& fk, std::vector<std::string>* pks);
  // Clean records expire idle_evict_s after their last use: reads push the
  // expiry out (at most every idle_evict_s/4 per key, to keep reads cheap).
  void Touched(McClient* mc, const std::string& key, bool refresh);
  McResult Note(McResult r, McClient* mc);

  DbConfig db_;
  std::string writer_id_;
  Schema schema_;
  KeySpace keys_;
  WriteQueue queue_;
  DataMetrics metrics_;
  Health mc_health_;
  Health mysql_health_;
  uint32_t idle_exptime_;
  std::mutex touch_mu_;
  std::unordered_map<std::string, int64_t> touched_;
  std::string prefix_;
  std::string marker_key_;
  std::string lock_name_;  // this writer's MySQL named lock
  OpGate gate_;
  std::atomic<uint64_t> synced_{0};
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  std::function<void()> poke_;
};

}  // namespace lampyr::data
