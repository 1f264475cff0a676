// AdminHttp over real loopback HTTP: the server runs on an EventLoop thread,
// the test talks to it with the blocking admin HTTP client.
#include "admin/admin_http.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <json/reader.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <future>
#include <stdexcept>
#include <mutex>
#include <sstream>
#include <thread>

#include "admin/http_client.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "core/metrics.h"

namespace lampyr {
namespace {

constexpr const char* kToken = "s3cret-token-value";

Json::Value Parse(const std::string& text) {
  Json::Value v;
  Json::CharReaderBuilder b;
  std::unique_ptr<Json::CharReader> r(b.newCharReader());
  std::string errs;
  EXPECT_TRUE(r->parse(text.data(), text.data() + text.size(), &v, &errs)) << text;
  return v;
}

class AdminHttpTest : public ::testing::Test {
 protected:
  void Start(const std::string& token, AdminLimits limits = {}) {
    http_ = std::make_unique<AdminHttp>(&loop_, token, limits);
    http_->Route("GET", "/hello", false, [](const AdminRequest& req, AdminHttp::Done done) {
      Json::Value v;
      v["hello"] = "world";
      v["query"] = req.query;
      done(200, v);
    });
    http_->Route("POST", "/act", true, [this](const AdminRequest& req, AdminHttp::Done done) {
      ++acted_;
      Json::Value v;
      v["got"] = req.json;
      done(200, v);
    });
    http_->RouteText("GET", "/text", false, [](const AdminRequest&, AdminHttp::TextDone done) {
      done(200, "plain words\n");
    });
    http_->Route("POST", "/later", true, [this](const AdminRequest&, AdminHttp::Done done) {
      std::lock_guard<std::mutex> lock(mu_);
      parked_.push_back(std::move(done));
      cv_.notify_all();
    });
    http_->Route("GET", "/drop", false, [](const AdminRequest&, AdminHttp::Done) {});
    http_->Route("GET", "/throw", false, [](const AdminRequest&, AdminHttp::Done) {
      throw std::runtime_error("handler bug");
    });
    ASSERT_TRUE(http_->Listen("127.0.0.1", 0).ok());
    port_ = http_->port();
    ASSERT_NE(port_, 0);
    thread_ = std::thread([this] { loop_.Run(); });
  }
  void StopLoop() {
    if (thread_.joinable()) {
      loop_.Post([this] { loop_.Quit(); });
      thread_.join();
    }
  }
  void TearDown() override {
    StopLoop();
    http_.reset();
  }

  HttpResponse Call(const std::string& method, const std::string& path, const std::string& body = "",
                    const std::string& auth = "") {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!auth.empty()) headers.emplace_back("Authorization", auth);
    HttpResponse resp;
    Status st = HttpCall("127.0.0.1", port_, method, path, body, headers, &resp, 10000);
    EXPECT_TRUE(st.ok()) << st.message();
    return resp;
  }

