// lampyr-data-bench: the data layer against same-run baselines on the real
// services (scripts/services.sh; LAMPYR_TEST_* variables as the tests).
//
//   read     cached Get through the engine vs raw libmemcached get, same
//            number of requests in flight (= worker threads)
//   flush    write-behind flush of N dirty rows vs a raw multi-row upsert of
//            the same rows through Connector/C++ (500 rows per statement)
//   latency  Get latency on the event loop while N dirty rows are flushed
//
// Prints one line per result and, at the end, markdown table rows.
#include <libmemcached/memcached.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "data/data_engine.h"
#include "data/mysql_session.h"

namespace {

using namespace lampyr;
using namespace lampyr::data;
using Clock = std::chrono::steady_clock;

std::string Env(const char* n, const char* d) {
  const char* v = getenv(n);
  return v && *v ? v : d;
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

struct Args {
  std::string mode = "all";
  int threads = 4;
  double duration = 5;
  int rows = 50000;
  int records = 1000;
};

Config MakeConfig(const std::string& table, int threads) {
  Config c;
  c.db.present = true;
  c.db.host = Env("LAMPYR_TEST_MYSQL_HOST", "127.0.0.1");
  c.db.port = static_cast<uint16_t>(std::stoi(Env("LAMPYR_TEST_MYSQL_PORT", "23306")));
  c.db.user = Env("LAMPYR_TEST_MYSQL_USER", "lampyr");
  c.db.passwd = Env("LAMPYR_TEST_MYSQL_PASSWD", "lampyr");
  c.db.db = Env("LAMPYR_TEST_MYSQL_DB", "lampyr_test");
  c.db.pool = static_cast<uint32_t>(threads);
  c.db.flush_interval_ms = 3600 * 1000;
  c.db.flush_batch = 500;
  c.memcached.present = true;
  c.memcached.urls = {Env("LAMPYR_TEST_MEMCACHED", "127.0.0.1:21211")};
  c.memcached.hostname = "bench" + std::to_string(getpid()) + "_" + std::to_string(time(nullptr));
  TableConfig t;
  t.name = table;
  t.pk = "id";
  t.autoinc = true;
  c.tables[table] = t;
  return c;
}

class BenchTable {
 public:
  BenchTable(MysqlSession* s, const std::string& name, int rows) : s_(s), name_(name) {
    Check(s_->Exec("DROP TABLE IF EXISTS " + name_, {}));
    Check(s_->Exec("CREATE TABLE " + name_ +
                       " (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, "
                       "name VARCHAR(64) NOT NULL DEFAULT '', score INT NOT NULL DEFAULT 0) ENGINE=InnoDB",
                   {}));
    for (int i = 1; i <= rows; i += 500) {
      std::string q = "INSERT INTO " + name_ + " (id, name) VALUES ";
      std::vector<Value> p;
      for (int k = i; k < i + 500 && k <= rows; ++k) {
        q += (k == i ? "" : ",") + std::string("(?,?)");
        p.push_back(std::to_string(k));
        p.push_back("player" + std::to_string(k));
      }
      Check(s_->Exec(q, p));
    }
  }
  ~BenchTable() { s_->Exec("DROP TABLE IF EXISTS " + name_, {}); }
  static void Check(const Status& s) {
    if (!s.ok()) {
      fprintf(stderr, "data-bench: %s\n", s.message().c_str());
      exit(1);
    }
  }

 private:
  MysqlSession* s_;
  std::string name_;
};

std::vector<std::string> g_markdown;

// Engine Get with `window` in flight on the loop, for `duration` seconds.
double EngineReads(EventLoop& loop, DataEngine& e, const std::string& table, int records, int window,
                   double duration, std::vector<double>* lat_us = nullptr) {
  uint64_t done = 0;
  bool stop = false;
  int inflight = 0;
  uint64_t next = 0;
  std::function<void()> issue = [&] {
    ++inflight;
    const std::string pk = std::to_string(1 + (next++ % static_cast<uint64_t>(records)));
    const int64_t t0 = EventLoop::NowMicros();
    e.Get(table, pk, [&, t0](Status s, std::optional<Row>) {
      --inflight;
      if (!s.ok()) {
        fprintf(stderr, "get failed: %s\n", s.message().c_str());
        exit(1);
      }
      ++done;
      if (lat_us) lat_us->push_back(static_cast<double>(EventLoop::NowMicros() - t0));
      if (!stop) issue();
      else if (inflight == 0) loop.Quit();
    });
  };
  const auto t0 = Clock::now();
  loop.RunAfter(duration, [&] { stop = true; });
  for (int i = 0; i < window; ++i) issue();
  loop.Run();
  return static_cast<double>(done) / Seconds(t0, Clock::now());
}

double RawReads(const Config& c, const std::string& table, int records, int threads, double duration) {
  std::atomic<uint64_t> total{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  const std::string prefix = c.memcached.hostname + ":r:" + table + ":";
  const auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      memcached_st* m = memcached_create(nullptr);
      memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
      memcached_behavior_set(m, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
      const std::string url = c.memcached.urls[0];
      memcached_server_add(m, url.substr(0, url.rfind(':')).c_str(),
                           static_cast<in_port_t>(std::stoi(url.substr(url.rfind(':') + 1))));
      uint64_t n = 0, i = static_cast<uint64_t>(t);
      while (!stop.load(std::memory_order_relaxed)) {
        const std::string key = prefix + std::to_string(1 + (i++ % static_cast<uint64_t>(records)));
        size_t len;
        uint32_t flags;
        memcached_return_t rc;
        char* v = memcached_get(m, key.data(), key.size(), &len, &flags, &rc);
        if (!v) {
          fprintf(stderr, "raw get %s: %s\n", key.c_str(), memcached_strerror(m, rc));
          exit(1);
        }
        free(v);
        ++n;
      }
      total += n;
      memcached_free(m);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(duration * 1000)));
  stop = true;
  for (auto& t : ts) t.join();
  return static_cast<double>(total.load()) / Seconds(t0, Clock::now());
}

void BenchRead(const Args& a, MysqlSession* sql) {
  const std::string table = "bench_read_" + std::to_string(getpid());
  BenchTable bt(sql, table, a.records);
  Config c = MakeConfig(table, a.threads);
  EventLoop loop;
  DataEngine e(&loop, c, DataOptions{.writer_id = "bench"});
  BenchTable::Check(e.Start());
  EngineReads(loop, e, table, a.records, a.threads, 1.0);  // warm: every record cached
  const double raw = RawReads(c, table, a.records, a.threads, a.duration);
  const double eng = EngineReads(loop, e, table, a.records, a.threads, a.duration);
  printf("read: %d in flight: engine %.0f gets/s, raw libmemcached %.0f gets/s, ratio %.2f\n", a.threads, eng, raw,
         eng / raw);
  char line[256];
  snprintf(line, sizeof line, "| cached read, %d in flight | %.0f gets/s | %.0f gets/s (raw `memcached_get`) | %.2f |",
           a.threads, eng, raw, eng / raw);
  g_markdown.push_back(line);
  e.Stop();
}

// Makes every row dirty through the engine (n = n + 1).
void DirtyAll(EventLoop& loop, DataEngine& e, const std::string& table, int rows) {
  int next = 1, done = 0;
  std::function<void()> issue = [&] {
    const int id = next++;
    e.Update(table, std::to_string(id), {{"n", std::to_string(id)}, {"score", std::to_string(id % 1000)}},
             [&](Status s) {
               if (!s.ok()) {
                 fprintf(stderr, "update: %s\n", s.message().c_str());
                 exit(1);
               }
               if (++done == rows) loop.Quit();
               else if (next <= rows) issue();
             });
  };
  for (int i = 0; i < 64 && next <= rows; ++i) issue();
  loop.Run();
}

double RawUpsert(MysqlSession* sql, const std::string& table, int rows) {
  const auto t0 = Clock::now();
  for (int i = 1; i <= rows; i += 500) {
    std::string q = "INSERT INTO " + table + " (id,n,name,score) VALUES ";
    std::vector<Value> p;
    for (int k = i; k < i + 500 && k <= rows; ++k) {
      q += (k == i ? "" : ",") + std::string("(?,?,?,?)");
      p.push_back(std::to_string(k));
      p.push_back(std::to_string(k + 7));
      p.push_back("player" + std::to_string(k));
      p.push_back(std::to_string(k % 1000));
    }
    q += " ON DUPLICATE KEY UPDATE n=VALUES(n),name=VALUES(name),score=VALUES(score)";
    BenchTable::Check(sql->Begin());
    BenchTable::Check(sql->Exec(q, p));
    BenchTable::Check(sql->Commit());
  }
  return rows / Seconds(t0, Clock::now());
}

void BenchFlush(const Args& a, MysqlSession* sql) {
  const std::string table = "bench_flush_" + std::to_string(getpid());
  BenchTable bt(sql, table, a.rows);
  Config c = MakeConfig(table, a.threads);
  EventLoop loop;
  DataEngine e(&loop, c, DataOptions{.writer_id = "bench"});
  BenchTable::Check(e.Start());
  DirtyAll(loop, e, table, a.rows);
  const auto t0 = Clock::now();
  BenchTable::Check(e.FlushNow());
  const double eng = a.rows / Seconds(t0, Clock::now());
  const double raw = RawUpsert(sql, table, a.rows);
  printf("flush: %d rows: write-behind %.0f rows/s, raw multi-row upsert %.0f rows/s, ratio %.2f\n", a.rows, eng, raw,
         eng / raw);
  char line[256];
  snprintf(line, sizeof line, "| write-behind flush, %d rows | %.0f rows/s | %.0f rows/s (raw 500-row upserts) | %.2f |",
           a.rows, eng, raw, eng / raw);
  g_markdown.push_back(line);
  e.Stop();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

void BenchLatency(const Args& a, MysqlSession* sql) {
  const std::string table = "bench_lat_" + std::to_string(getpid());
  BenchTable bt(sql, table, a.rows);
  Config c = MakeConfig(table, a.threads);
  EventLoop loop;
  DataEngine e(&loop, c, DataOptions{.writer_id = "bench"});
  BenchTable::Check(e.Start());
  EngineReads(loop, e, table, a.records, a.threads, 1.0);
  std::vector<double> idle, during;
  EngineReads(loop, e, table, a.records, a.threads, 2.0, &idle);
  DirtyAll(loop, e, table, a.rows);
  // Flush on another thread (as the periodic flush does) while the loop serves.
  std::atomic<bool> flushing{true};
  double flush_s = 0;
  std::thread f([&] {
    const auto t0 = Clock::now();
    BenchTable::Check(e.FlushNow());
    flush_s = Seconds(t0, Clock::now());
    flushing = false;
  });
  while (flushing) EngineReads(loop, e, table, a.records, a.threads, 0.2, &during);
  f.join();
  printf("latency: get p50/p99 idle %.0f/%.0f us; during a %d-row flush (%.2f s) %.0f/%.0f us (%zu gets)\n",
         Percentile(idle, 0.5), Percentile(idle, 0.99), a.rows, flush_s, Percentile(during, 0.5),
         Percentile(during, 0.99), during.size());
  char line[256];
  snprintf(line, sizeof line, "| get latency during a %d-row flush | p50 %.0f µs, p99 %.0f µs | idle: p50 %.0f µs, p99 %.0f µs | |",
           a.rows, Percentile(during, 0.5), Percentile(during, 0.99), Percentile(idle, 0.5), Percentile(idle, 0.99));
  g_markdown.push_back(line);
  e.Stop();
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto val = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (k == "--mode") a.mode = val();
    else if (k == "--threads") a.threads = std::stoi(val());
    else if (k == "--duration") a.duration = std::stod(val());
    else if (k == "--rows") a.rows = std::stoi(val());
    else if (k == "--records") a.records = std::stoi(val());
    else {
      fprintf(stderr, "usage: %s [--mode all|read|flush|latency] [--threads N] [--duration S] [--rows N] [--records N]\n",
              argv[0]);
      return 2;
    }
  }
  log::SetLevel(getenv("LAMPYR_DATA_BENCH_DEBUG") ? log::Level::kDebug : log::Level::kWarn);
  DbConfig db = MakeConfig("x", 1).db;
  MysqlDriverInit();
  MysqlSession sql(db);
  BenchTable::Check(sql.Ensure());
  if (a.mode == "all" || a.mode == "read") BenchRead(a, &sql);
  if (a.mode == "all" || a.mode == "flush") BenchFlush(a, &sql);
  if (a.mode == "all" || a.mode == "latency") BenchLatency(a, &sql);
  printf("\n| data layer | Lampyr | baseline | ratio |\n|---|---|---|---|\n");
  for (const auto& l : g_markdown) printf("%s\n", l.c_str());
  return 0;
}
