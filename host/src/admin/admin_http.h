// AdminHttp: the small JSON-over-HTTP control surface of a process (DESIGN §8),
// on libevent's evhttp and the process's own EventLoop. It only routes,
// authenticates and encodes; what /status or /reload mean is up to whoever
// installs the routes (server_admin.h for one server, the master for a cluster).
//
// Mutating routes need "Authorization: Bearer <token>": without it (or with a
// wrong one) the answer is 401 and the handler is never called; with no token
// configured every mutating call is refused with 403, so an unconfigured
// deployment cannot be driven by anyone who reaches the port.
#pragma once

#include <json/value.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

struct evhttp;
struct evhttp_request;
struct evhttp_bound_socket;

namespace lampyr {

class EventLoop;

struct AdminRequest {
  std::string method, path;  // "POST", "/reload" (query string stripped)
  std::string query;         // text after '?', empty if none
  std::string body;
  Json::Value json;          // parsed body; null when the body is empty
  std::string peer;          // "127.0.0.1:53422", for logs
};

class AdminHttp : NonCopyable {
 public:
  // Call exactly once, on the loop thread, now or later. Calls after the
  // client left or after this AdminHttp was destroyed are dropped quietly.
  using Done = std::function<void(int status, Json::Value body)>;
  using Handler = std::function<void(const AdminRequest& req, Done done)>;
  using TextDone = std::function<void(int status, std::string text)>;
  using TextHandler = std::function<void(const AdminRequest& req, TextDone done)>;

  static constexpr size_t kDefaultMaxBody = 1 << 20;
  static constexpr const char* kPrometheusType = "text/plain; version=0.0.4; charset=utf-8";

  AdminHttp(EventLoop* loop, std::string token);
  ~AdminHttp();

  // Binds exactly `host` (callers pass loopback unless configured otherwise);
  // port 0 picks a free one, see port(). Call once.
  Status Listen(const std::string& host, uint16_t port);
  uint16_t port() const { return port_; }

  // Registers `method path`. A path with no route is 404, a path known only
  // under other methods is 405. Registering the same pair again replaces it.
  void Route(const std::string& method, const std::string& path, bool mutating, Handler h);
  // Same, for handlers answering plain text (/metrics).
  void RouteText(const std::string& method, const std::string& path, bool mutating, TextHandler h,
                 std::string content_type = kPrometheusType);

  void set_max_body(size_t bytes);
  size_t pending() const { return pending_.size(); }

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
  std::shared_ptr<Pending> Track(evhttp_request* req);
  void Finish(const std::shared_ptr<Pending>& p, int status, const std::string& content_type,
              const std::string& body);
  void SendJson(evhttp_request* req, int status, const Json::Value& body);

  EventLoop* loop_;
  std::string token_;
  evhttp* http_ = nullptr;
  uint16_t port_ = 0;
  size_t max_body_ = kDefaultMaxBody;
  std::map<std::string, std::map<std::string, RouteEntry>> routes_;  // path -> method -> route
  // Requests handed to a handler and not answered yet; cleared (and marked
  // dead) on destruction because evhttp_free frees them.
  std::vector<std::shared_ptr<Pending>> pending_;
};

// The JSON text of `v` as the admin API sends it (compact, one line).
std::string AdminJsonText(const Json::Value& v);

}  // namespace lampyr
