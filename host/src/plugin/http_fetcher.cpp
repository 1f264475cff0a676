#include "plugin/http_fetcher.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <strings.h>

#include <cmath>
#include <cstring>

#include "core/guard.h"
#include "core/log.h"

namespace lampyr {

struct HttpFetcher::Call {
  HttpFetcher* owner = nullptr;
  Done done;
  evhttp_connection* conn = nullptr;
  bufferevent* bev = nullptr;  // https only (owned by conn)
  TimerId deadline = 0;
  bool finished = false;
  int error = -1;              // evhttp_request_error, when reported
  bool https = false;
};

namespace {

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool HeaderOk(const std::string& k, const std::string& v) {
  if (k.empty() || k.size() > 256 || v.size() > 8192) return false;
  for (char c : k)
    if (c <= ' ' || c == ':' || static_cast<unsigned char>(c) >= 0x7f) return false;
  for (char c : v)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  // evhttp frames the request itself (Content-Length from the body).
  return strcasecmp(k.c_str(), "Content-Length") != 0 && strcasecmp(k.c_str(), "Transfer-Encoding") != 0;
}

const char* ErrorText(int e) {
  switch (e) {
    case EVREQ_HTTP_TIMEOUT: return "timeout";
    case EVREQ_HTTP_EOF: return "connection closed before a complete answer";
    case EVREQ_HTTP_INVALID_HEADER: return "invalid response header";
    case EVREQ_HTTP_BUFFER_ERROR: return "connection failed";
    case EVREQ_HTTP_REQUEST_CANCEL: return "cancelled";
    case EVREQ_HTTP_DATA_TOO_LONG: return "response too large";
  }
  return "request failed";
}

// The TLS reason, when there is one: it is what an operator needs to see
// ("certificate verify failed: self-signed certificate").
std::string TlsError(bufferevent* bev) {
  if (!bev) return "";
  std::string out;
  SSL* ssl = bufferevent_openssl_get_ssl(bev);
  if (ssl) {
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) out = std::string("certificate verify failed: ") + X509_verify_cert_error_string(v);
  }
  unsigned long e;
  while ((e = bufferevent_get_openssl_error(bev)) != 0) {
    if (!out.empty()) continue;
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out = std::string("TLS: ") + buf;
  }
  return out;
}

}  // namespace

HttpFetcher::HttpFetcher(EventLoop* loop) : loop_(loop) {}

HttpFetcher::~HttpFetcher() {
  *alive_ = false;
  // Freeing a connection frees its request: mark every call finished first
  // so nothing is delivered from inside the teardown.
  for (auto& [ptr, c] : live_) {
    c->finished = true;
    loop_->Cancel(c->deadline);
  }
  for (auto& [ptr, c] : live_)
    if (c->conn) evhttp_connection_free(c->conn);
  live_.clear();
  if (dns_) evdns_base_free(dns_, 0);
  if (tls_) SSL_CTX_free(tls_);
}

std::string HttpFetcher::TlsContext(ssl_ctx_st** out) {
  if (!tls_) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return "TLS: cannot create a context";
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) LOG_WARN("http", "no system CA store: https verification will fail");
    tls_ = ctx;
  }
  *out = tls_;
  return "";
}

