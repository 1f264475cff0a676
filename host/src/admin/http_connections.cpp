#include "admin/http_connections.h"

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/listener.h>

#include <map>
#include <mutex>
#include <string>

#include "core/accept_backoff.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/log_throttle.h"

namespace lampyr {

namespace {

// evhttp owns the listener's callback argument (it is the evhttp), so the
// accept-error callback finds its HttpConnections here.
std::mutex registry_mu;
std::map<evconnlistener*, HttpConnections*>& Registry() {
  static std::map<evconnlistener*, HttpConnections*> r;
  return r;
}

LogThrottle& Lines() {
  static LogThrottle lines(10.0, 16);
  return lines;
}

// Loop threads of several in-process servers (tests) share the throttle.
bool AllowLine(const char* key, uint64_t* left_out) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  return Lines().Allow(key, EventLoop::NowMicros(), left_out);
}

std::string PeerOf(evhttp_connection* evcon) {
  char* addr = nullptr;
  ev_uint16_t port = 0;
  evhttp_connection_get_peer(evcon, &addr, &port);
  return std::string(addr ? addr : "?") + ":" + std::to_string(port);
}

std::string LeftOut(uint64_t n) {
  return n ? " (" + std::to_string(n) + " more since the last line)" : "";
}

}  // namespace

HttpConnections::HttpConnections(EventLoop* loop, evhttp* http, size_t max_connections, double request_timeout_s)
    : loop_(loop), http_(http), max_(max_connections ? max_connections : 1), timeout_s_(request_timeout_s) {
  evhttp_set_bevcb(http_, &HttpConnections::OnNewConnection, this);
}

HttpConnections::~HttpConnections() {
  Detach();
  *alive_ = false;
  // evhttp_free has run: what we still hold is ours alone to release.
  for (auto& [bev, c] : conns_)
    if (c.held) bufferevent_decref(bev);
  conns_.clear();
}

void HttpConnections::Attach(evconnlistener* listener) {
  listener_ = listener;
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    Registry()[listener] = this;
  }
  evconnlistener_set_error_cb(listener, &HttpConnections::OnAcceptError);
}

void HttpConnections::Detach() {
  if (detached_) return;
  detached_ = true;
  if (listener_) {
    std::lock_guard<std::mutex> lock(registry_mu);
    Registry().erase(listener_);
  }
  for (auto& [bev, c] : conns_) {
    loop_->Cancel(c.deadline);
    c.deadline = 0;
    if (c.evcon) evhttp_connection_set_closecb(c.evcon, nullptr, nullptr);
  }
  evhttp_set_bevcb(http_, nullptr, nullptr);
}

bufferevent* HttpConnections::OnNewConnection(event_base* base, void* arg) {
  bufferevent* bev = nullptr;
  Guarded("admin", [&] { bev = static_cast<HttpConnections*>(arg)->NewConnection(base); });
  return bev;  // null: evhttp makes its own (untracked) one
}

bufferevent* HttpConnections::NewConnection(event_base* base) {
  // The same bufferevent evhttp would make for itself (no CLOSE_ON_FREE:
  // evhttp closes the socket when it frees the connection, so our extra
  // reference never keeps a descriptor open).
  bufferevent* bev = bufferevent_socket_new(base, -1, 0);
  if (!bev) return nullptr;
  bufferevent_incref(bev);
  Conn& c = conns_[bev];
  Arm(bev, c);
  std::weak_ptr<bool> alive = alive_;
  loop_->RunAfter(0, [this, alive, bev] {
    if (auto a = alive.lock(); a && *a) Adopt(bev);
  });
  UpdateListener();
  return bev;
}

void HttpConnections::Adopt(bufferevent* bev) {
  auto it = conns_.find(bev);
  if (it == conns_.end() || !it->second.held) return;
  bufferevent_event_cb event_cb = nullptr;
  void* owner = nullptr;
  bufferevent_getcb(bev, nullptr, nullptr, &event_cb, &owner);
  if (!event_cb || !owner) {
    // evhttp already freed the connection (refused setup, or the client
    // came and went within the turn): only our reference is left.
    Forget(bev);
    return;
  }
  Conn& c = it->second;
  c.evcon = static_cast<evhttp_connection*>(owner);
  evhttp_connection_set_closecb(c.evcon, &HttpConnections::OnClosed, this);
  c.held = false;
  bufferevent_decref(bev);
}

