// EngineCore: what the request workers and the flusher share — schema, key
// names, the writer's queue, health and metrics — and the record operations
// that run on a worker thread with that thread's connections. Internal to
// the data layer; users see DataEngine (data_engine.h).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <string>
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
  Counter* write_through;
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

  // Keys written straight to MySQL while memcached did not answer: their
  // cached copies are stale and are deleted once memcached answers again.
  void ForgetStaleCopies(McClient* mc);

 private:
  Status CheckKey(const std::string& key) const;
  // The freshest copy this process can rebuild: its own queued data, else MySQL.
  Status LoadForCache(WorkerCtx& w, const TableSchema& t, const std::string& pk, const std::string& key,
                      CachedRecord* rec, bool* found);
  Status SelectRow(WorkerCtx& w, const TableSchema& t, const std::string& pk, bool for_update, std::optional<Row>* out);
  Status WriteThrough(WorkerCtx& w, const TableSchema& t, const std::string& pk, const Mutator& mutate, bool remove,
                      Row* out);
  Status CheckMutation(const TableSchema& t, const std::string& pk, const Row& row) const;
  // Keeps cached fk lists in step with a change of a row's fk (or removal).
  void FkChanged(WorkerCtx& w, const TableSchema& t, const std::string& pk, const Row& before, const Row& after,
                 bool removed);
  void FkListEdit(WorkerCtx& w, const TableSchema& t, const std::string& fk, const std::string& pk, bool add,
                  bool load_if_absent);
  Status SelectFkList(WorkerCtx& w, const TableSchema& t, const std::string& fk, std::vector<std::string>* pks);
  void MarkStale(const std::string& key);
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
  std::mutex stale_mu_;
  std::set<std::string> stale_;
  std::atomic<bool> have_stale_{false};
};

}  // namespace lampyr::data
