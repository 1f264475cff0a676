// The server's state directory (master.state_dir) against a hostile local
// user, with the real binary and real .so files: a directory another user
// made, a symlink or a group-writable folder is refused with a clear error;
// files the server writes there never follow a planted link; a racer
// replacing files in it while the server reloads never gets its build
// loaded; and a rollback loads the build that passed probation only after
// checking it again (owner, mode, link, bytes), never a planted one.
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <poll.h>

#include <atomic>
#include <cstring>
#include <map>
#include <thread>

#include "plugin_server.h"

namespace lampyr::test {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kVersion = 1;
constexpr uid_t kNobody = 65534;

std::string Version(const std::string& reply) {  // "version=1.0 gen=2" -> "1.0"
  size_t b = reply.find("version=");
  if (b == std::string::npos) return "";
  b += 8;
  return reply.substr(b, reply.find(' ', b) - b);
}

void MakePrivateDir(const std::string& path) {
  fs::create_directories(path);
  ASSERT_EQ(chmod(path.c_str(), 0700), 0);
}

class PluginStateTest : public PluginServerTest {
 protected:
  std::string state() const { return dir_.path() + "/state"; }

  // Runs test_crash v1 until its build passed probation (1 s), then stops
  // the server: state/game/passed/ holds v1.
  void RunUntilV1Passed() {
    Configure({{"test_crash", "test_crash", ""}}, ", \"probation_s\": 1");
    ASSERT_TRUE(Launch()) << Output();
    ASSERT_TRUE(WaitFor([&] { return PluginStatus("test_crash")["passed"]["version"].asString() == "1.0"; }))
        << Get("/status") << "\n" << Output();
    server_->Signal(SIGTERM);
    ASSERT_GE(server_->Wait(10000), 0);
  }

  std::string ServedVersion() {
    auto c = Connect();
    return Version(CallBody(*c, kVersion, ""));
  }
};

TEST_F(PluginStateTest, StateDirIsCreatedPrivateNextToTheConfig) {
  Configure({{"test_crash", "test_crash", ""}});
  ASSERT_TRUE(Launch()) << Output();
  for (const std::string& d : {state(), state() + "/game"}) {
    struct stat st;
    ASSERT_EQ(lstat(d.c_str(), &st), 0) << d << "\n" << Output();
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << d;
    EXPECT_EQ(st.st_mode & 07777, 0700u) << d;
    EXPECT_EQ(st.st_uid, geteuid()) << d;
  }
}

struct Planted {
  const char* name;
  bool needs_root;
  std::function<void(const std::string& state)> plant;
  const char* where;   // path (relative to the state dir's parent) the error names
  const char* reason;  // what it says is wrong
};

void PrintTo(const Planted& p, std::ostream* os) { *os << p.name; }

class StateDirRefusalTest : public PluginStateTest, public ::testing::WithParamInterface<Planted> {};

TEST_P(StateDirRefusalTest, ServerRefusesToStartAndSaysWhy) {
  if (GetParam().needs_root && geteuid() != 0) GTEST_SKIP() << "needs root to make files of another user";
  Configure({{"test_crash", "test_crash", ""}});
  GetParam().plant(state());
  std::string out = LaunchRefused();
  EXPECT_NE(out.find(dir_.path() + "/" + GetParam().where + ":"), std::string::npos) << out;
  EXPECT_NE(out.find(GetParam().reason), std::string::npos) << out;
  EXPECT_FALSE(WaitForPort("127.0.0.1", netport_, 100));
}

INSTANTIATE_TEST_SUITE_P(
    EveryPlant, StateDirRefusalTest,
    ::testing::Values(
        Planted{"OtherOwner", true,
                [](const std::string& s) {
                  MakePrivateDir(s);
                  ASSERT_EQ(chown(s.c_str(), kNobody, kNobody), 0);
                },
                "state", "owned by uid 65534"},
        Planted{"Symlink", false,
                [](const std::string& s) {
                  MakePrivateDir(s + "-real");
                  ASSERT_EQ(symlink((s + "-real").c_str(), s.c_str()), 0);
                },
                "state", "symbolic link"},
        Planted{"GroupWritable", false,
                [](const std::string& s) {
                  MakePrivateDir(s);
                  ASSERT_EQ(chmod(s.c_str(), 0770), 0);
                },
                "state", "writable by group or others"},
        Planted{"ServerDirOfOtherOwner", true,
                [](const std::string& s) {
                  MakePrivateDir(s + "/game");
                  ASSERT_EQ(chmod(s.c_str(), 0700), 0);
                  ASSERT_EQ(chown((s + "/game").c_str(), kNobody, kNobody), 0);
                },
                "state/game", "owned by uid 65534"},
        Planted{"ServerDirSymlink", false,
                [](const std::string& s) {
                  MakePrivateDir(s);
                  MakePrivateDir(s + "-elsewhere");
                  ASSERT_EQ(symlink((s + "-elsewhere").c_str(), (s + "/game").c_str()), 0);
                },
                "state/game", "symbolic link"}),
    [](const ::testing::TestParamInfo<Planted>& info) { return std::string(info.param.name); });

TEST_F(PluginStateTest, LampyrStageDirIsIgnored) {
  Configure({{"test_crash", "test_crash", ""}});
  const std::string old = dir_.path() + "/old-stage";
  ASSERT_TRUE(Launch({"LAMPYR_STAGE_DIR=" + old})) << Output();
  Json::Value a;
  ASSERT_EQ(Reload("test_crash", &a), 200) << a;
  EXPECT_FALSE(fs::exists(old));
  EXPECT_NE(Log().find("LAMPYR_STAGE_DIR is ignored"), std::string::npos) << Log();
}

// Replaces, as fast as inotify tells it, every file that appears anywhere
// under `root` with its own build (a hard link of `evil`, renamed over the
// name), and descends into every directory that appears.
class Racer {
 public:
  Racer(const std::string& root, const std::string& evil, const std::string& scratch) : evil_(evil), scratch_(scratch) {
    fs::create_directories(scratch_);
    fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    Watch(root);
    thread_ = std::thread([this] { Run(); });
  }
  ~Racer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  int attempts() const { return attempts_; }

