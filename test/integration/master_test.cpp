// The master with real processes: `lampyr --conf FILE` starts gate, net and
// games as children, supervises them, and serves the cluster admin API. The
// faults are real: kill -9 of servers and of the master, a port taken by the
// test so a server cannot start, SIGTERM.
#include <gtest/gtest.h>
#include <json/reader.h>
#include <json/value.h>
#include <json/writer.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "admin/http_client.h"
#include "channel/channel_hub.h"
#include "core/event_loop.h"
#include "harness.h"
#include "lampyr_client.h"
#include "master/cluster_metrics.h"
#include "loop_until.h"

namespace lampyr {
namespace {

using client::Client;
using client::Frame;
using test::Process;

enum : uint32_t {
  kLocalEcho = 1,  // net's own builtin
  kEcho = 100,     // game builtins, reached through the gate
  kSleep = 102,
};
constexpr uint32_t kErrorCommand = 0xFFFFFFFF;
constexpr const char* kToken = "master-test-admin-token-0123";
constexpr const char* kSecret = "master-test-cluster-secret-0123";

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Polls `pred` every 20 ms for up to `timeout_ms`.
bool WaitFor(const std::function<bool()>& pred, int timeout_ms = 20000) {
  for (int64_t end = NowMs() + timeout_ms; NowMs() < end; SleepMs(20))
    if (pred()) return true;
  return pred();
}

// A process that exited but was not reaped yet (zombie) counts as gone.
bool Alive(pid_t pid) {
  std::string s = test::ReadFile("/proc/" + std::to_string(pid) + "/status");
  return !s.empty() && s.find("State:\tZ") == std::string::npos && s.find("State:\tX") == std::string::npos;
}

// The parent pid of a live process, from /proc/PID/stat.
pid_t ParentOf(pid_t pid) {
  std::string s = test::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t close = s.rfind(')');
  if (close == std::string::npos) return 0;
  // ") S PPID ..."
  return static_cast<pid_t>(std::atoi(s.c_str() + close + 4));
}

bool IsError(const Frame& f, int code) {
  return f.command == kErrorCommand && f.body.find("\"code\":" + std::to_string(code)) != std::string::npos;
}

class MasterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_port_ = test::FreePort();
    web_port_ = test::FreePort();
    gate_port_ = test::FreePort();
    net_port_ = test::FreePort();
    conf_ = dir_.path() + "/cluster.json";
  }

