#include "plugin/plugin_web.h"

#include <json/value.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <strings.h>

#include "channel/channel_hub.h"
#include "core/activity.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "plugin/generation.h"
#include "plugin/plugin_host.h"

namespace lampyr::plugin {
namespace {

// The admin API's paths (DESIGN §8, §10): a plugin may not register them or
// anything under them, so an operator's URL always means the host's answer.
constexpr const char* kAdminPaths[] = {"/status", "/reload", "/stop", "/restart", "/metrics", "/upgrade"};

bool UnderPrefix(const std::string& path, const std::string& prefix) {
  return path.size() >= prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
         (path.size() == prefix.size() || path[prefix.size()] == '/');
}

std::string JsonError(const std::string& message) { return AdminJsonText(Json::Value(message)); }

HttpHeaders JsonType() { return {{"Content-Type", "application/json"}}; }

std::string ErrorBody(const std::string& message) { return "{\"error\":" + JsonError(message) + "}\n"; }

// evhttp writes the message framing itself: a plugin's own value would
// contradict it (a wrong Content-Length desynchronises the connection).
bool FramingHeader(const std::string& name) {
  return strcasecmp(name.c_str(), "Content-Length") == 0 || strcasecmp(name.c_str(), "Transfer-Encoding") == 0 ||
         strcasecmp(name.c_str(), "Connection") == 0;
}

}  // namespace

PluginWeb::PluginWeb(PluginHost* host, bool has_webport) : host_(host), has_webport_(has_webport) {}

PluginWeb::~PluginWeb() { *alive_ = false; }

Status PluginWeb::CheckRoute(const std::string& method, const std::string& prefix) const {
  if (!has_webport_) return Status::Error("this server has no webport");
  if (method != "GET" && method != "POST") return Status::Error("method must be GET or POST");
  if (prefix.size() < 2 || prefix[0] != '/' || prefix.back() == '/')
    return Status::Error("prefix must start with '/', name at least one segment and not end with '/'");
  if (prefix.size() > 256) return Status::Error("prefix longer than 256 bytes");
  for (char c : prefix)
    if (c <= ' ' || c == '?' || c == '#' || c == '%' || static_cast<unsigned char>(c) >= 0x7f)
      return Status::Error("prefix has a character that is not a plain path character");
  if (prefix.find("//") != std::string::npos) return Status::Error("prefix has an empty segment");
  for (const char* admin : kAdminPaths)
    if (UnderPrefix(prefix, admin)) return Status::Error(std::string(admin) + " belongs to the admin API");
  return Status::OK();
}

Status PluginWeb::CheckConflicts(const Generation& g) const {
  for (const auto& r : g.web.routes) {
    auto it = routes_.find({r.method, r.prefix});
    if (it != routes_.end() && it->second != g.plugin)
      return Status::Error("web route " + r.method + " " + r.prefix + " is already served by plugin " + it->second);
  }
  return Status::OK();
}

void PluginWeb::Swap(const Generation* old, const std::shared_ptr<Generation>& next) {
  const std::string& plugin = next ? next->plugin : old->plugin;
  for (auto it = routes_.begin(); it != routes_.end();) {
    if (it->second == plugin) it = routes_.erase(it);
    else ++it;
  }
  if (next)
    for (const auto& r : next->web.routes) routes_[{r.method, r.prefix}] = plugin;
  UpdateBodyCap(next.get());
  if (!next) return;
  if (!next->web.link_fn || !host_->hub()) return;
  // The links already up, told once, after init returned (never from inside it).
  std::weak_ptr<Generation> w = next;
  std::shared_ptr<bool> alive = alive_;
  host_->loop()->Post([this, w, alive] {
    if (!*alive || !host_->hub()) return;
    auto g = w.lock();
    if (!g || g->state != Generation::State::kServing) return;
    for (const auto& node : host_->hub()->Peers()) {
      if (g->state != Generation::State::kServing) return;
      Activity running = g->Running("link event", Activity::kNoNumber, node.c_str());
      g->web.link_fn(g->ctx, node.c_str(), 1);
    }
  });
}

void PluginWeb::SetBodyCapListener(std::function<void(size_t)> fn) {
  body_cap_listener_ = std::move(fn);
  body_cap_ = SIZE_MAX;  // always tell the new listener
  UpdateBodyCap(nullptr);
}

// `swapping` is taking over its plugin's routes and is not the slot's
// current generation yet.
void PluginWeb::UpdateBodyCap(const Generation* swapping) {
  size_t cap = 0;
  for (const auto& [key, plugin] : routes_) {
    const Generation* g = swapping && swapping->plugin == plugin ? swapping : host_->Current(plugin);
    const GenerationWeb::Route* r = g ? g->web.FindRoute(key.method, key.prefix) : nullptr;
    cap = std::max(cap, r ? r->max_body : kMaxBody);
  }
  if (cap == body_cap_) return;
  body_cap_ = cap;
  if (body_cap_listener_) body_cap_listener_(cap);
}

WebMatch PluginWeb::Lookup(const std::string& method, const std::string& path, WebTarget* out) {
  const RouteKey* best = nullptr;
  bool other_method = false;
  for (const auto& [key, plugin] : routes_) {
    if (!UnderPrefix(path, key.prefix)) continue;
    if (key.method != method) {
      other_method = true;
      continue;
    }
    if (!best || key.prefix.size() > best->prefix.size()) best = &key;
  }
  if (!best) return other_method ? WebMatch::kWrongMethod : WebMatch::kNone;
  const std::string plugin = routes_[*best];
  Generation* g = host_->Current(plugin);
  const GenerationWeb::Route* route = g ? g->web.FindRoute(best->method, best->prefix) : nullptr;
  if (!route) return WebMatch::kNone;
  out->admin = route->admin;
  out->max_body = route->max_body;
  std::shared_ptr<bool> alive = alive_;
  out->handler = [this, alive, plugin, method = best->method, prefix = best->prefix](const WebRequest& req,
                                                                                     WebDone done) {
    if (!*alive) return;  // `done` is dropped: AdminHttp answers 500
    Dispatch(plugin, method, prefix, req, std::move(done));
  };
  return WebMatch::kFound;
}

void PluginWeb::Dispatch(const std::string& plugin, const std::string& method, const std::string& prefix,
                         const WebRequest& req, WebDone done) {
  Generation* g = host_->Current(plugin);
  const GenerationWeb::Route* route = g ? g->web.FindRoute(method, prefix) : nullptr;
  if (!route) {
    done(404, JsonType(), ErrorBody("no such path: " + req.path));
    return;
  }
  const uint64_t token = host_->NextId();
  uint64_t timeout_ms = route->timeout_ms ? route->timeout_ms : kDefaultTimeoutMs;
  // The connection's own deadline closes it at request_timeout_s: the
  // plugin's limit ends first, so the client gets a 504, not a reset.
  const uint64_t cap_ms = static_cast<uint64_t>(std::max(0.1, request_timeout_s_ - 0.5) * 1000);
  timeout_ms = std::min(timeout_ms, cap_ms);
  std::weak_ptr<Generation> w = g->weak_from_this();
  GenerationWeb::PendingRequest& pending = g->web.requests[token];
  pending.done = std::move(done);
  pending.deadline = host_->loop()->RunAfter(static_cast<double>(timeout_ms) / 1000.0,
                                             [this, w, token, alive = alive_] {
                                               if (*alive) Expire(w, token);
                                             });
  std::vector<lampyr_http_header> headers;
  headers.reserve(req.headers.size());
  for (const auto& [k, v] : req.headers) headers.push_back({k.data(), k.size(), v.data(), v.size()});
  lampyr_http_request r{};
  r.size = sizeof r;
  r.token = token;
  r.method = method.c_str();
  r.prefix = prefix.c_str();
  r.path = req.path.c_str();
  r.query = req.query.c_str();
  r.headers = headers.data();
  r.header_count = headers.size();
  r.body = req.body.data();
  r.body_len = req.body.size();
  r.peer_ip = req.peer_ip.c_str();
  r.peer_port = req.peer_port;
  Activity running = g->Running("web route", Activity::kNoNumber, prefix.c_str());
  route->fn(g->ctx, &r);
}

void PluginWeb::Expire(const std::weak_ptr<Generation>& w, uint64_t token) {
  auto g = w.lock();
  if (!g) return;
  auto it = g->web.requests.find(token);
  if (it == g->web.requests.end()) return;
  WebDone done = std::move(it->second.done);
  g->web.requests.erase(it);
  // A slow public route under load would otherwise write a line per request.
  uint64_t left_out = 0;
  if (timeout_lines_.Allow(g->plugin, EventLoop::NowMicros(), &left_out))
    LOG_WARN("plugin", "%s generation %llu: web request not answered in time: 504 (%llu more since the last line)",
             g->plugin.c_str(), static_cast<unsigned long long>(g->number), static_cast<unsigned long long>(left_out));
  done(504, JsonType(), ErrorBody("the plugin did not answer in time"));
  host_->LeaseEnded(g.get());
}

int PluginWeb::Respond(Generation& g, uint64_t token, int status, HttpHeaders headers, std::string body) {
  auto it = g.web.requests.find(token);
  if (it == g.web.requests.end()) return LAMPYR_ERR_ARG;
  if (status < 100 || status > 599 || body.size() > kMaxResponseBody) return LAMPYR_ERR_ARG;
  for (const auto& [k, v] : headers) {
    if (k.empty() || k.size() > 256 || v.size() > 8192) return LAMPYR_ERR_ARG;
    for (char c : k)
      if (c <= ' ' || c == ':' || static_cast<unsigned char>(c) >= 0x7f) return LAMPYR_ERR_ARG;
    for (char c : v)
      if (c == '\r' || c == '\n' || c == '\0') return LAMPYR_ERR_ARG;  // no header injection
    if (FramingHeader(k)) return LAMPYR_ERR_ARG;
  }
  WebDone done = std::move(it->second.done);
  host_->loop()->Cancel(it->second.deadline);
  g.web.requests.erase(it);
  done(status, std::move(headers), std::move(body));
  host_->LeaseEnded(&g);
  return LAMPYR_OK;
}

void PluginWeb::Retire(Generation& g) {
  auto requests = std::move(g.web.requests);
  g.web.requests.clear();
  for (auto& [token, p] : requests) {
    host_->loop()->Cancel(p.deadline);
    p.done(503, JsonType(), ErrorBody("the plugin was reloaded before it answered"));
  }
  g.web.fetches = 0;  // their completions find the generation gone
}

int PluginWeb::Fetch(Generation& g, const FetchRequest& req, uint64_t cookie, lampyr_http_response_fn fn) {
  if (!g.active()) return LAMPYR_ERR_STATE;
  if (!fetcher_) fetcher_ = std::make_unique<HttpFetcher>(host_->loop());
  std::weak_ptr<Generation> w = g.weak_from_this();
  const std::string error = fetcher_->Fetch(req, [this, w, cookie, fn](FetchResponse r) {
    auto gen = w.lock();
    if (!gen || gen->state == Generation::State::kRetired) {  // unloaded: fn is gone with it
      LOG_INFO("plugin", "http_fetch completion (%s) dropped: its plugin generation was unloaded first",
               r.status ? std::to_string(r.status).c_str() : r.error.c_str());
      return;
    }
    --gen->web.fetches;
    std::vector<lampyr_http_header> headers;
    headers.reserve(r.headers.size());
    for (const auto& [k, v] : r.headers) headers.push_back({k.data(), k.size(), v.data(), v.size()});
    lampyr_http_response resp{};
    resp.size = sizeof resp;
    resp.status = r.status;
    resp.error = r.error.c_str();
    resp.headers = headers.data();
    resp.header_count = headers.size();
    resp.body = r.body.data();
    resp.body_len = r.body.size();
    {
      Activity running = gen->Running("http fetch completion");
      fn(gen->ctx, cookie, &resp);
    }
    host_->LeaseEnded(gen.get());
  });
  if (!error.empty()) {
    LOG_WARN("plugin", "%s: http_fetch %s %s refused: %s", g.plugin.c_str(), req.method.c_str(), req.url.c_str(),
             error.c_str());
    return LAMPYR_ERR_ARG;
  }
  ++g.web.fetches;
  if (req.insecure && !g.web.warned_insecure) {
    g.web.warned_insecure = true;
    LOG_WARN("plugin", "%s generation %llu fetches https WITHOUT certificate verification (%s): tests only",
             g.plugin.c_str(), static_cast<unsigned long long>(g.number), req.url.c_str());
  }
  return LAMPYR_OK;
}

void PluginWeb::OnLink(const std::string& node, bool up) {
  host_->ForEachServing([&](Generation& g) {
    if (!g.web.link_fn) return;
    Activity running = g.Running("link event", Activity::kNoNumber, node.c_str());
    g.web.link_fn(g.ctx, node.c_str(), up ? 1 : 0);
  });
}

void PluginWeb::OnSession(SessionId s, bool open, const std::string& info) {
  if (open) peers_[s] = info;
  else peers_.erase(s);
}

bool PluginWeb::PeerOf(SessionId s, std::string* ip, uint16_t* port) const {
  auto it = peers_.find(s);
  if (it == peers_.end()) return false;
  const std::string& p = it->second;
  const size_t colon = p.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *ip = p.substr(0, colon);
  *port = static_cast<uint16_t>(std::strtoul(p.c_str() + colon + 1, nullptr, 10));
  return true;
}

}  // namespace lampyr::plugin
