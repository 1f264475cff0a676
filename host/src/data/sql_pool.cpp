#include "data/sql_pool.h"

#include <cppconn/connection.h>
#include <cppconn/driver.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/resultset_metadata.h>
#include <cppconn/statement.h>
#include <mysql_driver.h>

#include <algorithm>
#include <map>

#include "core/log.h"
#include "data/mysql_session.h"

namespace lampyr::data {

// One Connector/C++ connection, used by one thread only. Its own class (not
// MysqlSession): plugin statements need per-statement timeouts, generic
// execute() with column names, and to know whether a transaction survived.
class SqlConn : NonCopyable {
 public:
  SqlConn(const DbConfig& db, int timeout_s) : db_(db), timeout_s_(timeout_s) {}
  ~SqlConn() { Disconnect(); }

  Status Ensure() {
    if (conn_) return Status::OK();
    try {
      // A hung server (not a dead one: that resets the connection at once)
      // fails the statement after timeout_s_ instead of holding the thread.
      conn_ = MysqlConnect(db_, std::min(timeout_s_, 2), timeout_s_);
      conn_->setAutoCommit(true);
      ++epoch_;
      return Status::OK();
    } catch (const sql::SQLException& e) {
      conn_.reset();
      return Status::Error("sql: cannot connect to " + db_.host + ":" + std::to_string(db_.port) + ": " + e.what() +
                           " (error " + std::to_string(e.getErrorCode()) + ")");
    }
  }
  bool connected() const { return conn_ != nullptr; }
  uint64_t epoch() const { return epoch_; }

  void Disconnect() {
    stmts_.clear();
    if (!conn_) return;
    try {
      conn_->close();
    } catch (...) {
    }
    conn_.reset();
  }

  // Runs one prepared statement. *lost: the connection is gone with it.
  Status Run(const std::string& text, const std::vector<Value>& params, SqlResult* out, bool* lost) {
    return Guarded("statement", lost, [&] {
      sql::PreparedStatement* st = Prepare(text);
      for (size_t i = 0; i < params.size(); ++i) {
        const unsigned idx = static_cast<unsigned>(i + 1);
        if (params[i]) st->setString(idx, sql::SQLString(params[i]->data(), params[i]->size()));
        else st->setNull(idx, 0 /* sql::DataType::SQLNULL */);
      }
      *out = SqlResult();
      // Connector/C++ 1.1 implements neither getUpdateCount() nor
      // getMoreResults() for prepared statements: the statement's own
      // result metadata (known after prepare) says which call to make.
      sql::ResultSetMetaData* pmeta = st->getMetaData();
      if (pmeta && pmeta->getColumnCount() > 0) {
        std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
        sql::ResultSetMetaData* meta = rs->getMetaData();
        const unsigned ncols = meta->getColumnCount();
        for (unsigned c = 1; c <= ncols; ++c) out->columns.push_back(meta->getColumnLabel(c).asStdString());
        while (rs->next()) {
          std::vector<Value> row(ncols);
          for (unsigned c = 1; c <= ncols; ++c)
            if (!rs->isNull(c)) row[c - 1] = rs->getString(c).asStdString();
          out->rows.push_back(std::move(row));
        }
      } else {
        out->affected = static_cast<uint64_t>(st->executeUpdate());
      }
    });
  }
  // As SQL statements, not Connector/C++'s setAutoCommit()/commit(): its
  // 1.1 commit() ignores the server's answer, so a COMMIT on a connection
  // the server had killed reported success for a transaction that was rolled
  // back (caught by plugin_sql_test's killed-connection case).
  Status Begin(bool* lost) { return Plain("begin", "START TRANSACTION", lost); }
  Status Commit(bool* lost) { return Plain("commit", "COMMIT", lost); }
  Status Rollback(bool* lost) { return Plain("rollback", "ROLLBACK", lost); }

 private:
  Status Plain(const char* what, const char* text, bool* lost) {
    return Guarded(what, lost, [&] {
      std::unique_ptr<sql::Statement> st(conn_->createStatement());
      st->execute(text);
    });
  }

