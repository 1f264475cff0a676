// The client path under many connections, driven by the real load generator
// (lampyr-bench) against the real binary. net_protocol_test already opens
// 1,000 connections for one request each; here the 1,000 connections keep
// requests pipelined for a while (every reply checked by lampyr-bench), the
// server is checked to still serve afterwards, and lampyr-bench itself is
// checked to count wrong replies (its numbers are only worth something if a
// wrong answer cannot pass as a right one).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "lampyr_client.h"

namespace lampyr {
namespace {

using client::Client;
using client::Frame;
using test::Process;
using test::TempDir;

constexpr uint32_t kEcho = 1;

std::string BenchBinary() { return std::string(LAMPYR_BIN_DIR) + "/lampyr-bench"; }

// The numeric field `key` of lampyr-bench's flat JSON line, or -1.
double JsonNumber(const std::string& json, const std::string& key) {
  size_t p = json.find("\"" + key + "\":");
  if (p == std::string::npos) return -1;
  return std::stod(json.substr(p + key.size() + 3));
}

class NetScaleTest : public ::testing::Test {
 protected:
  // Every connection comes from 127.0.0.1: no per-address limit.
  void SetUp() override { StartServer(R"({"echo": 1})", R"({"max_connections_per_ip": 0})"); }

  void StartServer(const std::string& builtins, const std::string& protocol) {
    rlimit rl;  // 1,000 client sockets here, 1,000 in lampyr-bench
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    ASSERT_TRUE(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= 2200)
        << "these tests need 2200 descriptors; the limit is " << rl.rlim_cur;
    port_ = test::FreePort();
    const std::string conf = dir_.path() + "/cluster.json";
    test::WriteFile(conf, "{\"servers\": {\"net\": {\"netport\": " + std::to_string(port_) +
                              ", \"builtins\": " + builtins + "}}, \"protocol\": " + protocol + "}\n");
    server_ = test::StartServer(conf, "net", port_);
    ASSERT_NE(server_, nullptr) << "server did not start";
  }

  void TearDown() override {
    if (!server_) return;
    EXPECT_TRUE(server_->Running()) << "server died:\n" << test::ReadFile(dir_.path() + "/net.out");
    server_->Signal(SIGTERM);
    int st = server_->Wait(10000);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
  }

  // Runs lampyr-bench with `args` (plus --port, --pid, --json); returns its
  // JSON line and sets *exit_code.
  std::string RunBench(const std::vector<std::string>& args, int* exit_code) {
    std::vector<std::string> argv = {BenchBinary(), "--port", std::to_string(port_), "--pid",
                                     std::to_string(server_->pid()), "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string out = dir_.path() + "/bench" + std::to_string(++runs_) + ".out";
    auto p = Process::Start(argv, {}, out);
    EXPECT_NE(p, nullptr);
    if (!p) return "";
    int st = p->Wait(120000);
    *exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return test::ReadFile(out);
  }

  void ExpectServes(const std::string& body) {
    Client c;
    ASSERT_TRUE(c.Connect("127.0.0.1", port_).ok());
    Frame f;
    Status s = c.Call(kEcho, body, &f);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(f.body, body);
  }

  TempDir dir_;
  uint16_t port_ = 0;
  std::unique_ptr<Process> server_;
  int runs_ = 0;
};

TEST_F(NetScaleTest, ThousandPipelinedConnectionsAllRepliesCorrect) {
  int code = -1;
  std::string json = RunBench({"--connections", "1000", "--depth", "4", "--body-bytes", "64", "--warmup", "0.2",
                               "--duration", "1"},
                              &code);
  EXPECT_EQ(code, 0) << json;
  EXPECT_EQ(JsonNumber(json, "errors"), 0) << json;
  // Every one of the 1,000 connections got correct replies, not just some.
  EXPECT_EQ(JsonNumber(json, "silent_connections"), 0) << json;
  EXPECT_GT(JsonNumber(json, "requests"), 0) << json;
  ExpectServes("after the load");
}

TEST_F(NetScaleTest, ManyIdleSessionsEachAnsweredThenServerStillServes) {
  int code = -1;
  std::string json = RunBench({"--connections", "2000", "--idle"}, &code);
  EXPECT_EQ(code, 0) << json;
  EXPECT_EQ(JsonNumber(json, "errors"), 0) << json;
  EXPECT_EQ(JsonNumber(json, "silent_connections"), 0) << json;
  EXPECT_GT(JsonNumber(json, "rss_after_bytes"), 0) << json;
  ExpectServes("after 2000 sessions");
}

// Replies that come from a timer (the sleep builtin; lampyr-bench's bodies
// parse as 0-9 ms) with more requests pipelined than max_inflight: reading
// pauses and resumes, replies leave at the end of the loop turn, and each one
// must still be its request's, in order.
class NetScaleAsyncTest : public NetScaleTest {
 protected:
  void SetUp() override { StartServer(R"({"echo": 1, "sleep": 5})", R"({"max_inflight": 4, "max_connections_per_ip": 0})"); }
};

TEST_F(NetScaleAsyncTest, AsyncRepliesUnderBackpressureStayCorrectAndInOrder) {
  int code = -1;
  std::string json = RunBench({"--connections", "50", "--depth", "16", "--command", "5", "--warmup", "0.2",
                               "--duration", "1"},
                              &code);
  EXPECT_EQ(code, 0) << json;
  EXPECT_EQ(JsonNumber(json, "errors"), 0) << json;
  EXPECT_EQ(JsonNumber(json, "silent_connections"), 0) << json;
  ExpectServes("after async load");
}

TEST_F(NetScaleTest, BenchCountsWrongReplies) {
  // Command 2 has no handler: the server answers with the error reply, which
  // is not the echo of the request.
  int code = -1;
  std::string json = RunBench({"--connections", "4", "--depth", "2", "--command", "2", "--warmup", "0",
                               "--duration", "0.2"},
                              &code);
  EXPECT_EQ(code, 1) << json;
  EXPECT_GT(JsonNumber(json, "errors"), 0) << json;
  EXPECT_EQ(JsonNumber(json, "requests"), 0) << json;
  ExpectServes("after error replies");
}

}  // namespace
}  // namespace lampyr
