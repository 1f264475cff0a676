#include "admin/admin_http.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <json/writer.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>

#include "admin/http_connections.h"
#include "core/config.h"
#include "core/event_loop.h"
#include "core/guard.h"
#include "core/json_text.h"
#include "core/log.h"

namespace lampyr {

struct AdminHttp::Pending {
  AdminHttp* owner = nullptr;  // null once the server is gone
  evhttp_request* req = nullptr;
  std::string method, path, peer;
  bool mutating = false;
  bool answered = false;
};

namespace {

const char* MethodName(evhttp_cmd_type t) {
  switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
  }
  return "?";
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 400 ? "OK" : "Error";
  }
}

Json::Value ErrorBody(const std::string& message) {
  Json::Value v(Json::objectValue);
  v["error"] = message;
  return v;
}

// The peer's address alone (what the token throttle counts) and with its port (for logs).
void PeerOf(evhttp_request* req, std::string* address, std::string* peer) {
  evhttp_connection* conn = evhttp_request_get_connection(req);
  char* addr = nullptr;
  ev_uint16_t port = 0;
  if (conn) evhttp_connection_get_peer(conn, &addr, &port);
  *address = addr ? addr : "?";
  *peer = *address + ":" + std::to_string(port);
}

bool TakesBody(const std::string& method) { return method == "POST" || method == "PUT" || method == "PATCH"; }

bool IsLoopback(const std::string& host) {
  return host.rfind("127.", 0) == 0 || host == "::1" || host == "localhost";
}

std::string LeftOut(uint64_t n, const std::string& address) {
  return n ? " (" + std::to_string(n) + " more refusals from " + address + " since the last line)" : "";
}

}  // namespace

AdminLimits AdminLimitsOf(const MasterConfig& master) {
  AdminLimits l;
  l.max_connections = master.admin_max_connections;
  l.request_timeout_s = master.admin_request_timeout_s;
  return l;
}

std::string AdminJsonText(const Json::Value& v) {
  Json::StreamWriterBuilder b;
  b["indentation"] = "";
  b["emitUTF8"] = true;
  return Json::writeString(b, v);
}

AdminHttp::AdminHttp(EventLoop* loop, std::string token, AdminLimits limits)
    : loop_(loop), token_(std::move(token)), limits_(limits), auth_(limits.auth), refusal_lines_(10.0, 1024) {}

AdminHttp::~AdminHttp() {
  // evhttp_free frees every request still held by a handler: make their
  // Done callbacks no-ops first.
  for (auto& p : pending_) {
    p->owner = nullptr;
    p->req = nullptr;
  }
  pending_.clear();
  if (conns_) conns_->Detach();
  if (http_) evhttp_free(http_);
  conns_.reset();
}

void AdminHttp::set_max_body(size_t bytes) {
  limits_.max_body = bytes;
  ApplyBodyCap();
}

// evhttp's own cap refuses (413) before any handler runs: it is the larger of
// the admin limit and the web routes' limit; each route checks its own.
void AdminHttp::ApplyBodyCap() {
  if (http_) evhttp_set_max_body_size(http_, static_cast<ev_ssize_t>(std::max(limits_.max_body, max_web_body_)));
}

void AdminHttp::SetWebRoutes(WebLookup lookup) { web_ = std::move(lookup); }

void AdminHttp::SetWebBodyCap(size_t bytes) {
  max_web_body_ = bytes;
  ApplyBodyCap();
}

size_t AdminHttp::open_connections() const { return conns_ ? conns_->open() : 0; }

