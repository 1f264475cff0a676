// HttpFetcher: outbound HTTP(S) requests for plugins ("http_fetch"), on
// libevent's evhttp client — over bufferevent_openssl for https — and the
// process's own loop. No hand-written HTTP.
//
// - Every request has a whole-request deadline (the loop timer), an I/O
//   timeout, a response size limit and a header size limit.
// - https verifies the certificate chain against the system trust store
//   (OpenSSL's default paths, so SSL_CERT_FILE / SSL_CERT_DIR override it)
//   and the certificate's name against the URL's host (DNS name or IP), unless
//   the caller asks for `insecure`.
// - Redirects are not followed: the caller sees the 3xx and decides.
// - `done` runs exactly once, on the loop, never inside Fetch() itself;
//   never after the HttpFetcher is destroyed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/event_loop.h"

struct evdns_base;
struct evhttp_request;
struct ssl_ctx_st;

namespace lampyr {

struct FetchRequest {
  std::string method = "GET";  // GET or POST
  std::string url;             // http://host[:port]/path?query or https://...
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  double timeout_s = 10;
  bool insecure = false;       // https: no certificate checks
};

struct FetchResponse {
  int status = 0;     // 0: no HTTP answer, see error
  std::string error;  // "" when status > 0
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

class HttpFetcher : NonCopyable {
 public:
  static constexpr size_t kMaxResponseBody = 4 << 20;
  static constexpr size_t kMaxResponseHeaders = 64 << 10;
  static constexpr size_t kMaxRequestBody = 4 << 20;

  explicit HttpFetcher(EventLoop* loop);
  ~HttpFetcher();

  using Done = std::function<void(FetchResponse)>;
  // An empty string when the request started (done will run), else why it
  // was refused (done will not run): bad URL, method or header.
  std::string Fetch(const FetchRequest& request, Done done);
  size_t in_flight() const { return live_.size(); }

 private:
  struct Call;
  static void OnResponse(evhttp_request* req, void* arg);
  static void OnError(int error, void* arg);
  void Finish(Call* c, FetchResponse r);
  void Free(Call* c);
  std::string TlsContext(ssl_ctx_st** out);

  EventLoop* loop_;
  evdns_base* dns_ = nullptr;
  ssl_ctx_st* tls_ = nullptr;
  uint64_t next_id_ = 0;
  std::unordered_map<Call*, std::unique_ptr<Call>> live_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lampyr