  // games: the game servers' extra JSON, by name.
  void WriteConfig(const std::map<std::string, std::string>& games = {{"game1", ""}, {"game2", ""}},
                   const std::string& master_extra = "", const std::string& top_extra = "") {
    std::string servers = R"("gate": {"rootport": )" + std::to_string(gate_port_) + R"(, "log": "logs/gate.log"},
        "net":  {"netport": )" + std::to_string(net_port_) + R"(, "forward": "gate",
                 "remoteport": [{"rootname": "gate"}], "builtins": {"echo": 1}, "log": "logs/net.log"})";
    for (const auto& [name, extra] : games) {
      const std::string builtins =
          extra.find("\"builtins\"") == std::string::npos ? R"(, "builtins": {"echo": 100, "sleep": 102})" : "";
      servers += ",\n\"" + name + R"(": {"remoteport": [{"rootname": "gate"}], "log": "logs/)" + name + R"(.log")" +
                 builtins + extra + "}";
    }
    test::WriteFile(conf_, R"({
      "master": {"rootport": )" + std::to_string(root_port_) + R"(, "webport": )" + std::to_string(web_port_) +
                               R"(, "admin_token": ")" + kToken + R"(", "cluster_secret": ")" + kSecret + R"(",
                 "log": "logs/master.log", "restart_backoff_ms": )" + std::to_string(backoff_ms_) + R"(,
                 "restart_backoff_max_ms": 400,
                 "give_up_restarts": 3, "give_up_window_s": 60, "stop_timeout_s": 5)" + master_extra + R"(},
      "protocol": {"idle_timeout_s": 0},)" + top_extra + R"(
      "servers": {)" + servers + R"(}
    })");
    names_ = {"gate", "net"};
    for (const auto& [name, extra] : games) names_.insert(name);
  }

  // Starts the master and waits until every server is running.
  void StartMaster(const std::set<std::string>& expect_running = {}) {
    // The state dir (builds that passed probation, crash records) is
    // <dir>/state, next to the config: private to this test.
    master_ = Process::Start({test::LampyrBinary(), "--conf", conf_}, {}, dir_.path() + "/master.out");
    ASSERT_TRUE(master_);
    const auto& want = expect_running.empty() ? names_ : expect_running;
    ASSERT_TRUE(WaitFor([&] {
      Json::Value st = GetStatus();
      size_t n = 0;
      for (const auto& s : st["servers"]) n += want.count(s["name"].asString()) && s["state"] == "running";
      return n == want.size();
    })) << Output();
  }

  std::string Output() { return test::ReadFile(dir_.path() + "/master.out"); }

  HttpResponse Http(const std::string& method, const std::string& path, const std::string& body = "",
                    bool with_token = true) {
    HttpResponse r;
    std::vector<std::pair<std::string, std::string>> headers;
    if (with_token) headers.emplace_back("Authorization", std::string("Bearer ") + kToken);
    Status st = HttpCall("127.0.0.1", web_port_, method, path, body, headers, &r, 20000);
    if (!st.ok()) r.status = -1;
    return r;
  }

  static Json::Value Parse(const std::string& text) {
    Json::Value v;
    Json::CharReaderBuilder b;
    std::unique_ptr<Json::CharReader> r(b.newCharReader());
    std::string errs;
    r->parse(text.data(), text.data() + text.size(), &v, &errs);
    return v;
  }

  Json::Value GetStatus() {
    HttpResponse r = Http("GET", "/status", "", false);
    return r.status == 200 ? Parse(r.body) : Json::Value();
  }

  Json::Value View(const std::string& name) {
    const Json::Value st = GetStatus();  // not a range over a temporary's member
    for (const auto& s : st["servers"])
      if (s["name"] == name) return s;
    return Json::Value();
  }

  pid_t Pid(const std::string& name) { return static_cast<pid_t>(View(name)["pid"].asInt64()); }

  std::unique_ptr<Client> Connect() {
    auto c = std::make_unique<Client>();
    Status st = c->Connect("127.0.0.1", net_port_);
    EXPECT_TRUE(st.ok()) << st.message();
    return c;
  }

  // Waits until a forwarded echo comes back through net -> gate -> game.
  bool WaitForwarding(Client* c, int guard_ms = 20000) {
    return WaitFor(
        [&] {
          Frame f;
          return c->Call(kEcho, "ready?", &f).ok() && f.command == kEcho && f.body == "ready?";
        },
        guard_ms);
  }

  // Runs lampyrctl against this master; returns its exit status, fills `out`.
  int Ctl(std::vector<std::string> args, std::string* out = nullptr, bool with_token = true) {
    std::vector<std::string> argv = {std::string(LAMPYR_BIN_DIR) + "/lampyrctl", "--url",
                                     "http://127.0.0.1:" + std::to_string(web_port_)};
    if (with_token) {
      argv.push_back("--token");
      argv.push_back(kToken);
    }
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string file = dir_.path() + "/ctl.out";
    test::WriteFile(file, "");
    auto p = Process::Start(argv, {"LAMPYR_ADMIN_TOKEN="}, file);
    if (!p) return -1;
    int st = p->Wait(30000);
    if (out) *out = test::ReadFile(file);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  test::TempDir dir_;
  std::string conf_;
  uint16_t root_port_ = 0, web_port_ = 0, gate_port_ = 0, net_port_ = 0;
  std::set<std::string> names_;
  uint32_t backoff_ms_ = 50;  // first restart delay: short, so tests run fast
  std::unique_ptr<Process> master_;
};

TEST_F(MasterTest, StartsEveryServerAndServesTheClusterApi) {
  WriteConfig();
  StartMaster();
  Json::Value st = GetStatus();
  ASSERT_EQ(st["servers"].size(), 4u) << st;
  std::set<pid_t> pids;
  for (const auto& s : st["servers"]) {
    const pid_t pid = static_cast<pid_t>(s["pid"].asInt64());
    EXPECT_GT(pid, 0) << s;
    EXPECT_TRUE(Alive(pid)) << s;
    EXPECT_EQ(ParentOf(pid), master_->pid()) << s;  // children of the master
    EXPECT_EQ(s["restarts"].asInt(), 0) << s;
    EXPECT_TRUE(s["supervised"].asBool()) << s;
    EXPECT_TRUE(s["links"].isArray() && !s["links"].empty()) << s;  // the server's own view was merged in
    pids.insert(pid);
  }
  EXPECT_EQ(pids.size(), 4u);
  EXPECT_EQ(st["master"]["pid"].asInt64(), master_->pid());

  // client -> net -> gate -> game and back.
  auto c = Connect();
  ASSERT_TRUE(WaitForwarding(c.get())) << Output();
  Frame f;
  ASSERT_TRUE(c->Call(kEcho, "through the cluster", &f).ok());
  EXPECT_EQ(f.body, "through the cluster");

  // /metrics: the master's series and every server's, labelled; one HELP and
  // one TYPE per family.
  HttpResponse m = Http("GET", "/metrics", "", false);
  ASSERT_EQ(m.status, 200);
  for (const auto& name : names_)
    EXPECT_NE(m.body.find("lampyr_channel_links{server=\"" + name + "\"}"), std::string::npos) << name << m.body;
  EXPECT_NE(m.body.find("lampyr_master_server_up{server=\"game1\"} 1"), std::string::npos) << m.body;
  std::set<std::string> types;
  for (size_t pos = 0; (pos = m.body.find("# TYPE ", pos)) != std::string::npos; ++pos) {
    std::string family = m.body.substr(pos + 7, m.body.find(' ', pos + 7) - pos - 7);
    EXPECT_TRUE(types.insert(family).second) << "second TYPE line for " << family;
  }

  // Mutating calls without the token: 401 and nothing happens.
  for (const char* path : {"/stop", "/restart", "/reload"}) {
    HttpResponse r = Http("POST", path, R"({"server": "game1"})", false);
    EXPECT_EQ(r.status, 401) << path << " " << r.body;
  }
  SleepMs(300);
  Json::Value after = GetStatus();
  ASSERT_EQ(after["servers"].size(), 4u);
  for (const auto& s : after["servers"]) {
    EXPECT_EQ(s["state"], "running") << s;
    EXPECT_TRUE(pids.count(static_cast<pid_t>(s["pid"].asInt64()))) << s;
  }
  EXPECT_TRUE(master_->Running());

  // Reload: unknown server is a clear 404; a cluster without plugins has nothing to do.
  HttpResponse r = Http("POST", "/reload", R"({"server": "nosuch"})");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("no such server: nosuch"), std::string::npos) << r.body;
  r = Http("POST", "/reload", R"({"plugin": "room"})");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("no server runs plugin 'room'"), std::string::npos) << r.body;
  r = Http("POST", "/reload", "{}");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Parse(r.body)["results"].empty()) << r.body;
}

