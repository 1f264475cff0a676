// What one generation holds of the web/link features (plugin.h, "Web routes,
// HTTP client, links, peer address"): its callbacks, its routes, the web
// requests it owes an answer and the HTTP fetches it waits for. Pending
// requests and fetches are leases: a draining generation stays loaded until
// they end (or the drain timeout answers the requests 503).
#pragma once

#include <lampyr/plugin.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "admin/admin_http.h"
#include "core/event_loop.h"

namespace lampyr::plugin {

struct GenerationWeb {
  struct Route {
    std::string method, prefix;
    bool admin = false;
    size_t max_body = 0;
    uint64_t timeout_ms = 0;
    lampyr_http_fn fn = nullptr;
  };
  struct PendingRequest {
    WebDone done;
    TimerId deadline = 0;
  };

  lampyr_link_fn link_fn = nullptr;
  std::vector<Route> routes;
  std::unordered_map<uint64_t, PendingRequest> requests;  // by token
  size_t fetches = 0;                                     // http_fetch calls not completed
  bool warned_insecure = false;                           // logged its first unverified https fetch

  size_t leases() const { return requests.size() + fetches; }
  const Route* FindRoute(const std::string& method, const std::string& prefix) const {
    for (const auto& r : routes)
      if (r.method == method && r.prefix == prefix) return &r;
    return nullptr;
  }
};

}  // namespace lampyr::plugin
