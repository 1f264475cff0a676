// What an operator sees when a plugin misbehaves, with the real binary and
// real .so files: a handler that segfaults leaves the signal, the plugin and
// its generation, and a backtrace in the log (and a crash record in the
// state dir, written without following a planted link) before the process
// dies of that signal; a handler or an init that blocks the loop is logged
// as a loop stall naming what ran, and counted.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

#include "plugin_server.h"

namespace lampyr::test {
namespace {

constexpr uint32_t kVersion = 1, kSegfault = 2, kBlock = 3;

class PluginCrashTest : public PluginServerTest {};

TEST_F(PluginCrashTest, SegfaultLeavesSignalPluginGenerationAndBacktraceInTheLog) {
  Configure({{"test_crash", "test_crash", ""}});
  ASSERT_TRUE(Launch()) << Output();
  Deploy("test_crash_v2", "test_crash");
  Json::Value a;
  ASSERT_EQ(Reload("test_crash", &a), 200) << a;  // generation 2 is the one that crashes
  const pid_t pid = server_->pid();
  const std::string record = dir_.path() + "/state/game/crash-" + std::to_string(pid) + ".json";
  const std::string victim = dir_.path() + "/victim";
  WriteFile(victim, "victim");
  ASSERT_EQ(symlink(victim.c_str(), record.c_str()), 0) << Output();

  auto c = Connect();
  EXPECT_EQ(CallBody(*c, kVersion, ""), "version=2.0 gen=2");
  ASSERT_TRUE(c->Send(kSegfault, "").ok());
  int st = server_->Wait(15000);
  ASSERT_TRUE(WIFSIGNALED(st)) << "status " << st << "\n" << Output();
  EXPECT_EQ(WTERMSIG(st), SIGSEGV);  // still "killed by signal 11" for a supervisor

  const std::string log = Log();
  EXPECT_NE(log.find("SIGSEGV"), std::string::npos) << log;
  EXPECT_NE(log.find("in plugin test_crash generation 2"), std::string::npos) << log;
  EXPECT_NE(log.find("while running plugin test_crash: command 2"), std::string::npos) << log;
  EXPECT_NE(log.find("backtrace"), std::string::npos) << log;
  // At least one frame ("  #2 0x7f.. in plugin test_crash generation 2 +0x2837")
  // is attributed to the plugin's code.
  bool frame = false;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);)
    frame = frame || (line.rfind("  #", 0) == 0 && line.find(" 0x") != std::string::npos &&
                      line.find(" in plugin test_crash generation 2 +0x") != std::string::npos);
  EXPECT_TRUE(frame) << log;

  // The record for the master: a fresh file, not the planted link's target.
  EXPECT_EQ(ReadFile(victim), "victim");
  struct stat s;
  ASSERT_EQ(lstat(record.c_str(), &s), 0);
  EXPECT_TRUE(S_ISREG(s.st_mode));
  EXPECT_EQ(s.st_mode & 07777, 0600u);
  Json::Value r = ParseJson(ReadFile(record));
  EXPECT_EQ(r["signal"].asInt(), SIGSEGV) << r;
  EXPECT_EQ(r["plugin"].asString(), "test_crash") << r;
  EXPECT_EQ(r["generation"].asUInt64(), 2u) << r;
  EXPECT_GT(r["at"].asInt64(), 0) << r;
}

// "... WARN  [game] loop: loop stalled 301 ms in plugin test_crash: command 3" -> 301, or -1.
long StallMs(const std::string& log, const std::string& what) {
  const std::string head = "WARN  [game] loop: loop stalled ";
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    size_t at = line.find(head);
    if (at == std::string::npos) continue;
    size_t end = 0;
    long ms = std::stol(line.substr(at + head.size()), &end);
    if (line.substr(at + head.size() + end) == " ms in " + what) return ms;
  }
  return -1;
}

TEST_F(PluginCrashTest, BlockingHandlerIsLoggedAsALoopStallAndCounted) {
  // The server's own threshold wins over the master's.
  Configure({{"test_crash", "test_crash", ""}}, ", \"loop_stall_ms\": 100000", ", \"loop_stall_ms\": 100");
  ASSERT_TRUE(Launch()) << Output();
  auto c = Connect();
  EXPECT_EQ(CallBody(*c, kBlock, "300"), "slept");
  ASSERT_TRUE(WaitFor([&] { return StallMs(Log(), "plugin test_crash: command 3") >= 0; })) << Log();
  EXPECT_GE(StallMs(Log(), "plugin test_crash: command 3"), 100) << Log();
  EXPECT_NE(Get("/metrics").find("lampyr_loop_stalls_total{plugin=\"test_crash\"} 1\n"), std::string::npos)
      << Get("/metrics");
  EXPECT_EQ(CallBody(*c, kVersion, ""), "version=1.0 gen=1");  // and it serves on
}

TEST_F(PluginCrashTest, BlockingInitIsLoggedAsALoopStall) {
  Configure({{"test_crash", "test_crash", ", \"config\": {\"init_sleep_ms\": 300}"}}, ", \"loop_stall_ms\": 100");
  ASSERT_TRUE(Launch()) << Output();
  Json::Value a;
  ASSERT_EQ(Reload("test_crash", &a), 200) << a;
  ASSERT_TRUE(WaitFor([&] { return StallMs(Log(), "plugin test_crash: init") >= 0; })) << Log();
  EXPECT_NE(Get("/metrics").find("lampyr_loop_stalls_total{plugin=\"test_crash\"} 2\n"), std::string::npos)
      << Get("/metrics");  // the first load and the reload
}

}  // namespace
}  // namespace lampyr::test