TEST_F(MasterTest, KilledGameUnderLoadIsRestartedAndServiceResumes) {
  backoff_ms_ = 200;  // the default, so the measured restart time is the one operators get
  WriteConfig({{"game1", ""}});
  StartMaster();
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 8; ++i) clients.push_back(Connect());
  ASSERT_TRUE(WaitForwarding(clients[0].get())) << Output();
  const pid_t old_pid = Pid("game1");
  const pid_t net_pid = Pid("net"), gate_pid = Pid("gate");
  ASSERT_GT(old_pid, 0) << GetStatus();  // kill(0) would hit the test itself

  // Load: clients pipelining echoes all along. Every request gets exactly one
  // answer, in order: its echo, or the error reply while the game is down.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> ok{0}, errors{0}, bad{0};
  std::vector<std::thread> load;
  struct Joiner {  // an early ASSERT return must not leave threads joinable
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Joiner() {
      stop = true;
      for (auto& th : threads)
        if (th.joinable()) th.join();
    }
  } joiner{stop, load};
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&, t, c = Connect()] {
      for (int64_t n = 0; !stop; n += 16) {
        for (int i = 0; i < 16; ++i)
          if (!c->Send(kEcho, std::to_string(t) + "-" + std::to_string(n + i)).ok()) return void(++bad);
        for (int i = 0; i < 16; ++i) {
          Frame f;
          if (!c->Receive(&f, 10000).ok()) return void(++bad);
          if (f.command == kEcho && f.body == std::to_string(t) + "-" + std::to_string(n + i)) ++ok;
          else if (IsError(f, 4)) ++errors;
          else ++bad;
        }
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return ok > 100; }));

  // Requests in flight on the game when it dies.
  for (auto& c : clients) {
    ASSERT_TRUE(c->Send(kSleep, "30000").ok());
    ASSERT_TRUE(c->Send(kEcho, "behind").ok());
  }
  SleepMs(200);
  ASSERT_EQ(kill(old_pid, SIGKILL), 0);
  const int64_t killed_at = NowMs();

  // Each in-flight request gets an error reply, not silence; clients stay connected.
  for (auto& c : clients) {
    Frame f;
    ASSERT_TRUE(c->Receive(&f, 10000).ok());
    EXPECT_TRUE(IsError(f, 4)) << f.body;
    ASSERT_TRUE(c->Receive(&f, 10000).ok());
    EXPECT_TRUE((f.command == kEcho && f.body == "behind") || IsError(f, 4)) << f.body;
  }
  // The master restarts it; the time until a client is served again.
  Client* probe = clients[0].get();
  bool served = WaitFor([&] {
    Frame f;
    return probe->Call(kEcho, "back?", &f).ok() && f.command == kEcho;
  });
  const int64_t restart_ms = NowMs() - killed_at;
  const int64_t ok_at_restart = ok;
  EXPECT_TRUE(WaitFor([&] { return ok > ok_at_restart + 100; }));  // the load is served again
  stop = true;
  for (auto& th : load) th.join();
  EXPECT_EQ(bad.load(), 0) << "a load request got no answer, a wrong one, or its client was cut";
  ASSERT_TRUE(served) << Output();
  if (getenv("LAMPYR_BENCH") && std::string(getenv("LAMPYR_BENCH")) == "1")
    printf("BENCH master_restart_killed_game_ms=%lld (restart_backoff_ms 200, kill -9 until a forwarded echo is "
           "served; load: %lld echoes answered, %lld error replies during the outage)\n",
           static_cast<long long>(restart_ms), static_cast<long long>(ok.load()),
           static_cast<long long>(errors.load()));
  for (auto& c : clients) {
    Frame f;
    ASSERT_TRUE(c->Call(kLocalEcho, "alive", &f).ok());
    EXPECT_EQ(f.body, "alive");
    ASSERT_TRUE(c->Call(kEcho, "resumed", &f).ok());
    EXPECT_EQ(f.body, "resumed");
  }
  ASSERT_TRUE(WaitFor([&] { return View("game1")["state"] == "running"; }));
  Json::Value v = View("game1");
  EXPECT_NE(v["pid"].asInt64(), old_pid);
  EXPECT_EQ(v["restarts"].asInt(), 1) << v;
  EXPECT_NE(v["last_exit"].asString().find("signal 9"), std::string::npos) << v;
  EXPECT_EQ(Pid("net"), net_pid);
  EXPECT_EQ(Pid("gate"), gate_pid);
}