  // Reads the number of open connections on the loop thread.
  size_t OpenConnections() {
    std::promise<size_t> p;
    auto f = p.get_future();
    loop_.Post([&] { p.set_value(http_->open_connections()); });
    return f.get();
  }
  // Polls until the server counts `n` open connections (bounded).
  bool WaitOpen(size_t n) {
    for (int i = 0; i < 2000; ++i) {
      if (OpenConnections() == n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  // Waits until a /later request is parked (the handler ran).
  void WaitParked(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(10), [&] { return parked_.size() >= n; }));
  }

  EventLoop loop_;
  std::unique_ptr<AdminHttp> http_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<int> acted_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<AdminHttp::Done> parked_;
};

TEST_F(AdminHttpTest, GetAnswersJson) {
  Start(kToken);
  HttpResponse r = Call("GET", "/hello?x=1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), "application/json");
  Json::Value v = Parse(r.body);
  EXPECT_EQ(v["hello"].asString(), "world");
  EXPECT_EQ(v["query"].asString(), "x=1");
  // A trailing slash names the same resource.
  EXPECT_EQ(Call("GET", "/hello/").status, 200);
}

TEST_F(AdminHttpTest, TextRouteKeepsItsContentType) {
  Start(kToken);
  HttpResponse r = Call("GET", "/text");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), AdminHttp::kPrometheusType);
  EXPECT_EQ(r.body, "plain words\n");
}

TEST_F(AdminHttpTest, MutatingCallWithoutTokenIs401AndDoesNothing) {
  AdminLimits limits;
  limits.auth.free_failures = 100;  // this test is about the comparison, not the back-off
  Start(kToken, limits);
  HttpResponse r = Call("POST", "/act", "{\"a\":1}");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Parse(r.body)["error"].asString(), "unauthorized");
  for (const char* wrong : {"Bearer wrong", "Bearer s3cret-token-valu", "Bearer s3cret-token-value2",
                            "s3cret-token-value", "Basic czNjcmV0", "Bearer  s3cret-token-value",
                            "bearer s3cret-token-value"}) {
    EXPECT_EQ(Call("POST", "/act", "{}", wrong).status, 401) << wrong;
  }
  EXPECT_EQ(acted_.load(), 0);
  r = Call("POST", "/act", "{\"a\":1}", std::string("Bearer ") + kToken);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Parse(r.body)["got"]["a"].asInt(), 1);
  EXPECT_EQ(acted_.load(), 1);
}

TEST_F(AdminHttpTest, NoConfiguredTokenRefusesEveryMutatingCall) {
  Start("");
  HttpResponse r = Call("POST", "/act", "{}", "Bearer ");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Parse(r.body)["error"].asString(), "admin_token not configured");
  EXPECT_EQ(Call("POST", "/act", "{}").status, 403);
  EXPECT_EQ(acted_.load(), 0);
  // Reading stays open.
  EXPECT_EQ(Call("GET", "/hello").status, 200);
}

TEST_F(AdminHttpTest, UnknownPathIs404WrongMethodIs405) {
  Start(kToken);
  HttpResponse r = Call("GET", "/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(Parse(r.body)["error"].asString().find("/nope"), std::string::npos);
  r = Call("GET", "/act");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("allow"), "POST");
  r = Call("DELETE", "/hello");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(acted_.load(), 0);
}

TEST_F(AdminHttpTest, BadJsonIs400NamingTheProblem) {
  Start(kToken);
  HttpResponse r = Call("POST", "/act", "{\"a\":", std::string("Bearer ") + kToken);
  EXPECT_EQ(r.status, 400);
  std::string err = Parse(r.body)["error"].asString();
  EXPECT_NE(err.find("invalid JSON body"), std::string::npos) << err;
  EXPECT_NE(err.find("Line 1"), std::string::npos) << err;
  EXPECT_EQ(Call("POST", "/act", "{\"a\":1} trailing", std::string("Bearer ") + kToken).status, 400);
  EXPECT_EQ(Call("POST", "/act", "{\"a\":1,\"a\":2}", std::string("Bearer ") + kToken).status, 400);
  EXPECT_EQ(acted_.load(), 0);
  // An empty body is fine: json stays null.
  r = Call("POST", "/act", "", std::string("Bearer ") + kToken);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(Parse(r.body)["got"].isNull());
}

TEST_F(AdminHttpTest, OversizedBodyIsRefused) {
  http_ = nullptr;
  Start(kToken);
  std::string big = "[" + std::string(AdminHttp::kDefaultMaxBody, ' ') + "]";
  HttpResponse resp;
  Status st = HttpCall("127.0.0.1", port_, "POST", "/act", big, {{"Authorization", std::string("Bearer ") + kToken}},
                       &resp, 10000);
  // libevent answers 413 and closes; a client still sending may see a reset instead.
  if (st.ok()) {
    EXPECT_EQ(resp.status, 413);
  }
  EXPECT_EQ(acted_.load(), 0);
  EXPECT_EQ(Call("GET", "/hello").status, 200);
}

