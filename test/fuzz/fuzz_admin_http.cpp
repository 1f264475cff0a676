// Fuzzes the admin API's request path as the server runs it: the input is
// the raw bytes a client sends on one connection to a real AdminHttp (evhttp
// parses the request; AdminHttp routes, authenticates, refuses bodies where
// none belong, and parses JSON bodies with its limits) with the routes of a
// server's admin API. It must never crash, never let an exception reach the
// loop's boundary, always close the connection once the client is done, and
// anything it answers must be an HTTP response. The JSON body limits are also
// fed the raw input directly, so they are explored even where the request
// around them would not parse.
#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <json/value.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "admin/admin_http.h"
#include "admin/server_admin.h"
#include "core/event_loop.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/metrics.h"

namespace {

using namespace lampyr;

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  fprintf(stderr, "fuzz_admin_http: %s: %s\n", what, detail.c_str());
  abort();
}

struct AdminUnderTest {
  EventLoop loop;
  std::unique_ptr<AdminHttp> http;
  uint16_t port = 0;

  AdminUnderTest() {
    log::SetConsole(false);
    AdminLimits limits;
    limits.request_timeout_s = 2;  // a request the client abandons still ends
    http = std::make_unique<AdminHttp>(&loop, "fuzz-token-0123456789abcdef", limits);
    // The shapes of a server's routes (server_admin.cpp), without a server.
    http->Route("GET", "/status", false, [](const AdminRequest&, AdminHttp::Done done) {
      Json::Value v(Json::objectValue);
      v["servers"] = Json::Value(Json::arrayValue);
      done(200, v);
    });
    http->Route("POST", "/reload", true, [](const AdminRequest& req, AdminHttp::Done done) {
      std::string plugin, server;
      Status st = ParseReloadBody(req.json, &plugin, &server);
      Json::Value v(Json::objectValue);
      v["ok"] = st.ok();
      done(st.ok() ? 200 : 400, v);
    });
    http->RouteText("GET", "/metrics", false,
                    [](const AdminRequest&, AdminHttp::TextDone done) { done(200, "lampyr_up 1\n"); });
    if (!http->Listen("127.0.0.1", 0).ok()) Fail("listen", "127.0.0.1:0");
    port = http->port();
  }

  // A connection to the admin port. Each run leaves one TIME_WAIT behind on
  // this side (the client closes first), thousands a second: when the kernel
  // has no local port free for a moment (EADDRNOTAVAIL) that is this
  // harness's shortage, not the server's, so it waits and tries again. Any
  // other failure is the server's.
  int Connect() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int attempt = 0;; ++attempt) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) Fail("socket", strerror(errno));
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
      const int err = errno;
      close(fd);
      if ((err != EADDRNOTAVAIL && err != EAGAIN && err != EINTR) || attempt == 200)
        Fail("connect to the admin port", strerror(err));
      usleep(50 * 1000);
    }
  }

  // Runs one connection: sends `bytes`, half-closes, and drives the loop
  // until the server closes its side. Returns what the server sent.
  std::string Exchange(std::string_view bytes) {
    const int fd = Connect();
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    std::string out;
    size_t sent = 0;
    bool shut = false;
    const int64_t start = EventLoop::NowMicros();
    for (;;) {
      while (sent < bytes.size()) {
        ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
      if (!shut && sent == bytes.size()) {
        shutdown(fd, SHUT_WR);
        shut = true;
      }
      event_base_loop(loop.base(), EVLOOP_NONBLOCK);
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 1) > 0) {
        char buf[16384];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
        if (n > 0) out.append(buf, static_cast<size_t>(n));
      }
      if (EventLoop::NowMicros() - start > 10'000'000) Fail("hang", "the server kept the connection open");
    }
    close(fd);
    // Let the server finish its side (close callbacks, deadlines).
    for (int i = 0; i < 4; ++i) event_base_loop(loop.base(), EVLOOP_NONBLOCK);
    return out;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static AdminUnderTest* server = new AdminUnderTest();
  std::string_view bytes(reinterpret_cast<const char*>(data), size);

  // The body limits on their own.
  Json::Value v;
  JsonLimits limits;
  limits.max_depth = 32;
  limits.strict = true;
  Status st = ParseJsonText(bytes, &v, limits);
  if (st.ok() && JsonNestingDepth(bytes, 1000) > limits.max_depth) Fail("accepted a too deep document", st.message());
  if (!st.ok() && st.message().empty()) Fail("error without a message", std::string(bytes.substr(0, 64)));

  // The whole request path.
  const std::string answer = server->Exchange(bytes);
  if (!answer.empty() && answer.compare(0, 5, "HTTP/") != 0) Fail("answer is not HTTP", answer.substr(0, 64));
  if (Metrics().Value("lampyr_callback_exceptions_total", "where=\"admin\"") != 0)
    Fail("an exception reached the loop boundary", answer.substr(0, 64));
  if (server->http->open_connections() != 0)
    Fail("a closed connection is still counted", std::to_string(server->http->open_connections()));
  return 0;
}