  sql::PreparedStatement* Prepare(const std::string& text) {
    auto it = stmts_.find(text);
    if (it != stmts_.end()) return it->second.get();
    // Bounded: a plugin that builds statement text per call would otherwise
    // grow the cache (and the server's prepared statements) forever.
    if (stmts_.size() >= 256) stmts_.clear();
    sql::PreparedStatement* st = conn_->prepareStatement(text);
    stmts_[text].reset(st);
    return st;
  }

  template <typename Fn>
  Status Guarded(const char* what, bool* lost, Fn&& fn) {
    *lost = false;
    if (!conn_) {
      *lost = true;
      return Status::Error(std::string("sql ") + what + ": not connected");
    }
    try {
      fn();
      return Status::OK();
    } catch (const sql::SQLException& e) {
      const int code = e.getErrorCode();
      if (IsConnectionError(code)) {
        *lost = true;
        Disconnect();
      }
      return Status::Error(std::string("sql ") + what + ": " + e.what() + " (error " + std::to_string(code) +
                           ", state " + e.getSQLState() + ")");
    } catch (const std::exception& e) {
      *lost = true;
      Disconnect();
      return Status::Error(std::string("sql ") + what + ": " + e.what());
    }
  }

  DbConfig db_;
  int timeout_s_;
  std::unique_ptr<sql::Connection> conn_;
  std::map<std::string, std::unique_ptr<sql::PreparedStatement>> stmts_;
  uint64_t epoch_ = 0;
};

namespace {
int TimeoutSeconds(uint32_t ms) { return static_cast<int>((ms + 999) / 1000); }
}  // namespace

SqlPool::SqlPool(EventLoop* loop, const DbConfig& db)
    : loop_(loop),
      db_(db),
      queue_limit_(db.sql_queue),
      timeout_s_(db.sql_timeout_ms / 1000.0),
      tx_timeout_s_(db.tx_timeout_ms / 1000.0) {}

SqlPool::~SqlPool() {
  *alive_ = false;
  Stop();
}

double SqlPool::Now() { return static_cast<double>(EventLoop::NowMicros()) / 1e6; }

void SqlPool::Start() {
  MysqlDriverInit();  // before any thread touches the driver
  for (size_t i = 0; i < db_.sql_pool; ++i) {
    auto c = std::make_unique<Conn>();
    c->session = std::make_unique<SqlConn>(db_, TimeoutSeconds(db_.sql_timeout_ms));
    conns_.push_back(std::move(c));
  }
  for (size_t i = 0; i < conns_.size(); ++i) conns_[i]->thread = std::thread([this, i] { Worker(i); });
}

void SqlPool::Stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& c : conns_)
    if (c->thread.joinable()) c->thread.join();
  for (auto& [tx, t] : txs_) loop_->Cancel(t.timer);
  txs_.clear();
}

bool SqlPool::Push(Task t) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_ || queue_.size() >= queue_limit_) return false;
    queue_.push_back(std::move(t));
  }
  cv_.notify_all();  // any free connection; a pinned one ignores the shared queue
  return true;
}

bool SqlPool::PushTx(uint64_t tx, Task t) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) return false;
    auto it = pinned_.find(tx);
    if (it != pinned_.end()) {
      Conn& c = *conns_[it->second];
      if (c.tx_tasks.size() >= queue_limit_) return false;
      c.tx_tasks.push_back(std::move(t));
    } else {
      // Its connection was lost (the transaction with it): say so.
      Status s = Status::Error("sql: transaction " + std::to_string(tx) + " was lost with its connection");
      auto run = std::move(t.run);
      std::shared_ptr<bool> alive = alive_;
      // Not inline: callbacks always come in a later loop turn.
      loop_->Post([run, s, alive] {
        if (*alive) {
          run(nullptr, SqlError::kUnavailable, s);  // the task posts its own completion
        }
      });
      return true;
    }
  }
  cv_.notify_all();
  return true;
}