TEST_F(MasterTest, KilledGateIsRestartedAndNodesRejoinIt) {
  WriteConfig({{"game1", ""}});
  StartMaster();
  auto c = Connect();
  ASSERT_TRUE(WaitForwarding(c.get()));
  const pid_t gate_pid = Pid("gate"), net_pid = Pid("net"), game_pid = Pid("game1");
  ASSERT_GT(gate_pid, 0) << GetStatus();
  ASSERT_EQ(kill(gate_pid, SIGKILL), 0);
  ASSERT_TRUE(WaitForwarding(c.get())) << Output();
  Json::Value gate = View("gate");
  EXPECT_NE(gate["pid"].asInt64(), gate_pid);
  EXPECT_EQ(gate["restarts"].asInt(), 1);
  // The nodes were not restarted: they re-joined the new gate.
  EXPECT_EQ(Pid("net"), net_pid);
  EXPECT_EQ(Pid("game1"), game_pid);
}

// A loopback port the test holds (listening), so a server configured with it
// cannot start. CLOEXEC: the master must not inherit it.
int TakePort(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 1) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return -1;
  *port = ntohs(a.sin_port);
  return fd;
}

TEST_F(MasterTest, GivesUpAfterFastCrashesAndRestartRevivesTheServer) {
  // game2 needs a client port the test holds: it exits at once, every time.
  uint16_t taken = 0;
  int blocker = TakePort(&taken);
  ASSERT_GE(blocker, 0);
  WriteConfig({{"game1", ""}, {"game2", ", \"netport\": " + std::to_string(taken)}});
  StartMaster({"gate", "net", "game1"});

  ASSERT_TRUE(WaitFor([&] { return View("game2")["state"] == "failed"; })) << GetStatus();
  Json::Value v = View("game2");
  EXPECT_EQ(v["restarts"].asInt(), 2) << v;  // 3 crashes: started 3 times, then given up
  EXPECT_EQ(v["last_exit"], "exit status 1") << v;
  EXPECT_TRUE(v["pid"].isNull()) << v;
  EXPECT_NE(test::ReadFile(dir_.path() + "/logs/master.log").find("giving up"), std::string::npos);
  // It stays given up; the rest of the cluster runs on.
  SleepMs(500);
  EXPECT_EQ(View("game2")["state"], "failed");
  EXPECT_EQ(View("game1")["state"], "running");

  // The operator fixes the cause and restarts it.
  close(blocker);
  std::string out;
  EXPECT_EQ(Ctl({"restart", "game2"}, &out), 0) << out;
  EXPECT_NE(out.find("restarted game2"), std::string::npos) << out;
  ASSERT_TRUE(WaitFor([&] { return View("game2")["state"] == "running"; })) << GetStatus() << Output();
  EXPECT_TRUE(test::WaitForPort("127.0.0.1", taken, 5000));
}

