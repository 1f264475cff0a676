// The config loader (DESIGN §2): a good cluster config loads completely; every
// error names its exact JSON path; several errors are reported together;
// relative paths resolve against the config's directory; secrets come from the
// environment. The last tests run the real `lampyr --check`.
#include "core/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace lampyr {
namespace {
namespace fs = std::filesystem;

class TmpDir {
 public:
  TmpDir() {
    std::string tmpl = (fs::temp_directory_path() / "lampyr-config-test-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    if (!p) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TmpDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TmpDir(const TmpDir&) = delete;
  TmpDir& operator=(const TmpDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void Write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// The DESIGN example, with every section, plugins living next to conf/.
const char* kGoodConfig = R"({
  "master":  {"roothost": "127.0.0.1", "rootport": 9999, "webport": 9998,
              "admin_token": "file-token", "cluster_secret": "file-secret", "log": "../logs/master.log"},
  "servers": {
    "gate":  {"rootport": 10000, "plugins": ["gate_router"], "log": "../logs/gate.log"},
    "net":   {"netport": 11009, "remoteport": [{"rootname": "gate", "rootport": 10000}],
              "forward": "gate", "builtins": {"echo": 1}},
    "game1": {"remoteport": [{"rootname": "gate"}],
              "db": true, "mem": 1, "plugins": ["room", "account"], "log_level": "debug"}
  },
  "plugins": {"room": {"path": "../plugins/libroom.so", "config": {"max_rooms": 100}},
              "account": {"path": "../plugins/libaccount.so", "drain_timeout_s": 2.5},
              "gate_router": {"path": "../plugins/libgate_router.so"}},
  "protocol": {"head": [1, 2, 3, 4], "proto_version": 5, "server_version": 6,
               "max_body": 65536, "idle_timeout_s": 120, "heartbeat_command": 99},
  "db":        {"host": "127.0.0.1", "port": 3306, "user": "u", "passwd": "file-passwd", "db": "game",
                "charset": "utf8mb4", "pool": 4},
  "memcached": {"urls": ["127.0.0.1:11211"], "hostname": "game"},
  "tables":    {"player": {"pk": "id", "fk": "account_id", "autoinc": true}}
})";

// A config laid out as <tmp>/conf/cluster.json with <tmp>/plugins/*.so.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conf_ = tmp_.path() + "/conf/cluster.json";
    for (const char* p : {"libroom.so", "libaccount.so", "libgate_router.so"}) Write(tmp_.path() + "/plugins/" + p, "");
  }

  // Loads `text` as the config file; returns the status, fills issues_.
  Status Load(const std::string& text, bool apply_env = false) {
    Write(conf_, text);
    issues_.clear();
    config_ = Config();
    return LoadConfig(conf_, &config_, &issues_, apply_env);
  }

  std::vector<ConfigIssue> Errors() const {
    std::vector<ConfigIssue> out;
    for (const auto& i : issues_)
      if (!i.warning) out.push_back(i);
    return out;
  }

  // The single error of the last load; fails the test if there is not exactly one.
  ConfigIssue OnlyError() const {
    auto errors = Errors();
    EXPECT_EQ(errors.size(), 1u) << Dump();
    return errors.empty() ? ConfigIssue{} : errors.front();
  }

  bool HasError(const std::string& path, const std::string& reason_part = "") const {
    for (const auto& i : issues_)
      if (!i.warning && i.path == path && i.reason.find(reason_part) != std::string::npos) return true;
    return false;
  }

  std::string Dump() const {
    std::string s;
    for (const auto& i : issues_) s += "  " + i.ToString() + "\n";
    return s;
  }

  // kGoodConfig with `from` replaced by `to` (must occur).
  static std::string Edit(const std::string& from, const std::string& to, std::string text = kGoodConfig) {
    auto pos = text.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    if (pos != std::string::npos) text.replace(pos, from.size(), to);
    return text;
  }