void SqlPool::Worker(size_t i) {
  MysqlThreadInit();
  Conn& me = *conns_[i];
  while (true) {
    Task t;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || (me.tx ? !me.tx_tasks.empty() : !queue_.empty()); });
      if (stopping_) break;
      if (me.tx) {
        t = std::move(me.tx_tasks.front());
        me.tx_tasks.pop_front();
      } else {
        t = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (Now() > t.deadline) {
      ++timeouts_;
      t.run(me.session.get(), SqlError::kTimeout,
            Status::Error("sql: no connection free within db.sql_timeout_ms (" + std::to_string(db_.sql_timeout_ms) +
                          " ms): the statement did not run"));
      continue;
    }
    if (me.tx && (!me.session->connected() || me.session->epoch() != me.tx_epoch)) {
      // Its connection broke: the transaction went with it, and a statement
      // must never run outside the transaction it was meant for.
      t.run(nullptr, SqlError::kUnavailable,
            Status::Error("sql: transaction " + std::to_string(me.tx) + " was lost with its connection"));
      continue;
    }
    if (!me.session->connected()) {
      // Fail fast while the database is known to be down; one connect a second.
      int64_t now_us = EventLoop::NowMicros();
      std::shared_ptr<std::string> down;
      if (now_us < down_until_us_.load()) {
        std::lock_guard<std::mutex> lk(mu_);
        down = down_error_;
      }
      if (down) {
        t.run(me.session.get(), SqlError::kUnavailable, Status::Error(*down));
        continue;
      }
      if (Status s = me.session->Ensure(); !s.ok()) {
        {
          std::lock_guard<std::mutex> lk(mu_);
          down_error_ = std::make_shared<std::string>(s.message());
        }
        down_until_us_.store(now_us + 1000000);
        t.run(me.session.get(), SqlError::kUnavailable, s);
        continue;
      }
    }
    t.run(me.session.get(), SqlError::kNone, Status::OK());
  }
  // Stopping: what waits fails, an open transaction is rolled back by
  // closing its connection (MySQL rolls back a transaction whose
  // connection ends).
  std::deque<Task> left;
  {
    std::lock_guard<std::mutex> lk(mu_);
    left.swap(me.tx_tasks);
    if (i == 0) {
      for (auto& t : queue_) left.push_back(std::move(t));
      queue_.clear();
    }
  }
  for (auto& t : left) t.run(me.session.get(), SqlError::kUnavailable, Status::Error("sql: the server is stopping"));
  me.session->Disconnect();
  MysqlThreadEnd();
}

namespace {
// Posts `fn` to the loop if the pool is still alive then.
template <typename Fn>
void Deliver(EventLoop* loop, const std::shared_ptr<bool>& alive, Fn&& fn) {
  loop->Post([alive, fn = std::forward<Fn>(fn)]() mutable {
    if (*alive) fn();
  });
}
}  // namespace

// One statement, run on whatever connection the task gets (the shared
// queue's, or its transaction's), its result delivered on the loop.
SqlPool::Task SqlPool::StatementTask(std::string text, std::vector<Value> params, ResultCallback cb) {
  Task t;
  t.deadline = Now() + timeout_s_;
  std::shared_ptr<bool> alive = alive_;
  EventLoop* loop = loop_;
  t.run = [text = std::move(text), params = std::move(params), cb = std::move(cb), alive, loop](
              SqlConn* c, SqlError e, Status s) {
    SqlResult r;
    if (e == SqlError::kNone) {
      bool lost = false;
      s = c->Run(text, params, &r, &lost);
      if (!s.ok()) e = lost ? SqlError::kUnavailable : SqlError::kSql;
    }
    Deliver(loop, alive, [cb, e, s, r = std::move(r)]() mutable { cb(e, s, std::move(r)); });
  };
  return t;
}

bool SqlPool::Query(std::string text, std::vector<Value> params, ResultCallback cb) {
  return Push(StatementTask(std::move(text), std::move(params), std::move(cb)));
}

bool SqlPool::Begin(TxCallback cb) {
  const uint64_t tx = ++next_tx_;
  Task t;
  t.deadline = Now() + timeout_s_;
  std::shared_ptr<bool> alive = alive_;
  EventLoop* loop = loop_;
  t.run = [this, tx, cb, alive, loop](SqlConn* c, SqlError e, Status s) {
    if (e == SqlError::kNone) {
      bool lost = false;
      s = c->Begin(&lost);
      if (!s.ok()) e = lost ? SqlError::kUnavailable : SqlError::kSql;
    }
    if (e == SqlError::kNone) {
      // Pin this connection: from now on it serves only this transaction.
      std::lock_guard<std::mutex> lk(mu_);
      for (size_t i = 0; i < conns_.size(); ++i)
        if (conns_[i]->session.get() == c) {
          conns_[i]->tx = tx;
          conns_[i]->tx_epoch = c->epoch();
          pinned_[tx] = i;
        }
    }
    Deliver(loop, alive, [this, cb, e, s, tx] {
      if (e == SqlError::kNone) {
        // The lifetime bound starts now; it covers the plugin's own pauses too.
        Tx& entry = txs_[tx];
        entry.timer = loop_->RunAfter(tx_timeout_s_, [this, tx] { TxTimedOut(tx); });
      }
      cb(e, s, e == SqlError::kNone ? tx : 0);
    });
  };
  return Push(std::move(t));
}

