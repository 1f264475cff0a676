// The per-server admin API of a real `lampyr --server` process, and lampyrctl
// against it, from an operator's point of view: JSON shapes, auth, exit codes.
#include <gtest/gtest.h>
#include <json/reader.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <memory>
#include <string>
#include <vector>

#include "admin/http_client.h"
#include "harness.h"
#include "lampyr_client.h"

namespace lampyr {
namespace {

using test::Process;
using test::TempDir;

constexpr const char* kToken = "conf-token-123-long-enough";

Json::Value Parse(const std::string& text) {
  Json::Value v;
  Json::CharReaderBuilder b;
  std::unique_ptr<Json::CharReader> r(b.newCharReader());
  std::string errs;
  EXPECT_TRUE(r->parse(text.data(), text.data() + text.size(), &v, &errs)) << text;
  return v;
}

class AdminServerTest : public ::testing::Test {
 protected:
  void StartGame(const std::vector<std::string>& env = {}) {
    netport_ = test::FreePort();
    webport_ = test::FreePort();
    conf_ = dir_.path() + "/cluster.json";
    test::WriteFile(conf_, std::string("{\"master\": {\"admin_token\": \"") + kToken +
                               "\"}, \"servers\": {\"game1\": {\"netport\": " + std::to_string(netport_) +
                               ", \"webport\": " + std::to_string(webport_) +
                               ", \"builtins\": {\"echo\": 1}}, \"other\": {}}}");
    if (env.empty()) {
      server_ = test::StartServer(conf_, "game1", webport_);
    } else {
      server_ = Process::Start({test::LampyrBinary(), "--conf", conf_, "--server", "game1"}, env,
                               dir_.path() + "/game1.out");
      ASSERT_TRUE(server_ && test::WaitForPort("127.0.0.1", webport_, 10000));
    }
    ASSERT_NE(server_, nullptr);
  }

  HttpResponse Http(const std::string& method, const std::string& path, const std::string& body = "",
                    const std::string& token = "") {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    HttpResponse r;
    Status st = HttpCall("127.0.0.1", webport_, method, path, body, headers, &r, 10000);
    EXPECT_TRUE(st.ok()) << st.message();
    return r;
  }