TEST_F(AdminHttpTest, AsyncHandlerAnswersLater) {
  Start(kToken);
  HttpResponse resp;
  Status st;
  std::thread client([&] {
    st = HttpCall("127.0.0.1", port_, "POST", "/later", "{}", {{"Authorization", std::string("Bearer ") + kToken}},
                  &resp, 10000);
  });
  WaitParked(1);
  // Other requests are served while one waits.
  EXPECT_EQ(Call("GET", "/hello").status, 200);
  loop_.Post([this] {
    Json::Value v;
    v["late"] = true;
    parked_[0](202, v);
  });
  client.join();
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(resp.status, 202);
  EXPECT_TRUE(Parse(resp.body)["late"].asBool());
}

int ConnectRaw(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

TEST_F(AdminHttpTest, AnswerAfterTheClientLeftIsHarmless) {
  Start(kToken);
  int fd = ConnectRaw(port_);
  ASSERT_GE(fd, 0);
  std::string req = std::string("POST /later HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ") + kToken +
                    "\r\nContent-Length: 2\r\n\r\n{}";
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  WaitParked(1);
  close(fd);
  // Let the server notice the close, then answer, twice (the second is dropped).
  EXPECT_EQ(Call("GET", "/hello").status, 200);
  std::atomic<bool> answered{false};
  loop_.Post([&] {
    parked_[0](200, Json::Value("too late"));
    parked_[0](200, Json::Value("twice"));
    answered = true;
  });
  EXPECT_EQ(Call("GET", "/hello").status, 200);
  EXPECT_TRUE(answered.load());
  EXPECT_EQ(http_->pending(), 0u);
}

TEST_F(AdminHttpTest, AnswerAfterTheServerIsGoneIsHarmless) {
  Start(kToken);
  HttpResponse resp;
  Status st;
  std::thread client([&] {
    st = HttpCall("127.0.0.1", port_, "POST", "/later", "{}", {{"Authorization", std::string("Bearer ") + kToken}},
                  &resp, 10000);
  });
  WaitParked(1);
  StopLoop();
  http_.reset();  // frees the pending request with the connection
  parked_[0](200, Json::Value("nobody listens"));
  parked_.clear();
  client.join();
  EXPECT_FALSE(st.ok() && resp.status == 200);
}

TEST_F(AdminHttpTest, HandlerThatDropsItsAnswerGives500) {
  Start(kToken);
  HttpResponse r = Call("GET", "/drop");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(http_->pending(), 0u);
}

TEST_F(AdminHttpTest, BindsOnlyTheAddressItIsGiven) {
  Start(kToken);
  // The whole 127/8 is local on Linux: a listener on 127.0.0.1 alone must
  // not answer on 127.0.0.2, as it would if it had bound every address.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port_);
  inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
  EXPECT_NE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  close(fd);
  EXPECT_EQ(Call("GET", "/hello").status, 200);
}

TEST_F(AdminHttpTest, ListenFailureIsReported) {
  Start(kToken);
  AdminHttp other(&loop_, kToken);
  Status st = other.Listen("127.0.0.1", port_);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find(std::to_string(port_)), std::string::npos) << st.message();
}

TEST_F(AdminHttpTest, MutatingCallsAreLoggedWithoutTheToken) {
  char dir[] = "/tmp/lampyr_admin_log_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string file = std::string(dir) + "/admin.log";
  std::string err;
  ASSERT_TRUE(log::Init("admintest", file, log::Level::kInfo, &err)) << err;
  log::SetConsole(false);
  Start(kToken);
  EXPECT_EQ(Call("POST", "/act", "{}", std::string("Bearer ") + kToken).status, 200);
  EXPECT_EQ(Call("POST", "/act", "{}", "Bearer s3cret-token-valuX").status, 401);
  StopLoop();
  log::Init("admintest", "", log::Level::kInfo, &err);
  log::SetConsole(true);
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  unlink(file.c_str());
  rmdir(dir);
  EXPECT_NE(text.find("POST /act from 127.0.0.1"), std::string::npos) << text;
  EXPECT_NE(text.find("-> 200"), std::string::npos) << text;
  EXPECT_NE(text.find("wrong token"), std::string::npos) << text;
  EXPECT_EQ(text.find("s3cret"), std::string::npos) << text;
}

