// The channel port as a hostile neighbour sees it (issue 8, items 4, 7, 10),
// against real processes: gate, net and game1 are `lampyr --server NAME`;
// the test process plays the neighbour with its own ChannelHub (a process
// that knows the cluster secret) or with raw sockets (one that does not).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "channel/channel_hub.h"
#include "channel/channel_wire.h"
#include "core/event_loop.h"
#include "harness.h"
#include "lampyr_client.h"
#include "loop_until.h"
#include "net/dispatch.h"

namespace lampyr {
namespace {

using client::Client;
using client::Frame;
using test::Process;

constexpr const char* kSecret = "channel-security-test-secret-5f2c9e";

enum : uint32_t {
  kLocalEcho = 1,   // net's own builtin
  kEcho = 100,      // game1's builtin, reached through the gate (gate_router sends everything to game1)
  kPushEcho = 101,  // the gate's own builtin: pushes the body to the session, then replies
};

// Node ids are given by name order: game1 1, gate 2, net 3, spy 4.
constexpr uint16_t kNetNode = 3;
SessionId NetSession(uint64_t n) { return (static_cast<uint64_t>(kNetNode) << kSessionNodeShift) | n; }

std::string RequestArgs(SessionId session, uint32_t command, std::string_view body) {
  std::string a;
  channel::PutU64(&a, session);
  channel::PutU32(&a, command);
  channel::PutU32(&a, 2000);
  a.append(body);
  return a;
}

class ChannelSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gate_port_ = test::FreePort();
    net_port_ = test::FreePort();
    conf_ = dir_.path() + "/cluster.json";
    // "spy" is a configured game node that no process runs: the test plays it.
    test::WriteFile(conf_, std::string(R"({
      "master": {"cluster_secret": ")") + kSecret + R"("},
      "protocol": {"idle_timeout_s": 0},
      "servers": {
        "gate":  {"rootport": )" + std::to_string(gate_port_) + R"(, "plugins": ["gate_router"],
                  "builtins": {"push_echo": 101}},
        "net":   {"netport": )" + std::to_string(net_port_) + R"(, "forward": "gate",
                  "remoteport": [{"rootname": "gate"}], "builtins": {"echo": 1}},
        "game1": {"remoteport": [{"rootname": "gate"}], "builtins": {"echo": 100}},
        "spy":   {"remoteport": [{"rootname": "gate"}]}
      },
      "plugins": {"gate_router": {"path": ")" + test::PluginPath("gate_router") + R"(",
                                  "config": {"nodes": ["game1"], "join_command": 999}}}
    })");
    gate_ = Start("gate", gate_port_);
    game_ = Start("game1");
    net_ = Start("net", net_port_);
    ASSERT_TRUE(gate_ && game_ && net_);
  }

  std::unique_ptr<Process> Start(const std::string& name, uint16_t wait_port = 0) {
    auto p = Process::Start({test::LampyrBinary(), "--conf", conf_, "--server", name}, {},
                            dir_.path() + "/" + name + ".out");
    if (p && wait_port != 0 && !test::WaitForPort("127.0.0.1", wait_port, 20000)) {
      ADD_FAILURE() << name << " did not open port " << wait_port << ":\n" << Output(name);
      return nullptr;
    }
    return p;
  }
  std::string Output(const std::string& name) { return test::ReadFile(dir_.path() + "/" + name + ".out"); }

  // A player on net whose forwarded requests are answered (links up, routed).
  std::unique_ptr<Client> Player() {
    auto c = std::make_unique<Client>();
    Status st = c->Connect("127.0.0.1", net_port_);
    EXPECT_TRUE(st.ok()) << st.message();
    if (!st.ok()) return nullptr;
    for (int i = 0; i < 1000; ++i) {
      Frame f;
      if (!c->Call(kEcho, "ready?", &f).ok()) return nullptr;
      if (f.command == kEcho && f.body == "ready?") return c;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "forwarding never worked:\n" << Output("net") << Output("gate") << Output("game1");
    return nullptr;
  }

  // The next frame the player gets is the answer to a fresh request: nothing
  // (no forged push) was queued for it before.
  void ExpectNothingQueued(Client* c, const std::string& tag) {
    ASSERT_TRUE(c->Send(kEcho, tag).ok());
    Frame f;
    ASSERT_TRUE(c->Receive(&f).ok());
    EXPECT_EQ(f.command, kEcho) << "the player got command " << f.command << ": " << f.body;
    EXPECT_EQ(f.body, tag);
  }

  // A neighbour that knows the secret, linking to the gate under `name`.
  std::unique_ptr<ChannelHub> Neighbour(const std::string& name) {
    auto hub = std::make_unique<ChannelHub>(&loop_, name, kSecret);
    hub->Connect("gate", "127.0.0.1", gate_port_);
    return hub;
  }
  static std::string LinkError(const ChannelHub& hub) {
    Json::Value links = hub.LinksJson();
    return links.size() > 0 ? links[0].get("error", "").asString() : "";
  }

  // Calls `method` on `node` and waits for the answer.
  Status CallAndWait(ChannelHub* hub, const std::string& node, const std::string& method, const std::string& args) {
    bool done = false;
    Status result = Status::OK();
    hub->Call(
        node, method, args,
        [&](Status st, std::string) {
          result = st;
          done = true;
        },
        2.0);
    EXPECT_TRUE(RunUntil(loop_, [&] { return done; })) << method << " never answered";
    return result;
  }

  // Reads one frame from a raw socket; false at EOF/error before a whole frame.
  static bool ReadFrame(int fd, std::string* bytes, channel::Frame* f) {
    bytes->clear();
    char buf[4096];
    for (;;) {
      size_t total = 0;
      if (bytes->size() >= channel::kHeaderSize &&
          channel::PeekSize(reinterpret_cast<const uint8_t*>(bytes->data()), 1 << 20, &total) ==
              channel::DecodeResult::kOk &&
          bytes->size() >= total)
        return channel::Decode(reinterpret_cast<const uint8_t*>(bytes->data()), total, f) ==
               channel::DecodeResult::kOk;
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) return false;
      bytes->append(buf, static_cast<size_t>(n));
    }
  }
  // A raw TCP connection to the gate's channel port (reads time out rather than hang).
  int Dial() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(gate_port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  }
  // The reject the gate answers `fd` with, "" when it closes without one.
  static std::string RejectReason(int fd) {
    std::string bytes;
    channel::Frame f;
    if (!ReadFrame(fd, &bytes, &f) || f.type != channel::FrameType::kReject) return "";
    return std::string(f.payload);
  }

  test::TempDir dir_;
  std::string conf_;
  uint16_t gate_port_ = 0, net_port_ = 0;
  std::unique_ptr<Process> gate_, game_, net_;
  EventLoop loop_;
};