Status AdminHttp::Listen(const std::string& host, uint16_t port) {
  if (http_) return Status::Error("admin: already listening");
  http_ = evhttp_new(loop_->base());
  if (!http_) return Status::Error("admin: evhttp_new failed");
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
  ApplyBodyCap();
  evhttp_set_max_headers_size(http_, static_cast<ev_ssize_t>(limits_.max_headers));
  // evhttp's timeout restarts with every byte; HttpConnections' deadline is
  // the one that holds. This one only covers a stalled answer.
  evhttp_set_timeout(http_, static_cast<int>(std::ceil(limits_.request_timeout_s)));
  evhttp_set_gencb(http_, &AdminHttp::OnRequest, this);
  conns_ = std::make_unique<HttpConnections>(loop_, http_, limits_.max_connections, limits_.request_timeout_s);
  evhttp_bound_socket* sock = evhttp_bind_socket_with_handle(http_, host.c_str(), port);
  if (!sock) {
    const int err = errno;
    conns_->Detach();
    evhttp_free(http_);
    conns_.reset();
    http_ = nullptr;
    return Status::Error("admin: cannot listen on " + host + ":" + std::to_string(port) + ": " + strerror(err));
  }
  conns_->Attach(evhttp_bound_socket_get_listener(sock));
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(evhttp_bound_socket_get_fd(sock), reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET) port_ = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    else if (ss.ss_family == AF_INET6) port_ = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  LOG_INFO("admin", "admin API listening on %s:%u%s (at most %zu connections, %.0f s per request)", host.c_str(),
           port_, token_.empty() ? " (no admin_token: mutating calls refused)" : "", limits_.max_connections,
           limits_.request_timeout_s);
  if (!IsLoopback(host))
    LOG_WARN("admin", "admin API on %s:%u listens beyond loopback: anyone who reaches it reads /status and "
             "/metrics and can try tokens, in clear text. Bind admin_host to 127.0.0.1 and put a TLS reverse "
             "proxy in front if it must be reached from elsewhere", host.c_str(), port_);
  return Status::OK();
}

void AdminHttp::Route(const std::string& method, const std::string& path, bool mutating, Handler h) {
  RouteEntry& e = routes_[path][method];
  e = RouteEntry{};
  e.mutating = mutating;
  e.json = std::move(h);
}

void AdminHttp::RouteText(const std::string& method, const std::string& path, bool mutating, TextHandler h,
                          std::string content_type) {
  RouteEntry& e = routes_[path][method];
  e = RouteEntry{};
  e.mutating = mutating;
  e.text = std::move(h);
  e.content_type = std::move(content_type);
}

bool AdminHttp::TokenMatches(const std::string& token, const char* header) {
  if (token.empty() || header == nullptr) return false;
  const std::string expected = "Bearer " + token;
  const size_t given_len = strlen(header);
  // Walk the expected value whatever was given, so the time taken does not
  // reveal how many leading bytes were right.
  unsigned diff = given_len == expected.size() ? 0u : 1u;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given_len ? static_cast<unsigned char>(header[i]) : 0;
    diff |= g ^ static_cast<unsigned char>(expected[i]);
  }
  return diff == 0;
}

void AdminHttp::OnRequest(evhttp_request* req, void* arg) {
  auto* self = static_cast<AdminHttp*>(arg);
  self->current_ = req;
  self->current_handled_ = false;
  const bool clean = Guarded("admin", [&] { self->Handle(req); });
  if (!clean && !self->current_handled_) {
    // Guarded logged and counted it; the client still gets an answer.
    Guarded("admin", [&] { self->SendJson(req, 500, ErrorBody("internal error")); });
  }
  self->current_ = nullptr;
}

void AdminHttp::Send(evhttp_request* req, int status, const std::string& content_type, const std::string& body) {
  if (req == current_) current_handled_ = true;
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Content-Type", content_type.c_str());
  evhttp_add_header(out, "Cache-Control", "no-store");
  evbuffer* buf = evbuffer_new();
  if (!buf) throw std::bad_alloc();
  evbuffer_add(buf, body.data(), body.size());
  // The deadline covers sending the answer and the next request.
  if (conns_) conns_->AnswerSending(req);
  // If the client already left, libevent detached the request from its
  // connection and this only frees it.
  evhttp_send_reply(req, status, ReasonPhrase(status), buf);
  evbuffer_free(buf);
}

void AdminHttp::SendJson(evhttp_request* req, int status, const Json::Value& body) {
  Send(req, status, "application/json", AdminJsonText(body) + "\n");
}

std::shared_ptr<AdminHttp::Pending> AdminHttp::Track(evhttp_request* req) {
  if (req == current_) current_handled_ = true;
  auto p = std::make_shared<Pending>();
  p->owner = this;
  p->req = req;
  pending_.push_back(p);
  return p;
}

void AdminHttp::Finish(const std::shared_ptr<Pending>& p, int status, const std::string& content_type,
                       const std::string& body) {
  if (p->answered) {
    LOG_WARN("admin", "%s %s answered twice; second answer dropped", p->method.c_str(), p->path.c_str());
    return;
  }
  p->answered = true;
  if (!p->owner || !p->req) return;  // server gone: evhttp already freed the request
  pending_.erase(std::remove(pending_.begin(), pending_.end(), p), pending_.end());
  evhttp_request* req = p->req;
  p->req = nullptr;
  if (p->mutating) LOG_INFO("admin", "%s %s from %s -> %d", p->method.c_str(), p->path.c_str(), p->peer.c_str(), status);
  Send(req, status, content_type, body);
}