  // Runs lampyrctl (pointed at this server unless `url` is given); returns its
  // exit code, output (stdout+stderr) in *out.
  int Ctl(std::vector<std::string> args, std::string* out, const std::vector<std::string>& env = {},
          const std::string& url = "") {
    std::vector<std::string> argv = {std::string(LAMPYR_BIN_DIR) + "/lampyrctl", "--url",
                                     url.empty() ? "http://127.0.0.1:" + std::to_string(webport_) : url};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string file = dir_.path() + "/ctl" + std::to_string(++runs_) + ".out";
    // The test's own environment must not leak a token into "no token" cases.
    std::vector<std::string> e = env;
    bool has_token = false;
    for (const auto& kv : env) has_token |= kv.rfind("LAMPYR_ADMIN_TOKEN=", 0) == 0;
    if (!has_token) e.push_back("LAMPYR_ADMIN_TOKEN=");
    auto p = Process::Start(argv, e, file);
    if (!p) return -1;
    int st = p->Wait(20000);
    *out = test::ReadFile(file);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  TempDir dir_;
  std::string conf_;
  uint16_t netport_ = 0, webport_ = 0;
  std::unique_ptr<Process> server_;
  int runs_ = 0;
};

TEST_F(AdminServerTest, StatusShowsThisServer) {
  StartGame();
  client::Client c;
  ASSERT_TRUE(c.Connect("127.0.0.1", netport_).ok());
  client::Frame f;
  ASSERT_TRUE(c.Call(1, "hi", &f).ok());  // the session is surely registered now

  HttpResponse r = Http("GET", "/status");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), "application/json");
  Json::Value v = Parse(r.body);
  ASSERT_TRUE(v["servers"].isArray());
  ASSERT_EQ(v["servers"].size(), 1u);
  const Json::Value& s = v["servers"][0];
  EXPECT_EQ(s["name"].asString(), "game1");
  EXPECT_EQ(s["pid"].asInt64(), server_->pid());
  EXPECT_EQ(s["state"].asString(), "running");
  EXPECT_EQ(s["restarts"].asInt(), 0);
  EXPECT_TRUE(s["uptime_s"].isIntegral());
  EXPECT_GE(s["uptime_s"].asInt64(), 0);
  EXPECT_EQ(s["sessions"].asInt(), 1);
  EXPECT_TRUE(s["plugins"].isArray());
  EXPECT_TRUE(s["links"].isArray());
}

TEST_F(AdminServerTest, StatusListsChannelLinks) {
  const uint16_t rootport = test::FreePort();
  webport_ = test::FreePort();
  conf_ = dir_.path() + "/cluster.json";
  test::WriteFile(conf_, "{\"master\": {\"cluster_secret\": \"admin-server-test-secret-0123\"}, \"servers\": {\"gate\": {\"rootport\": " +
                             std::to_string(rootport) + ", \"webport\": " + std::to_string(webport_) +
                             "}, \"game1\": {\"remoteport\": [{\"rootname\": \"gate\"}]}}}");
  auto gate = test::StartServer(conf_, "gate", webport_);
  ASSERT_NE(gate, nullptr);
  auto game = test::StartServer(conf_, "game1");
  ASSERT_NE(game, nullptr);
  // The link comes up on its own schedule: poll (bounded) until gate lists it.
  Json::Value links;
  for (int i = 0; i < 200; ++i) {
    links = Parse(Http("GET", "/status").body)["servers"][0]["links"];
    if (links.size() == 1 && links[0]["state"].asString() == "up") break;
    usleep(50 * 1000);
  }
  ASSERT_EQ(links.size(), 1u) << links.toStyledString();
  EXPECT_EQ(links[0]["peer"].asString(), "game1");
  EXPECT_EQ(links[0]["state"].asString(), "up");
  EXPECT_EQ(links[0]["direction"].asString(), "in");
}

TEST_F(AdminServerTest, MetricsArePrometheusText) {
  StartGame();
  client::Client c;
  ASSERT_TRUE(c.Connect("127.0.0.1", netport_).ok());
  client::Frame f;
  ASSERT_TRUE(c.Call(1, "hi", &f).ok());
  HttpResponse r = Http("GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type").rfind("text/plain; version=0.0.4", 0), 0u) << r.Header("content-type");
  EXPECT_NE(r.body.find("# TYPE lampyr_sessions gauge"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\nlampyr_sessions 1\n"), std::string::npos) << r.body;
}

TEST_F(AdminServerTest, ReloadNeedsTheToken) {
  StartGame();
  HttpResponse r = Http("POST", "/reload", "{}");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Parse(r.body)["error"].asString(), "unauthorized");
  EXPECT_EQ(Http("POST", "/reload", "{}", "wrong").status, 401);
  EXPECT_TRUE(server_->Running());
  // The rejected calls are logged, the token never.
  std::string log = test::ReadFile(dir_.path() + "/game1.out");
  EXPECT_NE(log.find("POST /reload from 127.0.0.1"), std::string::npos) << log;
  EXPECT_EQ(log.find(kToken), std::string::npos) << log;
}

TEST_F(AdminServerTest, ReloadRejectsOtherServersAndBadBodies) {
  StartGame();
  HttpResponse r = Http("POST", "/reload", "{\"server\": \"other\"}", kToken);
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(Parse(r.body)["error"].asString().find("no server 'other' here"), std::string::npos) << r.body;
  r = Http("POST", "/reload", "{\"plugin\": \"nosuch\"}", kToken);
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(Parse(r.body)["error"].asString().find("does not run plugin 'nosuch'"), std::string::npos) << r.body;
  r = Http("POST", "/reload", "{\"plugins\": \"room\"}", kToken);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(Parse(r.body)["error"].asString().find("unknown key \"plugins\""), std::string::npos) << r.body;
  r = Http("POST", "/reload", "{\"plugin\": 3}", kToken);
  EXPECT_EQ(r.status, 400);
  r = Http("POST", "/reload", "[1,", kToken);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Http("GET", "/reload").status, 405);
  EXPECT_EQ(Http("GET", "/nothing").status, 404);
  EXPECT_TRUE(server_->Running());
}

