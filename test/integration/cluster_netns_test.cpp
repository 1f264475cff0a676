// The cluster across three "hosts": network namespaces joined by veth
// links (gate in the middle, net and game each on their own link, the test's
// clients reaching net over a fourth link). Servers run with --server inside
// their namespace and find each other by address, as on separate machines.
// Then the game's link is cut and restored: requests meanwhile get an error
// reply, nothing stray arrives later, and service resumes without restarts.
//
// Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN) and iproute2; skipped with the
// reason where namespaces cannot be created (unprivileged CI containers).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "lampyr_client.h"

namespace lampyr {
namespace {

using client::Client;
using client::Frame;
using test::Process;

constexpr const char* kIp = "/usr/sbin/ip";

int Sh(const std::string& cmd) { return system((cmd + " >/dev/null 2>&1").c_str()); }

class ClusterNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tag = std::to_string(getpid() % 100000);
    ns_gate_ = "lpy" + tag + "g";
    ns_net_ = "lpy" + tag + "n";
    ns_game_ = "lpy" + tag + "m";
    if (access(kIp, X_OK) != 0) GTEST_SKIP() << "iproute2 (" << kIp << ") is not installed";
    if (Sh(std::string(kIp) + " netns add " + ns_gate_) != 0)
      GTEST_SKIP() << "cannot create network namespaces here (needs root / CAP_SYS_ADMIN): multi-host test skipped";
    created_ = true;
    int oct = 100 + getpid() % 100;
    prefix_ = "10." + std::to_string(oct) + ".";
    std::vector<std::string> cmds = {
        "netns add " + ns_net_,
        "netns add " + ns_game_,
        // net <-> gate
        "link add ve" + tag + "a type veth peer name ve" + tag + "b",
        "link set ve" + tag + "a netns " + ns_net_,
        "link set ve" + tag + "b netns " + ns_gate_,
        "-n " + ns_net_ + " addr add " + prefix_ + "1.2/24 dev ve" + tag + "a",
        "-n " + ns_gate_ + " addr add " + prefix_ + "1.1/24 dev ve" + tag + "b",
        // game <-> gate
        "link add ve" + tag + "c type veth peer name ve" + tag + "d",
        "link set ve" + tag + "c netns " + ns_game_,
        "link set ve" + tag + "d netns " + ns_gate_,
        "-n " + ns_game_ + " addr add " + prefix_ + "2.2/24 dev ve" + tag + "c",
        "-n " + ns_gate_ + " addr add " + prefix_ + "2.1/24 dev ve" + tag + "d",
        // test process (root namespace) <-> net
        "link add ve" + tag + "e type veth peer name ve" + tag + "f",
        "link set ve" + tag + "f netns " + ns_net_,
        "addr add " + prefix_ + "3.1/24 dev ve" + tag + "e",
        "-n " + ns_net_ + " addr add " + prefix_ + "3.2/24 dev ve" + tag + "f",
        "link set ve" + tag + "e up",
    };
    for (const auto& c : cmds) ASSERT_EQ(Sh(std::string(kIp) + " " + c), 0) << "ip " << c;
    for (const auto& [ns, devs] : std::vector<std::pair<std::string, std::vector<std::string>>>{
             {ns_gate_, {"lo", "ve" + tag + "b", "ve" + tag + "d"}},
             {ns_net_, {"lo", "ve" + tag + "a", "ve" + tag + "f"}},
             {ns_game_, {"lo", "ve" + tag + "c"}}})
      for (const auto& d : devs) ASSERT_EQ(Sh(std::string(kIp) + " -n " + ns + " link set " + d + " up"), 0);
    game_dev_ = "ve" + tag + "c";
    root_dev_ = "ve" + tag + "e";

