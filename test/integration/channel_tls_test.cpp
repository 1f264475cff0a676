// Optional TLS on channel links (master.channel_tls), with real processes:
// gate, net and game1 link over mutual TLS and forward a player's requests;
// a neighbour with the right secret and a configured name but no TLS cannot
// link. Certificates are made for the test with the openssl tool. The gate
// routes every request to game1 (gate_router): "spy" is configured, never run.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "channel/channel_hub.h"
#include "core/event_loop.h"
#include "harness.h"
#include "lampyr_client.h"
#include "loop_until.h"

namespace lampyr {
namespace {

using client::Client;
using client::Frame;
using test::Process;

constexpr const char* kSecret = "channel-tls-test-secret-8e41d07b";
constexpr uint32_t kEcho = 100;  // game1's builtin, reached through the gate

class ChannelTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string d = dir_.path();
    // A CA and one certificate it signs, which every node shows (EC keys: fast).
    const std::string openssl = "openssl";
    const std::string q = " >>'" + d + "/openssl.out' 2>&1";
    ASSERT_EQ(std::system((openssl + " req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout '" +
                           d + "/ca.key' -out '" + d + "/ca.pem' -days 2 -subj /CN=lampyr-test-ca" + q)
                              .c_str()),
              0)
        << test::ReadFile(d + "/openssl.out");
    ASSERT_EQ(std::system((openssl + " req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout '" + d +
                           "/node.key' -out '" + d + "/node.csr' -subj /CN=lampyr-node" + q)
                              .c_str()),
              0);
    ASSERT_EQ(std::system((openssl + " x509 -req -in '" + d + "/node.csr' -CA '" + d + "/ca.pem' -CAkey '" + d +
                           "/ca.key' -CAcreateserial -out '" + d + "/node.pem' -days 2" + q)
                              .c_str()),
              0)
        << test::ReadFile(d + "/openssl.out");
    gate_port_ = test::FreePort();
    net_port_ = test::FreePort();
    conf_ = d + "/cluster.json";
    test::WriteFile(conf_, std::string(R"({
      "master": {"cluster_secret": ")") + kSecret + R"(",
                 "channel_tls": {"cert": "node.pem", "key": "node.key", "ca": "ca.pem"}},
      "protocol": {"idle_timeout_s": 0},
      "servers": {
        "gate":  {"rootport": )" + std::to_string(gate_port_) + R"(, "plugins": ["gate_router"]},
        "net":   {"netport": )" + std::to_string(net_port_) + R"(, "forward": "gate",
                  "remoteport": [{"rootname": "gate"}]},
        "game1": {"remoteport": [{"rootname": "gate"}], "builtins": {"echo": 100}},
        "spy":   {"remoteport": [{"rootname": "gate"}]}
      },
      "plugins": {"gate_router": {"path": ")" + test::PluginPath("gate_router") + R"(",
                                  "config": {"nodes": ["game1"], "join_command": 999}}}
    })");
    for (const char* name : {"gate", "game1", "net"}) {
      procs_.push_back(Process::Start({test::LampyrBinary(), "--conf", conf_, "--server", name}, {},
                                      d + "/" + name + ".out"));
      ASSERT_TRUE(procs_.back());
    }
    ASSERT_TRUE(test::WaitForPort("127.0.0.1", gate_port_, 20000)) << Output("gate");
    ASSERT_TRUE(test::WaitForPort("127.0.0.1", net_port_, 20000)) << Output("net");
  }
  std::string Output(const std::string& name) { return test::ReadFile(dir_.path() + "/" + name + ".out"); }

  test::TempDir dir_;
  std::string conf_;
  uint16_t gate_port_ = 0, net_port_ = 0;
  std::vector<std::unique_ptr<Process>> procs_;
};

TEST_F(ChannelTlsTest, NodesLinkOverTlsAndPlainPeersCannot) {
  Client c;
  ASSERT_TRUE(c.Connect("127.0.0.1", net_port_).ok());
  bool served = false;
  for (int i = 0; i < 1000 && !served; ++i) {
    Frame f;
    ASSERT_TRUE(c.Call(kEcho, "over tls", &f).ok());
    served = f.command == kEcho && f.body == "over tls";
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(served) << Output("gate") << Output("net") << Output("game1");
  EXPECT_NE(Output("gate").find("channel links use TLS"), std::string::npos) << Output("gate");

  // The secret and a configured name, without TLS: never linked.
  EventLoop loop;
  ChannelHub plain(&loop, "spy", kSecret);
  plain.Connect("gate", "127.0.0.1", gate_port_);
  auto error = [&] {
    Json::Value links = plain.LinksJson();
    return links.size() > 0 ? links[0].get("error", "").asString() : std::string();
  };
  ASSERT_TRUE(RunUntil(loop, [&] { return plain.IsConnected("gate") || !error().empty(); }));
  EXPECT_FALSE(plain.IsConnected("gate")) << "a plain-TCP node linked to a TLS root";

  // The player is still served.
  Frame f;
  ASSERT_TRUE(c.Call(kEcho, "still", &f).ok());
  EXPECT_EQ(f.body, "still");
}

}  // namespace
}  // namespace lampyr