bool AdminHttp::Authorized(evhttp_request* req, const AdminRequest& r, const std::string& address) {
  if (token_.empty()) {
    LOG_WARN("admin", "%s %s from %s refused: admin_token not configured", r.method.c_str(), r.path.c_str(),
             r.peer.c_str());
    SendJson(req, 403, ErrorBody("admin_token not configured"));
    return false;
  }
  const int64_t now = EventLoop::NowMicros();
  uint64_t left_out = 0;
  if (const double wait = auth_.LockedFor(address, now); wait > 0) {
    // The token is not even looked at: guessing cannot go faster than this.
    const std::string retry = std::to_string(static_cast<long long>(std::ceil(wait)));
    if (refusal_lines_.Allow(address, now, &left_out))
      LOG_WARN("admin", "%s %s from %s refused: backing off after %u wrong tokens from %s, %s s left%s",
               r.method.c_str(), r.path.c_str(), r.peer.c_str(), auth_.failures(address), address.c_str(),
               retry.c_str(), LeftOut(left_out, address).c_str());
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", retry.c_str());
    SendJson(req, 429, ErrorBody("too many wrong tokens from " + address + ": retry in " + retry + " s"));
    return false;
  }
  const char* auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
  if (TokenMatches(token_, auth)) {
    auth_.Succeeded(address);
    return true;
  }
  const double lock = auth_.Failed(address, now);
  // The header itself is never logged: it may be a near-miss of the token.
  if (refusal_lines_.Allow(address, now, &left_out))
    LOG_WARN("admin", "%s %s from %s refused: %s%s%s", r.method.c_str(), r.path.c_str(), r.peer.c_str(),
             auth ? "wrong token" : "no Authorization header",
             lock > 0 ? ("; backing off " + address + " for " + std::to_string(static_cast<long long>(std::ceil(lock))) +
                         " s")
                            .c_str()
                      : "",
             LeftOut(left_out, address).c_str());
  SendJson(req, 401, ErrorBody("unauthorized"));
  return false;
}

void AdminHttp::Handle(evhttp_request* req) {
  if (conns_) conns_->RequestReceived(req);
  AdminRequest r;
  std::string address;
  r.method = MethodName(evhttp_request_get_command(req));
  PeerOf(req, &address, &r.peer);
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* path = uri ? evhttp_uri_get_path(uri) : nullptr;
  const char* query = uri ? evhttp_uri_get_query(uri) : nullptr;
  r.path = path && *path ? path : "/";
  if (query) r.query = query;
  // "/status/" and "/status" are the same resource.
  if (r.path.size() > 1 && r.path.back() == '/') r.path.pop_back();

  auto pit = routes_.find(r.path);
  if (pit == routes_.end()) {
    HandleWeb(req, r, address);
    return;
  }
  auto mit = pit->second.find(r.method);
  if (mit == pit->second.end()) {
    std::string allow;
    for (const auto& [m, e] : pit->second) allow += (allow.empty() ? "" : ", ") + m;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow.c_str());
    SendJson(req, 405, ErrorBody(r.method + " not allowed on " + r.path + " (allowed: " + allow + ")"));
    return;
  }
  const RouteEntry& route = mit->second;

  if (route.mutating && !Authorized(req, r, address)) return;

  evbuffer* in = evhttp_request_get_input_buffer(req);
  const size_t n = evbuffer_get_length(in);
  if (n > limits_.max_body) {
    SendJson(req, 413, ErrorBody("request body too large: " + std::to_string(n) + " bytes, limit " +
                                     std::to_string(limits_.max_body)));
    return;
  }
  if (!TakesBody(r.method)) {
    // Nothing reads a body here; refusing it says so instead of silently
    // dropping what the client meant.
    if (n) {
      SendJson(req, 400, ErrorBody(r.method + " " + r.path + " takes no request body"));
      return;
    }
  } else {
    r.body.resize(n);
    if (n) evbuffer_copyout(in, r.body.data(), n);
  }
  if (route.json && r.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    JsonLimits jl;
    jl.max_bytes = limits_.max_body;
    jl.max_depth = limits_.max_json_depth;
    jl.strict = true;
    Status st = ParseJsonText(r.body, &r.json, jl);
    if (!st.ok()) {
      SendJson(req, 400, ErrorBody("invalid JSON body: " + st.message()));
      return;
    }
  }

  auto p = Track(req);
  p->method = r.method;
  p->path = r.path;
  p->peer = r.peer;
  p->mutating = route.mutating;
  // A handler that drops its Done without calling it would leave the client
  // hanging: the last copy going away answers 500 instead.
  std::shared_ptr<void> guard(nullptr, [p](void*) {
    if (!p->answered && p->owner) {
      LOG_ERROR("admin", "%s %s: handler dropped the request without answering", p->method.c_str(),
                p->path.c_str());
      p->owner->Finish(p, 500, "application/json", AdminJsonText(ErrorBody("handler did not answer")) + "\n");
    }
  });
  if (route.json) {
    route.json(r, [p, guard](int status, Json::Value body) {
      if (p->owner) p->owner->Finish(p, status, "application/json", AdminJsonText(body) + "\n");
      else p->answered = true;
    });
  } else {
    const std::string ctype = route.content_type;
    route.text(r, [p, guard, ctype](int status, std::string text) {
      if (p->owner) p->owner->Finish(p, status, ctype, text);
      else p->answered = true;
    });
  }
}

