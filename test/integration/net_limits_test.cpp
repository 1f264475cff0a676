// Client connection limits as an operator and a client see them
// (docs/protocol.md, "Limits"): the memory that clients who never read can
// cost, backpressure on a pipelining client, the per-address connection limit
// and the per-session request rate. The real `lampyr` binary, real loopback
// sockets (a second client address is 127.0.0.2), the room plugin for pushes,
// metrics from the server's own admin port.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin/http_client.h"
#include "harness.h"
#include "lampyr_client.h"
#include "net/frame_codec.h"

namespace lampyr {
namespace {

using client::Client;
using client::Frame;
using test::Process;
using test::TempDir;

constexpr uint32_t kEcho = 1;
constexpr uint32_t kErrorCommand = 0xFFFFFFFF;
// The room plugin (plugins/room/README.md).
constexpr uint32_t kJoin = 100, kSay = 102, kWho = 103, kPushSay = 111;

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Integer from the environment (for measuring runs), or `def`.
int64_t EnvInt(const char* name, int64_t def) {
  const char* v = getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : def;
}

// "VmHWM" (peak) or "VmRSS" of a process, in bytes.
int64_t ProcStatusBytes(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::strtoll(line.c_str() + field.size() + 1, nullptr, 10) * 1024;
  return -1;
}

void RaiseFileLimit(rlim_t want) {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
    rl.rlim_cur = std::min(want, rl.rlim_max);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

std::string EchoFrame(std::string_view body) {
  net::FrameLimits l;
  std::string out;
  net::AppendFrame(l, kEcho, body, &out);
  return out;
}

// A blocking connection from a chosen local address (127.0.0.2 is a second
// client address on loopback): what the client library does not offer.
class RawConn {
 public:
  RawConn(const char* local, uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, local, &a.sin_addr);
    sockaddr_in s{};
    s.sin_family = AF_INET;
    s.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &s.sin_addr);
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    connected_ = bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                 connect(fd_, reinterpret_cast<sockaddr*>(&s), sizeof s) == 0;
  }
  ~RawConn() { close(fd_); }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  bool connected() const { return connected_; }

