// Plugins on the webport (plugin.h "Web routes, HTTP client, links, peer
// address"), through the gm example plugin, against real `lampyr` processes:
// routes with method, path, query, headers, body and peer; public and
// token-protected routes; admin paths stay the host's; body and time limits;
// a reload while a web request is pending; link events between two servers;
// the client's address in a handler; the outbound HTTP(S) client against
// local servers (itself, and `openssl s_server` with a throwaway certificate).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>

#include "plugin_server.h"

namespace lampyr::test {
namespace {

const std::vector<std::pair<std::string, std::string>> kToken = {{"Authorization", "Bearer tok"}};

class PluginWebTest : public PluginServerTest {
 protected:
  // One server "game" with gm (and whatever `gm_extra` adds to plugins.gm).
  void ConfigureGm(const std::string& gm_extra = "") { Configure({{"gm", "gm", gm_extra}}); }

  HttpResponse Http(const std::string& method, const std::string& path, const std::string& body = "",
                    std::vector<std::pair<std::string, std::string>> headers = {}, uint16_t port = 0) {
    HttpResponse r;
    Status st = HttpCall("127.0.0.1", port ? port : webport_, method, path, body, headers, &r, 20000);
    EXPECT_TRUE(st.ok()) << method << " " << path << ": " << st.message();
    return r;
  }