// Item 4: the secret alone is not a name. An unconfigured name is refused,
// a configured one is admitted once.
TEST_F(ChannelSecurityTest, UnknownNodeNameIsRefusedConfiguredNameOnlyOnce) {
  auto intruder = Neighbour("intruder");
  ASSERT_TRUE(RunUntil(loop_, [&] { return intruder->IsConnected("gate") || !LinkError(*intruder).empty(); }));
  EXPECT_FALSE(intruder->IsConnected("gate"));
  EXPECT_NE(LinkError(*intruder).find("unknown node intruder"), std::string::npos) << LinkError(*intruder);

  auto spy = Neighbour("spy");
  ASSERT_TRUE(RunUntil(loop_, [&] { return spy->IsConnected("gate") || !LinkError(*spy).empty(); }));
  EXPECT_TRUE(spy->IsConnected("gate")) << LinkError(*spy);
  auto twin = Neighbour("spy");
  ASSERT_TRUE(RunUntil(loop_, [&] { return twin->IsConnected("gate") || !LinkError(*twin).empty(); }));
  EXPECT_FALSE(twin->IsConnected("gate"));
  EXPECT_NE(LinkError(*twin).find("duplicate node name spy"), std::string::npos) << LinkError(*twin);

  // The gate says so in its log (once per name per 10 s however often the intruder retries).
  std::string log;
  for (int i = 0; i < 1000 && log.find("unknown node intruder") == std::string::npos; ++i) {
    RunUntil(loop_, [] { return false; }, 0.01);
    log = Output("gate");
  }
  EXPECT_NE(log.find("unknown node intruder"), std::string::npos) << log;
}

// Item 4: a configured game node may not act as a net server: it cannot
// hand the gate "a player's request" (lampyr.fwd) nor ask net to run one
// (lampyr.req); the players see nothing of it.
TEST_F(ChannelSecurityTest, GameNodeCannotSpeakForPlayers) {
  auto player = Player();
  ASSERT_TRUE(player);
  auto spy = Neighbour("spy");
  ASSERT_TRUE(RunUntil(loop_, [&] { return spy->IsConnected("gate") && spy->IsConnected("net"); }))
      << LinkError(*spy);
  // The player's session is one of net's first few: try them all.
  for (uint64_t n = 1; n <= 8; ++n) {
    Status st = CallAndWait(spy.get(), "gate", "lampyr.fwd", RequestArgs(NetSession(n), kPushEcho, "forged"));
    EXPECT_FALSE(st.ok()) << "lampyr.fwd from a game node was accepted for session " << n;
    EXPECT_NE(st.message().find("refused"), std::string::npos) << st.message();
    st = CallAndWait(spy.get(), "net", "lampyr.req", RequestArgs(NetSession(n), kLocalEcho, "forged"));
    EXPECT_FALSE(st.ok()) << "lampyr.req from a game node was accepted by net for session " << n;
  }
  ExpectNothingQueued(player.get(), "after the forgeries");
}