TEST_F(AdminHttpTest, BodyOnARouteThatTakesNoneIs400) {
  Start(kToken);
  HttpResponse r = Call("GET", "/hello", "{\"a\":1}");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(Parse(r.body)["error"].asString().find("takes no request body"), std::string::npos) << r.body;
  // Not even looked at: a body no JSON parser could survive is the same 400.
  EXPECT_EQ(Call("GET", "/hello", std::string(5000, '[')).status, 400);
  EXPECT_EQ(Call("GET", "/hello").status, 200);
}

TEST_F(AdminHttpTest, NestingBeyondTheLimitIs400NamingIt) {
  Start(kToken);
  const std::string auth = std::string("Bearer ") + kToken;
  const size_t limit = AdminLimits{}.max_json_depth;
  HttpResponse r = Call("POST", "/act", std::string(limit, '[') + std::string(limit, ']'), auth);
  EXPECT_EQ(r.status, 200) << r.body;
  r = Call("POST", "/act", std::string(limit + 1, '[') + std::string(limit + 1, ']'), auth);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(Parse(r.body)["error"].asString().find("nested deeper than 32 levels"), std::string::npos) << r.body;
  // Brackets inside strings are text, not nesting.
  r = Call("POST", "/act", "{\"a\": \"" + std::string(1000, '[') + "\"}", auth);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(acted_.load(), 2);
}

TEST_F(AdminHttpTest, AnExceptionInAHandlerIs500AndTheLoopGoesOn) {
  Start(kToken);
  const int64_t before = Metrics().Value("lampyr_callback_exceptions_total", "where=\"admin\"");
  HttpResponse r = Call("GET", "/throw");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(Metrics().Value("lampyr_callback_exceptions_total", "where=\"admin\""), before + 1);
  EXPECT_EQ(Call("GET", "/hello").status, 200);
  EXPECT_EQ(http_->pending(), 0u);
}

TEST_F(AdminHttpTest, EveryWayAConnectionEndsIsCounted) {
  Start(kToken);
  // Answered and closed by the client.
  EXPECT_EQ(Call("GET", "/hello").status, 200);
  // Gone in the middle of a request line.
  int fd = ConnectRaw(port_);
  ASSERT_EQ(write(fd, "GET /hel", 8), 8);
  ASSERT_TRUE(WaitOpen(1));
  close(fd);
  // Gone while a handler still works on its request.
  fd = ConnectRaw(port_);
  std::string req = std::string("POST /later HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ") + kToken +
                    "\r\nContent-Length: 2\r\n\r\n{}";
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  WaitParked(1);
  close(fd);
  // Kept alive after an answer, then closed.
  fd = ConnectRaw(port_);
  const std::string keep = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(fd, keep.data(), keep.size()), static_cast<ssize_t>(keep.size()));
  char buf[512];
  ASSERT_GT(read(fd, buf, sizeof buf), 0);
  close(fd);
  // Refused by evhttp itself (a malformed request line).
  fd = ConnectRaw(port_);
  ASSERT_EQ(write(fd, "\x01\x02 nonsense\r\n\r\n", 15), 15);
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
  // evhttp stops reading while a handler works, so the one whose client
  // left mid-handler stays (with its descriptor) until its answer is sent.
  EXPECT_TRUE(WaitOpen(1)) << OpenConnections();
  loop_.Post([this] { parked_[0](200, Json::Value("late")); });
  EXPECT_EQ(Call("GET", "/hello").status, 200);
  EXPECT_TRUE(WaitOpen(0));
}

TEST_F(AdminHttpTest, AtTheCapNewConnectionsWaitUntilOneCloses) {
  AdminLimits limits;
  limits.max_connections = 2;
  Start(kToken, limits);
  int a = ConnectRaw(port_), b = ConnectRaw(port_);
  ASSERT_TRUE(WaitOpen(2));
  // The third is accepted by the kernel (backlog) but not by the server.
  HttpResponse third;
  Status st;
  std::thread client([&] { st = HttpCall("127.0.0.1", port_, "GET", "/hello", "", {}, &third, 10000); });
  // Without a cap the server would take it: its count would reach 3.
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_LE(OpenConnections(), 2u);
  }
  close(a);
  client.join();
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(third.status, 200);
  close(b);
  EXPECT_TRUE(WaitOpen(0));
}