 private:
  void Watch(const std::string& dir) {
    int wd = inotify_add_watch(fd_, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR);
    if (wd < 0) return;
    dirs_[wd] = dir;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.is_directory(ec) && !e.is_symlink(ec)) Watch(e.path().string());
      else Replace(e.path().string());
    }
  }
  void Replace(const std::string& path) {
    std::string tmp = scratch_ + "/evil." + std::to_string(++attempts_);
    if (link(evil_.c_str(), tmp.c_str()) != 0) return;
    if (rename(tmp.c_str(), path.c_str()) != 0) unlink(tmp.c_str());
  }
  void Run() {
    alignas(inotify_event) char buf[16384];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 5) <= 0) continue;
      ssize_t n = read(fd_, buf, sizeof buf);
      for (ssize_t off = 0; off < n;) {
        auto* ev = reinterpret_cast<inotify_event*>(buf + off);
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
        auto it = dirs_.find(ev->wd);
        if (it == dirs_.end() || ev->len == 0) continue;
        std::string path = it->second + "/" + ev->name;
        if (ev->mask & IN_ISDIR) Watch(path);
        else Replace(path);
      }
    }
  }

  std::string evil_, scratch_;
  int fd_ = -1;
  std::map<int, std::string> dirs_;
  std::atomic<bool> stop_{false};
  std::atomic<int> attempts_{0};
  std::thread thread_;
};

TEST_F(PluginStateTest, RacerInTheStateDirNeverGetsItsBuildLoaded) {
  Configure({{"room", "room", ""}}, ", \"probation_s\": 1");
  // The racer's build: a genuine "room" (it passes every check), version 2.0.
  const std::string evil = dir_.path() + "/evil.so";
  fs::copy_file(PluginPath("room_v2"), evil);
  MakePrivateDir(state());
  // LAMPYR_STAGE_DIR too: a host that still stages files under it stages
  // them where the racer waits.
  ASSERT_TRUE(Launch({"LAMPYR_STAGE_DIR=" + state()})) << Output();
  int evil_loads = 0;
  {
    Racer racer(state(), evil, dir_.path() + "/scratch");
    for (int i = 0; i < 20; ++i) {
      Deploy("room", "room");
      Json::Value a;
      ASSERT_EQ(Reload("room", &a), 200) << a;
      const std::string v = a["results"][0]["plugins"][0]["new_version"].asString();
      if (v != "1.0") ++evil_loads;
    }
    // Long enough for a generation to pass probation and be written out.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    std::printf("RACER attempts=%d evil_loads=%d of 20 reloads\n", racer.attempts(), evil_loads);
  }
  EXPECT_EQ(evil_loads, 0);
  EXPECT_EQ(PluginStatus("room")["version"].asString(), "1.0");
}

