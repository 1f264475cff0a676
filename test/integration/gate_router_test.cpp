// plugins/gate_router + plugins/room in a real four-process cluster: gate
// (gate_router), net (clients, forwards to the gate), game1 and game2 (room).
// A join goes to the game server picked by the room name's hash and binds the
// session there; the room's members then talk through that server; a member
// that disconnects leaves the room (session events cross the cluster).
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "admin/http_client.h"
#include "harness.h"
#include "lampyr_client.h"

namespace lampyr {
namespace {

using client::Client;
using client::Frame;
using test::Process;

enum : uint32_t { kJoin = 100, kLeave = 101, kSay = 102, kWho = 103, kStats = 104, kPushEvent = 110, kPushSay = 111 };
constexpr uint32_t kErrorCommand = 0xFFFFFFFF;

// gate_router's documented choice: FNV-1a 64 of the room name, modulo the
// number of nodes, in config order.
std::string NodeFor(const std::string& room) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : room) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h % 2 == 0 ? "game1" : "game2";
}

std::string Field(const std::string& stats, const std::string& key) {
  std::istringstream in(stats);
  std::string kv;
  while (in >> kv)
    if (kv.rfind(key + "=", 0) == 0) return kv.substr(key.size() + 1);
  return "";
}

class GateRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gate_port_ = test::FreePort();
    net_port_ = test::FreePort();
    web_port_ = test::FreePort();
    conf_ = dir_.path() + "/cluster.json";
    const std::string gate = std::to_string(gate_port_);
    test::WriteFile(conf_, R"({
      "master": {"cluster_secret": "gate-router-test-secret-0123", "admin_token": "gate-router-test-token-0123"},
      "protocol": {"idle_timeout_s": 0},
      "servers": {
        "gate":  {"rootport": )" + gate + R"(, "webport": )" + std::to_string(web_port_) + R"(, "plugins": ["gate_router"]},
        "net":   {"netport": )" + std::to_string(net_port_) + R"(, "forward": "gate", "remoteport": [{"rootname": "gate", "rootport": )" + gate + R"(}]},
        "game1": {"remoteport": [{"rootname": "gate", "rootport": )" + gate + R"(}], "plugins": ["room"]},
        "game2": {"remoteport": [{"rootname": "gate", "rootport": )" + gate + R"(}], "plugins": ["room"]}
      },
      "plugins": {
        "gate_router": {"path": ")" + test::PluginPath("gate_router") + R"(", "config": {"nodes": ["game1", "game2"]}},
        "room": {"path": ")" + test::PluginPath("room") + R"("}
      }})");
    const std::vector<std::string> env;  // state dir: <dir>/state, next to the config
    gate_ = Process::Start({test::LampyrBinary(), "--conf", conf_, "--server", "gate"}, env, dir_.path() + "/gate.out");
    ASSERT_TRUE(gate_ && test::WaitForPort("127.0.0.1", gate_port_, 10000)) << Logs();
    for (const char* g : {"game1", "game2"})
      games_.push_back(Process::Start({test::LampyrBinary(), "--conf", conf_, "--server", g}, env,
                                      dir_.path() + "/" + g + ".out"));
    net_ = Process::Start({test::LampyrBinary(), "--conf", conf_, "--server", "net"}, env, dir_.path() + "/net.out");
    ASSERT_TRUE(net_ && test::WaitForPort("127.0.0.1", net_port_, 10000)) << Logs();
    // Links come up asynchronously: wait until both games answer through the gate.
    bool up = false;
    for (int i = 0; i < 500 && !up; ++i) {
      up = Reaches("game1") && Reaches("game2");
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(up) << Logs();
  }

  // True when a join of a room that hashes to `node` is answered by it.
  bool Reaches(const std::string& node) {
    std::string room = RoomOn(node, "probe");
    Client c;
    if (!c.Connect("127.0.0.1", net_port_).ok()) return false;
    Frame f;
    if (!c.Call(kJoin, room, &f, 2000).ok() || f.command != kJoin) return false;
    return c.Call(kStats, "", &f, 2000).ok() && Field(f.body, "server") == node;
  }

  // A room name with `prefix` that gate_router sends to `node`.
  static std::string RoomOn(const std::string& node, const std::string& prefix) {
    for (int i = 0;; ++i) {
      std::string room = prefix + std::to_string(i);
      if (NodeFor(room) == node) return room;
    }
  }

  std::string Logs() {
    std::string out;
    for (const char* n : {"gate", "net", "game1", "game2"})
      out += std::string("--- ") + n + "\n" + test::ReadFile(dir_.path() + "/" + n + ".out");
    return out;
  }

  std::unique_ptr<Client> Connect() {
    auto c = std::make_unique<Client>();
    EXPECT_TRUE(c->Connect("127.0.0.1", net_port_).ok());
    return c;
  }

  std::string Ask(Client& c, uint32_t command, const std::string& body) {
    Frame f;
    Status st = c.Call(command, body, &f, 10000);
    EXPECT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(f.command, command) << f.body;
    return f.body;
  }

  std::string NextPush(Client& c, uint32_t command) {
    for (int i = 0; i < 100; ++i) {
      Frame f;
      if (!c.Receive(&f, 5000).ok()) return "";
      if (f.command == command) return f.body;
    }
    return "";
  }

  test::TempDir dir_;
  std::string conf_;
  uint16_t gate_port_ = 0, net_port_ = 0, web_port_ = 0;
  std::unique_ptr<Process> gate_, net_;
  std::vector<std::unique_ptr<Process>> games_;
};

