// DataEngine: Firefly's dbentrust made safe (DESIGN §7, docs/data.md).
// Records are rows of the tables declared in config `tables`, cached in
// memcached and persisted to MySQL by write-behind. Every call is async: the
// blocking work runs on a worker pool and the callback runs later on the
// event loop thread. The loop never waits for MySQL or memcached.
//
//   DataEngine data(&loop, config, {.writer_id = "game1"});
//   Status s = data.Start();                       // blocking, at startup
//   data.Update("player", "42", {{"hp", "90"}}, [](Status s) { ... });
//   data.Stop();                                   // flushes everything
#pragma once

#include <json/value.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/event_loop.h"
#include "core/status.h"
#include "data/record_codec.h"

namespace lampyr::data {

class EngineCore;
class Flusher;
struct WorkerCtx;
template <typename Ctx>
class WorkerPool;

struct DataOptions {
  // Names this process's dirty index in memcached: unique among running
  // processes and stable across restarts (the server name), so a restarted
  // process finds what its predecessor left dirty.
  std::string writer_id = "lampyr";
  size_t workers = 0;               // 0 = db.pool
  double stop_flush_timeout_s = 30; // Stop() keeps retrying MySQL this long
};

class DataEngine : NonCopyable {
 public:
  DataEngine(EventLoop* loop, const Config& config, DataOptions options = {});
  ~DataEngine();  // Stop()

  // Connects, reads the declared tables' columns from information_schema,
  // queues what a previous run left dirty, starts workers and the flusher.
  // Blocking. Fails when MySQL is unreachable or a table does not match the
  // config; memcached being down is only a degraded start.
  Status Start();
  // Blocking and idempotent: runs queued calls (their callbacks are posted to
  // the loop), then flushes every dirty record, retrying MySQL for up to
  // stop_flush_timeout_s.
  void Stop();

  using RowCallback = std::function<void(Status, std::optional<Row>)>;
  using RowsCallback = std::function<void(Status, std::vector<std::optional<Row>>)>;
  using ListCallback = std::function<void(Status, std::vector<Row>)>;
  using PkCallback = std::function<void(Status, std::string pk)>;
  using DoneCallback = std::function<void(Status)>;
  using ModifyCallback = std::function<void(Status, Row)>;
  // Runs on a worker thread, possibly several times (once per CAS attempt),
  // on the freshest copy: must only compute from `row`.
  using Mutator = std::function<Status(Row& row)>;

  // A missing record is OK with nullopt.
  void Get(const std::string& table, const std::string& pk, RowCallback cb);
  // Results in the order of `pks`.
  void GetMany(const std::string& table, std::vector<std::string> pks, RowsCallback cb);
  // Rows whose fk column equals `fk` (table must declare an fk), by pk order
  // of the cached list.
  void GetByFk(const std::string& table, const std::string& fk, ListCallback cb);
  // Inserts into MySQL at once (not write-behind); the new key comes from
  // MySQL's AUTO_INCREMENT counter when the table is autoinc and `row` has
  // no pk. Durable when the callback says OK.
  void Create(const std::string& table, Row row, PkCallback cb);
  // Sets `fields` on an existing record (CAS loop). Error if it does not exist.
  void Update(const std::string& table, const std::string& pk, Row fields, DoneCallback cb);
  // Read-modify-write under CAS: `mutate` sees the current row.
  void Modify(const std::string& table, const std::string& pk, Mutator mutate, ModifyCallback cb);
  // Deletes the record (a tombstone until flushed as DELETE).
  void Remove(const std::string& table, const std::string& pk, DoneCallback cb);

  // A raw prepared statement for what the record API does not cover
  // (reports, bulk reads). `sql` is used as given with `params` bound to its
  // `?` markers: never splice values into it. It sees MySQL only — not
  // unflushed record changes — and bypasses the cache, so writing to a
  // declared table this way races with write-behind (docs/data.md).
  // `rows` for statements that return rows, `affected` otherwise.
  using QueryCallback = std::function<void(Status, std::vector<std::vector<Value>> rows, uint64_t affected)>;
  void Query(std::string sql, std::vector<Value> params, QueryCallback cb);

  // Blocking: writes every dirty record now. For tests and tools; never call
  // it from the loop of a serving process.
  Status FlushNow();
  // Records this process changed that MySQL has not seen yet.
  size_t dirty_count() const;
  Json::Value StatusJson() const;

 private:
  bool Submit(std::function<void(WorkerCtx&)> task);

  EventLoop* loop_;
  Config config_;
  DataOptions options_;
  std::unique_ptr<EngineCore> core_;
  std::unique_ptr<WorkerPool<WorkerCtx>> pool_;
  std::unique_ptr<Flusher> flusher_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace lampyr::data