// Item 10: bindings only for sessions open now. Binding the ids the next
// players will get does nothing to them.
TEST_F(ChannelSecurityTest, BindingFutureSessionsFailsAndNextPlayersAreServed) {
  auto first = Player();
  ASSERT_TRUE(first);
  auto spy = Neighbour("spy");
  ASSERT_TRUE(RunUntil(loop_, [&] { return spy->IsConnected("gate"); })) << LinkError(*spy);
  // Every id net will hand out next, bound to the spy (which answers nothing).
  int refused = 0;
  for (uint64_t n = 1; n <= 64; ++n) {
    std::string a;
    channel::PutU64(&a, NetSession(n));
    channel::PutStr16(&a, "spy");
    Status st = CallAndWait(spy.get(), "gate", "lampyr.bind", a);
    if (!st.ok()) {
      ++refused;
      EXPECT_NE(st.message().find("is not open"), std::string::npos) << st.message();
    }
  }
  // The first player's own session is open and may be bound (and the
  // harness's port probe may not have closed yet).
  EXPECT_GE(refused, 62);
  // An unknown node is refused even for an open session.
  for (uint64_t n = 1; n <= 8; ++n) {
    std::string a;
    channel::PutU64(&a, NetSession(n));
    channel::PutStr16(&a, "nosuch");
    EXPECT_FALSE(CallAndWait(spy.get(), "gate", "lampyr.bind", a).ok());
  }
  std::vector<std::unique_ptr<Client>> next;
  for (int i = 0; i < 5; ++i) {
    next.push_back(Player());
    ASSERT_TRUE(next.back()) << "player " << i;
    ExpectNothingQueued(next.back().get(), "player " + std::to_string(i));
  }
}

// Item 7: before the handshake a frame is at most 4 KiB. A huge first frame
// is refused at its header, not buffered; the gate keeps serving.
TEST_F(ChannelSecurityTest, LargeFirstFramesAreCutAtTheHeader) {
  auto player = Player();
  ASSERT_TRUE(player);
  channel::Frame hello;
  hello.type = channel::FrameType::kHello;
  hello.src = "game1";
  std::string body(10u << 20, 'x');
  hello.payload = body;
  std::string frame;
  channel::AppendFrame(hello, &frame);
  // The header announces 10 MiB; what follows is less than one read of the
  // gate, so it closes with nothing unread (a FIN, not a reset that could
  // overtake its answer).
  const std::string first(frame.data(), 4000);
  auto big_first_frame = [&] {
    int fd = Dial();
    EXPECT_EQ(write(fd, first.data(), first.size()), static_cast<ssize_t>(first.size()));
    std::string reason = RejectReason(fd);
    close(fd);
    return reason;
  };
  for (int i = 0; i < 20; ++i) {
    std::string reason = big_first_frame();
    ASSERT_NE(reason.find("too large"), std::string::npos) << "connection " << i << ": '" << reason << "'";
  }
  // Many at once (fewer than the unauthenticated cap).
  std::vector<int> fds;
  for (int i = 0; i < 48; ++i) {
    fds.push_back(Dial());
    (void)!write(fds.back(), first.data(), first.size());
  }
  for (int fd : fds) {
    EXPECT_NE(RejectReason(fd).find("too large"), std::string::npos);
    close(fd);
  }
  ExpectNothingQueued(player.get(), "still served");
  auto late = Player();
  ASSERT_TRUE(late);
}

// Item 7: at most 64 links in their handshake; one more is refused at once,
// and once they are gone nodes link again.
TEST_F(ChannelSecurityTest, UnauthenticatedLinksAreCapped) {
  auto player = Player();
  ASSERT_TRUE(player);
  std::vector<int> idle;
  for (size_t i = 0; i < kMaxUnauthenticatedLinks; ++i) idle.push_back(Dial());
  int extra = Dial();
  EXPECT_EQ(RejectReason(extra), "too many unauthenticated links");
  close(extra);
  ExpectNothingQueued(player.get(), "served during the flood");
  for (int fd : idle) close(fd);
  // The slots come back as the gate sees them close.
  auto spy = Neighbour("spy");
  ASSERT_TRUE(RunUntil(loop_, [&] { return spy->IsConnected("gate"); })) << LinkError(*spy);
}

}  // namespace
}  // namespace lampyr
