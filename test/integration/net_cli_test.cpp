// lampyr-client from a shell's point of view: output lines and exit status.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

#include "harness.h"

namespace lampyr {
namespace {

using test::Process;
using test::TempDir;

class NetCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = test::FreePort();
    std::string conf = dir_.path() + "/cluster.json";
    test::WriteFile(conf, "{\"servers\": {\"net\": {\"netport\": " + std::to_string(port_) +
                              ", \"builtins\": {\"echo\": 1}}}, \"protocol\": {\"heartbeat_command\": 7}}");
    server_ = test::StartServer(conf, "net", port_);
    ASSERT_NE(server_, nullptr);
  }

  // Runs lampyr-client with `args` (after --host/--port unless raw); returns
  // its exit code and puts stdout+stderr in *out.
  int RunClient(const std::vector<std::string>& args, std::string* out, bool raw = false) {
    std::vector<std::string> argv = {std::string(LAMPYR_BIN_DIR) + "/lampyr-client"};
    if (!raw) argv.insert(argv.end(), {"--host", "127.0.0.1", "--port", std::to_string(port_)});
    argv.insert(argv.end(), args.begin(), args.end());
    return Finish(Process::Start(argv, {}, NextOutput()), out);
  }

  // Runs a shell pipeline (for stdin scripts).
  int RunShell(const std::string& script, std::string* out) {
    return Finish(Process::Start({"/bin/sh", "-c", script}, {}, NextOutput()), out);
  }

  std::string ClientCommand() {
    return std::string(LAMPYR_BIN_DIR) + "/lampyr-client --host 127.0.0.1 --port " + std::to_string(port_);
  }

 private:
  std::string NextOutput() { return out_file_ = dir_.path() + "/client" + std::to_string(++runs_) + ".out"; }
  int Finish(std::unique_ptr<Process> p, std::string* out) {
    if (!p) return -1;
    int st = p->Wait(20000);
    *out = test::ReadFile(out_file_);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

 protected:
  TempDir dir_;
  uint16_t port_ = 0;
  std::unique_ptr<Process> server_;
  std::string out_file_;
  int runs_ = 0;
};

TEST_F(NetCliTest, PrintsOneLinePerFrame) {
  std::string out;
  EXPECT_EQ(RunClient({"send", "1", "hello world", "send-hex", "1", "00ff10", "send", "0x7", "hb", "send", "42", "x"},
                      &out),
            0)
      << out;
  EXPECT_EQ(out,
            "1\thello world\n"
            "1\thex:00ff10\n"
            "7\thb\n"
            "4294967295\t{\"code\":1,\"error\":\"unknown_command\",\"command\":42,"
            "\"message\":\"no handler for command 42\"}\n");
}

TEST_F(NetCliTest, JsonOutput) {
  std::string out;
  EXPECT_EQ(RunClient({"--json", "send", "1", "héllo", "send-hex", "1", "01"}, &out), 0) << out;
  EXPECT_EQ(out,
            "{\"body\":\"héllo\",\"command\":1,\"kind\":\"reply\"}\n"
            "{\"body_hex\":\"01\",\"command\":1,\"kind\":\"reply\"}\n");
}

TEST_F(NetCliTest, ReadsCommandsFromStdin) {
  std::string out;
  EXPECT_EQ(RunShell("printf '# a comment\\n\\nsend 1 two words\\nsleep 10\\nsend 1\\nlisten 0.1\\n' | " +
                         ClientCommand() + " -",
                     &out),
            0)
      << out;
  EXPECT_EQ(out, "1\ttwo words\n1\t\n");
}

TEST_F(NetCliTest, BadStdinLineStopsWithUsageError) {
  std::string out;
  EXPECT_EQ(RunShell("printf 'send 1 ok\\nfrobnicate\\nsend 1 never\\n' | " + ClientCommand() + " -", &out), 2);
  EXPECT_NE(out.find("1\tok\n"), std::string::npos) << out;
  EXPECT_NE(out.find("unknown command 'frobnicate'"), std::string::npos) << out;
  EXPECT_EQ(out.find("never"), std::string::npos) << out;
}

TEST_F(NetCliTest, ExitStatusReportsFailures) {
  std::string out;
  // Usage errors are caught before connecting.
  EXPECT_EQ(RunClient({"send", "1"}, &out), 2) << out;
  EXPECT_EQ(RunClient({"send", "notanumber", "x"}, &out), 2) << out;
  EXPECT_EQ(RunClient({"--head", "1,2,3", "send", "1", "x"}, &out), 2) << out;
  // The server closes a client with the wrong head: no reply, exit 1.
  EXPECT_EQ(RunClient({"--head", "9,9,9,9", "send", "1", "x"}, &out), 1) << out;
  EXPECT_NE(out.find("closed"), std::string::npos) << out;
  // Nothing listening.
  uint16_t dead = test::FreePort();
  EXPECT_EQ(RunClient({"--host", "127.0.0.1", "--port", std::to_string(dead), "send", "1", "x"}, &out, true), 1)
      << out;
  EXPECT_NE(out.find("refused"), std::string::npos) << out;
}

TEST_F(NetCliTest, ListenWithoutPushesEndsQuietly) {
  std::string out;
  EXPECT_EQ(RunClient({"listen", "0.2"}, &out), 0) << out;
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace lampyr
