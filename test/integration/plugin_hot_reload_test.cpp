// Hot reload against the real binary and real .so files (DESIGN §6):
// sessions and state survive v1 -> v2 -> v1, every refusal leaves the old
// generation serving with identical state, a throwing handler costs one
// error reply, a draining generation finishes what it promised, and 1,000
// reload cycles leave no library copies, fds or memory behind.
#include <gtest/gtest.h>
#include <json/json.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "admin/http_client.h"
#include "harness.h"
#include "lampyr_client.h"

namespace lampyr::test {
namespace {

namespace fs = std::filesystem;
using client::Client;
using client::Frame;

constexpr uint32_t kJoin = 100, kSay = 102, kStats = 104, kPushSay = 111;
constexpr uint32_t kErrorCommand = 0xFFFFFFFF;

// Generations of `plugin` mapped in the process: each is loaded from its own
// sealed memfd, which /proc/PID/maps shows as "/memfd:lampyr:<plugin>.gen<N>".
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

long ProcValue(pid_t pid, const std::string& key) {  // VmRSS etc. from /proc/PID/status, in kB
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
  return -1;
}

int CountFds(pid_t pid) {
  int n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
  return n;
}

int CountMaps(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  return static_cast<int>(std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

class PluginReloadTest : public ::testing::Test {
 protected:
  // Starts server "game" with `plugins` (name -> built library to deploy).
  void Start(const std::vector<std::pair<std::string, std::string>>& plugins, const std::string& extra_server = "") {
    netport_ = FreePort();
    webport_ = FreePort();
    std::string names, entries;
    for (const auto& [name, lib] : plugins) {
      Deploy(lib, name);
      names += std::string(names.empty() ? "" : ", ") + "\"" + name + "\"";
      entries += std::string(entries.empty() ? "" : ",\n") + "\"" + name + "\": {\"path\": \"deploy/lib" + name +
                 ".so\", \"drain_timeout_s\": 10}";
    }
    conf_ = dir_.path() + "/lampyr.json";
    WriteFile(conf_, "{\"master\": {\"admin_token\": \"tok\", \"insecure_dev\": true},\n"
                     "\"servers\": {\"game\": {\"netport\": " + std::to_string(netport_) +
                         ", \"webport\": " + std::to_string(webport_) + ", \"plugins\": [" + names + "]" +
                         extra_server + "}},\n\"plugins\": {" + entries + "}}\n");
    server_ = Process::Start({LampyrBinary(), "--conf", conf_, "--server", "game"}, {}, dir_.path() + "/game.out");
    ASSERT_TRUE(server_);
    ASSERT_TRUE(WaitForPort("127.0.0.1", netport_, 10000)) << ReadFile(dir_.path() + "/game.out");
    ASSERT_TRUE(WaitForPort("127.0.0.1", webport_, 10000));
  }

  // Installs a build at the configured path the way a deploy must: copy to
  // a temporary name, then rename over the path.
  void Deploy(const std::string& built, const std::string& name) {
    fs::create_directories(dir_.path() + "/deploy");
    std::string to = dir_.path() + "/deploy/lib" + name + ".so";
    fs::copy_file(PluginPath(built), to + ".tmp", fs::copy_options::overwrite_existing);
    fs::rename(to + ".tmp", to);
  }

  // POST /reload; returns the HTTP status and fills *answer.
  int Reload(const std::string& plugin, Json::Value* answer) {
    HttpResponse r;
    Status st = HttpCall("127.0.0.1", webport_, "POST", "/reload", "{\"plugin\": \"" + plugin + "\"}",
                         {{"Authorization", "Bearer tok"}}, &r, 30000);
    EXPECT_TRUE(st.ok()) << st.message();
    Json::CharReaderBuilder b;
    std::string errs;
    std::istringstream in(r.body);
    EXPECT_TRUE(Json::parseFromStream(b, in, answer, &errs)) << r.body;
    return r.status;
  }

  Json::Value PluginStatus(const std::string& plugin) {
    HttpResponse r;
    EXPECT_TRUE(HttpCall("127.0.0.1", webport_, "GET", "/status", "", {}, &r, 10000).ok());
    Json::Value v;
    Json::CharReaderBuilder b;
    std::string errs;
    std::istringstream in(r.body);
    EXPECT_TRUE(Json::parseFromStream(b, in, &v, &errs));
    for (const auto& p : v["servers"][0]["plugins"])
      if (p["name"].asString() == plugin) return p;
    return Json::Value();
  }

  std::unique_ptr<Client> Connect() {
    auto c = std::make_unique<Client>();
    EXPECT_TRUE(c->Connect("127.0.0.1", netport_).ok());
    return c;
  }

  std::string CallBody(Client& c, uint32_t command, const std::string& body) {
    Frame f;
    Status st = c.Call(command, body, &f, 10000);
    EXPECT_TRUE(st.ok()) << st.message();
    return f.body;
  }

  // "rooms=1 members=2 messages=2 checksum=… version=1.0 generation=1"
  static std::string Field(const std::string& stats, const std::string& key) {
    size_t p = stats.find(key + "=");
    if (p == std::string::npos) return "";
    p += key.size() + 1;
    return stats.substr(p, stats.find(' ', p) - p);
  }

  // Receives frames until a push of `command` whose body contains `text`;
  // false on timeout/close.
  static bool ReceivePush(Client& c, uint32_t command, const std::string& text) {
    for (int i = 0; i < 50; ++i) {
      Frame f;
      if (!c.Receive(&f, 5000).ok()) return false;
      if (f.command == command && f.body.find(text) != std::string::npos) return true;
    }
    return false;
  }

  TempDir dir_;
  std::string conf_;
  uint16_t netport_ = 0, webport_ = 0;
  std::unique_ptr<Process> server_;
};

TEST_F(PluginReloadTest, PlayersStayConnectedThroughV1ToV2ToV1) {
  Start({{"room", "room"}});
  auto alice = Connect(), bob = Connect();
  EXPECT_EQ(CallBody(*alice, kJoin, "lobby").rfind("welcome to lobby", 0), 0u);
  CallBody(*bob, kJoin, "lobby");
  CallBody(*alice, kSay, "hello");
  std::string before = CallBody(*alice, kStats, "");
  EXPECT_EQ(Field(before, "members"), "2");
  EXPECT_EQ(Field(before, "version"), "1.0");

  Deploy("room_v2", "room");  // replaced by rename while loaded
  Json::Value answer;
  ASSERT_EQ(Reload("room", &answer), 200) << answer.toStyledString();
  EXPECT_TRUE(answer["ok"].asBool());
  const Json::Value& r = answer["results"][0]["plugins"][0];
  EXPECT_EQ(r["old_version"].asString(), "1.0");
  EXPECT_EQ(r["new_version"].asString(), "2.0");
  EXPECT_EQ(r["generation"].asUInt64(), 2u);

  // Same connections, same room, new code.
  std::string after = CallBody(*bob, kStats, "");
  EXPECT_EQ(Field(after, "version"), "2.0");
  EXPECT_EQ(Field(after, "checksum"), Field(before, "checksum"));
  EXPECT_EQ(CallBody(*alice, kJoin, "lobby").rfind("v2: hello", 0), 0u);
  CallBody(*bob, kSay, "after reload");
  EXPECT_TRUE(ReceivePush(*alice, kPushSay, "after reload"));

  Deploy("room", "room");
  ASSERT_EQ(Reload("room", &answer), 200) << answer.toStyledString();
  std::string back = CallBody(*alice, kStats, "");
  EXPECT_EQ(Field(back, "version"), "1.0");
  EXPECT_EQ(Field(back, "generation"), "3");
  EXPECT_EQ(Field(back, "members"), "2");
  EXPECT_EQ(Field(back, "messages"), "2");
  EXPECT_TRUE(alice->connected());
  EXPECT_TRUE(bob->connected());
}

struct Refusal {
  const char* library;
  const char* reason;  // substring of the error the operator reads
};

class PluginRefusalTest : public PluginReloadTest, public ::testing::WithParamInterface<Refusal> {};

TEST_P(PluginRefusalTest, OldGenerationKeepsServingWithIdenticalState) {
  Start({{"room", "room"}});
  auto alice = Connect(), bob = Connect();
  CallBody(*alice, kJoin, "lobby");
  CallBody(*bob, kJoin, "lobby");
  CallBody(*bob, kSay, "before");
  std::string before = CallBody(*alice, kStats, "");

  Deploy(GetParam().library, "room");
  Json::Value answer;
  EXPECT_EQ(Reload("room", &answer), 409) << answer.toStyledString();
  EXPECT_FALSE(answer["ok"].asBool());
  std::string error = answer["results"][0]["plugins"][0]["error"].asString();
  EXPECT_NE(error.find(GetParam().reason), std::string::npos) << error;

  // Untouched: same generation, same state, same sessions.
  EXPECT_EQ(CallBody(*alice, kStats, ""), before);
  Json::Value st = PluginStatus("room");
  EXPECT_EQ(st["generation"].asUInt64(), 1u);
  EXPECT_EQ(st["last_error"].asString(), error);
  EXPECT_EQ(MappedCopies(server_->pid(), "room"), 1);
  CallBody(*bob, kSay, "still served");
  EXPECT_TRUE(ReceivePush(*alice, kPushSay, "still served"));

  // And the next good build goes in.
  Deploy("room_v2", "room");
  EXPECT_EQ(Reload("room", &answer), 200) << answer.toStyledString();
  EXPECT_EQ(Field(CallBody(*alice, kStats, ""), "version"), "2.0");
}

INSTANTIATE_TEST_SUITE_P(
    EveryRefusal, PluginRefusalTest,
    ::testing::Values(Refusal{"test_no_entry", "entry symbol"}, Refusal{"test_abi_major", "ABI mismatch"},
                      Refusal{"test_unique", "STB_GNU_UNIQUE"}, Refusal{"test_tls", "__cxa_thread_atexit"},
                      Refusal{"test_init_fail", "refusing to start on purpose"},
                      Refusal{"test_init_throw", "init failed"}, Refusal{"test_restore_fail", "restore_state failed"},
                      Refusal{"echo", "configured as 'room'"}),
    [](const ::testing::TestParamInfo<Refusal>& info) { return std::string(info.param.library); });

TEST_F(PluginReloadTest, ThrowingHandlerGetsAnErrorReplyAndTheProcessLives) {
  Start({{"test_throw", "test_throw"}});
  auto c = Connect();
  for (uint32_t cmd : {1u, 3u}) {
    Frame f;
    ASSERT_TRUE(c->Call(cmd, "", &f, 5000).ok());
    // The documented error reply: protocol.error_command, JSON with code 2.
    EXPECT_EQ(f.command, kErrorCommand);
    EXPECT_NE(f.body.find("\"code\":2"), std::string::npos) << f.body;
  }
  EXPECT_EQ(CallBody(*c, 4, ""), "answered");
  EXPECT_EQ(CallBody(*c, 5, ""), "scheduled");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the timer throws
  EXPECT_EQ(CallBody(*c, 2, ""), "alive gen=1");
  EXPECT_TRUE(server_->Running());
}

TEST_F(PluginReloadTest, DrainingGenerationFinishesItsWorkThenUnloads) {
  // A rootport gives the server a channel hub, so test_drain can call
  // test_sleeper's remote method on its own server.
  Start({{"test_drain", "test_drain"}, {"test_sleeper", "test_sleeper"}},
        ", \"rootport\": " + std::to_string(FreePort()));
  auto timer_client = Connect(), call_client = Connect();
  ASSERT_TRUE(timer_client->Send(33, "400").ok());  // answered from a one-shot timer
  ASSERT_TRUE(call_client->Send(31, "400").ok());   // answered when the remote call completes
  std::this_thread::sleep_for(std::chrono::milliseconds(50));

  Json::Value answer;
  ASSERT_EQ(Reload("test_drain", &answer), 200) << answer.toStyledString();
  Json::Value st = PluginStatus("test_drain");
  EXPECT_EQ(st["generation"].asUInt64(), 2u);
  ASSERT_EQ(st["draining"].size(), 1u);
  EXPECT_EQ(st["draining"][0]["generation"].asUInt64(), 1u);
  EXPECT_EQ(MappedCopies(server_->pid(), "test_drain"), 2);

  // New work goes to generation 2 at once.
  auto fresh = Connect();
  EXPECT_EQ(CallBody(*fresh, 32, "").rfind("gen=2", 0), 0u);

  // The old generation answers what it promised, while draining.
  Frame f;
  ASSERT_TRUE(timer_client->Receive(&f, 5000).ok());
  EXPECT_EQ(f.body, "gen=1 timer draining=1");
  ASSERT_TRUE(call_client->Receive(&f, 5000).ok());
  EXPECT_EQ(f.body, "gen=1 status=ok reply=400 draining=1");

  // Then it is unloaded: gone from /status and from the address space.
  for (int i = 0; i < 100 && PluginStatus("test_drain")["draining"].size() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  st = PluginStatus("test_drain");
  EXPECT_EQ(st["draining"].size(), 0u);
  EXPECT_EQ(st["pinned"].size(), 0u);
  EXPECT_EQ(MappedCopies(server_->pid(), "test_drain"), 1);
}

TEST_F(PluginReloadTest, ConcurrentReloadRequestsAreQueued) {
  Start({{"room", "room"}});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      Json::Value a;
      if (Reload("room", &a) == 200 && a["ok"].asBool()) ++ok;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(PluginStatus("room")["generation"].asUInt64(), 5u);
}

// Reloads while lampyr-bench keeps 100 connections x 4 requests in flight
// against the echo plugin: every request gets its exact reply (lampyr-bench
// checks each one and exits non-zero on any error or silent connection).
TEST_F(PluginReloadTest, ReloadsUnderLoadLoseNoRequest) {
  Start({{"echo", "echo"}});
  const std::string out = dir_.path() + "/bench.out";
  auto bench = Process::Start({std::string(LAMPYR_BIN_DIR) + "/lampyr-bench", "--port", std::to_string(netport_),
                               "--connections", "100", "--depth", "4", "--duration", "3", "--warmup", "0.2",
                               "--command", "1", "--json"},
                              {}, out);
  ASSERT_TRUE(bench);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int reloads = 0;
  for (int i = 0; i < 20 && bench->Running(); ++i) {
    Deploy("echo", "echo");
    Json::Value a;
    ASSERT_EQ(Reload("echo", &a), 200) << a.toStyledString();
    ++reloads;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int st = bench->Wait(60000);
  std::string result = ReadFile(out);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << result;
  EXPECT_NE(result.find("\"errors\":0,"), std::string::npos) << result;
  EXPECT_NE(result.find("\"silent_connections\":0"), std::string::npos) << result;
  EXPECT_EQ(result.find("\"requests\":0,"), std::string::npos) << result;
  EXPECT_GE(reloads, 10);
  EXPECT_EQ(PluginStatus("echo")["generation"].asUInt64(), static_cast<uint64_t>(reloads + 1));
}

// 1,000 reload cycles v1 <-> v2 with players connected and the room's
// repeating timer running: never more than two copies mapped, exactly one
// once the old generation retired, no disconnects, state carried through,
// and flat RSS / fds / mappings (the drift is printed).
TEST_F(PluginReloadTest, SoakThousandReloadCycles) {
  int cycles = 1000;
  if (const char* env = std::getenv("LAMPYR_SOAK_CYCLES")) cycles = std::atoi(env);
  Start({{"room", "room"}});
  auto alice = Connect(), bob = Connect();
  CallBody(*alice, kJoin, "lobby");
  CallBody(*bob, kJoin, "lobby");
  CallBody(*alice, kSay, "soak");
  std::string checksum = Field(CallBody(*alice, kStats, ""), "checksum");
  pid_t pid = server_->pid();

  // Warm up (first reload allocates the previous-build copy, caches...).
  Json::Value a;
  Deploy("room_v2", "room");
  ASSERT_EQ(Reload("room", &a), 200);
  Deploy("room", "room");
  ASSERT_EQ(Reload("room", &a), 200);
  long rss0 = ProcValue(pid, "VmRSS");
  int fds0 = CountFds(pid), maps0 = CountMaps(pid);

  int max_copies = 0;
  for (int i = 0; i < cycles; ++i) {
    Deploy(i % 2 == 0 ? "room_v2" : "room", "room");
    ASSERT_EQ(Reload("room", &a), 200) << "cycle " << i << ": " << a.toStyledString();
    max_copies = std::max(max_copies, MappedCopies(pid, "room"));
    // The drained generation retires one loop turn after the swap.
    int copies = 0;
    for (int t = 0; t < 200; ++t) {
      copies = MappedCopies(pid, "room");
      if (copies == 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(copies, 1) << "cycle " << i;
    if (i % 100 == 0) {
      ASSERT_EQ(Field(CallBody(*bob, kStats, ""), "checksum"), checksum) << "cycle " << i;
    }
  }
  EXPECT_LE(max_copies, 2);
  long rss1 = ProcValue(pid, "VmRSS");
  int fds1 = CountFds(pid), maps1 = CountMaps(pid);
  std::printf("SOAK cycles=%d rss_kb %ld -> %ld (drift %+ld) fds %d -> %d maps %d -> %d\n", cycles, rss0, rss1,
              rss1 - rss0, fds0, fds1, maps0, maps1);
  // One admin connection may still be open at either sample; a leak per
  // reload would show up as hundreds.
  EXPECT_LE(fds1, fds0 + 1);
#if !defined(__SANITIZE_ADDRESS__)
  // (Under ASan freed memory sits in its quarantine and every load maps
  // shadow, so growth says nothing there.) A pinned library would add its
  // mappings and data each cycle: 1,000 cycles would grow by tens of MB.
  EXPECT_LE(maps1, maps0 + 2);  // the allocator may map an arena; copies of the plugin may not
  EXPECT_LT(rss1 - rss0, 8 * 1024L) << "kB";
#endif
  // Nobody was disconnected and the state went through every cycle.
  EXPECT_EQ(Field(CallBody(*alice, kStats, ""), "checksum"), checksum);
  CallBody(*alice, kSay, "done");
  EXPECT_TRUE(ReceivePush(*bob, kPushSay, "done"));
  Json::Value st = PluginStatus("room");
  EXPECT_EQ(st["pinned"].size(), 0u);
  EXPECT_EQ(st["generation"].asUInt64(), static_cast<uint64_t>(cycles + 3));
}

}  // namespace
}  // namespace lampyr::test