void HttpConnections::OnClosed(evhttp_connection* evcon, void* arg) {
  Guarded("admin", [&] {
    static_cast<HttpConnections*>(arg)->Forget(evhttp_connection_get_bufferevent(evcon));
  });
}

void HttpConnections::Forget(bufferevent* bev) {
  auto it = conns_.find(bev);
  if (it == conns_.end()) return;
  loop_->Cancel(it->second.deadline);
  const bool held = it->second.held;
  conns_.erase(it);
  if (held) bufferevent_decref(bev);
  UpdateListener();
}

void HttpConnections::Arm(bufferevent* bev, Conn& c) {
  loop_->Cancel(c.deadline);
  std::weak_ptr<bool> alive = alive_;
  c.deadline = loop_->RunAfter(timeout_s_, [this, alive, bev] {
    if (auto a = alive.lock(); a && *a) Expire(bev);
  });
}

void HttpConnections::Expire(bufferevent* bev) {
  auto it = conns_.find(bev);
  if (it == conns_.end() || it->second.in_handler) return;
  it->second.deadline = 0;
  evhttp_connection* evcon = it->second.evcon;
  if (!evcon) {
    // Not adopted yet (only with a deadline shorter than a loop turn).
    bufferevent_event_cb event_cb = nullptr;
    void* owner = nullptr;
    bufferevent_getcb(bev, nullptr, nullptr, &event_cb, &owner);
    if (!event_cb || !owner) return;
    evcon = static_cast<evhttp_connection*>(owner);
  }
  uint64_t left_out = 0;
  if (AllowLine("deadline", &left_out))
    LOG_WARN("admin", "closed the connection of %s: no complete request or answer within %.0f s "
             "(master.admin_request_timeout_s)%s", PeerOf(evcon).c_str(), timeout_s_, LeftOut(left_out).c_str());
  // Our close callback runs inside and forgets the connection.
  evhttp_connection_free(evcon);
  Forget(bev);  // if it was not adopted yet
}

HttpConnections::Conn* HttpConnections::Find(evhttp_request* req, bufferevent** bev) {
  evhttp_connection* evcon = evhttp_request_get_connection(req);
  if (!evcon) return nullptr;  // the client left; libevent detached the request
  *bev = evhttp_connection_get_bufferevent(evcon);
  auto it = conns_.find(*bev);
  return it == conns_.end() ? nullptr : &it->second;
}

void HttpConnections::RequestReceived(evhttp_request* req) {
  bufferevent* bev = nullptr;
  if (Conn* c = Find(req, &bev)) {
    c->in_handler = true;
    loop_->Cancel(c->deadline);
    c->deadline = 0;
  }
}

void HttpConnections::AnswerSending(evhttp_request* req) {
  bufferevent* bev = nullptr;
  if (Conn* c = Find(req, &bev)) {
    c->in_handler = false;
    Arm(bev, *c);
  }
}

void HttpConnections::OnAcceptError(evconnlistener* l, void*) {
  Guarded("admin", [&] {
    HttpConnections* self = nullptr;
    {
      std::lock_guard<std::mutex> lock(registry_mu);
      auto it = Registry().find(l);
      if (it != Registry().end()) self = it->second;
    }
    if (!self) {
      evconnlistener_disable(l);  // an unknown listener must not spin either
      return;
    }
    self->error_pause_ = true;
    self->accepting_ = false;
    std::weak_ptr<bool> alive = self->alive_;
    PauseAcceptsAfterError(self->loop_, l, "admin", [self, alive] {
      if (auto a = alive.lock(); !a || !*a) return;
      self->error_pause_ = false;
      self->UpdateListener();
    });
  });
}

void HttpConnections::UpdateListener() {
  if (!listener_ || detached_) return;
  const bool want = !error_pause_ && conns_.size() < max_;
  if (want == accepting_) return;
  accepting_ = want;
  if (want) {
    evconnlistener_enable(listener_);
    return;
  }
  evconnlistener_disable(listener_);
  uint64_t left_out = 0;
  if (!error_pause_ && AllowLine("cap", &left_out))
    LOG_WARN("admin", "%zu admin connections open (master.admin_max_connections): new ones wait until one "
             "closes%s", conns_.size(), LeftOut(left_out).c_str());
}

}  // namespace lampyr
