// Off-loop work ("work", docs/plugins.md) against the real binary: jobs run
// on worker threads and answer on the loop, the loop keeps serving while a
// job blocks, a reload waits for the old generation's jobs (and, past the
// drain timeout, unloads only when the running job has returned), a full
// queue refuses, and a plugin that starts its own thread is refused at the
// gate while the old generation keeps serving.
//
// Jobs block on a file the test creates (test_work command 44), never on a
// timer: nothing here depends on how fast the machine is.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "plugin_server.h"

namespace lampyr::test {
namespace {

constexpr uint32_t kDouble = 41, kThrow = 42, kInfo = 43, kBlock = 44, kMany = 45;
constexpr uint32_t kErrorCommand = 0xFFFFFFFF;

// Generations of `plugin` mapped in the process (each from its own memfd).
int MappedCopies(pid_t pid, const std::string& plugin) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::set<std::string> files;
  std::string line;
  const std::string name = "/memfd:lampyr:" + plugin + ".gen";
  while (std::getline(in, line)) {
    size_t p = line.find(name);
    if (p != std::string::npos) files.insert(line.substr(p));
  }
  return static_cast<int>(files.size());
}

class PluginWorkTest : public PluginServerTest {
 protected:
  // One server with test_work; `drain_s` its drain timeout.
  void StartWork(int drain_s = 10, const std::string& server_extra = "") {
    netport_ = FreePort();
    webport_ = FreePort();
    Deploy("test_work", "test_work");
    conf_ = dir_.path() + "/lampyr.json";
    WriteFile(conf_, "{\"master\": {\"admin_token\": \"tok\", \"insecure_dev\": true},\n"
                     "\"servers\": {\"game\": {\"netport\": " + std::to_string(netport_) +
                         ", \"webport\": " + std::to_string(webport_) +
                         ", \"log\": \"game.log\", \"plugins\": [\"test_work\"]" + server_extra +
                         "}},\n\"plugins\": {\"test_work\": {\"path\": \"deploy/libtest_work.so\", \"drain_timeout_s\": " +
                         std::to_string(drain_s) + "}}}\n");
    ASSERT_TRUE(Launch()) << Output();
  }
  std::string Release() { return dir_.path() + "/release"; }
  // Starts a blocking job on `c` and waits until the plugin counts it.
  void Block(client::Client& c, client::Client& probe) {
    ASSERT_TRUE(c.Send(kBlock, Release()).ok());
    ASSERT_TRUE(WaitFor([&] { return CallBody(probe, kInfo, "").find("pending=1") != std::string::npos; }));
  }
};

TEST_F(PluginWorkTest, JobsRunOnAWorkerAndAnswerOnTheLoop) {
  StartWork();
  auto c = Connect();
  EXPECT_EQ(CallBody(*c, kDouble, "21"), "gen=1 result=42 loop=0");
  EXPECT_EQ(CallBody(*c, kThrow, ""), "gen=1 error=boom in a job");
  // Many at once: every one answers, in request order.
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(c->Send(kDouble, std::to_string(i)).ok());
  for (int i = 0; i < 50; ++i) {
    client::Frame f;
    ASSERT_TRUE(c->Receive(&f, 10000).ok());
    EXPECT_EQ(f.body, "gen=1 result=" + std::to_string(2 * i) + " loop=0");
  }
  EXPECT_EQ(CallBody(*c, kInfo, ""), "gen=1 pending=0 draining=0");
}

TEST_F(PluginWorkTest, LoopServesWhileAJobBlocksAndAReloadWaitsForIt) {
  StartWork();
  auto a = Connect(), b = Connect();
  Block(*a, *b);
  // The loop is free: other requests are answered while the job blocks.
  EXPECT_EQ(CallBody(*b, kDouble, "5"), "gen=1 result=10 loop=0");

  Json::Value answer;
  ASSERT_EQ(Reload("test_work", &answer), 200) << answer.toStyledString();
  ASSERT_TRUE(answer["ok"].asBool()) << answer.toStyledString();
  EXPECT_EQ(CallBody(*b, kInfo, ""), "gen=2 pending=0 draining=0");
  // Generation 1 still holds its job: it is draining, not unloaded.
  Json::Value st = PluginStatus("test_work");
  ASSERT_EQ(st["draining"].size(), 1u) << st.toStyledString();
  EXPECT_EQ(st["draining"][0]["pending"].asUInt64(), 2u);  // the request it holds and the job
  EXPECT_EQ(MappedCopies(server_->pid(), "test_work"), 2);

  WriteFile(Release(), "go");
  client::Frame f;
  ASSERT_TRUE(a->Receive(&f, 10000).ok());
  EXPECT_EQ(f.body, "gen=1 released=1 draining=1");  // the OLD generation answered
  ASSERT_TRUE(WaitFor([&] { return PluginStatus("test_work")["draining"].size() == 0; }));
  EXPECT_TRUE(WaitFor([&] { return MappedCopies(server_->pid(), "test_work") == 1; }));
  EXPECT_NE(Log().find("test_work generation 1 unloaded (drained)"), std::string::npos) << Log();
}

TEST_F(PluginWorkTest, PastTheDrainTimeoutTheLibraryStaysUntilTheRunningJobReturns) {
  StartWork(1);
  auto a = Connect(), b = Connect();
  Block(*a, *b);
  Json::Value answer;
  ASSERT_EQ(Reload("test_work", &answer), 200);
  ASSERT_TRUE(answer["ok"].asBool()) << answer.toStyledString();
  ASSERT_TRUE(WaitFor([&] { return Log().find("work job(s) still running at drain timeout") != std::string::npos; }))
      << Log();
  // Its code is on a worker's stack: still mapped, still listed as draining.
  EXPECT_EQ(MappedCopies(server_->pid(), "test_work"), 2);
  EXPECT_EQ(PluginStatus("test_work")["draining"].size(), 1u);
  EXPECT_EQ(CallBody(*b, kDouble, "1"), "gen=2 result=2 loop=0");

  WriteFile(Release(), "go");
  // The request it held gets the error reply (the generation was retired).
  client::Frame f;
  ASSERT_TRUE(a->Receive(&f, 10000).ok());
  EXPECT_EQ(f.command, kErrorCommand) << f.body;
  ASSERT_TRUE(WaitFor([&] { return MappedCopies(server_->pid(), "test_work") == 1; }));
  EXPECT_NE(Log().find("test_work generation 1 unloaded (drain timeout)"), std::string::npos) << Log();
  EXPECT_TRUE(server_->Running());
}

TEST_F(PluginWorkTest, AFullQueueRefusesAtOnce) {
  StartWork(10, ", \"work_threads\": 1, \"work_queue\": 2");
  auto a = Connect(), b = Connect();
  Block(*a, *b);  // the only worker is busy; at most 2 jobs may wait
  std::string r = CallBody(*b, kMany, "3");
  // 2 queued and 1 refused, or 1 and 2 when the blocking job still counted as waiting.
  EXPECT_TRUE(r == "started=2 refused=1" || r == "started=1 refused=2") << r;
  WriteFile(Release(), "go");
  client::Frame f;
  ASSERT_TRUE(a->Receive(&f, 10000).ok());
  EXPECT_EQ(f.body, "gen=1 released=1 draining=0");
  EXPECT_TRUE(WaitFor([&] { return CallBody(*b, kInfo, "") == "gen=1 pending=0 draining=0"; }));
}

TEST_F(PluginWorkTest, APluginThatStartsThreadsIsRefusedAndTheOldOneKeepsServing) {
  StartWork();
  auto c = Connect();
  EXPECT_EQ(CallBody(*c, kDouble, "2"), "gen=1 result=4 loop=0");
  Deploy("test_thread", "test_work");
  Json::Value answer;
  Reload("test_work", &answer);
  ASSERT_FALSE(answer["ok"].asBool()) << answer.toStyledString();
  std::string error = answer["results"][0]["plugins"][0]["error"].asString();
  EXPECT_NE(error.find("_ZNSt6thread15_M_start_thread"), std::string::npos) << answer.toStyledString();
  EXPECT_NE(error.find("(std::thread)"), std::string::npos) << error;
  EXPECT_NE(error.find("\"work\""), std::string::npos) << error;
  EXPECT_EQ(CallBody(*c, kDouble, "3"), "gen=1 result=6 loop=0");
  EXPECT_EQ(PluginStatus("test_work")["generation"].asUInt64(), 1u);
}

}  // namespace
}  // namespace lampyr::test
