// Log files under an operator's rotation: SIGHUP and POST /reopen-logs
// (lampyrctl reopen-logs) reopen them by path; "log": "-" writes to stderr
// only; a symlink where the log goes is refused; new files are 0640.
// Secrets from $CREDENTIALS_DIRECTORY reach the admin API.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "admin/http_client.h"
#include "harness.h"

namespace lampyr {
namespace {

namespace fs = std::filesystem;
using test::Process;

const char* kToken = "4e9d1c7a0b3f5e2d8c6a71f0e3b5d9c2a8f6e1d4b7c0a3f95e2d8c6b1a7f4e03";

// Polls a condition; the deadline only stops a hang (no timing assertion).
bool WaitFor(const std::function<bool()>& pred, int timeout_ms = 30000) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

bool Contains(const std::string& file, const std::string& text) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return false;
  return test::ReadFile(file).find(text) != std::string::npos;
}

int Mode(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

int Post(uint16_t port, const std::string& path, const std::string& token, std::string* body = nullptr) {
  HttpResponse r;
  std::vector<std::pair<std::string, std::string>> h;
  if (!token.empty()) h.emplace_back("Authorization", "Bearer " + token);
  if (!HttpCall("127.0.0.1", port, "POST", path, "{}", h, &r, 20000).ok()) return -1;
  if (body) *body = r.body;
  return r.status;
}

TEST(Logs, LoneServerReopensOnSighupAndOnPostWithTokenOnly) {
  test::TempDir dir;
  const uint16_t net = test::FreePort(), web = test::FreePort();
  const std::string conf = dir.path() + "/single.json";
  test::WriteFile(conf, R"({"master": {"admin_token": ")" + std::string(kToken) + R"("},
    "servers": {"game1": {"netport": )" + std::to_string(net) + R"(, "webport": )" + std::to_string(web) +
                            R"(, "builtins": {"echo": 1}, "log": "logs/game1.log"}}})");
  auto server = test::StartServer(conf, "game1", net);
  ASSERT_TRUE(server);
  ASSERT_TRUE(test::WaitForPort("127.0.0.1", web, 20000));
  const std::string log = dir.path() + "/logs/game1.log";
  ASSERT_TRUE(WaitFor([&] { return Contains(log, "server game1 started"); }));
  EXPECT_EQ(Mode(log), 0640);
  EXPECT_EQ(Mode(dir.path() + "/logs"), 0750);

  // logrotate: rename, then SIGHUP.
  fs::rename(log, log + ".1");
  server->Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return Contains(log, "log file reopened (SIGHUP)"); })) << test::ReadFile(log + ".1");
  EXPECT_EQ(Mode(log), 0640);
  EXPECT_TRUE(Contains(log + ".1", "server game1 started"));
  EXPECT_FALSE(Contains(log + ".1", "log file reopened"));
  EXPECT_TRUE(server->Running());

  // The admin route: mutating, so the token is required.
  fs::rename(log, log + ".2");
  EXPECT_EQ(Post(web, "/reopen-logs", ""), 401);
  EXPECT_FALSE(fs::exists(log));
  std::string body;
  EXPECT_EQ(Post(web, "/reopen-logs", kToken, &body), 200) << body;
  EXPECT_TRUE(Contains(log, "log file reopened (POST /reopen-logs from 127.0.0.1"));
  server->Signal(SIGTERM);
  EXPECT_TRUE(WIFEXITED(server->Wait(30000)));
}

TEST(Logs, SymlinkIsRefusedAndDashMeansStderr) {
  test::TempDir dir;
  const uint16_t a = test::FreePort(), b = test::FreePort();
  const std::string victim = dir.path() + "/victim";
  test::WriteFile(victim, "untouched\n");
  fs::create_directory(dir.path() + "/logs");
  fs::create_symlink(victim, dir.path() + "/logs/a.log");
  const std::string conf = dir.path() + "/c.json";
  test::WriteFile(conf, R"({"servers": {
      "a": {"netport": )" + std::to_string(a) + R"(, "log": "logs/a.log"},
      "b": {"netport": )" + std::to_string(b) + R"(, "log": "-"}}})");
  auto sa = test::StartServer(conf, "a", a);
  auto sb = test::StartServer(conf, "b", b);
  ASSERT_TRUE(sa && sb);
  EXPECT_EQ(test::ReadFile(victim), "untouched\n");
  // The port opens before the start line is written: wait for the lines.
  EXPECT_TRUE(WaitFor([&] { return Contains(dir.path() + "/a.out", "symbolic link (refused)"); }))
      << test::ReadFile(dir.path() + "/a.out");
  // "-": stderr only, no file named "-" anywhere.
  EXPECT_TRUE(WaitFor([&] { return Contains(dir.path() + "/b.out", "server b started"); }))
      << test::ReadFile(dir.path() + "/b.out");
  EXPECT_FALSE(fs::exists(dir.path() + "/-"));
  sa->Signal(SIGTERM);
  sb->Signal(SIGTERM);
  sa->Wait(30000);
  sb->Wait(30000);
}

