#include "net/net_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "core/accept_backoff.h"
#include "core/event_loop.h"
#include "core/guard.h"
#include "core/log.h"
#include "net/session.h"
#include "net/ws_session.h"

namespace lampyr {

namespace {

std::string PeerName(const sockaddr* addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (addr->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  } else if (addr->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

Counter* ClosedCounter(const std::string& reason) {
  return Metrics().GetCounter("lampyr_sessions_closed_total", "Client sessions closed, by reason",
                              "reason=\"" + reason + "\"");
}

}  // namespace

NetServer::NetServer(EventLoop* loop, const ProtocolConfig& protocol, const CommandTable* commands, uint16_t node_id)
    : loop_(loop),
      protocol_(protocol),
      commands_(commands),
      node_id_(node_id),
      per_address_(protocol.max_connections_per_ip),
      // Replies alone must never reach the hard cap: below it, reading stops.
      high_water_(std::min<size_t>(protocol.output_high_water_bytes, protocol.max_output_bytes / 2)) {
  limits_.head = protocol.head;
  limits_.proto_version = protocol.proto_version;
  limits_.server_version = protocol.server_version;
  limits_.max_body = protocol.max_body;
  ws_policy_.path = protocol.ws_path;
  ws_policy_.origins = protocol.ws_origins;
  reap_ev_ = event_new(
      loop_->base(), -1, 0, [](int fd, short what, void* arg) { Guarded("net reap", [&] { OnReap(fd, what, arg); }); },
      this);
  flush_ev_ = event_new(
      loop_->base(), -1, 0, [](int fd, short what, void* arg) { Guarded("net flush", [&] { OnFlush(fd, what, arg); }); },
      this);
  if (protocol.idle_timeout_s > 0) {
    // A common timeout keeps every session's idle timer in one O(1) queue
    // instead of the heap: re-arming it on each read costs almost nothing.
    timeval tv{static_cast<time_t>(protocol.idle_timeout_s), 0};
    idle_tv_ = event_base_init_common_timeout(loop_->base(), &tv);
  }
  auto& m = Metrics();
  m_sessions_ = m.GetGauge("lampyr_sessions", "Open client sessions");
  m_accepted_ = m.GetCounter("lampyr_sessions_accepted_total", "Client connections accepted");
  m_output_bytes_ = m.GetGauge("lampyr_session_output_bytes",
                               "Unsent output of all client sessions in user space (sampled at the end of a turn)");
  m_rejected_capacity_ = m.GetCounter("lampyr_sessions_rejected_total", "Client connections refused at accept, by limit",
                                      "reason=\"max_connections\"");
  m_rejected_per_ip_ = m.GetCounter("lampyr_sessions_rejected_total", "Client connections refused at accept, by limit",
                                    "reason=\"max_connections_per_ip\"");
  m_budget_closes_ = m.GetCounter("lampyr_output_budget_closes_total",
                                  "Sessions closed (slow_consumer) because all sessions' unsent output passed "
                                  "protocol.output_budget_bytes");
  m_requests_ = m.GetCounter("lampyr_requests_total", "Client requests received");
  m_pushes_ = m.GetCounter("lampyr_pushes_total", "Frames pushed to client sessions");
}

NetServer::~NetServer() {
  if (listener_) evconnlistener_free(listener_);
  if (ws_listener_) evconnlistener_free(ws_listener_);
  sessions_.clear();
  if (ssl_ctx_) SSL_CTX_free(ssl_ctx_);
  m_sessions_->Set(0);
  event_free(reap_ev_);
  event_free(flush_ev_);
}

Status NetServer::Listen(const std::string& host, uint16_t port) {
  return Bind(host, port, /*ws=*/false, &listener_, &port_);
}

Status NetServer::ListenWs(const std::string& host, uint16_t port) {
  if (!protocol_.ws_tls_cert.empty()) {
    if (Status s = LoadTls(); !s.ok()) return s;
  }
  if (ws_policy_.origins.empty())
    LOG_WARN("net", "protocol.ws_origins is empty: WebSocket upgrades are accepted from pages of any origin");
  return Bind(host, port, /*ws=*/true, &ws_listener_, &ws_port_);
}

Status NetServer::LoadTls() {
  ssl_ctx_ = SSL_CTX_new(TLS_server_method());
  if (!ssl_ctx_) return Status::Error("cannot create a TLS context");
  SSL_CTX_set_min_proto_version(ssl_ctx_, TLS1_2_VERSION);
  SSL_CTX_set_mode(ssl_ctx_, SSL_MODE_RELEASE_BUFFERS);  // idle sessions keep no 34 KB of TLS buffers
  if (SSL_CTX_use_certificate_chain_file(ssl_ctx_, protocol_.ws_tls_cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ssl_ctx_, protocol_.ws_tls_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ssl_ctx_) != 1) {
    char err[256];
    ERR_error_string_n(ERR_get_error(), err, sizeof err);
    ERR_clear_error();
    return Status::Error("protocol.ws_tls: cannot load " + protocol_.ws_tls_cert + " / " + protocol_.ws_tls_key +
                         ": " + err);
  }
  return Status::OK();
}

Status NetServer::Bind(const std::string& host, uint16_t port, bool ws, evconnlistener** out, uint16_t* bound_port) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  std::string spec = host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                                          : host + ":" + std::to_string(port);
  // libevent refuses port 0, which means "any free port" (tests, tools):
  // parse with a placeholder and clear it.
  std::string parse_spec = port != 0 ? spec : spec.substr(0, spec.size() - 1) + "1";
  if (evutil_parse_sockaddr_port(parse_spec.c_str(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return Status::Error("bad listen address " + spec);
  if (port == 0) {
    if (ss.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = 0;
    else reinterpret_cast<sockaddr_in*>(&ss)->sin_port = 0;
  }
  evconnlistener_cb on_accept = [](evconnlistener* l, int fd, sockaddr* addr, int len, void* arg) {
    Guarded("net accept", [&] { OnAccept(l, fd, addr, len, arg); });
  };
  evconnlistener_cb on_ws_accept = [](evconnlistener* l, int fd, sockaddr* addr, int len, void* arg) {
    Guarded("net accept", [&] { OnWsAccept(l, fd, addr, len, arg); });
  };
  evconnlistener* listener = evconnlistener_new_bind(loop_->base(), ws ? on_ws_accept : on_accept, this,
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
                                      reinterpret_cast<sockaddr*>(&ss), len);
  if (!listener) return Status::Error("cannot listen on " + spec + ": " + strerror(errno));
  *out = listener;
  evconnlistener_set_error_cb(listener, [](evconnlistener* l, void* arg) {
    Guarded("net accept", [&] { OnAcceptError(l, arg); });
  });
  // Accepted sockets inherit the listener's buffer sizes (and the window
  // their handshake announces follows the receive buffer): the kernel's share
  // of each session's memory is fixed here instead of autotuned up to
  // net.ipv4.tcp_wmem / tcp_rmem (megabytes per socket).
  const int fd = evconnlistener_get_fd(listener);
  for (auto [opt, bytes] : {std::pair{SO_SNDBUF, protocol_.sndbuf_bytes}, std::pair{SO_RCVBUF, protocol_.rcvbuf_bytes}}) {
    int v = static_cast<int>(bytes);
    if (v > 0 && setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v) != 0)
      LOG_WARN("net", "cannot set %s to %d: %s", opt == SO_SNDBUF ? "SO_SNDBUF" : "SO_RCVBUF", v, strerror(errno));
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  *bound_port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  LOG_INFO("net", "listening for %s clients on %s", ws ? (ssl_ctx_ ? "wss" : "ws") : "TCP", spec.c_str());
  return Status::OK();
}

void NetServer::StopAccepting() {
  for (evconnlistener** l : {&listener_, &ws_listener_}) {
    if (*l) evconnlistener_free(*l);
    *l = nullptr;
  }
}

void NetServer::OnAccept(evconnlistener*, int fd, sockaddr* addr, int, void* arg) {
  static_cast<NetServer*>(arg)->Accept(fd, addr, /*ws=*/false);
}

void NetServer::OnWsAccept(evconnlistener*, int fd, sockaddr* addr, int, void* arg) {
  static_cast<NetServer*>(arg)->Accept(fd, addr, /*ws=*/true);
}

void NetServer::Accept(int fd, sockaddr* addr, bool ws) {
  // A WebSocket still in its handshake holds a slot too: the cap bounds
  // connections, not players.
  if (sessions_.size() >= protocol_.max_connections) return Refuse(fd, addr, kAtCapacity);
  const net::AddressKey key = net::AddressKeyOf(addr);
  if (!per_address_.TryAdd(key)) return Refuse(fd, addr, kAddressAtLimit);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bufferevent* bev = nullptr;
  if (ws && ssl_ctx_) {
    SSL* ssl = SSL_new(ssl_ctx_);
    if (ssl) bev = bufferevent_openssl_socket_new(loop_->base(), fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    // A client that drops the TCP connection without close_notify has left,
    // nothing more (browsers do it all the time).
    if (bev) bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    else if (ssl) SSL_free(ssl);
  } else {
    bev = bufferevent_socket_new(loop_->base(), fd, BEV_OPT_CLOSE_ON_FREE);
  }
  if (!bev) {
    per_address_.Remove(key);
    close(fd);
    return;
  }
  SessionId id = (static_cast<uint64_t>(node_id_) << kSessionNodeShift) | next_conn_++;
  std::string peer = PeerName(addr);
  std::unique_ptr<Session> session;
  if (ws) session = std::make_unique<WsSession>(this, id, bev, peer, key, ssl_ctx_ != nullptr);
  else session = std::make_unique<TcpSession>(this, id, bev, peer, key);
  Session* s = session.get();
  sessions_.emplace(id, std::move(session));
  m_accepted_->Inc();
  m_sessions_->Set(static_cast<int64_t>(sessions_.size()));
  if (s->opened()) OnSessionOpened(s);
}

void NetServer::OnSessionOpened(Session* s) {
  LOG_DEBUG("net", "session %llu opened from %s", static_cast<unsigned long long>(s->id()), s->peer().c_str());
  for (auto& cb : open_cbs_) cb(s->id(), s->peer());
}

void NetServer::OnAcceptError(evconnlistener* l, void* arg) {
  auto* self = static_cast<NetServer*>(arg);
  // Out of descriptors: paused and resumed with a growing delay, logged once per interval.
  Guarded("net", [&] {
    PauseAcceptsAfterError(self->loop_, l, "net", [self, l] {
      if (self->listener_ == l || self->ws_listener_ == l) evconnlistener_enable(l);
    });
  });
}

void NetServer::Refuse(int fd, const sockaddr* addr, Refusal why) {
  close(fd);
  (why == kAtCapacity ? m_rejected_capacity_ : m_rejected_per_ip_)->Inc();
  // At most one line a second per reason: a connection flood must not
  // become a flood of log lines (nor of the strings to format them).
  const int64_t now = EventLoop::NowMicros();
  if (refused_logged_us_[why] != 0 && now - refused_logged_us_[why] < 1000000) {
    ++refused_unlogged_[why];
    return;
  }
  refused_logged_us_[why] = now;
  const uint64_t more = std::exchange(refused_unlogged_[why], 0);
  LOG_WARN("net", "refused connection from %s: %s (%u) reached%s", PeerName(addr).c_str(),
           why == kAtCapacity ? "max_connections" : "max_connections_per_ip",
           why == kAtCapacity ? protocol_.max_connections : per_address_.limit(),
           more ? ("; " + std::to_string(more) + " more refused since the last such line").c_str() : "");
}

event_base* NetServer::loop_base() const { return loop_->base(); }

Session* NetServer::Find(SessionId id) const {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->closing() || !it->second->opened()) return nullptr;
  return it->second.get();
}

void NetServer::EncodeHeader(uint32_t command, size_t body_len, uint8_t* out) const {
  net::EncodeHeader(limits_, command, static_cast<uint32_t>(body_len), out);
}

void NetServer::OnFrame(Session* s, uint32_t seq, uint32_t command, std::string_view body) {
  m_requests_->Inc();
  if (command == protocol_.heartbeat_command && command != 0) {
    s->Answer(seq, command, body, false);
    return;
  }
  RequestContext ctx;
  ctx.session = s->id();
  ctx.token = seq;
  ctx.command = command;
  ctx.responder = this;
  commands_->Dispatch(ctx, body);
}

void NetServer::OnOverRate(Session* s, uint32_t seq, uint32_t command, uint32_t refused_streak) {
  RequestContext ctx;
  ctx.session = s->id();
  ctx.token = seq;
  ctx.command = command;
  ctx.responder = this;
  Fail(ctx, ErrorCode::kOverloaded, "over the request rate (protocol.rate)");
  // It was refused a whole burst while never letting its bucket refill: it
  // does not listen. Its error replies go out first.
  if (refused_streak >= protocol_.rate.burst) OnSessionError(s, "rate_limited", /*flush=*/true);
}

void NetServer::OnSessionError(Session* s, const char* reason, bool flush) {
  LOG_WARN("net", "session %llu (%s): closed: %s", static_cast<unsigned long long>(s->id()), s->peer().c_str(),
           reason);
  s->Close(reason, flush);
}

void NetServer::Answer(const RequestContext& ctx, uint32_t command, std::string_view body, bool declined) {
  Session* s = Find(ctx.session);
  if (!s) return;  // the client left before its answer was ready
  s->Answer(static_cast<uint32_t>(ctx.token), command, body, declined);
}

void NetServer::Reply(const RequestContext& ctx, std::string_view body) { Answer(ctx, ctx.command, body, false); }

void NetServer::Decline(const RequestContext& ctx) { Answer(ctx, ctx.command, {}, true); }

void NetServer::Fail(const RequestContext& ctx, ErrorCode code, std::string_view message) {
  Metrics()
      .GetCounter("lampyr_request_errors_total", "Client requests answered with the error reply",
                  std::string("code=\"") + ErrorCodeName(code) + "\"")
      ->Inc();
  // {"code":1,"error":"unknown_command","command":1234,"message":"..."}
  std::string body = "{\"code\":" + std::to_string(static_cast<uint32_t>(code)) + ",\"error\":\"" +
                     ErrorCodeName(code) + "\",\"command\":" + std::to_string(ctx.command) + ",\"message\":\"";
  for (char c : message) {
    if (c == '"' || c == '\\') body += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    body += c;
  }
  body += "\"}";
  Answer(ctx, protocol_.error_command, body, false);
}

bool NetServer::Push(SessionId id, uint32_t command, std::string_view body) {
  Session* s = Find(id);
  if (!s) return false;
  s->WriteFrame(command, body);
  m_pushes_->Inc();
  return true;
}

size_t NetServer::PushMany(const std::vector<SessionId>& ids, uint32_t command, std::string_view body) {
  std::string frame;
  AppendFrameTo(command, body, &frame);
  size_t n = 0;
  for (SessionId id : ids) {
    if (Session* s = Find(id)) {
      s->WriteEncoded(frame);
      ++n;
    }
  }
  m_pushes_->Inc(n);
  return n;
}

void NetServer::AppendFrameTo(uint32_t command, std::string_view body, std::string* out) const {
  net::AppendFrame(limits_, command, body, out);
}

void NetServer::JoinGroup(const std::string& group, SessionId id) {
  Session* s = Find(id);
  if (!s) return;
  if (groups_[group].insert(id).second) s->groups().push_back(group);
}

void NetServer::LeaveGroup(const std::string& group, SessionId id) {
  auto it = groups_.find(group);
  if (it == groups_.end()) return;
  it->second.erase(id);
  if (it->second.empty()) groups_.erase(it);
  auto sit = sessions_.find(id);
  if (sit != sessions_.end()) std::erase(sit->second->groups(), group);
}

size_t NetServer::GroupSize(const std::string& group) const {
  auto it = groups_.find(group);
  return it == groups_.end() ? 0 : it->second.size();
}

size_t NetServer::Broadcast(const std::string& group, uint32_t command, std::string_view body) {
  auto it = groups_.find(group);
  if (it == groups_.end()) return 0;
  std::string frame;
  AppendFrameTo(command, body, &frame);
  size_t n = 0;
  // Writing can close a slow consumer, which only schedules its removal, so
  // iterating the set here is safe.
  for (SessionId id : it->second) {
    if (Session* s = Find(id)) {
      s->WriteEncoded(frame);
      ++n;
    }
  }
  m_pushes_->Inc(n);
  return n;
}

bool NetServer::Kick(SessionId id, const char* reason) {
  Session* s = Find(id);
  if (!s) return false;
  LOG_INFO("net", "session %llu (%s): kicked: %s", static_cast<unsigned long long>(id), s->peer().c_str(), reason);
  s->Close("kicked", /*flush=*/true);
  return true;
}

void NetServer::ScheduleReap(Session* s) {
  doomed_.push_back(s->id());
  event_active(reap_ev_, EV_TIMEOUT, 0);
}

void NetServer::QueueFlush(SessionId id) {
  // Answers and pushes made outside a session's own read (async handlers,
  // forwarded replies, broadcasts) go out together at the end of the turn.
  if (to_flush_.empty()) event_active(flush_ev_, EV_WRITE, 0);
  to_flush_.push_back(id);
}

void NetServer::OnFlush(int, short, void* arg) {
  auto* self = static_cast<NetServer*>(arg);
  self->FlushQueued();
  self->m_output_bytes_->Set(static_cast<int64_t>(self->output_bytes_));
}

void NetServer::FlushQueued() {
  flushing_.swap(to_flush_);  // a flush may queue another (it closes, a callback pushes)
  for (SessionId id : flushing_)
    if (Session* s = Find(id)) s->Flush();
  flushing_.clear();
}

void NetServer::EnforceOutputBudget() {
  if (enforcing_budget_) return;  // closing sessions below writes nothing, but be sure
  enforcing_budget_ = true;
  // Output that only waits for the end of this turn (a broadcast to many
  // sessions) is no backlog: give it to the sockets first.
  FlushQueued();
  const size_t budget = protocol_.output_budget_bytes;
  if (output_bytes_ > budget) {
    // Close the sessions that hold the most until the total is 1/16 under
    // the budget, so the next few writes do not start this scan again.
    std::vector<std::pair<size_t, Session*>> holders;
    for (auto& [id, s] : sessions_)
      if (!s->closing() && s->pending_output() > 0) holders.emplace_back(s->pending_output(), s.get());
    std::sort(holders.begin(), holders.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    const size_t target = budget - budget / 16;
    for (auto& [bytes, s] : holders) {
      if (output_bytes_ <= target) break;
      m_budget_closes_->Inc();
      LOG_WARN("net", "session %llu (%s): closed: slow_consumer (%zu bytes unsent; all sessions hold %zu, over "
               "output_budget_bytes %zu)",
               static_cast<unsigned long long>(s->id()), s->peer().c_str(), bytes, output_bytes_, budget);
      s->Close("slow_consumer");
    }
  }
  m_output_bytes_->Set(static_cast<int64_t>(output_bytes_));
  enforcing_budget_ = false;
}

void NetServer::OnReap(int, short, void* arg) { static_cast<NetServer*>(arg)->Reap(); }

void NetServer::Reap() {
  std::vector<SessionId> doomed;
  doomed.swap(doomed_);
  for (SessionId id : doomed) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    std::unique_ptr<Session> s = std::move(it->second);
    sessions_.erase(it);
    per_address_.Remove(s->address());
    for (const std::string& g : s->groups()) {
      auto git = groups_.find(g);
      if (git == groups_.end()) continue;
      git->second.erase(id);
      if (git->second.empty()) groups_.erase(git);
    }
    std::string reason = s->close_reason();
    ClosedCounter(reason)->Inc();
    LOG_DEBUG("net", "session %llu closed: %s", static_cast<unsigned long long>(id), reason.c_str());
    const bool opened = s->opened();
    s.reset();
    if (opened)  // plugins never heard of a WebSocket refused at its upgrade
      for (auto& cb : close_cbs_) cb(id, reason);
  }
  m_sessions_->Set(static_cast<int64_t>(sessions_.size()));
}

}  // namespace lampyr