std::string HttpFetcher::Fetch(const FetchRequest& request, Done done) {
  if (request.method != "GET" && request.method != "POST") return "method must be GET or POST";
  if (request.body.size() > kMaxRequestBody) return "request body larger than 4 MiB";
  if (request.method == "GET" && !request.body.empty()) return "a GET has no body";
  for (const auto& [k, v] : request.headers)
    if (!HeaderOk(k, v)) return "bad header " + k;
  std::unique_ptr<evhttp_uri, void (*)(evhttp_uri*)> uri(evhttp_uri_parse(request.url.c_str()), &evhttp_uri_free);
  if (!uri) return "cannot parse URL";
  const char* scheme = evhttp_uri_get_scheme(uri.get());
  const char* host_c = evhttp_uri_get_host(uri.get());
  if (!scheme || !host_c || !*host_c) return "URL needs a scheme and a host";
  const bool https = strcasecmp(scheme, "https") == 0;
  if (!https && strcasecmp(scheme, "http") != 0) return "scheme must be http or https";
  const std::string host = host_c;
  int port = evhttp_uri_get_port(uri.get());
  if (port < 0) port = https ? 443 : 80;
  std::string target = evhttp_uri_get_path(uri.get()) && *evhttp_uri_get_path(uri.get()) ? evhttp_uri_get_path(uri.get()) : "/";
  if (const char* q = evhttp_uri_get_query(uri.get())) target += std::string("?") + q;

  if (!dns_) {
    dns_ = evdns_base_new(loop_->base(), EVDNS_BASE_INITIALIZE_NAMESERVERS);
    // Without resolv.conf, numeric hosts still work.
    if (!dns_) dns_ = evdns_base_new(loop_->base(), 0);
    if (!dns_) return "cannot start the DNS resolver";
  }
  auto call = std::make_unique<Call>();
  Call* c = call.get();
  c->owner = this;
  c->https = https;
  if (https) {
    SSL_CTX* ctx = nullptr;
    if (std::string e = TlsContext(&ctx); !e.empty()) return e;
    SSL* ssl = SSL_new(ctx);
    if (!ssl) return "TLS: cannot create a session";
    if (!IsIpLiteral(host)) SSL_set_tlsext_host_name(ssl, host.c_str());  // SNI
    if (request.insecure) {
      SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
    } else {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
      int ok = IsIpLiteral(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                                 : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
      if (ok != 1) {
        SSL_free(ssl);
        return "TLS: cannot set the name to verify";
      }
    }
    // The bufferevent owns the SSL (BEV_OPT_CLOSE_ON_FREE), the connection the bufferevent.
    c->bev = bufferevent_openssl_socket_new(loop_->base(), -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!c->bev) {
      SSL_free(ssl);
      return "TLS: cannot create a connection";
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    c->conn = evhttp_connection_base_bufferevent_new(loop_->base(), dns_, c->bev, host.c_str(),
                                                     static_cast<unsigned short>(port));
    if (!c->conn) bufferevent_free(c->bev);
  } else {
    c->conn = evhttp_connection_base_new(loop_->base(), dns_, host.c_str(), static_cast<unsigned short>(port));
  }
  if (!c->conn) return "cannot create a connection";
  evhttp_connection_set_max_body_size(c->conn, static_cast<ev_ssize_t>(kMaxResponseBody));
  evhttp_connection_set_max_headers_size(c->conn, static_cast<ev_ssize_t>(kMaxResponseHeaders));
  evhttp_connection_set_retries(c->conn, 0);
  evhttp_connection_set_timeout(c->conn, std::max(1, static_cast<int>(std::ceil(request.timeout_s))));

  evhttp_request* req = evhttp_request_new(&HttpFetcher::OnResponse, c);
  if (!req) {
    evhttp_connection_free(c->conn);
    return "cannot create a request";
  }
  evhttp_request_set_error_cb(req, [](evhttp_request_error e, void* arg) { OnError(static_cast<int>(e), arg); });
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  const bool default_port = port == (https ? 443 : 80);
  const std::string host_header = (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                                  (default_port ? "" : ":" + std::to_string(port));
  evhttp_add_header(out, "Host", host_header.c_str());
  evhttp_add_header(out, "Connection", "close");
  bool has_agent = false;
  for (const auto& [k, v] : request.headers) {
    if (strcasecmp(k.c_str(), "Host") == 0 || strcasecmp(k.c_str(), "Connection") == 0) continue;
    has_agent = has_agent || strcasecmp(k.c_str(), "User-Agent") == 0;
    evhttp_add_header(out, k.c_str(), v.c_str());
  }
  if (!has_agent) evhttp_add_header(out, "User-Agent", "lampyr");
  if (!request.body.empty()) evbuffer_add(evhttp_request_get_output_buffer(req), request.body.data(), request.body.size());
  c->done = std::move(done);
  // evhttp_make_request frees the request itself when it fails.
  if (evhttp_make_request(c->conn, req, request.method == "POST" ? EVHTTP_REQ_POST : EVHTTP_REQ_GET, target.c_str()) != 0) {
    evhttp_connection_free(c->conn);
    return "cannot send the request";
  }
  std::shared_ptr<bool> alive = alive_;
  c->deadline = loop_->RunAfter(request.timeout_s, [this, alive, c] {
    if (!*alive || !live_.count(c) || c->finished) return;
    c->deadline = 0;
    FetchResponse r;
    r.error = "timeout";
    Finish(c, std::move(r));
  });
  live_.emplace(c, std::move(call));
  return "";
}

void HttpFetcher::OnError(int error, void* arg) { static_cast<Call*>(arg)->error = error; }

void HttpFetcher::OnResponse(evhttp_request* req, void* arg) {
  Call* c = static_cast<Call*>(arg);
  if (c->finished) return;
  Guarded("http fetch", [&] {
    FetchResponse r;
    const int status = req ? evhttp_request_get_response_code(req) : 0;
    if (status > 0) {
      r.status = status;
      for (evkeyval* h = evhttp_request_get_input_headers(req)->tqh_first; h; h = h->next.tqe_next)
        r.headers.emplace_back(h->key, h->value);
      evbuffer* in = evhttp_request_get_input_buffer(req);
      r.body.resize(evbuffer_get_length(in));
      if (!r.body.empty()) evbuffer_copyout(in, r.body.data(), r.body.size());
    } else {
      r.error = TlsError(c->bev);
      if (r.error.empty()) r.error = c->error >= 0 ? ErrorText(c->error) : "connection failed";
    }
    c->owner->Finish(c, std::move(r));
  });
}

// Delivers once, then frees the connection from a posted task: libevent is
// still using it (and the request) when this runs from its callback.
void HttpFetcher::Finish(Call* c, FetchResponse r) {
  c->finished = true;
  if (c->deadline) loop_->Cancel(c->deadline);
  c->deadline = 0;
  Done done = std::move(c->done);
  std::shared_ptr<bool> alive = alive_;
  loop_->Post([this, alive, c] {
    if (*alive) Free(c);
  });
  Guarded("http fetch", [&] { done(std::move(r)); });
}

void HttpFetcher::Free(Call* c) {
  auto it = live_.find(c);
  if (it == live_.end()) return;
  std::unique_ptr<Call> owned = std::move(it->second);
  live_.erase(it);
  if (owned->conn) evhttp_connection_free(owned->conn);
}

}  // namespace lampyr
