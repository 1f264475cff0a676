// AdminHttp: the small JSON-over-HTTP control surface of a process (DESIGN §8),
// on libevent's evhttp and the process's own EventLoop. It only routes,
// authenticates and encodes; what /status or /reload mean is up to whoever
// installs the routes (server_admin.h for one server, the master for a cluster).
//
// Mutating routes need "Authorization: Bearer <token>": without it (or with a
// wrong one) the answer is 401 and the handler is never called; with no token
// configured every mutating call is refused with 403, so an unconfigured
// deployment cannot be driven by anyone who reaches the port. An address that
// keeps sending wrong tokens is answered 429 for a growing while (auth_throttle.h).
//
// Every port is hostile input: connections are capped and each request has an
// absolute deadline (http_connections.h); only routes that take a body (POST,
// PUT, PATCH) get one, parsed with a size and a nesting limit; anything that
// escapes a handler is stopped at the evhttp callback and answered 500.
#pragma once

#include <json/value.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "admin/auth_throttle.h"
#include "core/log_throttle.h"
#include "core/status.h"

struct evhttp;
struct evhttp_request;
struct evhttp_bound_socket;

namespace lampyr {

class EventLoop;
class HttpConnections;
struct MasterConfig;

struct AdminLimits {
  size_t max_connections = 64;      // master.admin_max_connections
  double request_timeout_s = 10;    // master.admin_request_timeout_s
  size_t max_body = 64 << 10;       // bodies are a few names; larger is 413
  size_t max_headers = 8 << 10;
  size_t max_json_depth = 32;
  AuthThrottle::Options auth;
};

// The limits of every admin listener of a cluster (the master's and each
// server's), from its config.
AdminLimits AdminLimitsOf(const MasterConfig& master);

struct AdminRequest {
  std::string method, path;  // "POST", "/reload" (query string stripped)
  std::string query;         // text after '?', empty if none
  std::string body;          // empty unless the route takes a body
  Json::Value json;          // parsed body; null when the body is empty
  std::string peer;          // "127.0.0.1:53422", for logs
};

// A request for a route the admin API does not own: plugins' web routes
// (admin/web_routes.h). Raw bytes, no JSON.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;
struct WebRequest {
  std::string method, path, query, body;
  HttpHeaders headers;
  std::string peer_ip;
  uint16_t peer_port = 0;
};
// Call at most once, on the loop thread; calls after the client left or
// after the AdminHttp was destroyed are dropped quietly.
using WebDone = std::function<void(int status, HttpHeaders headers, std::string body)>;
struct WebTarget {
  bool admin = false;      // needs the admin token, as mutating admin routes do
  size_t max_body = 0;     // larger request bodies are 413
  std::function<void(const WebRequest&, WebDone)> handler;
};
enum class WebMatch { kNone, kWrongMethod, kFound };
// Asked for every path no admin route has (so admin paths always win).
using WebLookup = std::function<WebMatch(const std::string& method, const std::string& path, WebTarget* out)>;

class AdminHttp : NonCopyable {
 public:
  // Call exactly once, on the loop thread, now or later. Calls after the
  // client left or after this AdminHttp was destroyed are dropped quietly.
  using Done = std::function<void(int status, Json::Value body)>;
  using Handler = std::function<void(const AdminRequest& req, Done done)>;
  using TextDone = std::function<void(int status, std::string text)>;
  using TextHandler = std::function<void(const AdminRequest& req, TextDone done)>;

  static constexpr size_t kDefaultMaxBody = AdminLimits{}.max_body;
  static constexpr const char* kPrometheusType = "text/plain; version=0.0.4; charset=utf-8";

  AdminHttp(EventLoop* loop, std::string token, AdminLimits limits = {});
  ~AdminHttp();

  // Binds exactly `host` (admin_host: loopback unless configured otherwise,
  // and a WARN when it is not); port 0 picks a free one, see port(). Call once.
  Status Listen(const std::string& host, uint16_t port);
  uint16_t port() const { return port_; }

  // Registers `method path`. A path with no route is 404, a path known only
  // under other methods is 405. Registering the same pair again replaces it.
  // POST, PUT and PATCH routes take a JSON body; a request with a body on any
  // other route is 400 (nothing in this API reads one there).
  void Route(const std::string& method, const std::string& path, bool mutating, Handler h);
  // Same, for handlers answering plain text (/metrics).
  void RouteText(const std::string& method, const std::string& path, bool mutating, TextHandler h,
                 std::string content_type = kPrometheusType);

  void set_max_body(size_t bytes);
  // Paths no admin route has go to `lookup` (plugins' web routes).
  void SetWebRoutes(WebLookup lookup);
  // The largest body a web route takes: evhttp reads requests up to the
  // larger of it and the admin limit (admin routes keep their own limit).
  void SetWebBodyCap(size_t bytes);
  double request_timeout_s() const { return limits_.request_timeout_s; }
  size_t pending() const { return pending_.size(); }
  size_t open_connections() const;

  // Constant-time check of an Authorization header value against "Bearer <token>".
  static bool TokenMatches(const std::string& token, const char* header);

 private:
  struct RouteEntry {
    bool mutating = false;
    Handler json;
    TextHandler text;
    std::string content_type;
  };
  struct Pending;

  static void OnRequest(evhttp_request* req, void* arg);
  void Handle(evhttp_request* req);
  // False when the request was answered (401/403/429).
  bool Authorized(evhttp_request* req, const AdminRequest& r, const std::string& address);
  // A path no admin route has: 404, or a plugin's web route.
  void HandleWeb(evhttp_request* req, const AdminRequest& r, const std::string& address);
  void ApplyBodyCap();
  std::shared_ptr<Pending> Track(evhttp_request* req);
  void Finish(const std::shared_ptr<Pending>& p, int status, const std::string& content_type,
              const std::string& body);
  void SendJson(evhttp_request* req, int status, const Json::Value& body);
  void Send(evhttp_request* req, int status, const std::string& content_type, const std::string& body);

  EventLoop* loop_;
  std::string token_;
  AdminLimits limits_;
  evhttp* http_ = nullptr;
  std::unique_ptr<HttpConnections> conns_;
  uint16_t port_ = 0;
  AuthThrottle auth_;
  LogThrottle refusal_lines_;  // per address
  // The request OnRequest is handling, and whether it was answered or handed
  // to a handler: if an exception escapes before either, it is answered 500.
  evhttp_request* current_ = nullptr;
  bool current_handled_ = false;
  std::map<std::string, std::map<std::string, RouteEntry>> routes_;  // path -> method -> route
  WebLookup web_;
  size_t max_web_body_ = 0;
  // Requests handed to a handler and not answered yet; cleared (and marked
  // dead) on destruction because evhttp_free frees them.
  std::vector<std::shared_ptr<Pending>> pending_;
};

// The JSON text of `v` as the admin API sends it (compact, one line).
std::string AdminJsonText(const Json::Value& v);

}  // namespace lampyr
