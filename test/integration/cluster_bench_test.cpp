// Cluster performance, as a test that also measures. By default it runs a
// short, correctness-checked load (every reply must be the request's own
// bytes); with LAMPYR_BENCH=1 it runs for seconds and prints one
// "BENCH ..." line per measurement (scripts/bench.sh collects them).
// Nothing here asserts a speed: machines are noisy.
//
// - remote calls between two processes (this test's hub as root, a real
//   `lampyr --server game1` as child) at 1 and 64 calls in flight;
// - client requests through net -> gate -> game vs straight to the game,
//   100 connections and 1 connection, with the CPU the servers spent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "channel/channel_hub.h"
#include "channel/channel_wire.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "harness.h"
#include "lampyr_client.h"
#include "loop_until.h"

namespace lampyr {
namespace {

using client::Client;
using client::Frame;
using test::Process;

bool BenchMode() {
  const char* b = getenv("LAMPYR_BENCH");
  return b && *b && std::string(b) != "0";
}
double BenchSeconds() {
  const char* s = getenv("LAMPYR_BENCH_SECONDS");
  return s && *s ? atof(s) : 3.0;
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Percentile(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return static_cast<double>(v[k]);
}

// utime + stime of a process, in microseconds.
int64_t CpuUs(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(f, line);
  size_t paren = line.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream in(line.substr(paren + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = atol(field.c_str());
    if (i == 15) stime = atol(field.c_str());
  }
  return (utime + stime) * 1000000LL / sysconf(_SC_CLK_TCK);
}

class ClusterBenchTest : public ::testing::Test {
 protected:
  void SetUp() override { log::SetLevel(log::Level::kWarn); }
  std::unique_ptr<Process> Start(const std::string& conf, const std::string& name, uint16_t wait_port = 0) {
    auto p = Process::Start({test::LampyrBinary(), "--conf", conf, "--server", name, "--log-level", "warn"}, {},
                            dir_.path() + "/" + name + ".out");
    if (p && wait_port && !test::WaitForPort("127.0.0.1", wait_port, 20000)) return nullptr;
    return p;
  }
  test::TempDir dir_;
};

// The argument bytes of a lampyr.req call: the game runs command 100 (echo).
std::string EchoRequest(const std::string& body) {
  std::string a;
  channel::PutU64(&a, 0);
  channel::PutU32(&a, 100);
  channel::PutU32(&a, 5000);
  a += body;
  return a;
}

TEST_F(ClusterBenchTest, RemoteCallsBetweenTwoProcesses) {
  uint16_t root_port = test::FreePort();
  std::string conf = dir_.path() + "/c.json";
  test::WriteFile(conf, R"({"master": {"cluster_secret": "cluster-bench-secret-0123"}, "servers": {
    "gate": {"rootport": )" + std::to_string(root_port) + R"(},
    "game1": {"remoteport": [{"rootname": "gate"}], "builtins": {"echo": 100}}}})");
  EventLoop loop;
  ChannelHub hub(&loop, "gate", "cluster-bench-secret-0123");
  ASSERT_TRUE(hub.Listen("127.0.0.1", root_port).ok());
  auto game = Start(conf, "game1");
  ASSERT_TRUE(game);
  ASSERT_TRUE(RunUntil(loop, [&] { return hub.IsConnected("game1"); }));

  for (int inflight : {1, 64}) {
    bool bench = BenchMode();
    int64_t total = bench ? INT64_MAX : 2000;
    int64_t deadline = bench ? NowUs() + static_cast<int64_t>(BenchSeconds() * 1e6) : INT64_MAX;
    int64_t started = 0, done = 0, bad = 0, outstanding = 0;
    std::vector<int64_t> lat;
    lat.reserve(1 << 20);
    std::function<void()> issue = [&] {
      while (outstanding < inflight && started < total && NowUs() < deadline) {
        ++started;
        ++outstanding;
        std::string body = std::to_string(started);
        int64_t t0 = NowUs();
        hub.Call("game1", "lampyr.req", EchoRequest(body), [&, body, t0](Status st, std::string reply) {
          lat.push_back(NowUs() - t0);
          --outstanding;
          ++done;
          // The answer is kind 0 (reply) + the echoed body.
          if (!st.ok() || reply != std::string(1, '\0') + body) ++bad;
          issue();
        });
      }
    };
    int64_t t_start = NowUs();
    issue();
    ASSERT_TRUE(RunUntil(loop, [&] { return outstanding == 0 && (started >= total || NowUs() >= deadline); }, 120));
    double secs = static_cast<double>(NowUs() - t_start) / 1e6;
    EXPECT_EQ(bad, 0);
    EXPECT_EQ(done, started);
    if (bench)
      printf("BENCH channel_calls inflight=%d calls=%lld calls_per_s=%.0f p50_us=%.0f p99_us=%.0f\n", inflight,
             static_cast<long long>(done), static_cast<double>(done) / secs, Percentile(lat, 0.50),
             Percentile(lat, 0.99));
  }
}

struct LoadResult {
  int64_t requests = 0;
  int64_t bad = 0;
  double seconds = 0;
  double p50 = 0, p99 = 0;
};

// Closed loop: each connection has one request in flight; a reply is checked
// against the request's own bytes before the next is sent.
LoadResult RunLoad(uint16_t port, uint32_t command, int conns, int64_t per_conn, double seconds) {
  LoadResult r;
  std::vector<std::unique_ptr<Client>> cs;
  for (int i = 0; i < conns; ++i) {
    cs.push_back(std::make_unique<Client>());
    if (!cs.back()->Connect("127.0.0.1", port).ok()) {
      r.bad = -1;
      return r;
    }
  }
  std::vector<int64_t> lat;
  std::vector<int64_t> t0(conns);
  std::vector<std::string> expect(conns);
  int64_t start = NowUs();
  int64_t deadline = seconds > 0 ? start + static_cast<int64_t>(seconds * 1e6) : INT64_MAX;
  for (int64_t round = 0; round < per_conn && NowUs() < deadline; ++round) {
    for (int i = 0; i < conns; ++i) {
      expect[i] = std::to_string(round * conns + i);
      t0[i] = NowUs();
      if (!cs[i]->Send(command, expect[i]).ok()) ++r.bad;
    }
    for (int i = 0; i < conns; ++i) {
      Frame f;
      if (!cs[i]->Receive(&f, 10000).ok() || f.command != command || f.body != expect[i]) ++r.bad;
      lat.push_back(NowUs() - t0[i]);
      ++r.requests;
    }
  }
  r.seconds = static_cast<double>(NowUs() - start) / 1e6;
  r.p50 = Percentile(lat, 0.50);
  r.p99 = Percentile(lat, 0.99);
  return r;
}

TEST_F(ClusterBenchTest, ForwardedPathVersusDirect) {
  uint16_t gate_port = test::FreePort(), net_port = test::FreePort(), game_port = test::FreePort();
  std::string conf = dir_.path() + "/c.json";
  test::WriteFile(conf, R"({"master": {"cluster_secret": "cluster-bench-secret-0123"}, "protocol": {"idle_timeout_s": 0}, "servers": {
    "gate": {"rootport": )" + std::to_string(gate_port) + R"(},
    "net": {"netport": )" + std::to_string(net_port) + R"(, "forward": "gate", "remoteport": [{"rootname": "gate"}]},
    "game1": {"netport": )" + std::to_string(game_port) + R"(, "remoteport": [{"rootname": "gate"}], "builtins": {"echo": 100}}}})");
  auto gate = Start(conf, "gate", gate_port);
  auto game = Start(conf, "game1", game_port);
  auto net = Start(conf, "net", net_port);
  ASSERT_TRUE(gate && game && net);
  {
    Client c;
    ASSERT_TRUE(c.Connect("127.0.0.1", net_port).ok());
    bool up = false;
    for (int i = 0; i < 1000 && !up; ++i) {
      Frame f;
      ASSERT_TRUE(c.Call(100, "up?", &f).ok());
      up = f.command == 100;
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(up);
  }
  bool bench = BenchMode();
  double secs = bench ? BenchSeconds() : 0;
  struct Case {
    const char* name;
    uint16_t port;
    int conns;
  };
  for (Case c : {Case{"direct", game_port, 100}, Case{"forwarded", net_port, 100}, Case{"direct", game_port, 1},
                 Case{"forwarded", net_port, 1}}) {
    int64_t cpu0 = CpuUs(gate->pid()) + CpuUs(net->pid()) + CpuUs(game->pid());
    LoadResult r = RunLoad(c.port, 100, c.conns, bench ? INT64_MAX : (c.conns == 1 ? 200 : 10), secs);
    int64_t cpu1 = CpuUs(gate->pid()) + CpuUs(net->pid()) + CpuUs(game->pid());
    EXPECT_EQ(r.bad, 0) << c.name;
    EXPECT_GT(r.requests, 0) << c.name;
    if (bench)
      printf("BENCH client_%s conns=%d requests=%lld req_per_s=%.0f p50_us=%.0f p99_us=%.0f server_cpu_us_per_req=%.1f\n",
             c.name, c.conns, static_cast<long long>(r.requests), static_cast<double>(r.requests) / r.seconds, r.p50,
             r.p99, static_cast<double>(cpu1 - cpu0) / static_cast<double>(std::max<int64_t>(1, r.requests)));
  }
}

}  // namespace
}  // namespace lampyr