TEST_F(MasterTest, RestartStopsAndStartsOneServer) {
  WriteConfig();
  StartMaster();
  const pid_t old_pid = Pid("game1"), other = Pid("game2");

  HttpResponse r = Http("POST", "/restart", R"({"server": "nosuch"})");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("no such server: nosuch"), std::string::npos) << r.body;
  r = Http("POST", "/restart", R"({"srv": "game1"})");
  EXPECT_EQ(r.status, 400) << r.body;

  r = Http("POST", "/restart", R"({"server": "game1"})");
  ASSERT_EQ(r.status, 200) << r.body;
  Json::Value v = Parse(r.body);
  EXPECT_EQ(v["previous_pid"].asInt64(), old_pid);
  const pid_t new_pid = static_cast<pid_t>(v["pid"].asInt64());
  EXPECT_NE(new_pid, old_pid);
  EXPECT_FALSE(Alive(old_pid));
  ASSERT_TRUE(WaitFor([&] { return View("game1")["state"] == "running"; }));
  EXPECT_EQ(Pid("game1"), new_pid);
  EXPECT_EQ(View("game1")["last_exit"], "exit status 0");  // a graceful stop
  EXPECT_EQ(Pid("game2"), other);

  // lampyrctl: restart works, an unknown server and a missing token fail with the reason.
  std::string out;
  EXPECT_EQ(Ctl({"restart", "game2"}, &out), 0) << out;
  EXPECT_NE(Pid("game2"), other);
  EXPECT_EQ(Ctl({"restart", "nosuch"}, &out), 3) << out;
  EXPECT_NE(out.find("no such server: nosuch"), std::string::npos) << out;
  const pid_t before = Pid("game1");
  EXPECT_EQ(Ctl({"restart", "game1"}, &out, false), 3) << out;
  EXPECT_NE(out.find("unauthorized"), std::string::npos) << out;
  EXPECT_EQ(Ctl({"reload", "--server", "nosuch"}, &out), 3) << out;
  EXPECT_NE(out.find("no such server"), std::string::npos) << out;
  EXPECT_EQ(Pid("game1"), before);
}

TEST_F(MasterTest, StopEndsEveryProcess) {
  WriteConfig();
  StartMaster();
  std::vector<pid_t> pids;
  for (const auto& name : names_) pids.push_back(Pid(name));
  std::string out;
  EXPECT_EQ(Ctl({"stop"}, &out), 0) << out;
  EXPECT_NE(out.find("cluster stopping"), std::string::npos) << out;
  int st = master_->Wait(20000);
  ASSERT_NE(st, -1) << "master still running" << Output();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  for (pid_t pid : pids) EXPECT_FALSE(Alive(pid)) << pid;  // the master reaped them: no orphans
  // Graceful: every server exited by itself.
  const std::string log = test::ReadFile(dir_.path() + "/logs/master.log");
  for (const auto& name : names_) EXPECT_NE(log.find(name + " (pid "), std::string::npos) << log;
  size_t graceful = 0;
  for (size_t pos = 0; (pos = log.find("stopped: exit status 0", pos)) != std::string::npos; ++pos) ++graceful;
  EXPECT_EQ(graceful, names_.size()) << log;
  EXPECT_EQ(log.find("SIGKILL"), std::string::npos) << log;
}

TEST_F(MasterTest, SigtermStopsTheClusterGracefully) {
  WriteConfig();
  StartMaster();
  std::vector<pid_t> pids;
  for (const auto& name : names_) pids.push_back(Pid(name));
  master_->Signal(SIGTERM);
  int st = master_->Wait(20000);
  ASSERT_NE(st, -1) << Output();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  for (pid_t pid : pids) EXPECT_FALSE(Alive(pid)) << pid;
  const std::string log = test::ReadFile(dir_.path() + "/logs/master.log");
  EXPECT_NE(log.find("every server has stopped"), std::string::npos) << log;
}

TEST_F(MasterTest, ChildrenDieWithAKilledMaster) {
  WriteConfig();
  StartMaster();
  std::vector<pid_t> pids;
  for (const auto& name : names_) pids.push_back(Pid(name));
  master_->Signal(SIGKILL);
  master_->Wait(5000);
  for (pid_t pid : pids) EXPECT_TRUE(WaitFor([&] { return !Alive(pid); }, 10000)) << "orphan " << pid;
}

// Installs `from` as `to` the way a build should (copy, then rename): a
// running server keeps its staged copy either way.
void InstallBuild(const std::string& from, const std::string& to) {
  test::WriteFile(to + ".tmp", test::ReadFile(from));
  ASSERT_EQ(rename((to + ".tmp").c_str(), to.c_str()), 0);
}

