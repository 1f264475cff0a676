// Shared by the data layer tests (data_*_test.cpp): a config pointing at the
// real services of scripts/services.sh (LAMPYR_TEST_* variables, defaulting to
// its fixed addresses), a direct SQL connection for checking MySQL behind the
// engine's back, unique table names, and "run the loop until this callback".
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "data/data_engine.h"
#include "data/mysql_session.h"

namespace lampyr::data::testing {

inline std::string EnvOr(const char* name, const char* def) {
  const char* v = getenv(name);
  return v && *v ? v : def;
}

inline std::string RandomTag() {
  static std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s;
  uint64_t r = rng();
  for (int i = 0; i < 8; ++i) s += hex[(r >> (4 * i)) & 15];
  return s;
}

inline DbConfig TestDb() {
  DbConfig db;
  db.present = true;
  db.host = EnvOr("LAMPYR_TEST_MYSQL_HOST", "127.0.0.1");
  db.port = static_cast<uint16_t>(std::stoi(EnvOr("LAMPYR_TEST_MYSQL_PORT", "23306")));
  db.user = EnvOr("LAMPYR_TEST_MYSQL_USER", "lampyr");
  db.passwd = EnvOr("LAMPYR_TEST_MYSQL_PASSWD", "lampyr");
  db.db = EnvOr("LAMPYR_TEST_MYSQL_DB", "lampyr_test");
  db.pool = 4;
  db.flush_interval_ms = 3600 * 1000;  // tests flush explicitly unless they say otherwise
  db.flush_batch = 500;
  db.idle_evict_s = 600;
  return db;
}

// A config with one table per entry of `tables`, and a fresh key prefix so
// no two tests (or runs) share cache keys.
inline Config TestConfig(const std::map<std::string, TableConfig>& tables, const std::string& prefix = "") {
  Config c;
  c.db = TestDb();
  c.memcached.present = true;
  c.memcached.urls = {EnvOr("LAMPYR_TEST_MEMCACHED", "127.0.0.1:21211")};
  c.memcached.hostname = prefix.empty() ? "lt" + RandomTag() : prefix;
  c.tables = tables;
  for (auto& [name, t] : c.tables) t.name = name;
  return c;
}

// Direct SQL, bypassing the engine. Fails the test on error.
class Sql {
 public:
  Sql() : s_(TestDb()) {
    MysqlDriverInit();
    Status st = s_.Ensure();
    EXPECT_TRUE(st.ok()) << "MySQL of scripts/services.sh unreachable: " << st.message();
  }
  // Both retry once on a fresh connection (tests restart MySQL under us).
  void Exec(const std::string& q, const std::vector<Value>& params = {}) {
    Status st = s_.Exec(q, params);
    if (!st.ok() && !s_.connected()) st = s_.Exec(q, params);
    EXPECT_TRUE(st.ok()) << q << ": " << st.message();
  }
  std::vector<std::vector<Value>> Query(const std::string& q, const std::vector<Value>& params = {}) {
    std::vector<std::vector<Value>> rows;
    Status st = s_.Query(q, params, &rows);
    if (!st.ok() && !s_.connected()) st = s_.Query(q, params, &rows);
    EXPECT_TRUE(st.ok()) << q << ": " << st.message();
    return rows;
  }
  // First column of the first row, "" for none/NULL.
  std::string One(const std::string& q, const std::vector<Value>& params = {}) {
    auto rows = Query(q, params);
    return rows.empty() || rows[0].empty() || !rows[0][0] ? "" : *rows[0][0];
  }