TEST_F(AdminServerTest, EnvironmentTokenOverridesTheConfig) {
  StartGame({"LAMPYR_ADMIN_TOKEN=env-token-456-long-enough"});
  EXPECT_EQ(Http("POST", "/reload", "{\"plugin\": \"nosuch\"}", kToken).status, 401);
  // Past authentication: the unknown plugin is what gets refused.
  EXPECT_EQ(Http("POST", "/reload", "{\"plugin\": \"nosuch\"}", "env-token-456-long-enough").status, 404);
}

TEST_F(AdminServerTest, ServerStopsCleanlyAfterAdminTraffic) {
  StartGame();
  EXPECT_EQ(Http("GET", "/status").status, 200);
  EXPECT_EQ(Http("POST", "/reload", "{}").status, 401);
  EXPECT_EQ(Http("POST", "/reload", "{\"plugin\": \"x\"}", kToken).status, 404);
  EXPECT_EQ(Http("GET", "/metrics").status, 200);
  // An idle keep-alive connection is open while the server stops.
  client::Client idle;
  ASSERT_TRUE(idle.Connect("127.0.0.1", webport_).ok());
  server_->Signal(SIGTERM);
  int st = server_->Wait(10000);
  ASSERT_GE(st, 0);
  // Under ASan a leak or memory error at exit makes this non-zero.
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << test::ReadFile(dir_.path() + "/game1.out");
}

TEST_F(AdminServerTest, BusyWebportStopsTheServerWithAClearError) {
  StartGame();
  // A second game1 on the same ports must fail, naming the port.
  auto second = Process::Start({test::LampyrBinary(), "--conf", conf_, "--server", "game1"}, {},
                               dir_.path() + "/second.out");
  ASSERT_NE(second, nullptr);
  int st = second->Wait(10000);
  ASSERT_GE(st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0);
  std::string out = test::ReadFile(dir_.path() + "/second.out");
  EXPECT_NE(out.find(std::to_string(netport_)), std::string::npos) << out;
}

TEST_F(AdminServerTest, CtlStatusPrintsATableAndJson) {
  StartGame();
  std::string out;
  ASSERT_EQ(Ctl({"status"}, &out), 0) << out;
  EXPECT_NE(out.find("SERVER"), std::string::npos) << out;
  EXPECT_NE(out.find("game1"), std::string::npos) << out;
  EXPECT_NE(out.find(std::to_string(server_->pid())), std::string::npos) << out;
  EXPECT_NE(out.find("running"), std::string::npos) << out;
  ASSERT_EQ(Ctl({"--json", "status"}, &out), 0) << out;
  Json::Value v = Parse(out);
  EXPECT_EQ(v["servers"][0]["name"].asString(), "game1");
}

TEST_F(AdminServerTest, CtlMetrics) {
  StartGame();
  std::string out;
  ASSERT_EQ(Ctl({"metrics"}, &out), 0) << out;
  EXPECT_NE(out.find("lampyr_sessions"), std::string::npos) << out;
}

TEST_F(AdminServerTest, CtlReloadWithoutTokenSaysUnauthorized) {
  StartGame();
  std::string out;
  EXPECT_EQ(Ctl({"reload"}, &out), 3) << out;
  EXPECT_NE(out.find("unauthorized: missing or wrong token"), std::string::npos) << out;
  EXPECT_EQ(Ctl({"--token", "nope", "reload", "room"}, &out), 3) << out;
  EXPECT_NE(out.find("unauthorized: missing or wrong token"), std::string::npos) << out;
  EXPECT_EQ(Ctl({"reload", "room"}, &out, {"LAMPYR_ADMIN_TOKEN=nope"}), 3) << out;
  EXPECT_NE(out.find("unauthorized"), std::string::npos) << out;
}