  // GET /gm/fetch?url=... answered as {"status","error","body"}.
  Json::Value Fetch(const std::string& url, const std::string& extra = "") {
    HttpResponse r = Http("GET", "/gm/fetch?url=" + url + extra, "", kToken);
    EXPECT_EQ(r.status, 200) << r.body;
    return ParseJson(r.body);
  }
};

TEST_F(PluginWebTest, RouteGetsMethodPathQueryHeadersBodyAndPeer) {
  ConfigureGm();
  ASSERT_TRUE(Launch()) << Output();
  HttpResponse r = Http("POST", "/gm/echo/sub?a=1&b=two", "hello \x01 bytes", {{"X-Echo", "mirror"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello \x01 bytes");
  EXPECT_EQ(r.Header("content-type"), "application/octet-stream");
  EXPECT_EQ(r.Header("x-query"), "a=1&b=two");
  EXPECT_EQ(r.Header("x-path"), "/gm/echo/sub");
  EXPECT_EQ(r.Header("x-echo"), "mirror");
  EXPECT_EQ(r.Header("x-peer"), "127.0.0.1");
  // Prefixes match whole segments; other methods are 405, other paths 404.
  EXPECT_EQ(Http("POST", "/gm/echoes", "x").status, 404);
  EXPECT_EQ(Http("GET", "/gm/echo").status, 405);
  EXPECT_EQ(Http("GET", "/gm/ping").body, "pong");
  EXPECT_EQ(Http("GET", "/gm/ping", "a body").status, 400);
}

TEST_F(PluginWebTest, AdminRoutesNeedTheTokenAndAdminPathsStayTheHosts) {
  ConfigureGm();
  ASSERT_TRUE(Launch()) << Output();
  EXPECT_EQ(Http("GET", "/gm/players").status, 401);
  EXPECT_EQ(Http("GET", "/gm/players", "", {{"Authorization", "Bearer nope"}}).status, 401);
  HttpResponse ok = Http("GET", "/gm/players", "", kToken);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.Header("content-type"), "application/json");
  EXPECT_TRUE(ParseJson(ok.body)["players"].isArray()) << ok.body;
  // The host still answers its own paths.
  EXPECT_EQ(PluginStatus("gm")["version"].asString(), "1");
}

TEST_F(PluginWebTest, APluginCannotTakeAnAdminPath) {
  ConfigureGm(", \"config\": {\"try_route\": \"/status\"}");
  std::string out = LaunchRefused();
  EXPECT_NE((out + Log()).find("/status belongs to the admin API"), std::string::npos) << out << Log();
}

TEST_F(PluginWebTest, BodyAndTimeLimits) {
  ConfigureGm(", \"config\": {\"later_timeout_ms\": 200}");
  ASSERT_TRUE(Launch()) << Output();
  EXPECT_EQ(Http("POST", "/gm/echo", std::string(64 << 10, 'x')).status, 200);
  EXPECT_EQ(Http("POST", "/gm/echo", std::string((64 << 10) + 1, 'x')).status, 413);
  // The plugin holds the request past its route's limit: the host answers.
  HttpResponse late = Http("GET", "/gm/later?ms=60000");
  EXPECT_EQ(late.status, 504) << late.body;
  EXPECT_EQ(Http("GET", "/gm/later?ms=0").status, 200);
}

// A request pending in generation 1 is answered by it while it drains; new
// requests already reach generation 2. With a drain shorter than the wait,
// the host answers 503 and unloads it: no crash, no hang.
TEST_F(PluginWebTest, ReloadWhileARequestIsPending) {
  ConfigureGm();
  ASSERT_TRUE(Launch()) << Output();
  auto pending = std::async(std::launch::async, [this] { return Http("GET", "/gm/later?ms=3000"); });
  ASSERT_TRUE(WaitFor([&] { return PluginStatus("gm")["pending"].asUInt() == 1; })) << Log();
  Deploy("gm_v2", "gm");
  Json::Value answer;
  ASSERT_EQ(Reload("gm", &answer), 200) << answer;
  EXPECT_EQ(ParseJson(Http("GET", "/gm/players", "", kToken).body)["version"].asString(), "2");
  HttpResponse r = pending.get();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "later from v1");
}

TEST_F(PluginWebTest, PendingRequestOfAnUnloadedGenerationGets503) {
  netport_ = FreePort();
  webport_ = FreePort();
  Deploy("gm", "gm");
  conf_ = dir_.path() + "/lampyr.json";
  WriteFile(conf_, "{\"master\": {\"admin_token\": \"tok\", \"insecure_dev\": true}, \"servers\": {\"game\": {\"netport\": " +
                       std::to_string(netport_) + ", \"webport\": " + std::to_string(webport_) +
                       ", \"log\": \"game.log\", \"plugins\": [\"gm\"]}}, \"plugins\": {\"gm\": {\"path\": "
                       "\"deploy/libgm.so\", \"drain_timeout_s\": 0.2}}}\n");
  ASSERT_TRUE(Launch()) << Output();
  auto pending = std::async(std::launch::async, [this] { return Http("GET", "/gm/later?ms=4000"); });
  ASSERT_TRUE(WaitFor([&] { return PluginStatus("gm")["pending"].asUInt() == 1; })) << Log();
  Deploy("gm_v2", "gm");
  Json::Value answer;
  ASSERT_EQ(Reload("gm", &answer), 200) << answer;
  HttpResponse r = pending.get();
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_TRUE(WaitFor([&] { return Log().find("gm generation 1 unloaded") != std::string::npos; })) << Log();
  EXPECT_EQ(Http("GET", "/gm/ping").body, "pong");
  EXPECT_TRUE(server_->Running());
}

TEST_F(PluginWebTest, HandlerReadsTheClientAddress) {
  ConfigureGm();
  ASSERT_TRUE(Launch()) << Output();
  auto c = Connect();
  std::string me = CallBody(*c, 5001, "");
  ASSERT_EQ(me.rfind("127.0.0.1:", 0), 0u) << me;
  const int port = std::stoi(me.substr(10));
  EXPECT_GT(port, 0);
  Json::Value players = ParseJson(Http("GET", "/gm/players", "", kToken).body)["players"];
  ASSERT_EQ(players.size(), 1u) << players;
  EXPECT_EQ(players[0]["ip"].asString(), "127.0.0.1");
  EXPECT_EQ(players[0]["port"].asInt(), port);
}

TEST_F(PluginWebTest, HandlerReadsAnIpv6ClientAddress) {
  netport_ = FreePort();
  webport_ = FreePort();
  Deploy("gm", "gm");
  conf_ = dir_.path() + "/lampyr.json";
  WriteFile(conf_, "{\"master\": {\"admin_token\": \"tok\", \"insecure_dev\": true}, \"servers\": {\"game\": {\"host\": \"::1\", \"netport\": " +
                       std::to_string(netport_) + ", \"webport\": " + std::to_string(webport_) +
                       ", \"admin_host\": \"127.0.0.1\", \"log\": \"game.log\", \"plugins\": [\"gm\"]}}, "
                       "\"plugins\": {\"gm\": {\"path\": \"deploy/libgm.so\"}}}\n");
  server_ = Process::Start({LampyrBinary(), "--conf", conf_, "--server", "game"}, {}, dir_.path() + "/game.out");
  ASSERT_TRUE(WaitForPort("::1", netport_, 10000)) << Output() << Log();
  client::Client c;
  ASSERT_TRUE(c.Connect("::1", netport_).ok());
  client::Frame f;
  ASSERT_TRUE(c.Call(5001, "", &f, 15000).ok());
  EXPECT_EQ(f.body.rfind("[::1]:", 0), 0u) << f.body;
}

// Link events: a root server running gm sees its child come and go.
TEST_F(PluginWebTest, LinkEventsOfTheServersChannels) {
  webport_ = FreePort();
  const uint16_t rootport = FreePort(), child_net = FreePort();
  Deploy("gm", "gm");
  conf_ = dir_.path() + "/lampyr.json";
  WriteFile(conf_, "{\"master\": {\"admin_token\": \"tok\", \"cluster_secret\": \"s3cret\", \"insecure_dev\": true}, \"servers\": {"
                   "\"gate\": {\"rootport\": " + std::to_string(rootport) + ", \"webport\": " +
                       std::to_string(webport_) + ", \"log\": \"gate.log\", \"plugins\": [\"gm\"]},"
                   "\"game\": {\"netport\": " + std::to_string(child_net) +
                       ", \"log\": \"game.log\", \"remoteport\": [{\"rootname\": \"gate\"}]}},"
                   "\"plugins\": {\"gm\": {\"path\": \"deploy/libgm.so\"}}}\n");
  auto gate = StartServer(conf_, "gate", webport_);
  ASSERT_TRUE(gate) << ReadFile(dir_.path() + "/gate.out");
  auto links = [&] { return ParseJson(Http("GET", "/gm/links", "", kToken).body); };
  EXPECT_TRUE(links().getMemberNames().empty()) << links();
  auto game = StartServer(conf_, "game", child_net);
  ASSERT_TRUE(game);
  EXPECT_TRUE(WaitFor([&] { return links()["game"].asBool(); })) << links();
  game->Signal(SIGKILL);
  EXPECT_TRUE(WaitFor([&] { Json::Value l = links(); return l.isMember("game") && !l["game"].asBool(); })) << links();
}

// ---- the outbound HTTP(S) client ----

TEST_F(PluginWebTest, FetchesOverHttp) {
  ConfigureGm();
  ASSERT_TRUE(Launch()) << Output();
  // The server's own webport is a real HTTP server.
  Json::Value ok = Fetch("http://127.0.0.1:" + std::to_string(webport_) + "/gm/ping");
  EXPECT_EQ(ok["status"].asInt(), 200) << ok;
  EXPECT_EQ(ok["body"].asString(), "pong");
  // POST with a body and a header, to the plugin's own echo route.
  Json::Value posted = Fetch("http://127.0.0.1:" + std::to_string(webport_) + "/gm/echo", "&post=paid-42");
  EXPECT_EQ(posted["status"].asInt(), 200) << posted;
  EXPECT_EQ(posted["body"].asString(), "paid-42") << posted;
  EXPECT_EQ(posted["x_echo"].asString(), "from-gm") << posted;
  Json::Value missing = Fetch("http://127.0.0.1:" + std::to_string(webport_) + "/nothing");
  EXPECT_EQ(missing["status"].asInt(), 404) << missing;
  // Nobody listens: an error, no status.
  Json::Value refused = Fetch("http://127.0.0.1:" + std::to_string(FreePort()) + "/");
  EXPECT_EQ(refused["status"].asInt(), 0) << refused;
  EXPECT_FALSE(refused["error"].asString().empty()) << refused;
  EXPECT_EQ(Http("GET", "/gm/fetch?url=ftp://x/", "", kToken).status, 400);
}

// A listener that accepts connections (the kernel does) and never answers.
class Silent {
 public:
  Silent() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd_, 16);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Silent() { close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

TEST_F(PluginWebTest, FetchTimesOut) {
  ConfigureGm();
  ASSERT_TRUE(Launch()) << Output();
  Silent silent;
  Json::Value r = Fetch("http://127.0.0.1:" + std::to_string(silent.port()) + "/", "&timeout_ms=300");
  EXPECT_EQ(r["status"].asInt(), 0) << r;
  EXPECT_EQ(r["error"].asString(), "timeout") << r;
}

// The fetch outlives its generation (drain 0.2 s, fetch 3 s): its
// completion must find the generation gone and not call into unloaded code.
TEST_F(PluginWebTest, FetchCompletionNeverReachesAnUnloadedGeneration) {
  netport_ = FreePort();
  webport_ = FreePort();
  Deploy("gm", "gm");
  conf_ = dir_.path() + "/lampyr.json";
  WriteFile(conf_, "{\"master\": {\"admin_token\": \"tok\", \"insecure_dev\": true}, \"servers\": {\"game\": {\"netport\": " +
                       std::to_string(netport_) + ", \"webport\": " + std::to_string(webport_) +
                       ", \"log\": \"game.log\", \"plugins\": [\"gm\"]}}, \"plugins\": {\"gm\": {\"path\": "
                       "\"deploy/libgm.so\", \"drain_timeout_s\": 0.2}}}\n");
  ASSERT_TRUE(Launch()) << Output();
  Silent silent;
  auto pending = std::async(std::launch::async, [&] {
    return Http("GET", "/gm/fetch?timeout_ms=3000&url=http://127.0.0.1:" + std::to_string(silent.port()) + "/", "",
                kToken);
  });
  ASSERT_TRUE(WaitFor([&] { return PluginStatus("gm")["pending"].asUInt() == 1; })) << Log();
  Deploy("gm_v2", "gm");
  Json::Value answer;
  ASSERT_EQ(Reload("gm", &answer), 200) << answer;
  EXPECT_EQ(pending.get().status, 503);
  // The fetch ends after its generation: dropped, and the server still serves.
  EXPECT_TRUE(WaitFor([&] { return Log().find("gm generation 1 unloaded") != std::string::npos; })) << Log();
  EXPECT_TRUE(WaitFor([&] { return Log().find("http_fetch completion (timeout) dropped") != std::string::npos; }))
      << Log();
  EXPECT_EQ(Http("GET", "/gm/ping").body, "pong");
  EXPECT_TRUE(server_->Running()) << Log();
}

// HTTPS against `openssl s_server` with a certificate made for this test.
class PluginHttpsTest : public PluginWebTest {
 protected:
  void SetUp() override {
    cert_ = dir_.path() + "/cert.pem";
    key_ = dir_.path() + "/key.pem";
    const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                            "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout '" + key_ + "' -out '" +
                            cert_ + "' >/dev/null 2>&1";
    ASSERT_EQ(system(cmd.c_str()), 0) << cmd;
    tls_port_ = FreePort();
    tls_ = Process::Start({"/usr/bin/openssl", "s_server", "-accept", std::to_string(tls_port_), "-cert", cert_,
                           "-key", key_, "-www", "-quiet"},
                          {}, dir_.path() + "/s_server.out");
    ASSERT_TRUE(tls_ && WaitForPort("127.0.0.1", tls_port_, 10000)) << ReadFile(dir_.path() + "/s_server.out");
  }
  std::string Url() const { return "https://127.0.0.1:" + std::to_string(tls_port_) + "/"; }

  std::string cert_, key_;
  uint16_t tls_port_ = 0;
  std::unique_ptr<Process> tls_;
};

TEST_F(PluginHttpsTest, AnUntrustedCertificateIsRefusedByDefault) {
  ConfigureGm();
  ASSERT_TRUE(Launch()) << Output();
  Json::Value r = Fetch(Url());
  EXPECT_EQ(r["status"].asInt(), 0) << r;
  EXPECT_NE(r["error"].asString().find("certificate verify failed"), std::string::npos) << r;
  Json::Value insecure = Fetch(Url(), "&insecure=1");
  EXPECT_EQ(insecure["status"].asInt(), 200) << insecure;
}

TEST_F(PluginHttpsTest, ATrustedCertificateIsAccepted) {
  ConfigureGm();
  ASSERT_TRUE(Launch({"SSL_CERT_FILE=" + cert_})) << Output();
  Json::Value r = Fetch(Url());
  EXPECT_EQ(r["status"].asInt(), 200) << r;
  EXPECT_NE(r["body"].asString().find("s_server"), std::string::npos) << r;
}

}  // namespace
}  // namespace lampyr::test

namespace lampyr::test {
namespace {

// Not a threshold: prints the round trip of a plugin web route next to the
// admin API's own /status, same server, same run (docs/benchmarks.md).
TEST_F(PluginWebTest, RoundTripOfAWebRouteNextToStatus) {
  ConfigureGm();
  ASSERT_TRUE(Launch()) << Output();
  auto measure = [&](const std::string& path, const std::vector<std::pair<std::string, std::string>>& h) {
    std::vector<double> us;
    for (int i = 0; i < 400; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      HttpResponse r;
      Status st = HttpCall("127.0.0.1", webport_, "GET", path, "", h, &r, 10000);
      auto t1 = std::chrono::steady_clock::now();
      EXPECT_TRUE(st.ok() && r.status == 200) << path << " " << st.message() << " " << r.status;
      us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    std::sort(us.begin(), us.end());
    return std::make_pair(us[us.size() / 2], us[us.size() * 99 / 100]);
  };
  for (int round = 0; round < 2; ++round) {  // interleaved, so load changes hit both
    auto status = measure("/status", {});
    auto ping = measure("/gm/ping", {});
    auto players = measure("/gm/players", kToken);
    printf("BENCH web round trip (new connection each, 400 requests): /status p50=%.0f us p99=%.0f us | "
           "/gm/ping p50=%.0f us p99=%.0f us | /gm/players (token) p50=%.0f us p99=%.0f us\n",
           status.first, status.second, ping.first, ping.second, players.first, players.second);
  }
}

}  // namespace
}  // namespace lampyr::test