bool SqlPool::TxQuery(uint64_t tx, std::string text, std::vector<Value> params, ResultCallback cb) {
  if (!txs_.count(tx)) {
    Status s = TxNotOpen(tx);
    Deliver(loop_, alive_, [cb, s] { cb(SqlError::kSql, s, SqlResult()); });
    return true;
  }
  return PushTx(tx, StatementTask(std::move(text), std::move(params), std::move(cb)));
}

// Commit or rollback: ends the transaction on its connection and unpins it.
bool SqlPool::Commit(uint64_t tx, DoneCallback cb) {
  if (!txs_.count(tx)) {
    Status s = TxNotOpen(tx);
    Deliver(loop_, alive_, [cb, s] { cb(SqlError::kSql, s); });
    return true;
  }
  EndTx(tx);
  Task t;
  t.deadline = Now() + timeout_s_;
  std::shared_ptr<bool> alive = alive_;
  EventLoop* loop = loop_;
  t.run = [this, tx, cb, alive, loop](SqlConn* c, SqlError e, Status s) {
    if (e == SqlError::kNone) {
      bool lost = false;
      s = c->Commit(&lost);
      if (!s.ok()) {
        e = lost ? SqlError::kUnavailable : SqlError::kSql;
        bool ignored = false;
        if (!lost) c->Rollback(&ignored);  // a refused commit must not leave the connection mid-transaction
      }
    }
    Unpin(tx);
    Deliver(loop, alive, [cb, e, s] { cb(e, s); });
  };
  return PushTx(tx, std::move(t));
}

bool SqlPool::Rollback(uint64_t tx, DoneCallback cb) {
  if (txs_.count(tx)) EndTx(tx);
  Task t;
  t.deadline = Now() + 1e9;  // a rollback always runs: it frees the connection
  std::shared_ptr<bool> alive = alive_;
  EventLoop* loop = loop_;
  t.run = [this, tx, cb, alive, loop](SqlConn* c, SqlError e, Status s) {
    if (e == SqlError::kNone || e == SqlError::kTimeout) {
      bool lost = false;
      s = c->Rollback(&lost);
      e = s.ok() ? SqlError::kNone : SqlError::kUnavailable;
    }
    Unpin(tx);
    if (cb) Deliver(loop, alive, [cb, e, s] { cb(e, s); });
  };
  return PushTx(tx, std::move(t));
}

Status SqlPool::TxNotOpen(uint64_t tx) {
  return Status::Error("sql: transaction " + std::to_string(tx) +
                       " is not open (it was committed, rolled back, or rolled back by the host after "
                       "db.tx_timeout_ms)");
}

// On the worker that ended `tx`: its connection serves everyone again.
void SqlPool::Unpin(uint64_t tx) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = pinned_.find(tx);
    if (it != pinned_.end()) {
      conns_[it->second]->tx = 0;
      pinned_.erase(it);
    }
  }
  cv_.notify_all();
}

void SqlPool::EndTx(uint64_t tx) {
  auto it = txs_.find(tx);
  if (it == txs_.end()) return;
  loop_->Cancel(it->second.timer);
  txs_.erase(it);
}

void SqlPool::TxTimedOut(uint64_t tx) {
  if (!txs_.count(tx)) return;
  txs_.erase(tx);  // its timer fired: nothing to cancel
  ++timeouts_;
  LOG_WARN("sql", "transaction %llu open longer than db.tx_timeout_ms (%u ms): rolled back",
           static_cast<unsigned long long>(tx), db_.tx_timeout_ms);
  Rollback(tx, nullptr);
}

}  // namespace lampyr::data
