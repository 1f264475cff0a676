// The Forwarder's cluster API on four nodes in this process — gate, net,
// game1, game2 — each on its own event-loop thread with its own hub, linked
// over real loopback TCP, and real clients talking to net. Plugins cannot
// reach the router hook, bindings, groups or session events yet, so the
// game handlers here call the host API directly.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "channel/channel_hub.h"
#include "channel/forwarder.h"
#include "core/config.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "harness.h"
#include "lampyr_client.h"
#include "net/net_server.h"

namespace lampyr {
namespace {

using client::Client;
using client::Frame;

enum : uint32_t {
  kWho = 200,     // reply: the node's name (routed by body "1"/"2")
  kBindMe = 201,  // bind the session to the node that runs this
  kJoin = 202,    // join the group named by the body
  kBcast = 203,   // broadcast the body to group "room" as kRoomPush
  kKickMe = 204,
  kRoomPush = 600,
};
constexpr uint32_t kErrorCommand = 0xFFFFFFFF;

struct Node {
  Node(const Config& config, const std::string& name) : self(*config.FindServer(name)) {
    const ServerConfig& s = self;
    if (s.netport) {
      net = std::make_unique<NetServer>(&loop, config.protocol, &commands, s.node_id);
      Status st = net->Listen("127.0.0.1", s.netport);
      if (!st.ok()) throw std::runtime_error(st.message());
    }
    hub = std::make_unique<ChannelHub>(&loop, name, config.master.cluster_secret);
    if (s.rootport) {
      Status st = hub->Listen("127.0.0.1", s.rootport);
      if (!st.ok()) throw std::runtime_error(st.message());
    }
    for (const auto& link : s.remoteport) hub->Connect(link.rootname, link.roothost, link.rootport);
    fwd = std::make_unique<Forwarder>(&loop, config, s, hub.get(), &commands, net.get());
    fwd->Install();
  }
  void Go() {
    thread = std::thread([this] { loop.Run(); });
  }
  ~Node() {
    if (thread.joinable()) {
      loop.Post([this] { loop.Quit(); });
      thread.join();
    }
    fwd.reset();
    hub.reset();
    net.reset();
  }
  // Runs fn on the node's loop and returns its result.
  template <typename F>
  auto Run(F fn) -> decltype(fn()) {
    std::promise<decltype(fn())> p;
    auto f = p.get_future();
    loop.Post([&] { p.set_value(fn()); });
    return f.get();
  }

