// PluginWeb: the host side of plugin.h's "Web routes, HTTP client, links,
// peer address" for the plugins of one server.
//
// - Web routes: a table (method, prefix) -> plugin. A request goes to the
//   plugin's CURRENT generation, so a reload swaps every route in the loop
//   turn that swaps its commands. A request the plugin has not answered is a
//   lease of the generation that got it: that generation may answer it while
//   draining; if it is unloaded first, or the route's time limit passes, the
//   host answers (503 / 504). Admin paths are never routed here (AdminHttp
//   matches its own first) and cannot be registered.
// - Link events: this server's channel links, fanned out to the serving
//   generations that watch them; a new watcher is told which links are up.
// - Peer addresses: learned from session open events (this server's own
//   sessions, or every session of the cluster through the forward roots).
#pragma once

#include <lampyr/plugin.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "admin/admin_http.h"
#include "core/log_throttle.h"
#include "core/status.h"
#include "plugin/http_fetcher.h"
#include "net/dispatch.h"

namespace lampyr {
class ChannelHub;
}

namespace lampyr::plugin {

class Generation;
class PluginHost;

class PluginWeb : NonCopyable {
 public:
  static constexpr size_t kDefaultMaxBody = 64 << 10;
  static constexpr size_t kMaxBody = 1 << 20;
  static constexpr uint64_t kDefaultTimeoutMs = 5000;
  static constexpr size_t kMaxResponseBody = 16 << 20;

  // `has_webport`: without one, http_route is unavailable.
  PluginWeb(PluginHost* host, bool has_webport);
  ~PluginWeb();

  // --- web routes ---
  // For AdminHttp::SetWebRoutes (the server wires it once its admin API exists).
  WebMatch Lookup(const std::string& method, const std::string& path, WebTarget* out);
  // Caps the route time limit below the admin request deadline.
  void set_request_timeout_s(double s) { request_timeout_s_ = s; }
  // Told the largest max_body of the routes now, and again whenever a
  // reload changes it (the webport reads no larger bodies than needed).
  void SetBodyCapListener(std::function<void(size_t)> fn);
  // Checks a registration (http_route, during init).
  Status CheckRoute(const std::string& method, const std::string& prefix) const;
  Status CheckConflicts(const Generation& g) const;
  // Moves the routes of `old` (may be null) to `next` (may be null).
  void Swap(const Generation* old, const std::shared_ptr<Generation>& next);
  // http_respond.
  int Respond(Generation& g, uint64_t token, int status, HttpHeaders headers, std::string body);
  // Answers what `g` still owes (503): it is being unloaded.
  void Retire(Generation& g);

  // --- HTTP client (http_fetch) ---
  // LAMPYR_OK when fn(ctx, cookie, response) will run (unless `g` is
  // unloaded first); an error code, logged, when the request was refused.
  int Fetch(Generation& g, const FetchRequest& req, uint64_t cookie, lampyr_http_response_fn fn);

  // --- link events ---
  void OnLink(const std::string& node, bool up);

  // --- peer addresses ---
  void OnSession(SessionId s, bool open, const std::string& info);
  // "ip:port" of a session; false when unknown.
  bool PeerOf(SessionId s, std::string* ip, uint16_t* port) const;

 private:
  struct RouteKey {
    std::string method, prefix;
    bool operator<(const RouteKey& o) const { return std::tie(method, prefix) < std::tie(o.method, o.prefix); }
  };
  void Dispatch(const std::string& plugin, const std::string& method, const std::string& prefix,
                const WebRequest& req, WebDone done);
  void Expire(const std::weak_ptr<Generation>& w, uint64_t token);

  PluginHost* host_;
  bool has_webport_;
  double request_timeout_s_ = 10;
  std::map<RouteKey, std::string> routes_;  // -> plugin name
  std::unordered_map<SessionId, std::string> peers_;
  std::unique_ptr<HttpFetcher> fetcher_;  // made on first use
  LogThrottle timeout_lines_{10.0, 256};  // per plugin
  std::function<void(size_t)> body_cap_listener_;
  size_t body_cap_ = 0;
  void UpdateBodyCap(const Generation* swapping);
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lampyr::plugin