void AdminHttp::HandleWeb(evhttp_request* req, const AdminRequest& r, const std::string& address) {
  WebTarget target;
  const WebMatch match = web_ ? web_(r.method, r.path, &target) : WebMatch::kNone;
  if (match == WebMatch::kNone) {
    SendJson(req, 404, ErrorBody("no such path: " + r.path));
    return;
  }
  if (match == WebMatch::kWrongMethod) {
    SendJson(req, 405, ErrorBody(r.method + " not allowed on " + r.path));
    return;
  }
  if (target.admin && !Authorized(req, r, address)) return;
  evbuffer* in = evhttp_request_get_input_buffer(req);
  const size_t n = evbuffer_get_length(in);
  if (n > target.max_body) {
    SendJson(req, 413, ErrorBody("request body too large: " + std::to_string(n) + " bytes, limit " +
                                     std::to_string(target.max_body)));
    return;
  }
  if (n && !TakesBody(r.method)) {  // as on admin routes: say so rather than drop it
    SendJson(req, 400, ErrorBody(r.method + " " + r.path + " takes no request body"));
    return;
  }
  WebRequest w;
  w.method = r.method;
  w.query = r.query;
  // The path as sent: plugins may care about a trailing '/'.
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* raw_path = uri ? evhttp_uri_get_path(uri) : nullptr;
  w.path = raw_path && *raw_path ? raw_path : "/";
  w.body.resize(n);
  if (n) evbuffer_copyout(in, w.body.data(), n);
  for (evkeyval* h = evhttp_request_get_input_headers(req)->tqh_first; h; h = h->next.tqe_next)
    w.headers.emplace_back(h->key, h->value);
  evhttp_connection* conn = evhttp_request_get_connection(req);
  char* addr = nullptr;
  ev_uint16_t port = 0;
  if (conn) evhttp_connection_get_peer(conn, &addr, &port);
  w.peer_ip = addr ? addr : "";
  w.peer_port = port;

  auto p = Track(req);
  p->method = r.method;
  p->path = r.path;
  p->peer = r.peer;
  std::shared_ptr<void> guard(nullptr, [p](void*) {
    if (!p->answered && p->owner) {
      LOG_ERROR("admin", "%s %s: web route dropped the request without answering", p->method.c_str(),
                p->path.c_str());
      p->owner->Finish(p, 500, "application/json", AdminJsonText(ErrorBody("handler did not answer")) + "\n");
    }
  });
  target.handler(w, [p, guard](int status, HttpHeaders headers, std::string body) {
    if (!p->owner || p->answered) {
      p->answered = true;
      return;
    }
    std::string ctype = "text/plain; charset=utf-8";
    if (p->req) {
      evkeyvalq* out = evhttp_request_get_output_headers(p->req);
      for (const auto& [k, v] : headers) {
        if (evutil_ascii_strcasecmp(k.c_str(), "Content-Type") == 0) ctype = v;
        else evhttp_add_header(out, k.c_str(), v.c_str());
      }
    }
    p->owner->Finish(p, status, ctype, body);
  });
}

}  // namespace lampyr
