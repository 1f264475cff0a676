// lampyr-plugin-bench: off-loop work and plugin SQL against same-run
// baselines (docs/benchmarks.md, "Off-loop work and plugin SQL"). Starts a
// real `lampyr --server game` with the test_work and test_sql plugins on the
// services of scripts/services.sh (LAMPYR_TEST_* variables as the tests).
//
//   work     round trip of a request whose handler answers at once (43) vs
//            one that goes through work() (41): the difference is work's cost
//   latency  round trip of 43 with the loop idle vs while 100 ms CPU jobs
//            keep every worker busy (46, 4 in flight)
//   sql      single-row SELECTs and 10-statement transactions through the
//            plugin (client -> loop -> pool -> MariaDB) vs Connector/C++ used
//            directly with the same number of connections (2), same run
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <unistd.h>
#include <string>
#include <thread>
#include <vector>

#include "../unit/data_test_support.h"
#include "harness.h"
#include "lampyr_client.h"

namespace {

using namespace lampyr;
using Clock = std::chrono::steady_clock;
double Us(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::micro>(b - a).count(); }

struct Stats {
  double mean = 0, p50 = 0, p99 = 0;
};
Stats Summarise(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  s.p50 = v[v.size() / 2];
  s.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  return s;
}

std::vector<double> RoundTrips(client::Client& c, uint32_t cmd, const std::string& body, int n) {
  std::vector<double> out;
  client::Frame f;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    if (!c.Call(cmd, body, &f, 30000).ok()) break;
    out.push_back(Us(t0, Clock::now()));
  }
  return out;
}

// `depth` requests in flight on one connection for `n` requests; requests/s.
double Pipelined(client::Client& c, uint32_t cmd, const std::string& body, int n, int depth) {
  auto t0 = Clock::now();
  int sent = 0, got = 0;
  client::Frame f;
  while (got < n) {
    while (sent < n && sent - got < depth) {
      if (!c.Send(cmd, body).ok()) return 0;
      ++sent;
    }
    if (!c.Receive(&f, 30000).ok()) return 0;
    ++got;
  }
  return n / (Us(t0, Clock::now()) / 1e6);
}