 private:
  MysqlSession s_;
};

// A table created for one test and dropped after it.
class TestTable {
 public:
  // `columns` is the column list of CREATE TABLE.
  TestTable(Sql* sql, const std::string& columns) : sql_(sql), name_("t_" + RandomTag()) {
    sql_->Exec("CREATE TABLE " + name_ + " (" + columns + ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4");
  }
  ~TestTable() { sql_->Exec("DROP TABLE IF EXISTS " + name_); }
  const std::string& name() const { return name_; }

 private:
  Sql* sql_;
  std::string name_;
};

// The standard test table: autoinc id, fk account_id, text, counter, blob.
inline const char* kPlayerColumns =
    "id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, account_id BIGINT NULL, name VARCHAR(200) NULL, "
    "n BIGINT NOT NULL DEFAULT 0, data LONGBLOB NULL, KEY (account_id)";

inline TableConfig PlayerTable() {
  TableConfig t;
  t.pk = "id";
  t.fk = "account_id";
  t.autoinc = true;
  return t;
}

// Runs `loop` until `start`'s completion calls done(); returns what it got.
// A 120 s guard turns a lost callback into a failure instead of a hang.
template <typename T>
T Await(EventLoop& loop, const std::function<void(std::function<void(T)>)>& start) {
  std::optional<T> result;
  start([&](T v) {
    result = std::move(v);
    loop.Quit();
  });
  TimerId guard = loop.RunAfter(120, [&] { loop.Quit(); });
  if (!result) loop.Run();
  loop.Cancel(guard);
  EXPECT_TRUE(result.has_value()) << "callback never came";
  return result ? std::move(*result) : T{};
}

struct GetResult {
  Status status;
  std::optional<Row> row;
};

inline GetResult SyncGet(EventLoop& loop, DataEngine& e, const std::string& table, const std::string& pk) {
  return Await<GetResult>(loop, [&](std::function<void(GetResult)> done) {
    e.Get(table, pk, [done](Status s, std::optional<Row> r) { done({s, std::move(r)}); });
  });
}

inline Status SyncUpdate(EventLoop& loop, DataEngine& e, const std::string& table, const std::string& pk, Row f) {
  return Await<Status>(loop, [&](std::function<void(Status)> done) { e.Update(table, pk, f, done); });
}

inline Status SyncRemove(EventLoop& loop, DataEngine& e, const std::string& table, const std::string& pk) {
  return Await<Status>(loop, [&](std::function<void(Status)> done) { e.Remove(table, pk, done); });
}

struct CreateResult {
  Status status;
  std::string pk;
};

inline CreateResult SyncCreate(EventLoop& loop, DataEngine& e, const std::string& table, Row row) {
  return Await<CreateResult>(loop, [&](std::function<void(CreateResult)> done) {
    e.Create(table, row, [done](Status s, std::string pk) { done({s, pk}); });
  });
}

struct ListResult {
  Status status;
  std::vector<Row> rows;
};

inline ListResult SyncByFk(EventLoop& loop, DataEngine& e, const std::string& table, const std::string& fk) {
  return Await<ListResult>(loop, [&](std::function<void(ListResult)> done) {
    e.GetByFk(table, fk, [done](Status s, std::vector<Row> rows) { done({s, std::move(rows)}); });
  });
}

inline std::string Field(const std::optional<Row>& row, const std::string& col) {
  if (!row) return "<no row>";
  auto it = row->find(col);
  if (it == row->end()) return "<no column>";
  return it->second ? *it->second : "<null>";
}

// Runs `cmd` (a shell command line) and returns its exit status.
inline int Shell(const std::string& cmd) { return system(cmd.c_str()); }

inline std::string ServicesScript() { return std::string(LAMPYR_SOURCE_DIR) + "/scripts/services.sh"; }

}  // namespace lampyr::data::testing

namespace lampyr::data::testing {

// Runs `body` in a forked child process (a real second process with its own
// engine, connections and threads); the child exits with body's result.
// Fork before the parent starts any engine: the parent must have no threads.
inline pid_t ForkChild(const std::function<int()>& body) {
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int rc = 1;
    try {
      rc = body();
    } catch (...) {
      rc = 3;
    }
    _exit(rc);
  }
  return pid;
}

// Exit code of `pid`, or -1 when it did not exit within `timeout_s` (it is
// then killed).
inline int WaitChild(pid_t pid, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(timeout_s * 1000));
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    usleep(20 * 1000);
  }
}

// Issues `total` operations with at most `window` in flight on `loop`, then
// quits it. `op(i, done)` starts operation i and calls done(ok) when it ends.
inline void RunWindowed(EventLoop& loop, int total, int window,
                        const std::function<void(int, std::function<void(bool)>)>& op, int* failures) {
  int next = 0, finished = 0;
  std::function<void()> issue = [&] {
    const int i = next++;
    op(i, [&](bool ok) {
      if (!ok) ++*failures;
      if (++finished == total) {
        loop.Quit();
        return;
      }
      if (next < total) issue();
    });
  };
  for (int i = 0; i < window && next < total; ++i) issue();
  if (total > 0) loop.Run();
}

}  // namespace lampyr::data::testing