  TmpDir tmp_;
  std::string conf_;
  Config config_;
  std::vector<ConfigIssue> issues_;
};

TEST_F(ConfigTest, GoodFullConfigLoads) {
  Status st = Load(kGoodConfig);
  ASSERT_TRUE(st.ok()) << st.message() << "\n" << Dump();
  EXPECT_TRUE(issues_.empty()) << Dump();

  EXPECT_EQ(config_.path, fs::path(conf_).lexically_normal().string());
  EXPECT_EQ(config_.master.rootport, 9999);
  EXPECT_EQ(config_.master.webport, 9998);
  EXPECT_EQ(config_.master.admin_token, "file-token");

  ASSERT_EQ(config_.servers.size(), 3u);
  // Node ids follow name order, so every process derives the same ones.
  EXPECT_EQ(config_.servers.at("game1").node_id, 1);
  EXPECT_EQ(config_.servers.at("gate").node_id, 2);
  EXPECT_EQ(config_.servers.at("net").node_id, 3);

  const ServerConfig& net = config_.servers.at("net");
  EXPECT_EQ(net.netport, 11009);
  EXPECT_EQ(net.forward, "gate");
  EXPECT_EQ(net.host, "127.0.0.1");
  EXPECT_EQ(net.builtins.at("echo"), 1u);
  ASSERT_EQ(net.remoteport.size(), 1u);
  EXPECT_EQ(net.remoteport[0].rootname, "gate");
  EXPECT_EQ(net.remoteport[0].rootport, 10000);

  const ServerConfig& game1 = config_.servers.at("game1");
  // rootport/roothost of a link default to the root server's.
  ASSERT_EQ(game1.remoteport.size(), 1u);
  EXPECT_EQ(game1.remoteport[0].rootport, 10000);
  EXPECT_EQ(game1.remoteport[0].roothost, "127.0.0.1");
  EXPECT_TRUE(game1.db);
  EXPECT_TRUE(game1.mem);  // Firefly writes 1/0
  EXPECT_EQ(game1.plugins, (std::vector<std::string>{"room", "account"}));
  EXPECT_EQ(game1.log_level, "debug");

  ASSERT_EQ(config_.plugins.size(), 3u);
  EXPECT_EQ(config_.plugins.at("room").config["max_rooms"].asInt(), 100);
  EXPECT_DOUBLE_EQ(config_.plugins.at("account").drain_timeout_s, 2.5);

  const std::array<uint8_t, 4> head{1, 2, 3, 4};
  EXPECT_EQ(config_.protocol.head, head);
  EXPECT_EQ(config_.protocol.proto_version, 5);
  EXPECT_EQ(config_.protocol.server_version, 6u);
  EXPECT_EQ(config_.protocol.max_body, 65536u);
  EXPECT_EQ(config_.protocol.heartbeat_command, 99u);

  EXPECT_TRUE(config_.db.present);
  EXPECT_EQ(config_.db.user, "u");
  EXPECT_EQ(config_.db.db, "game");
  EXPECT_EQ(config_.db.passwd, "file-passwd");
  EXPECT_EQ(config_.memcached.urls, (std::vector<std::string>{"127.0.0.1:11211"}));
  EXPECT_EQ(config_.memcached.hostname, "game");
  ASSERT_EQ(config_.tables.count("player"), 1u);
  EXPECT_EQ(config_.tables.at("player").pk, "id");
  EXPECT_EQ(config_.tables.at("player").fk, "account_id");
  EXPECT_TRUE(config_.tables.at("player").autoinc);
}

TEST_F(ConfigTest, RelativePathsResolveAgainstTheConfigDirectory) {
  // Load through a relative file name from an unrelated working directory.
  const fs::path old_cwd = fs::current_path();
  fs::create_directories(tmp_.path() + "/elsewhere");
  Write(conf_, kGoodConfig);
  fs::current_path(tmp_.path() + "/elsewhere");
  Status st = LoadConfig("../conf/cluster.json", &config_, &issues_, false);
  fs::current_path(old_cwd);
  ASSERT_TRUE(st.ok()) << Dump();
  const std::string root = fs::path(tmp_.path()).lexically_normal().string();
  EXPECT_EQ(config_.plugins.at("room").path, root + "/plugins/libroom.so");
  EXPECT_EQ(config_.master.log, root + "/logs/master.log");
  EXPECT_EQ(config_.servers.at("gate").log, root + "/logs/gate.log");
  EXPECT_EQ(config_.dir, root + "/conf");
  // Absolute paths stay as written.
  ASSERT_TRUE(Load(Edit("../plugins/libroom.so", tmp_.path() + "/plugins/libroom.so")).ok()) << Dump();
  EXPECT_EQ(config_.plugins.at("room").path, root + "/plugins/libroom.so");
}

// The state dir (docs/plugins.md) is "state" next to the config unless set;
// the stall threshold of a server is the master's unless it has its own.
TEST_F(ConfigTest, StateDirAndLoopStallDefaults) {
  ASSERT_TRUE(Load(kGoodConfig).ok()) << Dump();
  const std::string root = fs::path(tmp_.path()).lexically_normal().string();
  EXPECT_EQ(config_.master.state_dir, root + "/conf/state");
  EXPECT_EQ(config_.master.loop_stall_ms, 100u);
  EXPECT_EQ(config_.servers.at("gate").loop_stall_ms, 100u);
  std::string text = Edit("\"log\": \"../logs/master.log\"",
                          "\"log\": \"../logs/master.log\", \"state_dir\": \"../var\", \"loop_stall_ms\": 250");
  text = Edit("\"plugins\": [\"gate_router\"]", "\"plugins\": [\"gate_router\"], \"loop_stall_ms\": 0", text);
  ASSERT_TRUE(Load(text).ok()) << Dump();
  EXPECT_EQ(Dump().find("unknown key"), std::string::npos) << Dump();
  EXPECT_EQ(config_.master.state_dir, root + "/var");
  EXPECT_EQ(config_.servers.at("gate").loop_stall_ms, 0u);     // its own: off
  EXPECT_EQ(config_.servers.at("net").loop_stall_ms, 250u);    // the master's
  ASSERT_FALSE(Load(Edit("\"rootport\": 9999", "\"rootport\": 9999, \"loop_stall_ms\": -1")).ok());
  EXPECT_TRUE(HasError("master.loop_stall_ms", "expected integer")) << Dump();
}

TEST_F(ConfigTest, UnknownServerInRemoteport) {
  EXPECT_FALSE(Load(Edit(R"("remoteport": [{"rootname": "gate"}])", R"("remoteport": [{"rootname": "gaet"}])")).ok());
  ConfigIssue e = OnlyError();
  EXPECT_EQ(e.path, "servers.game1.remoteport[0].rootname");
  EXPECT_NE(e.reason.find("unknown server \"gaet\""), std::string::npos) << e.reason;
}

TEST_F(ConfigTest, DuplicatePort) {
  EXPECT_FALSE(Load(Edit(R"("netport": 11009)", R"("netport": 10000)")).ok());
  ConfigIssue e = OnlyError();
  // gate (name order) claims 10000 first; net's netport is the duplicate.
  EXPECT_EQ(e.path, "servers.net.netport");
  EXPECT_EQ(e.reason, "port 10000 is already used by servers.gate.rootport");
}

TEST_F(ConfigTest, DuplicatePortWithMaster) {
  EXPECT_FALSE(Load(Edit(R"("netport": 11009)", R"("netport": 9998)")).ok());
  EXPECT_EQ(OnlyError().path, "servers.net.netport");
  EXPECT_TRUE(HasError("servers.net.netport", "master.webport")) << Dump();
}

TEST_F(ConfigTest, PortOutOfRangeOrWrongType) {
  for (const char* bad : {"70000", "65536", "0", "-1", "\"9998\"", "9998.5", "true", "null", "[9998]"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(Load(Edit(R"("webport": 9998)", std::string(R"("webport": )") + bad)).ok());
    ConfigIssue e = OnlyError();
    EXPECT_EQ(e.path, "master.webport");
    EXPECT_EQ(e.reason, "expected integer 1..65535");
  }
  EXPECT_FALSE(Load(Edit(R"("port": 3306)", R"("port": "3306")")).ok());
  EXPECT_EQ(OnlyError().path, "db.port");
  // A server's port: reported at its own path (other errors may follow from it).
  EXPECT_FALSE(Load(Edit(R"("netport": 11009)", R"("netport": 11009.5)")).ok());
  ASSERT_FALSE(Errors().empty());
  EXPECT_EQ(Errors().front().path, "servers.net.netport") << Dump();
  EXPECT_EQ(Errors().front().reason, "expected integer 1..65535");
}

TEST_F(ConfigTest, MissingPluginPath) {
  EXPECT_FALSE(Load(Edit(R"("gate_router": {"path": "../plugins/libgate_router.so"})", R"("gate_router": {})")).ok());
  ConfigIssue e = OnlyError();
  EXPECT_EQ(e.path, "plugins.gate_router.path");
  EXPECT_EQ(e.reason, "required");
}

TEST_F(ConfigTest, PluginFileMissing) {
  fs::remove(tmp_.path() + "/plugins/libaccount.so");
  EXPECT_FALSE(Load(kGoodConfig).ok());
  ConfigIssue e = OnlyError();
  EXPECT_EQ(e.path, "plugins.account.path");
  EXPECT_NE(e.reason.find("no such file"), std::string::npos) << e.reason;
  // The resolved absolute path, so the operator sees where it looked.
  EXPECT_NE(e.reason.find(fs::path(tmp_.path()).lexically_normal().string() + "/plugins/libaccount.so"),
            std::string::npos)
      << e.reason;
}

TEST_F(ConfigTest, PluginPathThatIsADirectory) {
  fs::create_directories(tmp_.path() + "/plugins/dir.so");
  EXPECT_FALSE(Load(Edit("../plugins/libroom.so", "../plugins/dir.so")).ok());
  EXPECT_EQ(OnlyError().path, "plugins.room.path");
}

TEST_F(ConfigTest, UnknownPluginInAServer) {
  EXPECT_FALSE(Load(Edit(R"(["room", "account"])", R"(["room", "acount"])")).ok());
  ConfigIssue e = OnlyError();
  EXPECT_EQ(e.path, "servers.game1.plugins[1]");
  EXPECT_NE(e.reason.find("unknown plugin \"acount\""), std::string::npos) << e.reason;
}

TEST_F(ConfigTest, ForwardWithoutNetport) {
  EXPECT_FALSE(Load(Edit(R"("db": true,)", R"("db": true, "forward": "gate",)")).ok());
  ConfigIssue e = OnlyError();
  EXPECT_EQ(e.path, "servers.game1.forward");
  EXPECT_NE(e.reason.find("netport"), std::string::npos) << e.reason;
}

TEST_F(ConfigTest, ForwardNotInRemoteport) {
  EXPECT_FALSE(Load(Edit(R"("forward": "gate")", R"("forward": "game1")")).ok());
  ConfigIssue e = OnlyError();
  EXPECT_EQ(e.path, "servers.net.forward");
  EXPECT_NE(e.reason.find("remoteport"), std::string::npos) << e.reason;
}

TEST_F(ConfigTest, BadProtocolHead) {
  struct Case {
    const char* head;
    const char* path;
  } cases[] = {
      {"[1, 2, 3]", "protocol.head"},
      {"[1, 2, 3, 4, 5]", "protocol.head"},
      {"\"abcd\"", "protocol.head"},
      {"[1, 256, 3, 4]", "protocol.head[1]"},
      {"[1, 2, -1, 4]", "protocol.head[2]"},
      {"[1, 2, 3, \"4\"]", "protocol.head[3]"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.head);
    EXPECT_FALSE(Load(Edit("[1, 2, 3, 4]", c.head)).ok());
    EXPECT_EQ(OnlyError().path, c.path);
  }
}

TEST_F(ConfigTest, ProtocolConnectionLimits) {
  // Defaults (docs/protocol.md "Limits"): rate off, the rest on.
  ASSERT_TRUE(Load(kGoodConfig).ok()) << Dump();
  EXPECT_EQ(config_.protocol.max_connections_per_ip, 256u);
  EXPECT_EQ(config_.protocol.output_budget_bytes, 256u << 20);
  EXPECT_EQ(config_.protocol.rate.per_s, 0u);
  const std::string limits = R"("heartbeat_command": 99, "max_connections_per_ip": 0, "sndbuf_bytes": 0,
      "rcvbuf_bytes": 32768, "output_high_water_bytes": 8192, "output_budget_bytes": 68719476736,
      "rate": {"per_s": 50})";
  ASSERT_TRUE(Load(Edit(R"("heartbeat_command": 99)", limits)).ok()) << Dump();
  EXPECT_EQ(config_.protocol.max_connections_per_ip, 0u);
  EXPECT_EQ(config_.protocol.sndbuf_bytes, 0u);
  EXPECT_EQ(config_.protocol.rcvbuf_bytes, 32768u);
  EXPECT_EQ(config_.protocol.output_high_water_bytes, 8192u);
  EXPECT_EQ(config_.protocol.output_budget_bytes, uint64_t{64} << 30);
  EXPECT_EQ(config_.protocol.rate.per_s, 50u);
  EXPECT_EQ(config_.protocol.rate.burst, 50u);  // one second's worth unless given
  struct Case {
    const char* text;
    const char* path;
  } cases[] = {
      {R"("rate": 10)", "protocol.rate"},
      {R"("rate": {"per_s": -1})", "protocol.rate.per_s"},
      {R"("rate": {"per_s": 10, "burst": 0})", "protocol.rate.burst"},
      {R"("max_connections_per_ip": "many")", "protocol.max_connections_per_ip"},
      {R"("sndbuf_bytes": 1073741824)", "protocol.sndbuf_bytes"},
      {R"("output_high_water_bytes": 10)", "protocol.output_high_water_bytes"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_FALSE(Load(Edit(R"("heartbeat_command": 99)", std::string(R"("heartbeat_command": 99, )") + c.text)).ok());
    EXPECT_EQ(OnlyError().path, c.path);
  }
}

TEST_F(ConfigTest, WebSocketKeys) {
  ASSERT_TRUE(Load(kGoodConfig).ok()) << Dump();
  EXPECT_EQ(config_.protocol.ws_path, "/");
  EXPECT_TRUE(config_.protocol.ws_origins.empty());
  const std::string ws = R"("heartbeat_command": 99, "ws_path": "/game", "ws_origins": ["https://play.example"],
      "ws_tls": {"cert": "tls/chain.pem", "key": "/etc/lampyr/key.pem"})";
  ASSERT_TRUE(Load(Edit(R"("heartbeat_command": 99)", ws)).ok()) << Dump();
  EXPECT_EQ(config_.protocol.ws_path, "/game");
  EXPECT_EQ(config_.protocol.ws_origins, std::vector<std::string>{"https://play.example"});
  EXPECT_EQ(config_.protocol.ws_tls_cert, config_.dir + "/tls/chain.pem");  // relative to the config file
  EXPECT_EQ(config_.protocol.ws_tls_key, "/etc/lampyr/key.pem");
  struct Case {
    const char* text;
    const char* path;
  } cases[] = {
      {R"("ws_path": "game")", "protocol.ws_path"},
      {R"("ws_path": "/a b")", "protocol.ws_path"},
      {R"("ws_path": "/a?b")", "protocol.ws_path"},
      {R"("ws_origins": "https://x")", "protocol.ws_origins"},
      {R"("ws_tls": {"cert": "c.pem"})", "protocol.ws_tls.key"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_FALSE(Load(Edit(R"("heartbeat_command": 99)", std::string(R"("heartbeat_command": 99, )") + c.text)).ok());
    EXPECT_EQ(OnlyError().path, c.path);
  }
}

TEST_F(ConfigTest, InvalidJsonNamesTheLine) {
  std::string text = kGoodConfig;
  const size_t at = text.find("\"protocol\"");
  text.insert(at, "oops ");
  const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
  EXPECT_FALSE(Load(text).ok());
  ConfigIssue e = OnlyError();
  EXPECT_EQ(e.path, "(document)");
  EXPECT_NE(e.reason.find("invalid JSON"), std::string::npos) << e.reason;
  EXPECT_NE(e.reason.find("Line " + std::to_string(line)), std::string::npos) << e.reason;
}

TEST_F(ConfigTest, DuplicateKeysAreAnError) {
  // jsoncpp would silently keep the last one; a duplicated server is a mistake.
  EXPECT_FALSE(Load(Edit(R"("gate":  {"rootport": 10000,)", R"("gate": {}, "gate":  {"rootport": 10000,)")).ok());
  ConfigIssue e = OnlyError();
  EXPECT_EQ(e.path, "(document)");
  EXPECT_NE(e.reason.find("Duplicate key"), std::string::npos) << e.reason;
  EXPECT_NE(e.reason.find("gate"), std::string::npos) << e.reason;
}

TEST_F(ConfigTest, EmptyOrNonObjectDocument) {
  for (const char* text : {"", "[]", "42", "null"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(Load(text).ok());
    EXPECT_EQ(OnlyError().path, "(document)");
  }
}

TEST_F(ConfigTest, UnreadableFile) {
  Config c;
  std::vector<ConfigIssue> issues;
  EXPECT_FALSE(LoadConfig(tmp_.path() + "/nope.json", &c, &issues).ok());
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].path, tmp_.path() + "/nope.json");
}

TEST_F(ConfigTest, SeveralErrorsAreAllReported) {
  std::string text = Edit(R"("webport": 9998)", R"("webport": 123456)");
  text = Edit(R"(["room", "account"])", R"(["room", "ghost"])", text);
  text = Edit("[1, 2, 3, 4]", "[1, 2]", text);
  text = Edit(R"("rootname": "gate"})", R"("rootname": "nobody"})", text);
  text = Edit(R"("user": "u",)", "", text);
  EXPECT_FALSE(Load(text).ok());
  EXPECT_TRUE(HasError("master.webport", "1..65535")) << Dump();
  EXPECT_TRUE(HasError("servers.game1.plugins[1]", "ghost")) << Dump();
  EXPECT_TRUE(HasError("protocol.head")) << Dump();
  EXPECT_TRUE(HasError("servers.game1.remoteport[0].rootname", "nobody")) << Dump();
  EXPECT_TRUE(HasError("db.user", "required")) << Dump();
  EXPECT_EQ(Errors().size(), 5u) << Dump();
}

TEST_F(ConfigTest, UnknownKeysAreWarningsNotErrors) {
  Status st = Load(Edit(R"("log_level": "debug")", R"("log_level": "debug", "colour": "blue")"));
  ASSERT_TRUE(st.ok()) << Dump();
  ASSERT_EQ(issues_.size(), 1u);
  EXPECT_TRUE(issues_[0].warning);
  EXPECT_EQ(issues_[0].path, "servers.game1.colour");
}

// Found by fuzz_config: an empty key produced an issue with an empty path.
TEST_F(ConfigTest, EmptyKeysStillHaveAPath) {
  ASSERT_TRUE(Load(Edit(R"("tables":)", R"("": 1, "tables":)")).ok()) << Dump();
  ASSERT_EQ(issues_.size(), 1u);
  EXPECT_EQ(issues_[0].path, "\"\"");
  EXPECT_FALSE(Load(Edit(R"("gate":  {)", R"("": {}, "gate":  {)")).ok());
  EXPECT_TRUE(HasError("servers.\"\"", "server name")) << Dump();
  for (const auto& i : issues_) EXPECT_FALSE(i.path.empty()) << i.ToString();
}

TEST_F(ConfigTest, CrossReferenceErrors) {
  EXPECT_FALSE(Load(Edit(R"("memcached": {"urls": ["127.0.0.1:11211"], "hostname": "game"},)", "")).ok());
  EXPECT_EQ(OnlyError().path, "servers.game1.mem");
  EXPECT_FALSE(Load(Edit(R"("urls": ["127.0.0.1:11211"])", R"("urls": ["127.0.0.1"])")).ok());
  EXPECT_EQ(OnlyError().path, "memcached.urls[0]");
  EXPECT_FALSE(Load(R"({"servers": {}})").ok());
  EXPECT_EQ(OnlyError().path, "servers");
  EXPECT_FALSE(Load(R"({"master": {}})").ok());
  ASSERT_FALSE(Errors().empty());
  EXPECT_EQ(Errors().front().path, "servers");
  EXPECT_EQ(Errors().front().reason, "required");
}

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old, had_ = true;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_, old_.c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

TEST_F(ConfigTest, EnvironmentOverridesSecrets) {
  ScopedEnv a("LAMPYR_ADMIN_TOKEN", "env-token");
  ScopedEnv b("LAMPYR_DB_PASSWD", "env-passwd");
  ScopedEnv c("LAMPYR_CLUSTER_SECRET", "env-secret");
  ASSERT_TRUE(Load(kGoodConfig, /*apply_env=*/true).ok()) << Dump();
  EXPECT_EQ(config_.master.admin_token, "env-token");
  EXPECT_EQ(config_.db.passwd, "env-passwd");
  EXPECT_EQ(config_.master.cluster_secret, "env-secret");
  // Without apply_env the file's values stand.
  ASSERT_TRUE(Load(kGoodConfig, /*apply_env=*/false).ok());
  EXPECT_EQ(config_.master.admin_token, "file-token");
  EXPECT_EQ(config_.db.passwd, "file-passwd");
  EXPECT_EQ(config_.master.cluster_secret, "file-secret");
}

TEST_F(ConfigTest, EmptyEnvironmentValueDoesNotEraseTheFileSecret) {
  ScopedEnv a("LAMPYR_ADMIN_TOKEN", "");
  ASSERT_TRUE(Load(kGoodConfig, /*apply_env=*/true).ok()) << Dump();
  EXPECT_EQ(config_.master.admin_token, "file-token");
}

// Firefly's "app"/"reload" name Python modules: next to "plugins" they are
// leftovers (a warning); instead of it, the server would run no gameplay, so
// the config is refused with what to write instead.
TEST_F(ConfigTest, FireflyAppWithoutPluginsIsAnErrorThatSaysWhatToWrite) {
  EXPECT_FALSE(Load(Edit(R"("plugins": ["room", "account"])", R"("app": "app.gameserver", "reload": "app.reload")")).ok());
  ASSERT_TRUE(HasError("servers.game1.app", "write \"plugins\": [\"gameserver\"] in servers.game1")) << Dump();
  EXPECT_TRUE(HasError("servers.game1.app", "\"plugins\": {\"gameserver\": {\"path\": \"libgameserver.so\"}}")) << Dump();
  EXPECT_TRUE(HasError("servers.game1.reload", "Python module")) << Dump();
}

TEST_F(ConfigTest, FireflyAppNextToPluginsIsOnlyAWarning) {
  ASSERT_TRUE(Load(Edit(R"("plugins": ["room", "account"])", R"("plugins": ["room"], "app": "app.game")")).ok()) << Dump();
  ASSERT_EQ(issues_.size(), 1u) << Dump();
  EXPECT_TRUE(issues_[0].warning);
  EXPECT_EQ(issues_[0].path, "servers.game1.app");
}

// The config may be checked on another machine than the one that runs it:
// a CPU this machine lacks is a warning at load, a refusal at start
// (integration test server_cpu_test).
TEST_F(ConfigTest, CpuThisMachineLacksIsWarned) {
  ASSERT_TRUE(Load(Edit(R"("log_level": "debug")", R"("log_level": "debug", "cpu": 4095)")).ok()) << Dump();
  ASSERT_EQ(issues_.size(), 1u) << Dump();
  EXPECT_TRUE(issues_[0].warning);
  EXPECT_EQ(issues_[0].path, "servers.game1.cpu");
  EXPECT_NE(issues_[0].reason.find("refuse to start"), std::string::npos) << Dump();
  EXPECT_EQ(config_.servers.at("game1").cpu, 4095);
}

// --- the real binary ---------------------------------------------------------

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout + stderr
};

RunResult RunLampyr(const std::string& args, const std::string& env = "") {
  const std::string bin = std::string(LAMPYR_BIN_DIR) + "/lampyr";
  EXPECT_TRUE(fs::exists(bin)) << bin << " is not built (cmake --build <dir> --target lampyr)";
  RunResult r;
  FILE* p = popen((env + " '" + bin + "' " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Long random secrets, as an operator sets them (the file's are too short).
const char* kGoodSecretsEnv =
    "LAMPYR_ADMIN_TOKEN=3b1f0c9e5a7d42e8b6c1f0a9 LAMPYR_CLUSTER_SECRET=9d2e7a4c1b8f53e0a6d9c2b7";

TEST_F(ConfigTest, CheckOfAGoodConfigExitsZero) {
  Write(conf_, kGoodConfig);
  RunResult r = RunLampyr("--conf '" + conf_ + "' --check", kGoodSecretsEnv);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("OK"), std::string::npos) << r.output;
}

TEST_F(ConfigTest, CheckOfABadConfigPrintsEveryErrorWithItsPath) {
  std::string text = Edit(R"("netport": 11009)", R"("netport": "11009")");
  text = Edit(R"(["room", "account"])", R"(["room", "ghost"])", text);
  text = Edit(R"("forward": "gate")", R"("forward": "game1")", text);
  Write(conf_, text);
  RunResult r = RunLampyr("--conf '" + conf_ + "' --check");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, -1) << "crashed: " << r.output;
  for (const char* line : {"servers.net.netport: expected integer 1..65535",
                           "servers.game1.plugins[1]: unknown plugin \"ghost\"", "servers.net.forward: "}) {
    EXPECT_NE(r.output.find(line), std::string::npos) << "missing \"" << line << "\" in:\n" << r.output;
  }
}

TEST_F(ConfigTest, CheckNeverPrintsSecrets) {
  std::string text = Edit(R"("netport": 11009)", R"("netport": 0)");
  text = Edit(R"("admin_token": "file-token")", R"("admin_token": "tok-3e1f9a")", text);
  text = Edit(R"("passwd": "file-passwd")", R"("passwd": ["pw-77c2"])", text);  // wrong type, still secret
  Write(conf_, text);
  RunResult r = RunLampyr("--conf '" + conf_ + "' --check", "LAMPYR_CLUSTER_SECRET=env-sec-5d0b");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("db.passwd"), std::string::npos) << r.output;
  for (const char* secret : {"tok-3e1f9a", "pw-77c2", "env-sec-5d0b"})
    EXPECT_EQ(r.output.find(secret), std::string::npos) << secret << " leaked:\n" << r.output;
}

// --- secrets (issue 8, item 4) ----------------------------------------------

TEST_F(ConfigTest, SampleSecretsStopEveryProcessNamingThePath) {
  std::string text = Edit(R"("admin_token": "file-token")", R"("admin_token": "change-me")");
  text = Edit(R"("cluster_secret": "file-secret")", R"("cluster_secret": "change-me-too")", text);
  Write(conf_, text);
  RunResult r = RunLampyr("--conf '" + conf_ + "' --check");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  for (const char* line : {"master.cluster_secret: is the sample value of the shipped configs",
                           "master.admin_token: is the sample value of the shipped configs"})
    EXPECT_NE(r.output.find(line), std::string::npos) << "missing \"" << line << "\" in:\n" << r.output;
  // A real start is refused the same way, before anything listens (`timeout`
  // only ends a server that wrongly started).
  r = RunLampyr("--conf '" + conf_ + "' --server gate", "timeout 20");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("master.cluster_secret: is the sample value"), std::string::npos) << r.output;
}

TEST_F(ConfigTest, TheShippedConfigsSecretsAreRefused) {
  for (const char* name : {"cluster.json", "single.json"}) {
    const std::string file = std::string(LAMPYR_SOURCE_DIR) + "/conf/" + name;
    std::string text;
    ASSERT_TRUE(ReadConfigFile(file, &text).ok()) << file;
    Config c;
    std::vector<ConfigIssue> issues;
    ASSERT_TRUE(ParseConfig(text, "/", &c, &issues, /*apply_env=*/false, /*check_files=*/false).ok()) << name;
    issues = CheckSecrets(c);
    ASSERT_FALSE(issues.empty()) << name;
    for (const auto& issue : issues) {
      EXPECT_FALSE(issue.warning) << name << ": " << issue.ToString();
      EXPECT_NE(issue.reason.find("sample value"), std::string::npos) << name << ": " << issue.ToString();
    }
  }
}

TEST_F(ConfigTest, TheEnvironmentsSecretsAreTheOnesChecked) {
  Write(conf_, kGoodConfig);
  // Short values in the file, long ones in the environment: fine.
  EXPECT_EQ(RunLampyr("--conf '" + conf_ + "' --check", kGoodSecretsEnv).exit_code, 0);
  // A short value in the environment wins over the file, and is refused.
  RunResult r = RunLampyr("--conf '" + conf_ + "' --check",
                          "LAMPYR_ADMIN_TOKEN=3b1f0c9e5a7d42e8b6c1f0a9 LAMPYR_CLUSTER_SECRET=short-5d0b");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("master.cluster_secret (from LAMPYR_CLUSTER_SECRET): is shorter than 16 bytes"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("short-5d0b"), std::string::npos) << "the secret leaked:\n" << r.output;
  // The sample values from the environment too.
  r = RunLampyr("--conf '" + conf_ + "' --check",
                "LAMPYR_ADMIN_TOKEN=change-me LAMPYR_CLUSTER_SECRET=9d2e7a4c1b8f53e0a6d9c2b7");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("master.admin_token (from LAMPYR_ADMIN_TOKEN): is the sample value"), std::string::npos)
      << r.output;
}

