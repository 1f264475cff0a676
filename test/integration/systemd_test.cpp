// The systemd service protocol (core/systemd.h) against a NOTIFY_SOCKET the
// test owns: a real unix datagram socket with SO_PASSCRED, so each message
// carries the pid of its sender. The master and a lone server are real
// processes. Also `lampyr --version` and the version in /status.
#include <gtest/gtest.h>
#include <json/reader.h>
#include <json/value.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "admin/http_client.h"
#include "harness.h"
#include "lampyr/plugin.h"

namespace lampyr {
namespace {

using test::Process;

// The unit's end of sd_notify: a bound datagram socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    ok_ = fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    int on = 1;
    ok_ = ok_ && setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return ok_; }

  struct Message {
    std::string text;
    pid_t pid = 0;
  };
  // The next message, or false when none came within timeout_ms (a guard
  // against a hang, not a timing assertion).
  bool Next(Message* m, int timeout_ms = 30000) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return false;
    char buf[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof buf};
    msghdr h{};
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    h.msg_control = control;
    h.msg_controllen = sizeof control;
    const ssize_t n = recvmsg(fd_, &h, 0);
    if (n < 0) return false;
    m->text.assign(buf, static_cast<size_t>(n));
    m->pid = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cr;
        memcpy(&cr, CMSG_DATA(c), sizeof cr);
        m->pid = cr.pid;
      }
    }
    return true;
  }
  // Reads until a message containing `want` (each message read is kept in
  // *seen); false if none came.
  bool WaitFor(const std::string& want, std::vector<Message>* seen) {
    Message m;
    while (Next(&m)) {
      seen->push_back(m);
      if (m.text.find(want) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool ok_ = false;
};

bool Accepts(uint16_t port) { return test::WaitForPort("127.0.0.1", port, 0); }

std::string RunTool(const std::vector<std::string>& argv, const std::string& log) {
  auto p = Process::Start(argv, {}, log);
  if (!p) return "";
  p->Wait(30000);
  return test::ReadFile(log);
}

Json::Value Parse(const std::string& text) {
  Json::Value v;
  Json::CharReaderBuilder b;
  std::unique_ptr<Json::CharReader> r(b.newCharReader());
  std::string errs;
  r->parse(text.data(), text.data() + text.size(), &v, &errs);
  return v;
}

std::string VersionOfBinary(const std::string& dir) {
  const std::string out = RunTool({test::LampyrBinary(), "--version"}, dir + "/version.out");
  const std::string first = out.substr(0, out.find('\n'));
  return first.rfind("lampyr ", 0) == 0 ? first.substr(7) : "";
}

TEST(Version, FlagPrintsVersionAndSdkAbi) {
  test::TempDir dir;
  const std::string out = RunTool({test::LampyrBinary(), "--version"}, dir.path() + "/v.out");
  // "lampyr 0.1.0+git149.8ad7b44e2f" (or the bare project version from a tarball).
  ASSERT_EQ(out.rfind("lampyr 0.", 0), 0u) << out;
  const std::string abi = std::to_string(LAMPYR_ABI_MAJOR) + "." + std::to_string(LAMPYR_ABI_MINOR);
  EXPECT_NE(out.find("\nplugin SDK ABI " + abi + "\n"), std::string::npos) << out;
  const std::string version = VersionOfBinary(dir.path());
  EXPECT_EQ(version.find_first_of(" \n"), std::string::npos) << version;
  const std::string ctl = RunTool({std::string(LAMPYR_BIN_DIR) + "/lampyrctl", "--version"}, dir.path() + "/c.out");
  EXPECT_EQ(ctl, "lampyrctl " + version + "\n");
}

// READY=1 only once every local server listens: one server is slow to start
// (its plugin's init blocks for 1.5 s), and when READY arrives each port of
// each server must accept. Then watchdog pings, STATUS lines, STOPPING=1;
// every message comes from the master itself, none from a server.
TEST(Systemd, MasterNotifiesReadyAfterEveryServerListensThenWatchdogAndStopping) {
  test::TempDir dir;
  NotifySocket sock(dir.path() + "/notify.sock");
  ASSERT_TRUE(sock.ok()) << strerror(errno);
  const uint16_t root = test::FreePort(), web = test::FreePort(), gate = test::FreePort(), net = test::FreePort(),
                 game = test::FreePort();
  const std::string conf = dir.path() + "/cluster.json";
  test::WriteFile(conf, R"({
    "master": {"rootport": )" + std::to_string(root) + R"(, "webport": )" + std::to_string(web) + R"(,
               "admin_token": "9f0c2a7e51b84d36a1e7c3b95d20f8a64c1e7b3d9a05f26e8b4c17d3a92e6f05",
               "cluster_secret": "3e8a1f6c0b9d4725e6a3c18f4b7d20e95a6c3f1b8e0d74a29c5b61e8f3a0d7c4",
               "log": "logs/master.log"},
    "protocol": {"idle_timeout_s": 0},
    "plugins": {"test_crash": {"path": ")" + test::PluginPath("test_crash") + R"(", "config": {"init_sleep_ms": 1500}}},
    "servers": {
      "gate": {"rootport": )" + std::to_string(gate) + R"(},
      "net": {"netport": )" + std::to_string(net) + R"(, "builtins": {"echo": 1}},
      "slow": {"netport": )" + std::to_string(game) + R"(, "plugins": ["test_crash"], "remoteport": [{"rootname": "gate"}]}
    }
  })");
  auto master = Process::Start({test::LampyrBinary(), "--conf", conf},
                               {"NOTIFY_SOCKET=" + dir.path() + "/notify.sock", "WATCHDOG_USEC=300000"},
                               dir.path() + "/master.out");
  ASSERT_TRUE(master);
  std::vector<NotifySocket::Message> seen;
  ASSERT_TRUE(sock.WaitFor("READY=1", &seen)) << test::ReadFile(dir.path() + "/master.out");
  // The moment READY is read: every listener of every server is up.
  EXPECT_TRUE(Accepts(gate));
  EXPECT_TRUE(Accepts(net));
  EXPECT_TRUE(Accepts(game));
  EXPECT_NE(seen.back().text.find("STATUS=3 of 3 servers running"), std::string::npos) << seen.back().text;
  // Before READY the status said who was not up yet.
  bool starting_seen = false;
  for (size_t i = 0; i + 1 < seen.size(); ++i) {
    EXPECT_EQ(seen[i].text.find("READY=1"), std::string::npos);
    starting_seen = starting_seen || seen[i].text.find("slow starting") != std::string::npos;
  }
  EXPECT_TRUE(starting_seen) << "no STATUS= line named the slow server before READY";

  // The watchdog: pings keep coming from the loop.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(sock.WaitFor("WATCHDOG=1", &seen));

  // The version in /status: the master's and each server's.
  const std::string version = VersionOfBinary(dir.path());
  ASSERT_FALSE(version.empty());
  HttpResponse r;
  ASSERT_TRUE(HttpCall("127.0.0.1", web, "GET", "/status", "", {}, &r, 20000).ok());
  const Json::Value st = Parse(r.body);
  EXPECT_EQ(st["master"]["version"].asString(), version) << r.body;
  EXPECT_EQ(st["master"]["sdk_abi"].asString(),
            std::to_string(LAMPYR_ABI_MAJOR) + "." + std::to_string(LAMPYR_ABI_MINOR));
  ASSERT_EQ(st["servers"].size(), 3u);
  for (const auto& s : st["servers"]) EXPECT_EQ(s["version"].asString(), version) << s["name"].asString();

  master->Signal(SIGTERM);
  ASSERT_TRUE(sock.WaitFor("STOPPING=1", &seen));
  const int status = master->Wait(60000);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  NotifySocket::Message m;
  while (sock.Next(&m, 0)) seen.push_back(m);
  for (const auto& msg : seen) EXPECT_EQ(msg.pid, master->pid()) << "from pid " << msg.pid << ": " << msg.text;
}

// A lone server (lampyr@.service): READY once its own listener is bound.
TEST(Systemd, LoneServerNotifiesReadyWhenListening) {
  test::TempDir dir;
  NotifySocket sock(dir.path() + "/notify.sock");
  ASSERT_TRUE(sock.ok());
  const uint16_t net = test::FreePort();
  const std::string conf = dir.path() + "/single.json";
  test::WriteFile(conf, R"({"servers": {"game3": {"netport": )" + std::to_string(net) +
                            R"(, "builtins": {"echo": 1}}}})");
  auto server = Process::Start({test::LampyrBinary(), "--conf", conf, "--server", "game3"},
                               {"NOTIFY_SOCKET=" + dir.path() + "/notify.sock"}, dir.path() + "/game3.out");
  ASSERT_TRUE(server);
  std::vector<NotifySocket::Message> seen;
  ASSERT_TRUE(sock.WaitFor("READY=1", &seen)) << test::ReadFile(dir.path() + "/game3.out");
  EXPECT_TRUE(Accepts(net));
  EXPECT_NE(seen.back().text.find("STATUS=server game3 serving"), std::string::npos);
  server->Signal(SIGTERM);
  ASSERT_TRUE(sock.WaitFor("STOPPING=1", &seen));
  const int status = server->Wait(30000);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  for (const auto& msg : seen) EXPECT_EQ(msg.pid, server->pid());
}

}  // namespace
}  // namespace lampyr
