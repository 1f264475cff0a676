// The client protocol as a user sees it: the real `lampyr` binary with the
// built-in echo handler, real loopback sockets, the client library.
#include <gtest/gtest.h>
#include <json/json.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "lampyr_client.h"
#include "net/frame_codec.h"

namespace lampyr {
namespace {

using client::Client;
using client::Frame;
using client::Options;
using test::Process;
using test::TempDir;

constexpr uint32_t kEcho = 1;
constexpr uint32_t kHeartbeat = 7;
constexpr uint32_t kErrorCommand = 0xFFFFFFFF;

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// One `lampyr --server net` with an echo handler, per test.
class NetProtocolTest : public ::testing::Test {
 protected:
  // `protocol` is the JSON object text for the config's "protocol" key.
  void StartServer(const std::string& protocol = "{}", uint32_t echo = kEcho) {
    port_ = test::FreePort();
    conf_ = dir_.path() + "/cluster.json";
    test::WriteFile(conf_, "{\"servers\": {\"net\": {\"netport\": " + std::to_string(port_) +
                               ", \"builtins\": {\"echo\": " + std::to_string(echo) +
                               "}}},\n \"protocol\": " + protocol + "}\n");
    server_ = test::StartServer(conf_, "net", port_);
    ASSERT_NE(server_, nullptr) << "server did not start";
  }

  std::unique_ptr<Client> Connect(Options o = {}) {
    auto c = std::make_unique<Client>(o);
    Status s = c->Connect("127.0.0.1", port_);
    EXPECT_TRUE(s.ok()) << s.message();
    return c;
  }

  std::string ServerOutput() { return test::ReadFile(dir_.path() + "/net.out"); }

  // The server logs the reason for each closed session; wait for it to show.
  bool OutputContains(const std::string& needle, int timeout_ms = 5000) {
    for (int waited = 0; waited < timeout_ms; waited += 20) {
      if (ServerOutput().find(needle) != std::string::npos) return true;
      SleepMs(20);
    }
    return false;
  }

  void TearDown() override {
    if (!server_) return;
    EXPECT_TRUE(server_->Running()) << "server died during the test:\n" << ServerOutput();
    server_->Signal(SIGTERM);
    int st = server_->Wait(10000);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st << "\n" << ServerOutput();
  }

  TempDir dir_;
  std::string conf_;
  uint16_t port_ = 0;
  std::unique_ptr<Process> server_;
};

// Expects `c` to answer an echo round trip.
void ExpectEcho(Client* c, const std::string& body, const Options& o = {}) {
  (void)o;
  Frame f;
  Status s = c->Call(kEcho, body, &f);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(f.command, kEcho);
  EXPECT_EQ(f.body, body);
}

std::string EncodeFrame(const Options& o, uint32_t command, std::string_view body) {
  net::FrameLimits l;
  l.head = o.head;
  l.proto_version = o.proto_version;
  l.server_version = o.server_version;
  l.max_body = 0xFFFFFFF0u;
  std::string out;
  net::AppendFrame(l, command, body, &out);
  return out;
}

TEST_F(NetProtocolTest, EchoRoundTrip) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto c = Connect();
  ExpectEcho(c.get(), "hello");
  ExpectEcho(c.get(), "");  // empty body: length field 4
  ExpectEcho(c.get(), std::string("\0\x01\xff binary", 10));
}

TEST_F(NetProtocolTest, ReplyCarriesTheRequestCommandId) {
  constexpr uint32_t kOdd = 0xABCDEF01;
  ASSERT_NO_FATAL_FAILURE(StartServer("{}", kOdd));
  auto c = Connect();
  ASSERT_TRUE(c->Send(kOdd, "x").ok());
  Frame f;
  ASSERT_TRUE(c->Receive(&f).ok());
  EXPECT_EQ(f.command, kOdd);
  EXPECT_EQ(f.body, "x");
}

TEST_F(NetProtocolTest, PipelinedRepliesComeBackInRequestOrder) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto c = Connect();
  constexpr int kN = 1000;
  for (int i = 0; i < kN; ++i) ASSERT_TRUE(c->Send(kEcho, "req-" + std::to_string(i)).ok());
  for (int i = 0; i < kN; ++i) {
    Frame f;
    Status s = c->Receive(&f, 10000);
    ASSERT_TRUE(s.ok()) << "reply " << i << ": " << s.message();
    ASSERT_EQ(f.command, kEcho);
    ASSERT_EQ(f.body, "req-" + std::to_string(i));
  }
}