  // One echo round trip; false when the server closed or did not answer.
  bool Echo(const std::string& body) {
    std::string f = EchoFrame(body);
    if (send(fd_, f.data(), f.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(f.size())) return false;
    std::string in;
    net::FrameLimits l;
    for (;;) {
      net::DecodedFrame d;
      if (!in.empty() &&
          net::DecodeFrame(reinterpret_cast<const uint8_t*>(in.data()), in.size(), l, &d) == net::FrameError::kOk)
        return d.command == kEcho && d.body == body;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
    }
  }
  // True when the server closes the connection (within SO_RCVTIMEO).
  bool ClosedByServer() {
    char buf[256];
    ssize_t n;
    while ((n = recv(fd_, buf, sizeof buf, 0)) > 0) {
    }
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  int fd_;
  bool connected_ = false;
};

class NetLimitsTest : public ::testing::Test {
 protected:
  // `protocol`: the config's "protocol" object; `net_extra`: more members of
  // servers.net; `top_extra`: more top-level members.
  void StartServer(const std::string& protocol, const std::string& net_extra = "",
                   const std::string& top_extra = "") {
    port_ = test::FreePort();
    web_ = test::FreePort();
    const std::string conf = dir_.path() + "/cluster.json";
    test::WriteFile(conf, "{\"master\": {\"insecure_dev\": true},\n \"servers\": {\"net\": {\"netport\": " +
                              std::to_string(port_) + ", \"webport\": " + std::to_string(web_) +
                              ", \"builtins\": {\"echo\": 1}" + net_extra + "}},\n \"protocol\": " + protocol +
                              top_extra + "}\n");
    server_ = test::StartServer(conf, "net", port_);
    ASSERT_NE(server_, nullptr) << "server did not start:\n" << ServerOutput();
    ASSERT_TRUE(test::WaitForPort("127.0.0.1", web_, 10000));
  }

  void TearDown() override {
    if (!server_) return;
    EXPECT_TRUE(server_->Running()) << "server died during the test:\n" << ServerOutput();
    server_->Signal(SIGTERM);
    int st = server_->Wait(20000);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st << "\n" << ServerOutput();
  }

  std::string ServerOutput() { return test::ReadFile(dir_.path() + "/net.out"); }

  bool OutputContains(const std::string& needle, int timeout_ms = 5000) {
    for (int64_t end = NowMs() + timeout_ms; NowMs() < end; SleepMs(20))
      if (ServerOutput().find(needle) != std::string::npos) return true;
    return false;
  }

  // One series of the server's /metrics, e.g.
  // `lampyr_sessions_closed_total{reason="slow_consumer"}`; 0 when absent.
  int64_t Metric(const std::string& series) {
    HttpResponse r;
    Status s = HttpCall("127.0.0.1", web_, "GET", "/metrics", "", {}, &r, 10000);
    EXPECT_TRUE(s.ok() && r.status == 200) << s.message();
    size_t at = r.body.find("\n" + series + " ");
    if (at == std::string::npos) return 0;
    return std::strtoll(r.body.c_str() + at + series.size() + 2, nullptr, 10);
  }

  // Waits until Metric(series) == want; returns the last value seen.
  int64_t WaitMetric(const std::string& series, int64_t want, int timeout_ms = 10000) {
    int64_t v = Metric(series);
    for (int64_t end = NowMs() + timeout_ms; v != want && NowMs() < end; v = Metric(series)) SleepMs(50);
    return v;
  }

  std::unique_ptr<Client> Connect() {
    auto c = std::make_unique<Client>();
    Status s = c->Connect("127.0.0.1", port_, 10000);
    EXPECT_TRUE(s.ok()) << s.message();
    return c;
  }

  static bool Echoes(Client* c, const std::string& body) {
    Frame f;
    Status s = c->Call(kEcho, body, &f, 10000);
    return s.ok() && f.command == kEcho && f.body == body;
  }

  // Every server-side socket of the client port: "rb<N>" and "tb<N>" of
  // `ss -tm` (the kernel's receive and send buffer sizes).
  std::vector<std::pair<int64_t, int64_t>> ServerSocketBuffers() {
    std::string cmd = "ss -tmnH state established '( sport = :" + std::to_string(port_) + " )' 2>&1";
    std::string out;
    if (FILE* p = popen(cmd.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
      pclose(p);
    }
    // One "skmem:(r0,rb131072,t0,tb2626560,...)" per socket.
    std::vector<std::pair<int64_t, int64_t>> v;
    for (size_t at = out.find("skmem:("); at != std::string::npos; at = out.find("skmem:(", at + 1)) {
      size_t rb = out.find(",rb", at), tb = out.find(",tb", at);
      if (rb == std::string::npos || tb == std::string::npos) break;
      v.emplace_back(std::strtoll(out.c_str() + rb + 3, nullptr, 10), std::strtoll(out.c_str() + tb + 3, nullptr, 10));
    }
    EXPECT_FALSE(v.empty()) << cmd << ":\n" << out;
    return v;
  }

  TempDir dir_;
  uint16_t port_ = 0, web_ = 0;
  std::unique_ptr<Process> server_;
};

// --- memory: clients that never read -------------------------------------

// 100 members of a chat room never read while another member says 60 KB
// messages (each is pushed to the whole room). Their output is what a server
// must not keep without bound: the server's peak RSS grows by at most the
// documented bound for protocol.output_budget_bytes, the clients that never
// read are closed as slow_consumer, and the members that do read get every
// message, in order. LAMPYR_NET_SILENT_CLIENTS / _OUTPUT_BUDGET (0 = the
// default) / _SAYS scale it up for the numbers in docs/protocol.md.
TEST_F(NetLimitsTest, ClientsThatNeverReadStayWithinTheOutputBudgetAndReadersGetEverything) {
  const int silent_n = static_cast<int>(EnvInt("LAMPYR_NET_SILENT_CLIENTS", 100));
  const int64_t budget = EnvInt("LAMPYR_NET_OUTPUT_BUDGET", 16 << 20);
  const int says = static_cast<int>(EnvInt("LAMPYR_NET_SAYS", 100));
  RaiseFileLimit(static_cast<rlim_t>(silent_n) + 200);
  // Under AddressSanitizer freed memory waits in a quarantine (256 MiB) and
  // would count as the server's: measure live memory there too. (Read by
  // sanitized processes at start only, so it reaches just the server.)
  const char* asan_env = getenv("ASAN_OPTIONS");
  const std::string asan = asan_env ? asan_env : "";
  setenv("ASAN_OPTIONS", (asan + ":quarantine_size_mb=0").c_str(), 1);
  StartServer(
      "{\"max_connections_per_ip\": " + std::to_string(silent_n + 10) +
          (budget > 0 ? ", \"output_budget_bytes\": " + std::to_string(budget) : std::string()) + "}",
      ", \"plugins\": [\"room\"]",
      ", \"plugins\": {\"room\": {\"path\": \"" + test::PluginPath("room") + "\"}}");
  if (asan_env) setenv("ASAN_OPTIONS", asan.c_str(), 1);
  else unsetenv("ASAN_OPTIONS");  // the other tests' servers keep the full checks
  if (HasFatalFailure()) return;

  std::vector<std::unique_ptr<Client>> silent;
  for (int i = 0; i < silent_n; ++i) {
    silent.push_back(Connect());
    int small = 4096;  // what they do not read piles up in the server, not here
    setsockopt(silent.back()->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    ASSERT_TRUE(silent.back()->Send(kJoin, "hall").ok());
  }
  auto talker = Connect();
  auto reader = Connect();
  Frame f;
  ASSERT_TRUE(talker->Call(kJoin, "hall", &f, 10000).ok());
  ASSERT_TRUE(reader->Call(kJoin, "hall", &f, 10000).ok());
  size_t members = 0;
  for (int64_t end = NowMs() + 20000; members != static_cast<size_t>(silent_n) + 2 && NowMs() < end; SleepMs(20)) {
    ASSERT_TRUE(talker->Call(kWho, "", &f, 10000).ok());
    members = static_cast<size_t>(std::count(f.body.begin(), f.body.end(), '\n'));
  }
  ASSERT_EQ(members, static_cast<size_t>(silent_n) + 2);

  const int64_t rss_before = ProcStatusBytes(server_->pid(), "VmRSS");
  const std::string pad(60000, 'p');
  for (int i = 0; i < says; ++i) {
    const std::string text = "msg-" + std::to_string(i) + "-";
    Frame reply;
    Status s = talker->Call(kSay, text + pad, &reply, 20000);
    ASSERT_TRUE(s.ok()) << "say " << i << ": " << s.message();
    ASSERT_EQ(reply.command, kSay) << reply.body;
    while (talker->Receive(&f, 0).ok()) {
    }  // its own copy of the message
    // The reader gets this message next (join/leave events may come between).
    do {
      s = reader->Receive(&f, 20000);
      ASSERT_TRUE(s.ok()) << "reader, message " << i << ": " << s.message();
    } while (f.command != kPushSay);
    ASSERT_NE(f.body.find(": " + text), std::string::npos) << "reader, message " << i << " out of order";
  }
  const int64_t peak = ProcStatusBytes(server_->pid(), "VmHWM");
  const int64_t effective_budget = budget > 0 ? budget : int64_t{256} << 20;

  // Every client that never read was cut off, and only those.
  EXPECT_EQ(WaitMetric("lampyr_sessions_closed_total{reason=\"slow_consumer\"}", silent_n), silent_n);
  EXPECT_TRUE(Echoes(reader.get(), "the reader is still served"));
  EXPECT_TRUE(Echoes(talker.get(), "so is the talker"));
  // docs/protocol.md: peak RSS growth <= 2 x output_budget_bytes + 64 KiB per
  // session (allocator slack included).
  const int64_t bound = 2 * effective_budget + int64_t{64 << 10} * (silent_n + 2);
  printf("silent clients %d, budget %lld: RSS before %lld KiB, peak %lld KiB, growth %lld KiB (bound %lld KiB)\n",
         silent_n, static_cast<long long>(effective_budget), static_cast<long long>(rss_before >> 10),
         static_cast<long long>(peak >> 10), static_cast<long long>((peak - rss_before) >> 10),
         static_cast<long long>(bound >> 10));
  EXPECT_LE(peak - rss_before, bound) << "peak RSS grew past the documented bound";
}

// The kernel's share of a session's output (and input) is bounded too: every
// client socket gets protocol.sndbuf_bytes / rcvbuf_bytes (the kernel doubles
// them for its bookkeeping), instead of autotuning up to tcp_wmem/tcp_rmem.
TEST_F(NetLimitsTest, ClientSocketsGetTheConfiguredKernelBuffers) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"({"sndbuf_bytes": 32768, "rcvbuf_bytes": 16384})"));
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(Connect());
    ASSERT_TRUE(Echoes(clients.back().get(), std::string(40000, 'x')));
  }
  auto buffers = ServerSocketBuffers();
  EXPECT_EQ(buffers.size(), 3u);
  for (auto [rb, tb] : buffers) {
    EXPECT_EQ(rb, 2 * 16384);
    EXPECT_EQ(tb, 2 * 32768);
  }
}

// --- backpressure: pipelining ---------------------------------------------

// A client may pipeline (docs/protocol.md): 100,000 requests sent as fast as
// the socket takes them while the client reads its replies slowly (nothing
// for the first second, then in small bites). The server stops reading it
// while its replies wait, instead of closing it: all 100,000 replies arrive,
// in order.
TEST_F(NetLimitsTest, PipeliningClientThatReadsSlowlyGetsEveryReplyInOrder) {
  ASSERT_NO_FATAL_FAILURE(StartServer("{}"));
  auto c = Connect();
  int small = 16384;
  setsockopt(c->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  constexpr int kN = 100000;
  auto body = [](int i) {
    std::string b = "request-" + std::to_string(i) + "-";
    b.resize(100, '.');
    return b;
  };
  std::string out;
  for (int i = 0; i < kN; ++i) out += EchoFrame(body(i));

  size_t sent = 0;
  int received = 0;
  std::string in;
  bool closed = false;
  const int64_t start = NowMs(), read_from = start + 1000, deadline = start + 120000;
  net::FrameLimits l;
  while (received < kN && !closed && NowMs() < deadline) {
    const bool reading = NowMs() >= read_from;
    pollfd p{c->fd(), static_cast<short>((sent < out.size() ? POLLOUT : 0) | (reading ? POLLIN : 0)), 0};
    poll(&p, 1, 10);
    if (sent < out.size()) {
      ssize_t n = send(c->fd(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent += static_cast<size_t>(n);
      else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) closed = true;
    }
    if (!reading) continue;
    char buf[8192];  // slowly: at most 8 KiB a millisecond
    ssize_t n = recv(c->fd(), buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      closed = true;
      break;
    }
    if (n > 0) in.append(buf, static_cast<size_t>(n));
    size_t off = 0;
    net::DecodedFrame d;
    while (net::DecodeFrame(reinterpret_cast<const uint8_t*>(in.data()) + off, in.size() - off, l, &d) ==
           net::FrameError::kOk) {
      ASSERT_EQ(d.command, kEcho) << "reply " << received << ": " << d.body;
      ASSERT_EQ(d.body, body(received)) << "reply " << received << " out of order";
      ++received;
      off += d.frame_size;
    }
    in.erase(0, off);
    SleepMs(1);
  }
  EXPECT_FALSE(closed) << "the server closed a client that reads, after " << received << " replies:\n"
                       << ServerOutput();
  EXPECT_EQ(received, kN);
  EXPECT_EQ(Metric("lampyr_sessions_closed_total{reason=\"slow_consumer\"}"), 0);
}

// --- fairness: connections per address ------------------------------------

TEST_F(NetLimitsTest, PerAddressLimitRefusesThatAddressOnly) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"({"max_connections_per_ip": 2})"));
  ASSERT_EQ(WaitMetric("lampyr_sessions", 0), 0);  // the harness's probe of the port is gone
  auto a1 = Connect();
  auto a2 = Connect();
  ASSERT_TRUE(Echoes(a1.get(), "first from 127.0.0.1"));
  ASSERT_TRUE(Echoes(a2.get(), "second from 127.0.0.1"));
  auto a3 = Connect();  // the kernel accepts; the server closes it at once
  EXPECT_TRUE(a3->WaitClosed(5000)) << "a third connection from one address was kept";
  EXPECT_TRUE(OutputContains("max_connections_per_ip (2)")) << ServerOutput();