TEST_F(GateRouterTest, JoinGoesToTheRoomsNodeAndBindsTheSession) {
  for (const std::string node : {"game1", "game2"}) {
    std::string room = RoomOn(node, "room");
    auto a = Connect(), b = Connect();
    EXPECT_EQ(Ask(*a, kJoin, room).rfind("welcome to " + room, 0), 0u);
    EXPECT_EQ(Ask(*b, kJoin, room).rfind("welcome to " + room, 0), 0u);
    // Later requests carry no room: the binding takes them to the same node.
    std::string stats = Ask(*a, kStats, "");
    EXPECT_EQ(Field(stats, "server"), node) << stats;
    std::string who = Ask(*b, kWho, "");
    EXPECT_EQ(std::count(who.begin(), who.end(), '\n'), 2) << who;
    // Chat crosses game -> net for both members.
    EXPECT_EQ(Ask(*a, kSay, "hi"), "ok 1");
    EXPECT_NE(NextPush(*b, kPushSay).find(": hi"), std::string::npos);
    EXPECT_NE(NextPush(*a, kPushSay).find(": hi"), std::string::npos);
  }
}

TEST_F(GateRouterTest, DisconnectedMemberLeavesItsRoom) {
  std::string room = RoomOn("game2", "quit");
  auto a = Connect(), b = Connect();
  Ask(*a, kJoin, room);
  Ask(*b, kJoin, room);
  EXPECT_NE(NextPush(*a, kPushEvent).find(" joined " + room), std::string::npos);
  b->Close();
  // The net server's session event reaches game2's room through the gate.
  EXPECT_NE(NextPush(*a, kPushEvent).find(" left " + room), std::string::npos);
  std::string who = Ask(*a, kWho, "");
  EXPECT_EQ(std::count(who.begin(), who.end(), '\n'), 1) << who;
}

// Reloading the router on the gate swaps the hook in one turn: bindings made
// by the old generation still hold, and new joins are routed by the new one.
TEST_F(GateRouterTest, ReloadedRouterKeepsRoutingAndBindings) {
  std::string room = RoomOn("game1", "keep");
  auto a = Connect();
  Ask(*a, kJoin, room);
  HttpResponse r;
  Status st = HttpCall("127.0.0.1", web_port_, "POST", "/reload", "{\"plugin\": \"gate_router\"}",
                       {{"Authorization", "Bearer gate-router-test-token-0123"}}, &r, 20000);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Field(Ask(*a, kStats, ""), "server"), "game1");  // the binding survived
  EXPECT_TRUE(Reaches("game1"));
  EXPECT_TRUE(Reaches("game2"));
}

TEST_F(GateRouterTest, RoomErrorsReachTheClient) {
  auto a = Connect();
  Frame f;
  ASSERT_TRUE(a->Call(kJoin, "bad name", &f, 10000).ok());
  EXPECT_EQ(f.command, kErrorCommand);
  EXPECT_NE(f.body.find("\"code\":2"), std::string::npos) << f.body;
}

}  // namespace
}  // namespace lampyr
