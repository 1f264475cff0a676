// lampyr-bench: load generator for the client protocol (docs/benchmarks.md).
//
//   lampyr-bench --port P [--host H] [--connections N] [--depth D] [--duration S]
//                [--warmup S] [--body-bytes B] [--command C] [--threads T]
//                [--pid PID]... [--json] [--idle] [--ws|--wss [--ws-path P]]
//
// --ws: the port is a wsport; each connection upgrades to WebSocket and sends
// every request as one binary message (DESIGN §3a), so the same load compares
// TCP and WebSocket on one server. --wss: the same over TLS (protocol.ws_tls);
// the server's certificate is not verified, this is a load generator.
// Load mode: N connections, each with D requests in flight, for S seconds
// after a warmup; every reply is checked against its request. Reports
// requests/s, latency percentiles, errors and, for the given server pids,
// server CPU per request (utime+stime from /proc/PID/stat over the measured
// window). --idle: open N connections, one round trip each, then report the
// servers' RSS growth per session (before any connection vs all open).
// Exit status 1 when any error was counted, 2 on bad usage.
#include <netdb.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "load_worker.h"

namespace {

using lampyr::bench::LoadOptions;
using lampyr::bench::LoadWorker;
using lampyr::bench::Phase;

struct Args {
  std::string host = "127.0.0.1";
  int port = 0;
  int connections = 1;
  int depth = 1;
  double duration = 5;
  double warmup = 1;
  uint32_t body_bytes = 32;
  uint32_t command = 1;
  int threads = 1;
  std::vector<int> pids;
  bool json = false;
  bool idle = false;
  bool ws = false;
  bool wss = false;
  std::string ws_path = "/";
};

[[noreturn]] void Usage(const char* why) {
  fprintf(stderr,
          "lampyr-bench: %s\n"
          "usage: lampyr-bench --port P [--host H] [--connections N] [--depth D] [--duration S] [--warmup S]\n"
          "                    [--body-bytes B] [--command C] [--threads T] [--pid PID]... [--json] [--idle]\n"
          "                    [--ws|--wss [--ws-path P]]\n",
          why);
  exit(2);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--json") {
      a.json = true;
      continue;
    }
    if (k == "--idle") {
      a.idle = true;
      continue;
    }
    if (k == "--ws" || k == "--wss") {
      a.ws = true;
      a.wss = k == "--wss";
      continue;
    }
    if (i + 1 >= argc) Usage(("missing value for " + k).c_str());
    const char* v = argv[++i];
    if (k == "--host") a.host = v;
    else if (k == "--port") a.port = atoi(v);
    else if (k == "--connections") a.connections = atoi(v);
    else if (k == "--depth") a.depth = atoi(v);
    else if (k == "--duration") a.duration = atof(v);
    else if (k == "--warmup") a.warmup = atof(v);
    else if (k == "--body-bytes") a.body_bytes = static_cast<uint32_t>(strtoul(v, nullptr, 10));
    else if (k == "--command") a.command = static_cast<uint32_t>(strtoul(v, nullptr, 0));
    else if (k == "--threads") a.threads = atoi(v);
    else if (k == "--pid") a.pids.push_back(atoi(v));
    else if (k == "--ws-path") a.ws_path = v;
    else Usage(("unknown option " + k).c_str());
  }
  if (a.port <= 0 || a.port > 65535) Usage("--port 1..65535 is required");
  if (a.connections < 1 || a.depth < 1 || a.threads < 1) Usage("connections, depth and threads must be >= 1");
  if (a.body_bytes > (1u << 20)) Usage("--body-bytes at most 1 MiB");
  if (a.duration <= 0 || a.warmup < 0) Usage("--duration must be > 0, --warmup >= 0");
  a.threads = std::min(a.threads, a.connections);
  return a;
}

