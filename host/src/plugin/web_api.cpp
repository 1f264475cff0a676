// Host functions of plugin.h's "Web routes, HTTP client, links, peer
// address" block, looked up by name like the rest (LookupWebFunction).
// Nothing here throws into the plugin (Guard), and every pointer from the
// plugin is copied before the function returns.
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>

#include "plugin/host_api.h"
#include "plugin/plugin_host.h"
#include "plugin/plugin_web.h"

namespace lampyr::plugin {
namespace {

using State = Generation::State;

Generation* G(lampyr_host* h) { return Generation::From(h); }

int WatchLinks(lampyr_host* h, lampyr_link_fn fn) {
  return Guard([&] {
    Generation* g = G(h);
    if (g->state != State::kLoading) return LAMPYR_ERR_STATE;  // init only
    if (!fn) return LAMPYR_ERR_ARG;
    if (!g->host->hub()) return LAMPYR_ERR_UNAVAILABLE;
    g->web.link_fn = fn;
    return LAMPYR_OK;
  });
}

int SessionPeer(lampyr_host* h, lampyr_session s, char* ip, size_t ip_cap, uint16_t* port, int* family) {
  return Guard([&] {
    std::string addr;
    uint16_t p = 0;
    if (!ip || !G(h)->host->web()->PeerOf(s, &addr, &p) || addr.size() + 1 > ip_cap) return LAMPYR_ERR_ARG;
    std::memcpy(ip, addr.c_str(), addr.size() + 1);
    if (port) *port = p;
    if (family) *family = addr.find(':') == std::string::npos ? 4 : 6;
    return LAMPYR_OK;
  });
}

int HttpRoute(lampyr_host* h, const char* method, const char* prefix, int flags, size_t max_body,
              uint64_t timeout_ms, lampyr_http_fn fn) {
  return Guard([&] {
    Generation* g = G(h);
    if (g->state != State::kLoading) return LAMPYR_ERR_STATE;
    if (!method || !prefix || !fn || (flags != LAMPYR_HTTP_PUBLIC && flags != LAMPYR_HTTP_ADMIN))
      return LAMPYR_ERR_ARG;
    GenerationWeb::Route r;
    r.method = method;
    r.prefix = prefix;
    Status st = g->host->web()->CheckRoute(r.method, r.prefix);
    if (!st.ok()) {
      LOG_WARN("plugin", "%s: web route %s %s refused: %s", g->plugin.c_str(), method, prefix, st.message().c_str());
      return st.message() == "this server has no webport" ? LAMPYR_ERR_UNAVAILABLE : LAMPYR_ERR_ARG;
    }
    if (g->web.FindRoute(r.method, r.prefix)) return LAMPYR_ERR_ARG;  // twice in one generation
    r.admin = flags == LAMPYR_HTTP_ADMIN;
    r.max_body = max_body == 0 ? PluginWeb::kDefaultMaxBody : std::min(max_body, PluginWeb::kMaxBody);
    r.timeout_ms = timeout_ms;
    r.fn = fn;
    g->web.routes.push_back(std::move(r));
    return LAMPYR_OK;
  });
}

int HttpRespond(lampyr_host* h, lampyr_token token, int status, const lampyr_http_header* headers, size_t n,
                const char* body, size_t len) {
  return Guard([&] {
    if (n && !headers) return LAMPYR_ERR_ARG;
    HttpHeaders copied;
    copied.reserve(n);
    for (size_t i = 0; i < n; ++i)
      copied.emplace_back(std::string(View(headers[i].name, headers[i].name_len)),
                          std::string(View(headers[i].value, headers[i].value_len)));
    Generation* g = G(h);
    return g->host->web()->Respond(*g, token, status, std::move(copied), std::string(View(body, len)));
  });
}

int HttpFetch(lampyr_host* h, const char* method, const char* url, const lampyr_http_header* headers, size_t n,
              const char* body, size_t len, uint64_t timeout_ms, int flags, uint64_t cookie,
              lampyr_http_response_fn fn) {
  return Guard([&] {
    if (!method || !url || !fn || (n && !headers)) return LAMPYR_ERR_ARG;
    FetchRequest req;
    req.method = method;
    req.url = url;
    for (size_t i = 0; i < n; ++i)
      req.headers.emplace_back(std::string(View(headers[i].name, headers[i].name_len)),
                               std::string(View(headers[i].value, headers[i].value_len)));
    req.body.assign(View(body, len));
    const uint64_t ms = timeout_ms == 0 ? 10000 : std::min<uint64_t>(timeout_ms, 120000);
    req.timeout_s = static_cast<double>(ms) / 1000.0;
    req.insecure = (flags & LAMPYR_FETCH_INSECURE) != 0;
    Generation* g = G(h);
    return g->host->web()->Fetch(*g, req, cookie, fn);
  });
}

struct Entry {
  const char* name;
  void* fn;
};

#define LAMPYR_FN(n, f) Entry{n, reinterpret_cast<void*>(&f)}
const Entry kTable[] = {
    LAMPYR_FN("watch_links", WatchLinks),
    LAMPYR_FN("session_peer", SessionPeer),
    LAMPYR_FN("http_route", HttpRoute),
    LAMPYR_FN("http_respond", HttpRespond),
    LAMPYR_FN("http_fetch", HttpFetch),
};
#undef LAMPYR_FN

static_assert(std::is_same_v<decltype(&WatchLinks), lampyr_fn_watch_links>);
static_assert(std::is_same_v<decltype(&SessionPeer), lampyr_fn_session_peer>);
static_assert(std::is_same_v<decltype(&HttpRoute), lampyr_fn_http_route>);
static_assert(std::is_same_v<decltype(&HttpRespond), lampyr_fn_http_respond>);
static_assert(std::is_same_v<decltype(&HttpFetch), lampyr_fn_http_fetch>);

}  // namespace

void* LookupWebFunction(const char* name) {
  for (const auto& e : kTable)
    if (std::strcmp(e.name, name) == 0) return e.fn;
  return nullptr;
}

}  // namespace lampyr::plugin
