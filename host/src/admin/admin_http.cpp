#include "admin/admin_http.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json/reader.h>
#include <json/writer.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>

#include "core/event_loop.h"
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
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return status < 400 ? "OK" : "Error";
  }
}

Json::Value ErrorBody(const std::string& message) {
  Json::Value v(Json::objectValue);
  v["error"] = message;
  return v;
}

std::string PeerOf(evhttp_request* req) {
  evhttp_connection* conn = evhttp_request_get_connection(req);
  if (!conn) return "?";
  char* addr = nullptr;
  ev_uint16_t port = 0;
  evhttp_connection_get_peer(conn, &addr, &port);
  return std::string(addr ? addr : "?") + ":" + std::to_string(port);
}

// jsoncpp's multi-line "* Line 1, Column 11\n  Syntax error: ..." as one line.
std::string OneLine(const std::string& errs) {
  std::string out;
  bool space = false;
  for (char c : errs) {
    if (c == '\n' || c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (c == '*' && out.empty()) continue;
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace

std::string AdminJsonText(const Json::Value& v) {
  Json::StreamWriterBuilder b;
  b["indentation"] = "";
  b["emitUTF8"] = true;
  return Json::writeString(b, v);
}

AdminHttp::AdminHttp(EventLoop* loop, std::string token) : loop_(loop), token_(std::move(token)) {}

AdminHttp::~AdminHttp() {
  // evhttp_free frees every request still held by a handler: make their
  // Done callbacks no-ops first.
  for (auto& p : pending_) {
    p->owner = nullptr;
    p->req = nullptr;
  }
  pending_.clear();
  if (http_) evhttp_free(http_);
}

void AdminHttp::set_max_body(size_t bytes) {
  max_body_ = bytes;
  if (http_) evhttp_set_max_body_size(http_, static_cast<ev_ssize_t>(bytes));
}

Status AdminHttp::Listen(const std::string& host, uint16_t port) {
  if (http_) return Status::Error("admin: already listening");
  http_ = evhttp_new(loop_->base());
  if (!http_) return Status::Error("admin: evhttp_new failed");
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
  evhttp_set_max_body_size(http_, static_cast<ev_ssize_t>(max_body_));
  evhttp_set_max_headers_size(http_, 64 * 1024);
  // An idle or stuck admin client must not hold a connection forever.
  evhttp_set_timeout(http_, 60);
  evhttp_set_gencb(http_, &AdminHttp::OnRequest, this);
  evhttp_bound_socket* sock = evhttp_bind_socket_with_handle(http_, host.c_str(), port);
  if (!sock) {
    evhttp_free(http_);
    http_ = nullptr;
    return Status::Error("admin: cannot listen on " + host + ":" + std::to_string(port) + ": " +
                         strerror(errno));
  }
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(evhttp_bound_socket_get_fd(sock), reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET) port_ = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    else if (ss.ss_family == AF_INET6) port_ = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  LOG_INFO("admin", "admin API listening on %s:%u%s", host.c_str(), port_,
           token_.empty() ? " (no admin_token: mutating calls refused)" : "");
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

void AdminHttp::OnRequest(evhttp_request* req, void* arg) { static_cast<AdminHttp*>(arg)->Handle(req); }

void AdminHttp::SendJson(evhttp_request* req, int status, const Json::Value& body) {
  std::string text = AdminJsonText(body) + "\n";
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Content-Type", "application/json");
  evhttp_add_header(out, "Cache-Control", "no-store");
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, text.data(), text.size());
  evhttp_send_reply(req, status, ReasonPhrase(status), buf);
  evbuffer_free(buf);
}

std::shared_ptr<AdminHttp::Pending> AdminHttp::Track(evhttp_request* req) {
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
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Content-Type", content_type.c_str());
  evhttp_add_header(out, "Cache-Control", "no-store");
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, body.data(), body.size());
  // If the client already left, libevent detached the request from its
  // connection and this only frees it.
  evhttp_send_reply(req, status, ReasonPhrase(status), buf);
  evbuffer_free(buf);
}

void AdminHttp::Handle(evhttp_request* req) {
  AdminRequest r;
  r.method = MethodName(evhttp_request_get_command(req));
  r.peer = PeerOf(req);
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* path = uri ? evhttp_uri_get_path(uri) : nullptr;
  const char* query = uri ? evhttp_uri_get_query(uri) : nullptr;
  r.path = path && *path ? path : "/";
  if (query) r.query = query;
  // "/status/" and "/status" are the same resource.
  if (r.path.size() > 1 && r.path.back() == '/') r.path.pop_back();

  auto pit = routes_.find(r.path);
  if (pit == routes_.end()) {
    SendJson(req, 404, ErrorBody("no such path: " + r.path));
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

  if (route.mutating) {
    if (token_.empty()) {
      LOG_WARN("admin", "%s %s from %s refused: admin_token not configured", r.method.c_str(), r.path.c_str(),
               r.peer.c_str());
      SendJson(req, 403, ErrorBody("admin_token not configured"));
      return;
    }
    const char* auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!TokenMatches(token_, auth)) {
      // The header itself is never logged: it may be a near-miss of the token.
      LOG_WARN("admin", "%s %s from %s refused: %s", r.method.c_str(), r.path.c_str(), r.peer.c_str(),
               auth ? "wrong token" : "no Authorization header");
      SendJson(req, 401, ErrorBody("unauthorized"));
      return;
    }
  }

  evbuffer* in = evhttp_request_get_input_buffer(req);
  const size_t n = evbuffer_get_length(in);
  if (n > max_body_) {
    SendJson(req, 413, ErrorBody("request body too large: " + std::to_string(n) + " bytes, limit " +
                                     std::to_string(max_body_)));
    return;
  }
  r.body.resize(n);
  if (n) evbuffer_copyout(in, r.body.data(), n);
  if (route.json && r.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    Json::CharReaderBuilder b;
    b["strictRoot"] = false;
    b["allowComments"] = false;
    b["failIfExtra"] = true;
    b["rejectDupKeys"] = true;
    std::unique_ptr<Json::CharReader> reader(b.newCharReader());
    std::string errs;
    if (!reader->parse(r.body.data(), r.body.data() + r.body.size(), &r.json, &errs)) {
      SendJson(req, 400, ErrorBody("invalid JSON body: " + OneLine(errs)));
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

}  // namespace lampyr