TEST_F(ConfigTest, InsecureDevAcceptsWeakSecretsWithAWarning) {
  std::string text = Edit(R"("admin_token": "file-token")", R"("admin_token": "change-me", "insecure_dev": true)");
  Write(conf_, text);
  RunResult r = RunLampyr("--conf '" + conf_ + "' --check");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("warning: master.admin_token: is the sample value"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("accepted because master.insecure_dev is true"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("unknown key"), std::string::npos) << r.output;
}

TEST_F(ConfigTest, EmptyTokenMeansReadOnlyEmptySecretIsRefusedWhenServersLink) {
  std::string text = Edit(R"("admin_token": "file-token", )", "");
  text = Edit(R"("cluster_secret": "file-secret", )", "", text);
  Write(conf_, text);
  RunResult r = RunLampyr("--conf '" + conf_ + "' --check");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("master.cluster_secret: is required when servers link"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("master.admin_token"), std::string::npos) << r.output;
  // No links at all: no secret needed.
  Write(conf_, R"({"servers": {"solo": {"netport": 11009, "webport": 11008}}})");
  r = RunLampyr("--conf '" + conf_ + "' --check");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// Found by fuzz_config: jsoncpp throws on nesting beyond its stack limit,
// which killed `lampyr --check` with an uncaught exception.
TEST_F(ConfigTest, DeeplyNestedJsonIsAnErrorNotACrash) {
  EXPECT_FALSE(Load(std::string(5000, '[')).ok());
  EXPECT_EQ(OnlyError().path, "(document)");
  Write(conf_, "{\"servers\": " + std::string(3000, '[') + std::string(3000, ']') + "}");
  RunResult r = RunLampyr("--conf '" + conf_ + "' --check");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("(document): invalid JSON"), std::string::npos) << r.output;
}

TEST_F(ConfigTest, CheckOfAFireflyConfigWithoutPluginsFailsNamingWhatToWrite) {
  Write(conf_, Edit(R"("plugins": ["room", "account"])", R"("app": "app.gameserver")"));
  RunResult r = RunLampyr("--conf '" + conf_ + "' --check");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("servers.game1.app: Firefly's \"app\" (\"app.gameserver\") names a Python module"),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"plugins\": [\"gameserver\"]"), std::string::npos) << r.output;
}