TEST_F(AdminServerTest, CtlReportsHttpErrorsWithTheServersReason) {
  StartGame();
  std::string out;
  EXPECT_EQ(Ctl({"reload", "nosuch"}, &out, {std::string("LAMPYR_ADMIN_TOKEN=") + kToken}), 3) << out;
  EXPECT_NE(out.find("HTTP 404"), std::string::npos) << out;
  EXPECT_NE(out.find("does not run plugin 'nosuch'"), std::string::npos) << out;
  EXPECT_EQ(Ctl({"reload", "--server", "other"}, &out, {std::string("LAMPYR_ADMIN_TOKEN=") + kToken}), 3) << out;
  EXPECT_NE(out.find("no server 'other' here"), std::string::npos) << out;
  // A single server has no /stop: the master does.
  EXPECT_EQ(Ctl({"stop"}, &out, {std::string("LAMPYR_ADMIN_TOKEN=") + kToken}), 3) << out;
  EXPECT_NE(out.find("HTTP 404"), std::string::npos) << out;
}

TEST_F(AdminServerTest, CtlFindsTheApiAndTokenInTheConfig) {
  StartGame();
  // A config whose master admin API is this server's webport stands in for a master here.
  const std::string conf = dir_.path() + "/ctl.json";
  test::WriteFile(conf, std::string("{\"master\": {\"admin_token\": \"") + kToken + "\", \"webport\": " +
                            std::to_string(webport_) + "}, \"servers\": {\"x\": {}}}");
  std::vector<std::string> argv = {std::string(LAMPYR_BIN_DIR) + "/lampyrctl", "--conf", conf, "reload", "nosuch"};
  const std::string file = dir_.path() + "/ctlconf.out";
  auto p = Process::Start(argv, {"LAMPYR_ADMIN_TOKEN="}, file);
  ASSERT_NE(p, nullptr);
  int st = p->Wait(20000);
  std::string out = test::ReadFile(file);
  // Authenticated with the file's token: the unknown plugin is what is refused.
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 3) << out;
  EXPECT_NE(out.find("does not run plugin 'nosuch'"), std::string::npos) << out;

  std::string out2;
  EXPECT_EQ(Ctl({"--conf", conf, "status"}, &out2), 2) << out2;  // --url and --conf together
  EXPECT_NE(out2.find("--url and --conf"), std::string::npos) << out2;
}

TEST_F(AdminServerTest, CtlUsageAndConnectionErrors) {
  std::string out;
  webport_ = test::FreePort();  // nothing listens there
  EXPECT_EQ(Ctl({}, &out), 2) << out;
  EXPECT_NE(out.find("usage:"), std::string::npos) << out;
  EXPECT_EQ(Ctl({"frobnicate"}, &out), 2) << out;
  EXPECT_NE(out.find("unknown command 'frobnicate'"), std::string::npos) << out;
  EXPECT_EQ(Ctl({"restart"}, &out), 2) << out;
  EXPECT_EQ(Ctl({"status", "extra"}, &out), 2) << out;
  EXPECT_EQ(Ctl({"--bogus", "status"}, &out), 2) << out;
  EXPECT_EQ(Ctl({"status"}, &out, {}, "https://127.0.0.1:1"), 2) << out;
  EXPECT_EQ(Ctl({"status"}, &out), 3) << out;
  EXPECT_NE(out.find("cannot connect"), std::string::npos) << out;
  EXPECT_EQ(Ctl({"--help"}, &out), 0) << out;
  EXPECT_EQ(Ctl({"status"}, &out, {}, ""), 3) << out;
  // --conf errors are usage errors naming the problem.
  test::WriteFile(dir_.path() + "/noweb.json", "{\"servers\": {\"x\": {}}}");
  std::vector<std::string> argv = {std::string(LAMPYR_BIN_DIR) + "/lampyrctl", "--conf", dir_.path() + "/noweb.json",
                                   "status"};
  auto p = Process::Start(argv, {}, dir_.path() + "/noweb.out");
  ASSERT_NE(p, nullptr);
  int st = p->Wait(20000);
  out = test::ReadFile(dir_.path() + "/noweb.out");
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << out;
  EXPECT_NE(out.find("no master.webport"), std::string::npos) << out;
}

}  // namespace
}  // namespace lampyr
