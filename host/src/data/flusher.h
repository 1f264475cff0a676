// Flusher: the write-behind thread. Every flush_interval_ms it writes the
// records in the writer's queue to MySQL — the cached copy when memcached has
// one (it includes other processes' updates), else the queue's own data — in
// batches of multi-row upserts and deletes, one transaction per batch. Then
// it clears each cached record's dirty flag by CAS (so an update that came in
// meanwhile stays dirty) and drops queue entries whose change it wrote.
//
// Flushes of all processes sharing a database are serialized by a MySQL
// named lock: a flusher reads the cache only after the previous one
// committed, so MySQL never goes back to an older copy.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "data/engine_core.h"

namespace lampyr::data {

class Flusher : NonCopyable {
 public:
  Flusher(EngineCore* core, std::unique_ptr<WorkerCtx> ctx, uint32_t interval_ms, uint32_t batch);
  ~Flusher();

  // Starts the thread, which first registers this writer in MySQL (its
  // named lock and lampyr_sync row): the engine acknowledges nothing before
  // the other writers can see it. Returns the registration's result.
  Status Start();
  // Wakes the thread to check for a new cache epoch and sync now.
  void RequestSync();
  // Flushes everything now and waits for the result (tests, admin).
  Status FlushNow();
  // Graceful stop: keeps flushing (retrying MySQL with backoff) until the
  // queue is empty or `timeout_s` passed, then joins. Returns how many
  // records were left unflushed (they stay dirty in memcached and listed in
  // the dirty index for the next start).
  size_t Stop(double timeout_s);

 private:
  struct Item;
  struct Batch;
  void Run();
  void RunLoop();
  Status FlushAll();
  // Pipeline stages of one batch: read (memcached), write (MySQL), finish
  // (clear dirty flags, drop queue entries).
  void ReadBatch(McClient* mc, Batch* batch);
  Status WriteBatch(Batch* batch);
  void FinishBatch(Batch* batch);
  Status WriteRows(std::vector<Item>& items);
  // Not yet time to flush: has a new cache epoch been started since we last
  // synced? (Register also re-takes our named lock after a lost connection.)
  bool SyncDue();

  EngineCore* core_;
  std::unique_ptr<WorkerCtx> w_;
  std::unique_ptr<McClient> reader_mc_;  // the read stage's handle
  std::unique_ptr<McClient> quiet_;      // the finish stage's: pipelined dirty-flag clears
  const uint32_t interval_ms_;
  const uint32_t batch_;
  const std::string lock_name_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  double stop_timeout_s_ = 0;
  uint64_t requested_ = 0;  // FlushNow generations
  uint64_t completed_ = 0;
  Status last_;
  size_t left_ = 0;
  bool sync_requested_ = false;
  bool registered_ = false;
  Status register_status_;
  bool incomplete_ = false;  // a row could not be written in this flush
  std::thread thread_;
};

}  // namespace lampyr::data
