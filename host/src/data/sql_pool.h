// SqlPool: plain SQL for plugins on servers with "db": true, with or without
// the record cache (Firefly's dbpool; docs/plugins.md "SQL"). A few MySQL
// connections, each owned by its own thread (Connector/C++ calls block);
// statements and transactions queue for them and their results are posted
// back to the event loop. The loop never waits for MySQL.
//
//  - Statements: prepared, values bound to '?' (never spliced), cached per
//    connection by SQL text (bounded). A statement that returns rows yields
//    them (with column names); others yield the affected row count.
//  - Transactions: Begin() pins one connection until Commit()/Rollback();
//    its statements run there in order. A transaction open longer than
//    db.tx_timeout_ms is rolled back by the host and every later call on it
//    fails; so a plugin that forgets one costs a connection for a bounded time.
//  - Bounds: db.sql_queue statements may wait (beyond: refused at once);
//    one that waited longer than db.sql_timeout_ms for a connection fails
//    without running; one that runs is bounded by the client's read/write
//    timeout (db.sql_timeout_ms, rounded up to seconds).
//  - A dead database fails fast: a failed connect makes every call fail at
//    once with that error for the next second (then one connect is tried
//    again), instead of each call waiting for its own connect timeout.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/config.h"
#include "core/event_loop.h"
#include "core/status.h"
#include "data/record_codec.h"

namespace lampyr::data {

struct SqlResult {
  std::vector<std::string> columns;         // empty for a statement without rows
  std::vector<std::vector<Value>> rows;
  uint64_t affected = 0;
};

// Why a call failed, for the plugin's completion status.
enum class SqlError { kNone, kSql, kTimeout, kUnavailable };

class SqlConn;

class SqlPool : NonCopyable {
 public:
  using ResultCallback = std::function<void(SqlError, Status, SqlResult)>;
  using TxCallback = std::function<void(SqlError, Status, uint64_t tx)>;
  using DoneCallback = std::function<void(SqlError, Status)>;

  SqlPool(EventLoop* loop, const DbConfig& db);
  ~SqlPool();  // Stop()

  // Starts the connection threads (they connect lazily). Never blocks on MySQL.
  void Start();
  // Fails what waits, rolls back open transactions, joins the threads.
  void Stop();

  // Loop thread only. Each returns false (and never calls back) when the
  // queue is full or the pool stopped; otherwise the callback runs exactly
  // once, on the loop.
  bool Query(std::string sql, std::vector<Value> params, ResultCallback cb);
  bool Begin(TxCallback cb);
  bool TxQuery(uint64_t tx, std::string sql, std::vector<Value> params, ResultCallback cb);
  bool Commit(uint64_t tx, DoneCallback cb);
  bool Rollback(uint64_t tx, DoneCallback cb);
  // Loop thread: is `tx` open (begun, not ended, not timed out)?
  bool TxOpen(uint64_t tx) const { return txs_.count(tx) != 0; }

  // For tests and /status.
  uint64_t timeouts() const { return timeouts_.load(); }
  size_t connections() const { return conns_.size(); }

 private:
  struct Task {
    double deadline = 0;  // EventLoop::NowMicros()/1e6 by which it must have started
    // With an error the task must not use the connection (it may be null).
    std::function<void(SqlConn*, SqlError, Status)> run;
  };
  struct Conn {
    std::unique_ptr<SqlConn> session;
    std::thread thread;
    uint64_t tx = 0;          // pinned to this transaction (0: free)
    uint64_t tx_epoch = 0;    // the connection (SqlConn::epoch) it began on
    std::deque<Task> tx_tasks;
  };
  struct Tx {  // loop-side
    size_t conn = 0;
    TimerId timer = 0;
  };

  Task StatementTask(std::string sql, std::vector<Value> params, ResultCallback cb);
  bool Push(Task t);                     // shared queue
  bool PushTx(uint64_t tx, Task t);      // the transaction's connection
  void Worker(size_t i);
  void EndTx(uint64_t tx);               // loop: forget it, cancel its timer
  void Unpin(uint64_t tx);               // worker: its connection serves everyone again
  static Status TxNotOpen(uint64_t tx);
  void TxTimedOut(uint64_t tx);          // loop
  static double Now();

  EventLoop* loop_;
  DbConfig db_;
  size_t queue_limit_;
  double timeout_s_;
  double tx_timeout_s_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::unordered_map<uint64_t, size_t> pinned_;  // tx -> conn (worker side, under mu_)
  bool stopping_ = false;
  std::unordered_map<uint64_t, Tx> txs_;         // loop side
  uint64_t next_tx_ = 0;
  std::atomic<uint64_t> timeouts_{0};
  std::atomic<int64_t> down_until_us_{0};        // fail fast until then
  std::shared_ptr<std::string> down_error_;      // under mu_
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lampyr::data