TEST_F(NetProtocolTest, HeartbeatIsAnsweredByTheHost) {
  ASSERT_NO_FATAL_FAILURE(StartServer("{\"heartbeat_command\": 7}"));
  auto c = Connect();
  Frame f;
  Status s = c->Call(kHeartbeat, "ping", &f);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(f.command, kHeartbeat);
  ExpectEcho(c.get(), "still open");
}

TEST_F(NetProtocolTest, HeartbeatOffMeansUnknownCommand) {
  ASSERT_NO_FATAL_FAILURE(StartServer());  // heartbeat_command defaults to 0 = off
  auto c = Connect();
  Frame f;
  ASSERT_TRUE(c->Call(0, "", &f).ok());
  EXPECT_EQ(f.command, kErrorCommand);
}

TEST_F(NetProtocolTest, UnknownCommandGetsTheErrorReplyAndTheSessionStaysOpen) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto c = Connect();
  Frame f;
  Status s = c->Call(4242, "what", &f);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(f.command, kErrorCommand);
  Json::Value v;
  Json::CharReaderBuilder b;
  std::string errs;
  std::unique_ptr<Json::CharReader> r(b.newCharReader());
  ASSERT_TRUE(r->parse(f.body.data(), f.body.data() + f.body.size(), &v, &errs)) << f.body;
  EXPECT_EQ(v["code"].asUInt(), 1u);
  EXPECT_EQ(v["error"].asString(), "unknown_command");
  EXPECT_EQ(v["command"].asUInt(), 4242u);
  EXPECT_TRUE(v["message"].isString());
  ExpectEcho(c.get(), "after the error");
}

TEST_F(NetProtocolTest, ErrorCommandIdFollowsTheConfig) {
  ASSERT_NO_FATAL_FAILURE(StartServer("{\"error_command\": 9999}"));
  Options o;
  o.error_command = 9999;
  auto c = Connect(o);
  Frame f;
  ASSERT_TRUE(c->Call(4242, "", &f).ok());
  EXPECT_EQ(f.command, 9999u);
}

TEST_F(NetProtocolTest, RepliesStayInOrderAcrossEchoErrorAndHeartbeat) {
  ASSERT_NO_FATAL_FAILURE(StartServer("{\"heartbeat_command\": 7}"));
  auto c = Connect();
  std::string burst;
  std::vector<uint32_t> expect;
  for (int i = 0; i < 300; ++i) {
    uint32_t cmd = i % 3 == 0 ? kEcho : i % 3 == 1 ? 555u : kHeartbeat;
    burst += EncodeFrame({}, cmd, std::to_string(i));
    expect.push_back(cmd == 555u ? kErrorCommand : cmd);
  }
  ASSERT_TRUE(c->SendRaw(burst).ok());  // all merged into one write
  for (size_t i = 0; i < expect.size(); ++i) {
    Frame f;
    Status s = c->Receive(&f, 10000);
    ASSERT_TRUE(s.ok()) << "reply " << i << ": " << s.message();
    ASSERT_EQ(f.command, expect[i]) << "reply " << i;
    if (f.command != kErrorCommand) {
      ASSERT_EQ(f.body, std::to_string(i));
    } else {
      ASSERT_NE(f.body.find("\"command\":555"), std::string::npos) << f.body;
    }
  }
}

TEST_F(NetProtocolTest, FramesSplitByteByByte) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto c = Connect();
  std::string bytes = EncodeFrame({}, kEcho, "first") + EncodeFrame({}, kEcho, "") + EncodeFrame({}, kEcho, "third");
  for (char ch : bytes) {
    ASSERT_TRUE(c->SendRaw(std::string_view(&ch, 1)).ok());
    SleepMs(1);  // TCP_NODELAY + a pause: each byte leaves in its own segment
  }
  for (const char* want : {"first", "", "third"}) {
    Frame f;
    ASSERT_TRUE(c->Receive(&f).ok());
    EXPECT_EQ(f.body, want);
  }
}