TEST_F(MasterTest, ClusterReloadIsStagedAndARefusalUndoesNothing) {
  const std::string plugin = dir_.path() + "/libroom.so";
  InstallBuild(test::PluginPath("room"), plugin);
  uint16_t taken = 0;
  int blocker = TakePort(&taken);
  ASSERT_GE(blocker, 0);
  // Both games run room; game2 cannot start (its port is taken) and is given up.
  WriteConfig({{"game1", R"(, "plugins": ["room"], "builtins": {"echo": 200})"},
               {"game2", R"(, "plugins": ["room"], "builtins": {"echo": 200}, "netport": )" + std::to_string(taken)}},
              "", R"("plugins": {"room": {"path": "libroom.so"}},)");
  StartMaster({"gate", "net", "game1"});
  ASSERT_TRUE(WaitFor([&] { return View("game2")["state"] == "failed"; }));
  const std::string v1 = View("game1")["plugins"][0]["version"].asString();

  InstallBuild(test::PluginPath("room_v2"), plugin);
  HttpResponse r = Http("POST", "/reload", R"({"plugin": "room"})");
  EXPECT_EQ(r.status, 409) << r.body;
  Json::Value v = Parse(r.body);
  EXPECT_FALSE(v["ok"].asBool());
  ASSERT_EQ(v["results"].size(), 2u) << r.body;
  EXPECT_EQ(v["results"][0]["server"], "game1");
  EXPECT_TRUE(v["results"][0]["ok"].asBool()) << r.body;
  EXPECT_EQ(v["results"][1]["server"], "game2");
  EXPECT_FALSE(v["results"][1]["ok"].asBool());
  EXPECT_NE(v["results"][1]["error"].asString().find("not running (state failed)"), std::string::npos) << r.body;
  EXPECT_NE(v["note"].asString().find("nothing was undone"), std::string::npos) << r.body;
  // game1 keeps the new build.
  const std::string now = View("game1")["plugins"][0]["version"].asString();
  EXPECT_NE(now, v1);
  EXPECT_EQ(now, v["results"][0]["plugins"][0]["new_version"].asString());

  // lampyrctl: exit 1 on the refusal, with the reason and the note.
  std::string out;
  EXPECT_EQ(Ctl({"reload", "room"}, &out), 1) << out;
  EXPECT_NE(out.find("game2: REFUSED: server game2 is not running"), std::string::npos) << out;
  EXPECT_NE(out.find("note: "), std::string::npos) << out;
  // One server only: it accepts, exit 0.
  EXPECT_EQ(Ctl({"reload", "--server", "game1", "room"}, &out), 0) << out;
  close(blocker);
}

// game1 runs test_crash (one plugin, builds 1.0/2.0/3.0 that segfault on
// command 2) on its own client port, with a short probation window.
class MasterCrashTest : public MasterTest {
 protected:
  enum : uint32_t { kVersion = 1, kSegfault = 2 };