// utime + stime of a process, in microseconds; -1 when it is gone.
int64_t CpuUs(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return -1;
  size_t paren = line.rfind(')');  // the command name may contain spaces
  if (paren == std::string::npos) return -1;
  std::istringstream in(line.substr(paren + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = atoll(field.c_str());
    if (i == 15) stime = atoll(field.c_str());
  }
  return (utime + stime) * 1000000LL / sysconf(_SC_CLK_TCK);
}

int64_t SumCpuUs(const std::vector<int>& pids) {
  int64_t sum = 0;
  for (int p : pids) sum += std::max<int64_t>(0, CpuUs(p));
  return sum;
}

// Resident set size in bytes (/proc/PID/statm, second field in pages).
int64_t RssBytes(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/statm");
  long long size = 0, resident = 0;
  if (!(f >> size >> resident)) return -1;
  return resident * sysconf(_SC_PAGESIZE);
}

int64_t SumRss(const std::vector<int>& pids) {
  int64_t sum = 0;
  for (int p : pids) sum += std::max<int64_t>(0, RssBytes(p));
  return sum;
}

int64_t SelfCpuUs() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t{ru.ru_utime.tv_sec} + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

double NowS() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void SleepS(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

double PercentileUs(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k] / 1000.0;
}

bool Resolve(const Args& a, LoadOptions* o) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(a.host.c_str(), std::to_string(a.port).c_str(), &hints, &res) != 0 || !res) return false;
  memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
  o->addr_len = res->ai_addrlen;
  freeaddrinfo(res);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = Parse(argc, argv);
  rlimit rl;  // every connection is a descriptor
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  LoadOptions base;
  if (!Resolve(a, &base)) Usage(("cannot resolve " + a.host).c_str());
  base.depth = a.idle ? 1 : a.depth;
  base.command = a.command;
  base.body_bytes = a.body_bytes;
  base.one_shot = a.idle;
  base.tls = a.wss;
  if (a.ws) {
    // A fixed key is fine: it proves nothing but that the server speaks WebSocket.
    base.ws_request = "GET " + a.ws_path + " HTTP/1.1\r\nHost: " + a.host + ":" + std::to_string(a.port) +
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n";
  }

  std::atomic<int> phase{static_cast<int>(Phase::kWarmup)};
  std::atomic<int> ready{0}, answered{0};
  const int64_t rss_before = a.idle ? SumRss(a.pids) : 0;
  std::vector<std::unique_ptr<LoadWorker>> workers;
  for (int t = 0; t < a.threads; ++t) {
    LoadOptions o = base;
    o.connections = a.connections / a.threads + (t < a.connections % a.threads ? 1 : 0);
    workers.push_back(std::make_unique<LoadWorker>(o, &phase));
  }
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w, &ready, &answered] { w->Run(&ready, &answered); });

  // Wait until every connection is up (bounded: a dead server must not hang us).
  const double connect_deadline = NowS() + 60;
  while (ready.load() < a.threads && NowS() < connect_deadline) SleepS(0.005);
  const bool all_ready = ready.load() == a.threads;

  double window = 0;
  int64_t server_cpu = 0, client_cpu = 0, rss_after = 0;
  if (a.idle) {
    const double deadline = NowS() + 60;
    while (answered.load() < a.connections && NowS() < deadline) SleepS(0.005);
    SleepS(0.2);  // let the server finish the turn that answered the last one
    rss_after = SumRss(a.pids);
  } else if (all_ready) {
    SleepS(a.warmup);
    const int64_t cpu0 = SumCpuUs(a.pids), self0 = SelfCpuUs();
    const double t0 = NowS();
    phase.store(static_cast<int>(Phase::kMeasure));
    SleepS(a.duration);
    const int64_t cpu1 = SumCpuUs(a.pids), self1 = SelfCpuUs();
    window = NowS() - t0;
    phase.store(static_cast<int>(Phase::kStop));
    server_cpu = cpu1 - cpu0;
    client_cpu = self1 - self0;
  }
  phase.store(static_cast<int>(Phase::kStop));
  for (auto& t : threads) t.join();

  uint64_t replies = 0, errors = 0, silent = 0;
  std::string first_error;
  std::vector<uint32_t> lat;
  for (auto& w : workers) {
    auto& s = w->stats();
    replies += s.replies;
    errors += s.errors;
    silent += s.silent_connections;
    if (first_error.empty()) first_error = s.first_error;
    lat.insert(lat.end(), s.latency_ns.begin(), s.latency_ns.end());
  }
  if (!all_ready && first_error.empty()) first_error = "connections were not all established within 60 s";
  if (!all_ready && errors == 0) errors = 1;
  if (a.idle && answered.load() < a.connections) {
    errors += static_cast<uint64_t>(a.connections - answered.load());
    if (first_error.empty()) first_error = "not every connection got its reply within 60 s";
  }

  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(2);
  if (a.idle) {
    const int64_t per = (rss_after - rss_before) / a.connections;
    if (a.json) {
      o << "{\"mode\":\"idle\",\"connections\":" << a.connections << ",\"rss_before_bytes\":" << rss_before
        << ",\"rss_after_bytes\":" << rss_after << ",\"bytes_per_session\":" << per << ",\"errors\":" << errors
        << ",\"silent_connections\":" << silent;
    } else {
      o << "idle sessions: " << a.connections << "\nserver RSS before: " << rss_before / 1024
        << " KiB\nserver RSS after: " << rss_after / 1024 << " KiB\nper session: " << per
        << " bytes\nerrors: " << errors;
    }
  } else {
    const double rps = window > 0 ? static_cast<double>(replies) / window : 0;
    const double p50 = PercentileUs(lat, 0.50), p99 = PercentileUs(lat, 0.99), p999 = PercentileUs(lat, 0.999);
    const double max_us = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end()) / 1000.0;
    const double per_req = replies ? static_cast<double>(server_cpu) / static_cast<double>(replies) : 0;
    const double client_per_req = replies ? static_cast<double>(client_cpu) / static_cast<double>(replies) : 0;
    if (a.json) {
      o << "{\"mode\":\"load\",\"connections\":" << a.connections << ",\"depth\":" << a.depth
        << ",\"threads\":" << a.threads << ",\"body_bytes\":" << a.body_bytes << ",\"duration_s\":" << window
        << ",\"requests\":" << replies << ",\"rps\":" << rps << ",\"p50_us\":" << p50 << ",\"p99_us\":" << p99
        << ",\"p999_us\":" << p999 << ",\"max_us\":" << max_us << ",\"errors\":" << errors << ",\"silent_connections\":" << silent;
      if (!a.pids.empty()) o << ",\"server_cpu_us_per_req\":" << per_req;
      o << ",\"client_cpu_us_per_req\":" << client_per_req;
    } else {
      o << "connections " << a.connections << ", depth " << a.depth << ", body " << a.body_bytes << " B, "
        << a.threads << " thread(s), " << window << " s\nrequests: " << replies << "\nrequests/s: " << rps
        << "\nlatency us: p50 " << p50 << "  p99 " << p99 << "  p999 " << p999 << "  max " << max_us
        << "\nerrors: " << errors << "\nconnections without a correct reply: " << silent;
      if (!a.pids.empty()) o << "\nserver CPU us/req: " << per_req;
      o << "\nclient CPU us/req: " << client_per_req;
    }
  }
  if (a.json) {
    if (!first_error.empty()) {
      std::string esc;
      for (char c : first_error) {
        if (c == '"' || c == '\\') esc += '\\';
        esc += c;
      }
      o << ",\"first_error\":\"" << esc << "\"";
    }
    o << "}";
  } else if (!first_error.empty()) {
    o << "\nfirst error: " << first_error;
  }
  printf("%s\n", o.str().c_str());
  return errors ? 1 : 0;
}