    conf_ = dir_.path() + "/cluster.json";
    test::WriteFile(conf_, R"({
      "master": {"cluster_secret": "multi-host-test-secret-0123"},
      "protocol": {"idle_timeout_s": 0},
      "servers": {
        "gate":  {"host": "0.0.0.0", "rootport": 7101},
        "net":   {"host": "0.0.0.0", "netport": 7102, "forward": "gate",
                  "remoteport": [{"rootname": "gate", "roothost": ")" + prefix_ + R"(1.1"}]},
        "game1": {"host": "0.0.0.0",
                  "remoteport": [{"rootname": "gate", "roothost": ")" + prefix_ + R"(2.1"}],
                  "builtins": {"echo": 100}}
      }})");
  }
  void TearDown() override {
    procs_.clear();  // killed before their namespaces go
    if (!created_) return;
    for (const auto& ns : {ns_gate_, ns_net_, ns_game_}) Sh(std::string(kIp) + " netns del " + ns);
    Sh(std::string(kIp) + " link del " + root_dev_);
  }

  Process* Start(const std::string& ns, const std::string& name, std::vector<std::string> env = {}) {
    auto p = Process::Start({kIp, "netns", "exec", ns, test::LampyrBinary(), "--conf", conf_, "--server", name}, env,
                            dir_.path() + "/" + name + ".out");
    EXPECT_TRUE(p) << name;
    procs_.push_back(std::move(p));
    return procs_.back().get();
  }
  std::string Output(const std::string& name) { return test::ReadFile(dir_.path() + "/" + name + ".out"); }
  bool WaitForwarding(Client* c) {
    for (int i = 0; i < 1000; ++i) {
      Frame f;
      if (!c->Call(100, "ready?", &f, 5000).ok()) return false;
      if (f.command == 100 && f.body == "ready?") return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  test::TempDir dir_;
  bool created_ = false;
  std::string ns_gate_, ns_net_, ns_game_, prefix_, game_dev_, root_dev_, conf_;
  std::vector<std::unique_ptr<Process>> procs_;
};

TEST_F(ClusterNetnsTest, ClusterAcrossNamespacesSurvivesALinkCut) {
  Process* gate = Start(ns_gate_, "gate");
  Process* game = Start(ns_game_, "game1");
  Process* net = Start(ns_net_, "net", {"LAMPYR_FORWARD_TIMEOUT_MS=800"});
  ASSERT_TRUE(test::WaitForPort(prefix_ + "3.2", 7102, 20000)) << Output("net");
  Client c;
  ASSERT_TRUE(c.Connect(prefix_ + "3.2", 7102).ok());
  ASSERT_TRUE(WaitForwarding(&c)) << Output("net") << Output("gate") << Output("game1");
  Frame f;
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(c.Call(100, "before " + std::to_string(i), &f).ok());
    EXPECT_EQ(f.body, "before " + std::to_string(i));
  }

  // Cut the game's cable. The TCP connection stays (no RST): requests reach
  // the gate, not the game, and the gate answers with a timeout.
  ASSERT_EQ(Sh(std::string(kIp) + " -n " + ns_game_ + " link set " + game_dev_ + " down"), 0);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.Call(100, "during " + std::to_string(i), &f, 10000).ok());
    EXPECT_EQ(f.command, 0xFFFFFFFFu);
    EXPECT_NE(f.body.find("\"code\":3"), std::string::npos) << f.body;
  }
  ASSERT_EQ(Sh(std::string(kIp) + " -n " + ns_game_ + " link set " + game_dev_ + " up"), 0);
  ASSERT_TRUE(WaitForwarding(&c));
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(c.Call(100, "after " + std::to_string(i), &f).ok());
    EXPECT_EQ(f.body, "after " + std::to_string(i));
  }
  // The game's late answers to the timed-out requests were dropped by the
  // gate: nothing stray reached the client.
  EXPECT_EQ(c.queued(), 0u);
  EXPECT_TRUE(gate->Running() && game->Running() && net->Running());
}

}  // namespace
}  // namespace lampyr