TEST_F(NetProtocolTest, FrameSplitAtEveryPoint) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto c = Connect();
  std::string frame = EncodeFrame({}, kEcho, "split-me");
  for (size_t cut = 1; cut < frame.size(); ++cut) {
    ASSERT_TRUE(c->SendRaw(frame.substr(0, cut)).ok());
    SleepMs(1);
    ASSERT_TRUE(c->SendRaw(frame.substr(cut)).ok());
    Frame f;
    Status s = c->Receive(&f);
    ASSERT_TRUE(s.ok()) << "cut at " << cut << ": " << s.message();
    EXPECT_EQ(f.body, "split-me");
  }
}

TEST_F(NetProtocolTest, LargestAllowedBodyIsAccepted) {
  ASSERT_NO_FATAL_FAILURE(StartServer("{\"max_body\": 100000}"));
  auto c = Connect();
  std::string big(100000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  ExpectEcho(c.get(), big);
}

// Bad input: each case closes that connection only; a session opened before
// keeps working and the reason shows in the server's log.
struct BadInput {
  const char* name;
  const char* reason;  // as logged by the server
  std::string bytes;
};

// Keeps gtest from dumping the struct's bytes into every test name.
void PrintTo(const BadInput& b, std::ostream* os) { *os << b.name; }

// The server under test uses head 1,2,3,4, proto_version 5, server_version 6,
// max_body 1000: each case breaks exactly one of them.
Options GoodOptions() {
  Options o;
  o.head = {1, 2, 3, 4};
  o.proto_version = 5;
  o.server_version = 6;
  return o;
}

std::string WithByte(std::string frame, size_t at, uint8_t value) {
  frame[at] = static_cast<char>(value);
  return frame;
}

std::string WithBE32(std::string frame, size_t at, uint32_t value) {
  net::StoreBE32(reinterpret_cast<uint8_t*>(frame.data()) + at, value);
  return frame;
}

std::vector<BadInput> BadInputs() {
  const std::string good = EncodeFrame(GoodOptions(), kEcho, "body");
  return {
      {"bad_head", "bad_head", WithByte(good, 3, 9)},
      {"bad_head_first_byte_alone", "bad_head", std::string(1, '\x7f')},
      {"http_request", "bad_head", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"bad_proto_version", "bad_version", WithByte(good, 4, 4)},
      {"bad_server_version", "bad_version", WithBE32(good, 5, 7)},
      {"length_below_4", "bad_length", WithBE32(good, 9, 3)},
      {"length_zero", "bad_length", WithBE32(good, 9, 0)},
      {"body_over_max_body", "too_large", WithBE32(good, 9, 1000 + 4 + 1)},
      {"length_near_4GiB", "too_large", WithBE32(good, 9, 0xFFFFFFFF)},
  };
}

class NetBadInputTest : public NetProtocolTest, public ::testing::WithParamInterface<BadInput> {};

TEST_P(NetBadInputTest, ClosesThatConnectionOnly) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer("{\"head\": [1, 2, 3, 4], \"proto_version\": 5, \"server_version\": 6, \"max_body\": 1000}"));
  const Options o = GoodOptions();
  auto bystander = Connect(o);
  ExpectEcho(bystander.get(), "before");
  auto bad = Connect(o);
  ExpectEcho(bad.get(), "a good request first");
  ASSERT_TRUE(bad->SendRaw(GetParam().bytes).ok());
  EXPECT_TRUE(bad->WaitClosed(5000)) << "the server did not close the connection";
  EXPECT_TRUE(OutputContains(std::string("closed: ") + GetParam().reason)) << ServerOutput();
  ExpectEcho(bystander.get(), "after");
  auto fresh = Connect(o);
  ExpectEcho(fresh.get(), "new sessions still welcome");
}