TEST_F(ConfigTest, CheckOfAMissingFileFails) {
  RunResult r = RunLampyr("--conf '" + tmp_.path() + "/absent.json' --check");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, -1) << r.output;
  EXPECT_NE(r.output.find("absent.json"), std::string::npos) << r.output;
}

// SQL, off-loop work, key/value (docs/plugins.md section 11): their keys and
// defaults, "mem" given or not, and a kv_prefix that overlaps record keys.
TEST_F(ConfigTest, SqlWorkAndKeyValueKeys) {
  ASSERT_TRUE(Load(kGoodConfig).ok()) << Dump();
  EXPECT_EQ(config_.db.sql_pool, 2u);
  EXPECT_EQ(config_.db.sql_queue, 1024u);
  EXPECT_EQ(config_.db.sql_timeout_ms, 5000u);
  EXPECT_EQ(config_.db.tx_timeout_ms, 10000u);
  EXPECT_EQ(config_.memcached.kv_prefix, "game:kv:");
  EXPECT_EQ(config_.servers.at("gate").work_threads, 2u);
  EXPECT_EQ(config_.servers.at("gate").work_queue, 1024u);
  EXPECT_FALSE(config_.servers.at("gate").mem_given);
  EXPECT_FALSE(config_.tables.at("player").preload);

  std::string text = Edit("\"pool\": 4", "\"pool\": 4, \"sql_pool\": 3, \"sql_queue\": 10, \"sql_timeout_ms\": 700, "
                                         "\"tx_timeout_ms\": 900");
  text = Edit("\"hostname\": \"game\"", "\"hostname\": \"game\", \"kv_prefix\": \"shared:\", \"kv_threads\": 3", text);
  text = Edit("\"plugins\": [\"gate_router\"]", "\"plugins\": [\"gate_router\"], \"work_threads\": 4, "
                                                "\"work_queue\": 8, \"mem\": false", text);
  text = Edit("\"autoinc\": true}", "\"autoinc\": true, \"preload\": true}", text);
  ASSERT_TRUE(Load(text).ok()) << Dump();
  EXPECT_EQ(Dump().find("unknown key"), std::string::npos) << Dump();
  EXPECT_EQ(config_.db.sql_pool, 3u);
  EXPECT_EQ(config_.db.sql_queue, 10u);
  EXPECT_EQ(config_.db.sql_timeout_ms, 700u);
  EXPECT_EQ(config_.db.tx_timeout_ms, 900u);
  EXPECT_EQ(config_.memcached.kv_prefix, "shared:");
  EXPECT_EQ(config_.memcached.kv_threads, 3u);
  EXPECT_EQ(config_.servers.at("gate").work_threads, 4u);
  EXPECT_EQ(config_.servers.at("gate").work_queue, 8u);
  EXPECT_TRUE(config_.servers.at("gate").mem_given);
  EXPECT_FALSE(config_.servers.at("gate").mem);
  EXPECT_TRUE(config_.tables.at("player").preload);

  for (const char* bad : {"game:", "game:r:", "game:x", "gam", "with space"}) {
    EXPECT_FALSE(Load(Edit("\"hostname\": \"game\"", std::string("\"hostname\": \"game\", \"kv_prefix\": \"") + bad + "\"")).ok())
        << bad;
    EXPECT_TRUE(HasError("memcached.kv_prefix")) << bad << "\n" << Dump();
  }
  EXPECT_TRUE(Load(Edit("\"hostname\": \"game\"", "\"hostname\": \"game\", \"kv_prefix\": \"game:kv:shop:\"")).ok())
      << Dump();
  EXPECT_FALSE(Load(Edit("\"pool\": 4", "\"pool\": 4, \"sql_pool\": 0")).ok());
  EXPECT_TRUE(HasError("db.sql_pool")) << Dump();
}

}  // namespace
}  // namespace lampyr