TEST_F(AdminHttpTest, ARequestThatNeverCompletesIsCutAtTheDeadline) {
  AdminLimits limits;
  limits.request_timeout_s = 0.2;
  Start(kToken, limits);
  int fd = ConnectRaw(port_);
  ASSERT_EQ(write(fd, "GET /hello HTTP/1.1\r\n", 21), 21);
  char c;
  // The server closes it (read returns 0); the guard only stops a hang.
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 10000), 1);
  EXPECT_EQ(read(fd, &c, 1), 0);
  close(fd);
  EXPECT_TRUE(WaitOpen(0));
  EXPECT_EQ(Call("GET", "/hello").status, 200);
}

TEST_F(AdminHttpTest, AHandlerMayTakeLongerThanTheDeadline) {
  AdminLimits limits;
  limits.request_timeout_s = 0.2;  // evhttp's own timeout becomes 1 s
  Start(kToken, limits);
  HttpResponse resp;
  Status st;
  std::thread client([&] {
    st = HttpCall("127.0.0.1", port_, "POST", "/later", "{}", {{"Authorization", std::string("Bearer ") + kToken}},
                  &resp, 10000);
  });
  WaitParked(1);
  // Longer than both timeouts: the deadline covers receiving, not handling.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  loop_.Post([this] { parked_[0](202, Json::Value("slow but fine")); });
  client.join();
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(resp.status, 202);
}

TEST_F(AdminHttpTest, WrongTokensFromOneAddressAreAnswered429) {
  Start(kToken);
  const std::string right = std::string("Bearer ") + kToken;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Call("POST", "/act", "{}", "Bearer nope").status, 401) << i;
  HttpResponse r = Call("POST", "/act", "{}", right);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Header("retry-after"), "1");
  EXPECT_EQ(acted_.load(), 0);
  EXPECT_EQ(Call("GET", "/hello").status, 200);
}

TEST(AdminToken, ConstantTimeCompareMatchesOnlyTheExactHeader) {
  EXPECT_TRUE(AdminHttp::TokenMatches("abc", "Bearer abc"));
  EXPECT_FALSE(AdminHttp::TokenMatches("abc", "Bearer abcd"));
  EXPECT_FALSE(AdminHttp::TokenMatches("abc", "Bearer ab"));
  EXPECT_FALSE(AdminHttp::TokenMatches("abc", ""));
  EXPECT_FALSE(AdminHttp::TokenMatches("abc", nullptr));
  EXPECT_FALSE(AdminHttp::TokenMatches("", "Bearer "));
}

TEST(HttpUrl, ParsesTheFormsLampyrctlAccepts) {
  HttpUrl u;
  ASSERT_TRUE(ParseHttpUrl("http://127.0.0.1:9998", &u).ok());
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 9998);
  ASSERT_TRUE(ParseHttpUrl("localhost:80/admin/", &u).ok());
  EXPECT_EQ(u.host, "localhost");
  EXPECT_EQ(u.base_path, "/admin");
  ASSERT_TRUE(ParseHttpUrl("http://[::1]:7000", &u).ok());
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 7000);
  EXPECT_FALSE(ParseHttpUrl("https://x:1", &u).ok());
  EXPECT_FALSE(ParseHttpUrl("http://x:0", &u).ok());
  EXPECT_FALSE(ParseHttpUrl("http://x:70000", &u).ok());
  EXPECT_FALSE(ParseHttpUrl("http://:80", &u).ok());
}

TEST(HttpClient, RefusedConnectionIsAnError) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);  // the port is now closed
  HttpResponse r;
  Status st = HttpCall("127.0.0.1", ntohs(a.sin_port), "GET", "/status", "", {}, &r, 2000);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("cannot connect"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace lampyr