INSTANTIATE_TEST_SUITE_P(Cases, NetBadInputTest, ::testing::ValuesIn(BadInputs()),
                         [](const ::testing::TestParamInfo<BadInput>& i) { return std::string(i.param.name); });

TEST_F(NetProtocolTest, AnswersAlreadyDueAreDeliveredBeforeABadFrameCloses) {
  ASSERT_NO_FATAL_FAILURE(StartServer("{\"max_body\": 1000}"));
  auto c = Connect();
  std::string bytes = EncodeFrame({}, kEcho, "one") + EncodeFrame({}, kEcho, "two");
  bytes += WithBE32(EncodeFrame({}, kEcho, ""), 9, 2);  // length < 4
  ASSERT_TRUE(c->SendRaw(bytes).ok());
  EXPECT_TRUE(c->WaitClosed(5000));
  Frame f;
  ASSERT_TRUE(c->Receive(&f, 0).ok()) << "the reply to a valid request before the bad frame was lost";
  EXPECT_EQ(f.body, "one");
  ASSERT_TRUE(c->Receive(&f, 0).ok());
  EXPECT_EQ(f.body, "two");
}

TEST_F(NetProtocolTest, IdleSessionIsClosed) {
  ASSERT_NO_FATAL_FAILURE(StartServer("{\"idle_timeout_s\": 1, \"heartbeat_command\": 7}"));
  auto silent = Connect();
  auto half = Connect();
  ASSERT_TRUE(half->SendRaw(EncodeFrame({}, kEcho, "partial").substr(0, 10)).ok());  // slowloris
  EXPECT_TRUE(silent->WaitClosed(10000)) << "a silent session stayed open";
  EXPECT_TRUE(half->WaitClosed(10000)) << "a session stuck mid-frame stayed open";
  EXPECT_TRUE(OutputContains("closed: idle"));
  auto fresh = Connect();
  ExpectEcho(fresh.get(), "the server still serves");
}

TEST_F(NetProtocolTest, TricklingClientIsClosed) {
  // Slowloris: one byte of a never-ending frame every 200 ms is never silent
  // for idle_timeout_s, but a frame must not take longer than that to arrive.
  ASSERT_NO_FATAL_FAILURE(StartServer("{\"idle_timeout_s\": 1}"));
  auto c = Connect();
  const std::string frame = EncodeFrame({}, kEcho, std::string(1000, 't'));
  bool closed = false;
  for (size_t i = 0; i < 50 && !closed; ++i) {  // 10 s: ten times the timeout
    closed = !c->SendRaw(frame.substr(i, 1)).ok() || c->WaitClosed(200);
  }
  EXPECT_TRUE(closed) << "a client trickling one byte at a time was never closed";
  EXPECT_TRUE(OutputContains("closed: slow_frame")) << ServerOutput();
}