TEST_F(PluginStateTest, PassedBuildIsWrittenWithoutFollowingPlantedLinks) {
  Configure({{"test_crash", "test_crash", ""}}, ", \"probation_s\": 1");
  const std::string passed = state() + "/game/passed";
  MakePrivateDir(state());
  MakePrivateDir(state() + "/game");
  MakePrivateDir(passed);
  std::vector<std::string> victims;
  for (const char* name : {"test_crash.so", "test_crash.so.tmp", "test_crash.json", "test_crash.json.tmp"}) {
    std::string victim = dir_.path() + "/victim-" + name;
    WriteFile(victim, "victim");
    ASSERT_EQ(symlink(victim.c_str(), (passed + "/" + name).c_str()), 0);
    victims.push_back(victim);
  }
  ASSERT_TRUE(Launch()) << Output();
  ASSERT_TRUE(WaitFor([&] { return PluginStatus("test_crash")["passed"]["version"].asString() == "1.0"; }))
      << Get("/status") << "\n" << Output();
  for (const auto& v : victims) EXPECT_EQ(ReadFile(v), "victim") << v;
  struct stat st;
  ASSERT_EQ(lstat((passed + "/test_crash.so").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(ReadFile(passed + "/test_crash.so"), ReadFile(PluginPath("test_crash")));
}

TEST_F(PluginStateTest, RollbackLoadsTheBuildThatPassed) {
  RunUntilV1Passed();
  Deploy("test_crash_v2", "test_crash");
  ASSERT_TRUE(Launch({"LAMPYR_ROLLBACK=test_crash"})) << Output();
  EXPECT_EQ(ServedVersion(), "1.0");
  Json::Value st = PluginStatus("test_crash");
  EXPECT_EQ(st["source"].asString(), "rollback") << st;
  EXPECT_EQ(st["sha256"], st["passed"]["sha256"]) << st;
}

struct Tamper {
  const char* name;
  bool needs_root;
  std::function<void(const std::string& passed_so, const std::string& scratch)> apply;
  const char* reason;
};

void PrintTo(const Tamper& t, std::ostream* os) { *os << t.name; }

class PlantedPassedBuildTest : public PluginStateTest, public ::testing::WithParamInterface<Tamper> {};

// Whatever is planted, the rollback refuses it, says why, and serves the
// configured build instead.
TEST_P(PlantedPassedBuildTest, IsRefusedAndTheConfiguredBuildServes) {
  if (GetParam().needs_root && geteuid() != 0) GTEST_SKIP() << "needs root to make files of another user";
  RunUntilV1Passed();
  GetParam().apply(state() + "/game/passed/test_crash.so", dir_.path());
  Deploy("test_crash_v2", "test_crash");
  ASSERT_TRUE(Launch({"LAMPYR_ROLLBACK=test_crash"})) << Output();
  EXPECT_EQ(ServedVersion(), "2.0");
  EXPECT_EQ(PluginStatus("test_crash")["source"].asString(), "config");
  std::string log = Log();
  size_t at = log.find("rollback build of test_crash refused");
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_NE(log.find(GetParam().reason, at), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(
    EveryTamper, PlantedPassedBuildTest,
    ::testing::Values(
        Tamper{"OtherBytes", false,
               [](const std::string& so, const std::string& scratch) {
                 // Same owner, same mode: only the bytes differ (v3, a valid build).
                 fs::copy_file(PluginPath("test_crash_v3"), scratch + "/v3.so");
                 ASSERT_EQ(chmod((scratch + "/v3.so").c_str(), 0600), 0);
                 fs::rename(scratch + "/v3.so", so);
               },
               "does not match"},
        Tamper{"Symlink", false,
               [](const std::string& so, const std::string& scratch) {
                 fs::copy_file(PluginPath("test_crash_v3"), scratch + "/v3.so");
                 fs::remove(so);
                 ASSERT_EQ(symlink((scratch + "/v3.so").c_str(), so.c_str()), 0);
               },
               "symbolic link"},
        Tamper{"OtherOwner", true,
               [](const std::string& so, const std::string&) { ASSERT_EQ(chown(so.c_str(), kNobody, kNobody), 0); },
               "owned by uid 65534"},
        Tamper{"GroupWritable", false,
               [](const std::string& so, const std::string&) { ASSERT_EQ(chmod(so.c_str(), 0660), 0); },
               "writable by group or others"}),
    [](const ::testing::TestParamInfo<Tamper>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace lampyr::test