// CPU time (user + system, all threads) the process has used, in µs.
double CpuUs(pid_t pid) {
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return 0;
  char buf[4096];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');  // the command name may contain spaces
  unsigned long long utime = 0, stime = 0;
  if (!p || std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return 0;
  return static_cast<double>(utime + stime) * 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

int main() {
  using namespace lampyr::test;
  data::testing::Sql sql;
  const std::string table = "bench_" + data::testing::RandomTag();
  sql.Exec("CREATE TABLE " + table + " (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL, n INT NOT NULL) ENGINE=InnoDB");
  for (int i = 0; i < 100; ++i)
    sql.Exec("INSERT INTO " + table + " VALUES (?, ?, 0)", {std::to_string(i), "name" + std::to_string(i)});

  TempDir dir;
  uint16_t netport = FreePort();
  auto db = data::testing::TestDb();
  std::string conf = dir.path() + "/lampyr.json";
  WriteFile(conf, "{\"master\": {\"admin_token\": \"tok\", \"insecure_dev\": true},\n"
                  "\"servers\": {\"game\": {\"netport\": " + std::to_string(netport) +
                      ", \"db\": true, \"mem\": false, \"work_threads\": 2, \"log\": \"game.log\", \"log_level\": \"warn\","
                      " \"plugins\": [\"test_work\", \"test_sql\"]}},\n"
                      "\"plugins\": {\"test_work\": {\"path\": \"" + PluginPath("test_work") +
                      "\"}, \"test_sql\": {\"path\": \"" + PluginPath("test_sql") + "\"}},\n"
                      "\"db\": {\"host\": \"" + db.host + "\", \"port\": " + std::to_string(db.port) +
                      ", \"user\": \"" + db.user + "\", \"passwd\": \"" + db.passwd + "\", \"db\": \"" + db.db +
                      "\", \"sql_pool\": 2}}\n");
  auto server = StartServer(conf, "game", netport);
  if (!server) return 1;
  client::Client c;
  if (!c.Connect("127.0.0.1", netport).ok()) return 1;

  // --- work overhead ---
  RoundTrips(c, 43, "", 500);  // warm up
  RoundTrips(c, 41, "1", 500);
  // Wall time on this shared machine is mostly scheduling; the server's CPU
  // time per request (all its threads) is the stable measure of the cost.
  const int kCalls = 20000;
  double cpu0 = CpuUs(server->pid());
  Stats plain = Summarise(RoundTrips(c, 43, "", kCalls));
  double cpu1 = CpuUs(server->pid());
  Stats work = Summarise(RoundTrips(c, 41, "1", kCalls));
  double cpu2 = CpuUs(server->pid());
  double plain_cpu = (cpu1 - cpu0) / kCalls, work_cpu = (cpu2 - cpu1) / kCalls;
  std::printf("work: server CPU per request %.1f us answered at once, %.1f us through work(): %.1f us per call\n",
              plain_cpu, work_cpu, work_cpu - plain_cpu);
  std::printf("work: plain round trip mean %.1f us p50 %.1f; through work() mean %.1f us p50 %.1f; overhead %.1f us/call "
              "(p50: %.1f)\n",
              plain.mean, plain.p50, work.mean, work.p50, work.mean - plain.mean, work.p50 - plain.p50);

  // --- loop latency while 100 ms jobs run ---
  Stats idle = Summarise(RoundTrips(c, 43, "", 2000));
  std::atomic<bool> stop{false};
  std::atomic<int> jobs{0};
  std::thread busy([&] {
    client::Client b;
    if (!b.Connect("127.0.0.1", netport).ok()) return;
    int in_flight = 0;
    client::Frame f;
    while (!stop.load()) {
      while (in_flight < 4) {
        b.Send(46, "");
        ++in_flight;
      }
      if (b.Receive(&f, 30000).ok()) {
        --in_flight;
        ++jobs;
      }
    }
    while (in_flight-- > 0) b.Receive(&f, 30000);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto t0 = Clock::now();
  // Three seconds of round trips: about thirty 100 ms jobs per worker.
  std::vector<double> samples;
  while (Us(t0, Clock::now()) < 3e6) {
    auto more = RoundTrips(c, 43, "", 100);
    samples.insert(samples.end(), more.begin(), more.end());
  }
  Stats loaded = Summarise(samples);
  double secs = Us(t0, Clock::now()) / 1e6;
  int done_jobs = jobs.load();
  stop = true;
  busy.join();
  std::printf("latency: idle p50 %.1f us p99 %.1f us; with 100 ms jobs on every worker p50 %.1f us p99 %.1f us "
              "(%d jobs done in %.1f s)\n",
              idle.p50, idle.p99, loaded.p50, loaded.p99, done_jobs, secs);

  // --- SQL: plugin vs raw Connector/C++, 2 connections each ---
  const std::string select = "SELECT name, n FROM " + table + " WHERE id = ?";
  const int kQueries = 4000, kTx = 400;
  Pipelined(c, 51, select + "\t7", 500, 8);  // warm up
  double plugin_qps = Pipelined(c, 51, select + "\t7", kQueries, 8);
  std::string tx_body;
  for (int i = 0; i < 10; ++i) tx_body += "UPDATE " + table + " SET n = n + 1 WHERE id = ?\t" + std::to_string(i) + "\n";
  double plugin_tps = Pipelined(c, 52, tx_body, kTx, 8);

  auto raw = [&](bool tx, int total) {
    std::atomic<int> next{0};
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int k = 0; k < 2; ++k)
      ts.emplace_back([&] {
        data::MysqlThreadInit();
        {
          data::MysqlSession s(data::testing::TestDb());
          std::vector<std::vector<data::Value>> rows;
          while (next.fetch_add(1) < total) {
            if (!tx) {
              s.Query(select, {std::string("7")}, &rows);
            } else {
              s.Begin();
              for (int i = 0; i < 10; ++i)
                s.Exec("UPDATE " + table + " SET n = n + 1 WHERE id = ?", {std::to_string(i)});
              s.Commit();
            }
          }
        }
        data::MysqlThreadEnd();
      });
    for (auto& t : ts) t.join();
    return total / (Us(t0, Clock::now()) / 1e6);
  };
  raw(false, 500);
  double raw_qps = raw(false, kQueries);
  double raw_tps = raw(true, kTx);
  std::printf("sql: single-row SELECT plugin %.0f/s vs raw Connector/C++ %.0f/s; 10-statement transaction plugin %.0f/s "
              "vs raw %.0f/s\n",
              plugin_qps, raw_qps, plugin_tps, raw_tps);

  std::printf("\n| measure | value |\n|---|---|\n");
  std::printf("| request answered at once, round trip mean / p50 | %.1f / %.1f µs |\n", plain.mean, plain.p50);
  std::printf("| request answered through `work`, round trip mean / p50 | %.1f / %.1f µs |\n", work.mean, work.p50);
  std::printf("| `work` overhead per call, mean / p50 | %.1f / %.1f µs |\n", work.mean - plain.mean, work.p50 - plain.p50);
  std::printf("| server CPU per request, answered at once / through `work` | %.1f / %.1f µs |\n", plain_cpu, work_cpu);
  std::printf("| `work` overhead per call in server CPU | %.1f µs |\n", work_cpu - plain_cpu);
  std::printf("| loop round trip idle, p50 / p99 | %.1f / %.1f µs |\n", idle.p50, idle.p99);
  std::printf("| loop round trip while 100 ms jobs fill both workers (%d jobs in %.1f s), p50 / p99 | %.1f / %.1f µs |\n",
              done_jobs, secs, loaded.p50, loaded.p99);
  std::printf("| single-row SELECT, plugin (8 in flight, 2 connections) | %.0f /s |\n", plugin_qps);
  std::printf("| single-row SELECT, raw Connector/C++ (2 threads) | %.0f /s |\n", raw_qps);
  std::printf("| 10-UPDATE transaction, plugin (8 in flight, 2 connections) | %.0f /s |\n", plugin_tps);
  std::printf("| 10-UPDATE transaction, raw Connector/C++ (2 threads) | %.0f /s |\n", raw_tps);
  sql.Exec("DROP TABLE IF EXISTS " + table);
  return 0;
}