  void StartCrashCluster(uint32_t probation_s) {
    game_port_ = test::FreePort();
    Deploy("test_crash");
    WriteConfig({{"game1", R"(, "plugins": ["test_crash"], "netport": )" + std::to_string(game_port_)}},
                ", \"probation_s\": " + std::to_string(probation_s) + ", \"insecure_dev\": true",
                R"("plugins": {"test_crash": {"path": "libtest_crash.so"}},)");
    StartMaster();
  }
  void Deploy(const std::string& built) {
    InstallBuild(test::PluginPath(built), dir_.path() + "/libtest_crash.so");
  }
  Json::Value Plugin() { return View("game1")["plugins"][0]; }
  // "2.0" from the plugin itself, through game1's client port.
  std::string Served() {
    Client c;
    Frame f;
    if (!c.Connect("127.0.0.1", game_port_).ok() || !c.Call(kVersion, "", &f, 10000).ok()) return "";
    size_t b = f.body.find("version=");
    return b == std::string::npos ? f.body : f.body.substr(b + 8, f.body.find(' ', b) - b - 8);
  }
  void WaitPassed(const std::string& version) {
    ASSERT_TRUE(WaitFor([&] { return Plugin()["passed"]["version"].asString() == version; })) << View("game1");
  }
  void ReloadOk() {
    HttpResponse r = Http("POST", "/reload", R"({"plugin": "test_crash"})");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  // Segfaults game1's plugin; returns once the master runs a new process.
  void CrashGame() {
    const pid_t pid = Pid("game1");
    ASSERT_GT(pid, 0);
    Client c;
    ASSERT_TRUE(c.Connect("127.0.0.1", game_port_).ok());
    ASSERT_TRUE(c.Send(kSegfault, "").ok());
    ASSERT_TRUE(WaitFor([&] {
      Json::Value g = View("game1");
      return g["state"] == "running" && g["pid"].asInt64() != pid && !g["plugins"].empty();
    })) << Output();
  }
  std::string MasterLog() { return test::ReadFile(dir_.path() + "/logs/master.log"); }

  uint16_t game_port_ = 0;
};

TEST_F(MasterCrashTest, SegfaultInAPluginIsTheLastCrashInStatus) {
  StartCrashCluster(0);  // no probation: only the report
  CrashGame();
  Json::Value v = View("game1");
  EXPECT_EQ(v["last_crash"]["signal"].asInt(), SIGSEGV) << v;
  EXPECT_EQ(v["last_crash"]["plugin"], "test_crash") << v;
  EXPECT_EQ(v["last_crash"]["generation"].asUInt64(), 1u) << v;
  EXPECT_GT(v["last_crash"]["at"].asInt64(), 0) << v;
  EXPECT_EQ(v["last_exit"].asString().rfind("killed by signal 11", 0), 0u) << v;
  EXPECT_NE(MasterLog().find("in plugin test_crash generation 1"), std::string::npos) << MasterLog();
  EXPECT_NE(test::ReadFile(dir_.path() + "/logs/game1.log").find("SIGSEGV"), std::string::npos);
  EXPECT_EQ(Served(), "1.0");  // no probation, no rollback
}

TEST_F(MasterCrashTest, CrashInProbationRollsBackToTheLastBuildThatPassed) {
  StartCrashCluster(2);
  WaitPassed("1.0");
  Deploy("test_crash_v2");
  ReloadOk();
  WaitPassed("2.0");
  Deploy("test_crash_v3");
  ReloadOk();
  EXPECT_EQ(Served(), "3.0");
  EXPECT_EQ(View("game1")["probation"]["plugins"][0], "test_crash") << View("game1");

  CrashGame();
  EXPECT_EQ(Served(), "2.0");
  Json::Value v = View("game1");
  EXPECT_EQ(v["plugins"][0]["source"], "rollback") << v;
  ASSERT_EQ(v["rolled_back"].size(), 1u) << v;
  EXPECT_EQ(v["rolled_back"][0]["plugin"], "test_crash") << v;
  EXPECT_EQ(v["rollback"][0], "test_crash") << v;
  EXPECT_NE(MasterLog().find("rolling test_crash back to its last build that passed probation"), std::string::npos)
      << MasterLog();
}

TEST_F(MasterCrashTest, CrashRollsBackPastABuildThatNeverPassedAndRestartClearsTheOverride) {
  StartCrashCluster(2);
  WaitPassed("1.0");
  Deploy("test_crash_v2");
  ReloadOk();  // replaced before its window ends: it never passes
  Deploy("test_crash_v3");
  ReloadOk();
  CrashGame();
  EXPECT_EQ(Served(), "1.0");
  EXPECT_EQ(Plugin()["source"], "rollback");

  // A crash-restart keeps the override...
  CrashGame();
  EXPECT_EQ(Served(), "1.0");
  EXPECT_EQ(View("game1")["rolled_back"].size(), 1u) << View("game1");

  // ...an operator's restart clears it: the configured build serves again.
  std::string out;
  EXPECT_EQ(Ctl({"restart", "game1"}, &out), 0) << out;
  ASSERT_TRUE(WaitFor([&] { return View("game1")["state"] == "running" && !Plugin().isNull(); }));
  EXPECT_EQ(Served(), "3.0");
  Json::Value v = View("game1");
  EXPECT_EQ(v["plugins"][0]["source"], "config") << v;
  EXPECT_FALSE(v.isMember("rollback")) << v;
  EXPECT_NE(MasterLog().find("clears the rollback override of test_crash"), std::string::npos) << MasterLog();
}

TEST_F(MasterCrashTest, ReloadClearsTheRollbackOverride) {
  StartCrashCluster(1);
  WaitPassed("1.0");
  Deploy("test_crash_v2");
  ReloadOk();
  CrashGame();
  EXPECT_EQ(Served(), "1.0");

  Deploy("test_crash_v3");
  ReloadOk();
  EXPECT_FALSE(View("game1").isMember("rollback")) << View("game1");
  EXPECT_NE(MasterLog().find("clears the rollback override of test_crash"), std::string::npos) << MasterLog();
  // Past its window, a crash restarts the configured build, not a rollback.
  WaitPassed("3.0");
  SleepMs(1200);
  CrashGame();
  EXPECT_EQ(Served(), "3.0");
  EXPECT_EQ(Plugin()["source"], "config") << View("game1");
  EXPECT_EQ(View("game1")["rolled_back"].size(), 1u) << View("game1");
}

TEST_F(MasterCrashTest, PlantedPreviousBuildIsNeverLoadedByARollback) {
  StartCrashCluster(2);
  SleepMs(2600);  // v1 passes its probation
  Deploy("test_crash_v2");
  ReloadOk();
  // A valid build (3.0) planted, with the server's own owner and mode, where
  // the server keeps its rollback build, and where earlier versions kept it.
  for (const std::string& at :
       {dir_.path() + "/state/game1/passed/test_crash.so", dir_.path() + "/stage/game1-previous/test_crash.so"}) {
    std::filesystem::create_directories(std::filesystem::path(at).parent_path());
    InstallBuild(test::PluginPath("test_crash_v3"), at);
    ASSERT_EQ(chmod(at.c_str(), 0600), 0);
  }
  CrashGame();
  EXPECT_EQ(Served(), "2.0");  // the configured build, not the planted one
  std::string log = test::ReadFile(dir_.path() + "/logs/game1.log");
  EXPECT_NE(log.find("rollback build of test_crash refused"), std::string::npos) << log;
}

TEST_F(MasterTest, ControlMethodsAnswerOnlyTheMaster) {
  // "spy" is a configured node of another machine (the master does not
  // start it): the test plays it.
  WriteConfig({{"game1", ""}, {"spy", R"(, "host": "192.0.2.1")"}});
  StartMaster({"gate", "net", "game1"});
  const pid_t pid = Pid("game1");
  // A node of the cluster (it knows the secret and has a configured name)
  // that is not the master reaches game1 through the gate and tries to steer it.
  EventLoop loop;
  ChannelHub intruder(&loop, "spy", kSecret);
  intruder.Connect("gate", "127.0.0.1", gate_port_);
  ASSERT_TRUE(RunUntil(loop, [&] { return intruder.IsConnected("game1"); }));
  for (const char* method : {"lampyr.stop", "lampyr.status", "lampyr.reload", "lampyr.metrics"}) {
    bool done = false;
    Status result;
    intruder.Call("game1", method, "", [&](Status st, std::string) {
      done = true;
      result = st;
    });
    ASSERT_TRUE(RunUntil(loop, [&] { return done; })) << method;
    EXPECT_FALSE(result.ok()) << method;
    EXPECT_NE(result.message().find("only the master"), std::string::npos) << method << ": " << result.message();
  }
  SleepMs(200);
  Json::Value v = View("game1");
  EXPECT_EQ(v["state"], "running");
  EXPECT_EQ(v["pid"].asInt64(), pid);
}

// The /metrics merge alone: labels added to every sample form, one HELP and
// TYPE per family even when several processes define it.
TEST(MergePrometheusTest, LabelsEverySampleAndKeepsOneHeaderPerFamily) {
  const std::string own =
      "# HELP lampyr_master_server_up up\n# TYPE lampyr_master_server_up gauge\n"
      "lampyr_master_server_up{server=\"game1\"} 1\n"
      "# HELP lampyr_channel_links links\n# TYPE lampyr_channel_links gauge\nlampyr_channel_links 4\n";
  const std::string game =
      "# HELP lampyr_channel_links links\n# TYPE lampyr_channel_links gauge\nlampyr_channel_links 2\n"
      "# a comment\n"
      "# HELP rtt round trips\n# TYPE rtt histogram\n"
      "rtt_bucket{le=\"0.1\"} 3\nrtt_bucket{le=\"+Inf\"} 4\nrtt_sum 0.2\nrtt_count 4\n"
      "empty{} 7 1700000000000\n";
  const std::string out = MergePrometheus(own, {{"game1", game}, {"game2", "lampyr_channel_links 1\n"}});
  EXPECT_EQ(out,
            "# HELP lampyr_master_server_up up\n# TYPE lampyr_master_server_up gauge\n"
            "lampyr_master_server_up{server=\"game1\"} 1\n"
            "# HELP lampyr_channel_links links\n# TYPE lampyr_channel_links gauge\n"
            "lampyr_channel_links 4\n"
            "lampyr_channel_links{server=\"game1\"} 2\n"
            "lampyr_channel_links{server=\"game2\"} 1\n"
            "# HELP rtt round trips\n# TYPE rtt histogram\n"
            "rtt_bucket{server=\"game1\",le=\"0.1\"} 3\nrtt_bucket{server=\"game1\",le=\"+Inf\"} 4\n"
            "rtt_sum{server=\"game1\"} 0.2\nrtt_count{server=\"game1\"} 4\n"
            "empty{server=\"game1\"} 7 1700000000000\n");
}

TEST_F(MasterTest, MasterNeedsARootport) {
  test::WriteFile(conf_, R"({"servers": {"game1": {"builtins": {"echo": 1}}}})");
  auto p = Process::Start({test::LampyrBinary(), "--conf", conf_}, {}, dir_.path() + "/master.out");
  ASSERT_TRUE(p);
  int st = p->Wait(10000);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
  EXPECT_NE(Output().find("master.rootport: required"), std::string::npos) << Output();
}

// A state dir that is a symlink (it could point anywhere another user
// chose) stops the whole cluster before any server starts.
TEST_F(MasterTest, MasterRefusesASymlinkedStateDir) {
  WriteConfig({{"game1", ""}}, ", \"insecure_dev\": true");
  std::filesystem::create_directories(dir_.path() + "/elsewhere");
  ASSERT_EQ(symlink((dir_.path() + "/elsewhere").c_str(), (dir_.path() + "/state").c_str()), 0);
  auto p = Process::Start({test::LampyrBinary(), "--conf", conf_}, {}, dir_.path() + "/master.out");
  ASSERT_TRUE(p);
  int st = p->Wait(10000);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
  const std::string log = test::ReadFile(dir_.path() + "/logs/master.log");
  EXPECT_NE(log.find("master.state_dir: " + dir_.path() + "/state: is a symbolic link"), std::string::npos) << log;
  EXPECT_FALSE(test::WaitForPort("127.0.0.1", web_port_, 100));
}

}  // namespace
}  // namespace lampyr