TEST_F(NetProtocolTest, SlowButSteadyLargeRequestsAreNotCutOff) {
  // Pipelined frames that keep arriving mid-frame are progress, not a trickle.
  ASSERT_NO_FATAL_FAILURE(StartServer("{\"idle_timeout_s\": 1, \"max_body\": 100000}"));
  auto c = Connect();
  const std::string frame = EncodeFrame({}, kEcho, std::string(1000, 's'));
  std::string stream;
  for (int i = 0; i < 12; ++i) stream += frame;
  // 12 frames over ~2.4 s, cut so that every write ends inside a frame.
  const size_t step = stream.size() / 12 + 7;
  for (size_t off = 0; off < stream.size(); off += step) {
    ASSERT_TRUE(c->SendRaw(stream.substr(off, step)).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (int i = 0; i < 12; ++i) {
    Frame f;
    Status s = c->Receive(&f);
    ASSERT_TRUE(s.ok()) << "reply " << i << ": " << s.message();
  }
}

TEST_F(NetProtocolTest, ActiveSessionOutlivesTheIdleTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartServer("{\"idle_timeout_s\": 1, \"heartbeat_command\": 7}"));
  auto c = Connect();
  // Heartbeats every 200 ms for 2.4 s: more than twice the timeout in total,
  // but never a silence close to it.
  for (int i = 0; i < 12; ++i) {
    Frame f;
    Status s = c->Call(kHeartbeat, "", &f);
    ASSERT_TRUE(s.ok()) << "heartbeat " << i << ": " << s.message();
    SleepMs(200);
  }
  ExpectEcho(c.get(), "alive");
}

TEST_F(NetProtocolTest, MaxConnectionsRefusesTheExtraConnection) {
  ASSERT_NO_FATAL_FAILURE(StartServer("{\"max_connections\": 3}"));
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(Connect());
    ExpectEcho(clients.back().get(), "in " + std::to_string(i));
  }
  auto extra = Connect();  // the kernel accepts; the server closes it at once
  EXPECT_TRUE(extra->WaitClosed(5000)) << "a connection over max_connections was kept";
  EXPECT_TRUE(OutputContains("max_connections (3) reached"));
  for (auto& c : clients) ExpectEcho(c.get(), "still served");
  clients.pop_back();  // a slot frees up once the server has seen the close
  bool admitted = false;
  for (int attempt = 0; attempt < 50 && !admitted; ++attempt) {
    auto again = Connect();
    Frame f;
    admitted = again->Call(kEcho, "x", &f, 1000).ok();
    if (!admitted) SleepMs(50);
  }
  EXPECT_TRUE(admitted) << "a freed slot was never reused";
}

TEST_F(NetProtocolTest, ClientThatSendsButNeverReadsIsThrottledThenClosed) {
  // Requests from a client that reads none of its replies: the server stops
  // reading it (its sends block) instead of buffering replies without end,
  // and closes it once its output has made no progress for idle_timeout_s.
  ASSERT_NO_FATAL_FAILURE(StartServer("{\"idle_timeout_s\": 2, \"max_body\": 65536}"));
  // The other players connect when they play: a player connected from the start would itself
  // sit idle past idle_timeout_s while the hog fills the pipes (CI, ASan: closed as idle).
  Options o;
  o.send_timeout_ms = 500;
  auto hog = Connect(o);
  int small = 4096;
  setsockopt(hog->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const std::string frame = EncodeFrame({}, kEcho, std::string(60000, 'h'));
  Status s;
  for (int i = 0; i < 5000 && s.ok(); ++i) s = hog->SendRaw(frame);  // at most ~300 MB
  EXPECT_NE(s.message().find("timed out"), std::string::npos)
      << "the server did not push back on a client that never reads: " << s.message();
  auto during = Connect();
  ExpectEcho(during.get(), "others are still served");
  EXPECT_TRUE(hog->WaitClosed(10000)) << "a client that never reads was never closed";
  EXPECT_TRUE(OutputContains("closed: slow_consumer")) << ServerOutput();
  auto after = Connect();
  ExpectEcho(after.get(), "and after");
}

TEST_F(NetProtocolTest, ThousandConnectionsAtOnceAllAnswered) {
  rlimit rl;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 1200 && rl.rlim_max >= 1200) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  ASSERT_TRUE(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= 1100)
      << "this test needs 1100 descriptors; the limit is " << rl.rlim_cur;
  ASSERT_NO_FATAL_FAILURE(StartServer("{\"max_connections_per_ip\": 0}"));  // all from 127.0.0.1
  constexpr int kN = 1000;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kN; ++i) {
    auto c = std::make_unique<Client>();
    Status s = c->Connect("127.0.0.1", port_, 10000);
    ASSERT_TRUE(s.ok()) << "connection " << i << ": " << s.message();
    clients.push_back(std::move(c));
  }
  // Every connection is open before any request: all 1,000 are served at once.
  for (int i = 0; i < kN; ++i) ASSERT_TRUE(clients[i]->Send(kEcho, "client-" + std::to_string(i)).ok());
  for (int i = 0; i < kN; ++i) {
    Frame f;
    Status s = clients[i]->Receive(&f, 10000);
    ASSERT_TRUE(s.ok()) << "client " << i << ": " << s.message();
    EXPECT_EQ(f.body, "client-" + std::to_string(i));
  }
}

}  // namespace
}  // namespace lampyr