  const ServerConfig& self;
  EventLoop loop;
  CommandTable commands;
  std::unique_ptr<NetServer> net;
  std::unique_ptr<ChannelHub> hub;
  std::unique_ptr<Forwarder> fwd;
  std::thread thread;
};

class ClusterRoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kError);
    gate_port_ = test::FreePort();
    net_port_ = test::FreePort();
    std::string text = R"({
      "master": {"cluster_secret": "k"},
      "protocol": {"idle_timeout_s": 0},
      "servers": {
        "gate":  {"rootport": )" + std::to_string(gate_port_) + R"(},
        "net":   {"netport": )" + std::to_string(net_port_) + R"(, "forward": "gate", "remoteport": [{"rootname": "gate"}]},
        "game1": {"remoteport": [{"rootname": "gate"}]},
        "game2": {"remoteport": [{"rootname": "gate"}]}
      }})";
    std::vector<ConfigIssue> issues;
    Status st = ParseConfig(text, "/tmp", &config_, &issues, false, false);
    ASSERT_TRUE(st.ok()) << st.message();
    gate_ = std::make_unique<Node>(config_, "gate");
    net_ = std::make_unique<Node>(config_, "net");
    game1_ = std::make_unique<Node>(config_, "game1");
    game2_ = std::make_unique<Node>(config_, "game2");
    // The gate routes kWho/kBindMe by body ("1" -> game1, "2" -> game2),
    // kJoin and kKickMe to game1, kBcast to game2.
    gate_->fwd->SetRouter([](SessionId, uint32_t command, std::string_view body) -> std::string {
      if (command == kWho || command == kBindMe) return body == "1" ? "game1" : body == "2" ? "game2" : "";
      if (command == kBcast) return "game2";
      return "game1";
    });
    for (Node* g : {game1_.get(), game2_.get()}) {
      Forwarder* fwd = g->fwd.get();
      std::string name = g->self.name;
      g->commands.Set(kWho, [name](const RequestContext& ctx, std::string_view) { ctx.responder->Reply(ctx, name); });
      g->commands.Set(kBindMe, [fwd, name](const RequestContext& ctx, std::string_view) {
        fwd->Bind(ctx.session, name);
        ctx.responder->Reply(ctx, "bound to " + name);
      });
      g->commands.Set(kJoin, [fwd](const RequestContext& ctx, std::string_view body) {
        fwd->JoinGroup(std::string(body), ctx.session);
        ctx.responder->Reply(ctx, "joined");
      });
      g->commands.Set(kBcast, [fwd](const RequestContext& ctx, std::string_view body) {
        fwd->Broadcast("room", kRoomPush, body);
        ctx.responder->Reply(ctx, "sent");
      });
      g->commands.Set(kKickMe, [fwd](const RequestContext& ctx, std::string_view) {
        fwd->Kick(ctx.session);
        ctx.responder->Reply(ctx, "bye");
      });
    }
    game1_->fwd->WatchSessions([this](SessionId id, bool open, const std::string&) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back((open ? "open " : "close ") + std::to_string(id));
    });
    for (Node* n : {gate_.get(), net_.get(), game1_.get(), game2_.get()}) n->Go();
  }
  void TearDown() override {
    game2_.reset();
    game1_.reset();
    net_.reset();
    gate_.reset();
  }

  std::unique_ptr<Client> Connect() {
    auto c = std::make_unique<Client>();
    EXPECT_TRUE(c->Connect("127.0.0.1", net_port_).ok());
    return c;
  }
  // Until both games answer through the gate.
  bool WaitLinked(Client* c) {
    for (int i = 0; i < 1000; ++i) {
      Frame a, b;
      if (!c->Call(kWho, "1", &a).ok() || !c->Call(kWho, "2", &b).ok()) return false;
      if (a.body == "game1" && b.body == "game2") return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  bool SawEvent(const std::string& e) {
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& x : events_)
          if (x == e) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  SessionId NewestSession() {
    return net_->Run([this] {
      SessionId newest = 0;
      // Ids grow per connection (node id in the high bits): the newest live one.
      for (SessionId id = (SessionId{net_->self.node_id} << kSessionNodeShift) | 1; id < ((SessionId{net_->self.node_id} << kSessionNodeShift) | 1000); ++id)
        if (net_->net->HasSession(id)) newest = id;
      return newest;
    });
  }

  Config config_;
  uint16_t gate_port_ = 0, net_port_ = 0;
  std::unique_ptr<Node> gate_, net_, game1_, game2_;
  std::mutex mu_;
  std::vector<std::string> events_;
};

TEST_F(ClusterRoutingTest, RouterThenSessionBinding) {
  auto c = Connect();
  ASSERT_TRUE(WaitLinked(c.get()));
  Frame f;
  ASSERT_TRUE(c->Call(kWho, "nowhere", &f).ok());
  EXPECT_EQ(f.command, kErrorCommand);
  EXPECT_NE(f.body.find("\"code\":4"), std::string::npos) << f.body;  // no route: kUnavailable

  // game2 binds the session to itself: from then on the binding beats the router.
  ASSERT_TRUE(c->Call(kBindMe, "2", &f).ok());
  EXPECT_EQ(f.body, "bound to game2");
  ASSERT_TRUE(c->Call(kWho, "1", &f).ok());
  EXPECT_EQ(f.body, "game2");
  SessionId id = NewestSession();
  ASSERT_NE(id, 0u);
  EXPECT_EQ(gate_->Run([&] { return gate_->fwd->BoundNode(id); }), "game2");

  // Other sessions still follow the router.
  auto other = Connect();
  ASSERT_TRUE(other->Call(kWho, "1", &f).ok());
  EXPECT_EQ(f.body, "game1");

  // The binding ends with the session.
  c->Close();
  bool cleared = false;
  for (int i = 0; i < 1000 && !cleared; ++i) {
    cleared = gate_->Run([&] { return gate_->fwd->BoundNode(id).empty(); });
    if (!cleared) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(cleared);
}

TEST_F(ClusterRoutingTest, GroupsAndBroadcastFromAnotherGame) {
  auto a = Connect();
  auto b = Connect();
  auto outsider = Connect();
  ASSERT_TRUE(WaitLinked(a.get()));
  Frame f;
  ASSERT_TRUE(a->Call(kJoin, "room", &f).ok());  // joined from game1
  EXPECT_EQ(f.body, "joined");
  ASSERT_TRUE(b->Call(kJoin, "room", &f).ok());
  EXPECT_EQ(f.body, "joined");
  EXPECT_EQ(net_->Run([&] { return net_->net->GroupSize("room"); }), 2u);
  // game2 broadcasts: the group lives on net, both members get it.
  ASSERT_TRUE(a->Send(kBcast, "hello room").ok());
  Frame push, reply;
  ASSERT_TRUE(a->Receive(&push).ok());
  ASSERT_TRUE(a->Receive(&reply).ok());
  EXPECT_EQ(push.command, kRoomPush);
  EXPECT_EQ(push.body, "hello room");
  EXPECT_EQ(reply.body, "sent");
  ASSERT_TRUE(b->Receive(&push).ok());
  EXPECT_EQ(push.command, kRoomPush);
  EXPECT_EQ(push.body, "hello room");
  // The outsider got nothing.
  ASSERT_TRUE(outsider->Call(kWho, "1", &f).ok());
  EXPECT_EQ(f.body, "game1");
  EXPECT_EQ(outsider->queued(), 0u);
}

TEST_F(ClusterRoutingTest, SessionEventsAndKickReachOtherNodes) {
  auto c = Connect();
  ASSERT_TRUE(WaitLinked(c.get()));
  SessionId id = NewestSession();
  ASSERT_NE(id, 0u);
  // game1 watches sessions through the gate; it may have subscribed after
  // this client connected, so the close event is the reliable one.
  ASSERT_TRUE(c->Send(kKickMe, "").ok());
  EXPECT_TRUE(c->WaitClosed(5000));
  EXPECT_TRUE(SawEvent("close " + std::to_string(id)));
  auto d = Connect();
  Frame f;
  ASSERT_TRUE(d->Call(kWho, "1", &f).ok());
  SessionId id2 = NewestSession();
  EXPECT_TRUE(SawEvent("open " + std::to_string(id2)));
  d->Close();
  EXPECT_TRUE(SawEvent("close " + std::to_string(id2)));
}

}  // namespace
}  // namespace lampyr