// The master: lampyrctl reopen-logs (token from the systemd credential)
// reopens the master's file and every server's; SIGHUP to the master too.
TEST(Logs, MasterReopensEveryServersLogThroughLampyrctlWithCredentialToken) {
  test::TempDir dir;
  const uint16_t root = test::FreePort(), web = test::FreePort(), n1 = test::FreePort(), n2 = test::FreePort();
  const std::string conf = dir.path() + "/cluster.json";
  // The file's token is not the one in use: the credential wins.
  test::WriteFile(conf, R"({
    "master": {"rootport": )" + std::to_string(root) + R"(, "webport": )" + std::to_string(web) + R"(,
               "admin_token": "0d7c4a2f9e1b6c3a8f5d0e7b2c9a4f1e6d3b8c5a0f7e2d9c4b1a6f3e8d5c0b7a", "log": "logs/master.log"},
    "servers": {"s1": {"netport": )" + std::to_string(n1) + R"(, "log": "logs/s1.log"},
                "s2": {"netport": )" + std::to_string(n2) + R"(, "log": "logs/s2.log"}}})");
  fs::create_directory(dir.path() + "/creds");
  test::WriteFile(dir.path() + "/creds/admin_token", std::string(kToken) + "\n");
  test::WriteFile(dir.path() + "/creds/cluster_secret", "5b8e2f1a9c3d7e0f6a4b1c8d2e9f7a5b3c0d6e1f8a2b4c9d7e3f0a6b5c1d8e2f\n");
  const std::vector<std::string> env = {"CREDENTIALS_DIRECTORY=" + dir.path() + "/creds"};
  auto master = Process::Start({test::LampyrBinary(), "--conf", conf}, env, dir.path() + "/master.out");
  ASSERT_TRUE(master);
  const std::vector<std::string> logs = {"master", "s1", "s2"};
  for (const auto& n : {"s1", "s2"})
    ASSERT_TRUE(WaitFor([&] { return Contains(dir.path() + "/logs/master.log", std::string(n) + " is up"); }))
        << test::ReadFile(dir.path() + "/master.out");

  for (const auto& n : logs) fs::rename(dir.path() + "/logs/" + n + ".log", dir.path() + "/logs/" + n + ".log.1");
  const std::string ctl = std::string(LAMPYR_BIN_DIR) + "/lampyrctl";
  // Without the credential (and no token anywhere that fits): refused.
  auto denied = Process::Start({ctl, "--url", "127.0.0.1:" + std::to_string(web), "reopen-logs"},
                               {"CREDENTIALS_DIRECTORY="}, dir.path() + "/ctl-denied.out");
  ASSERT_TRUE(denied);
  int st = denied->Wait(30000);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 3) << test::ReadFile(dir.path() + "/ctl-denied.out");
  auto ok = Process::Start({ctl, "--url", "127.0.0.1:" + std::to_string(web), "reopen-logs"}, env,
                           dir.path() + "/ctl.out");
  ASSERT_TRUE(ok);
  st = ok->Wait(30000);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << test::ReadFile(dir.path() + "/ctl.out");
  EXPECT_TRUE(Contains(dir.path() + "/ctl.out", "2 servers asked to reopen theirs"));
  for (const auto& n : logs)
    EXPECT_TRUE(WaitFor([&] { return Contains(dir.path() + "/logs/" + n + ".log", "log file reopened"); })) << n;

  // SIGHUP to the master does the same.
  for (const auto& n : logs) fs::rename(dir.path() + "/logs/" + n + ".log", dir.path() + "/logs/" + n + ".log.2");
  master->Signal(SIGHUP);
  for (const auto& n : logs)
    EXPECT_TRUE(WaitFor([&] { return Contains(dir.path() + "/logs/" + n + ".log", "log file reopened"); })) << n;
  EXPECT_TRUE(master->Running());
  // The secrets never reach a log.
  for (const auto& n : logs)
    for (const auto& suffix : {".log", ".log.1", ".log.2"}) {
      const std::string f = dir.path() + "/logs/" + n + suffix;
      EXPECT_FALSE(Contains(f, kToken)) << f;
      EXPECT_FALSE(Contains(f, "5b8e2f1a9c3d7e0f6a4b1c8d2e9f7a5b")) << f;
    }
  master->Signal(SIGTERM);
  st = master->Wait(60000);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << test::ReadFile(dir.path() + "/master.out");
}

}  // namespace
}  // namespace lampyr