  // Another address is not affected by the first one's limit.
  RawConn b1("127.0.0.2", port_), b2("127.0.0.2", port_);
  ASSERT_TRUE(b1.connected() && b2.connected());
  EXPECT_TRUE(b1.Echo("first from 127.0.0.2"));
  EXPECT_TRUE(b2.Echo("second from 127.0.0.2"));
  RawConn b3("127.0.0.2", port_);
  EXPECT_TRUE(b3.ClosedByServer()) << "a third connection from 127.0.0.2 was kept";
  EXPECT_EQ(WaitMetric("lampyr_sessions_rejected_total{reason=\"max_connections_per_ip\"}", 2), 2);

  EXPECT_TRUE(Echoes(a1.get(), "still served"));
  a2.reset();  // a slot of 127.0.0.1 frees up once the server has seen the close
  bool admitted = false;
  for (int attempt = 0; attempt < 100 && !admitted; ++attempt) {
    auto again = Connect();
    Frame f;
    admitted = again->Call(kEcho, "x", &f, 1000).ok();
    if (!admitted) SleepMs(50);
  }
  EXPECT_TRUE(admitted) << "a freed slot of the address was never reused";
}

// --- fairness: request rate per session -------------------------------------

TEST_F(NetLimitsTest, RequestsOverTheRateGetOverloadedThenTheSessionIsClosed) {
  // One token a second, 20 at once: a burst of 30 is 20 answers and ~10
  // overloaded errors; a client that keeps going is closed.
  ASSERT_NO_FATAL_FAILURE(StartServer(R"({"rate": {"per_s": 1, "burst": 20}})"));
  auto bystander = Connect();
  ASSERT_TRUE(Echoes(bystander.get(), "before"));
  auto c = Connect();
  std::string burst;
  for (int i = 0; i < 30; ++i) burst += EchoFrame("r" + std::to_string(i));
  ASSERT_TRUE(c->SendRaw(burst).ok());
  int overloaded = 0;
  for (int i = 0; i < 30; ++i) {
    Frame f;
    Status s = c->Receive(&f, 10000);
    ASSERT_TRUE(s.ok()) << "reply " << i << ": " << s.message();
    if (i < 20 || f.command == kEcho) {
      ASSERT_EQ(f.command, kEcho) << "reply " << i << ": " << f.body;
      EXPECT_EQ(f.body, "r" + std::to_string(i));  // answers keep request order
      continue;
    }
    ASSERT_EQ(f.command, kErrorCommand);
    EXPECT_NE(f.body.find("\"code\":5,\"error\":\"overloaded\",\"command\":1,"), std::string::npos) << f.body;
    ++overloaded;
  }
  EXPECT_GE(overloaded, 8) << "one token a second cannot have refilled more than a couple";
  EXPECT_TRUE(Echoes(bystander.get(), "other sessions have their own rate"));

  // It keeps going: closed as rate_limited, after its error replies.
  burst.clear();
  for (int i = 0; i < 200; ++i) burst += EchoFrame("flood");
  c->SendRaw(burst);  // may fail midway: the server closes
  EXPECT_TRUE(c->WaitClosed(10000)) << "a client that ignores overloaded errors was never closed";
  EXPECT_TRUE(OutputContains("closed: rate_limited")) << ServerOutput();
  EXPECT_EQ(WaitMetric("lampyr_sessions_closed_total{reason=\"rate_limited\"}", 1), 1);
  EXPECT_GE(Metric("lampyr_request_errors_total{code=\"overloaded\"}"), 20);
  EXPECT_TRUE(Echoes(bystander.get(), "after"));
}

}  // namespace
}  // namespace lampyr
