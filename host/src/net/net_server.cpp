#include "net/net_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/event_loop.h"
#include "core/log.h"
#include "net/session.h"

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
    : loop_(loop), protocol_(protocol), commands_(commands), node_id_(node_id) {
  limits_.head = protocol.head;
  limits_.proto_version = protocol.proto_version;
  limits_.server_version = protocol.server_version;
  limits_.max_body = protocol.max_body;
  reap_ev_ = event_new(loop_->base(), -1, 0, &NetServer::OnReap, this);
  flush_ev_ = event_new(loop_->base(), -1, 0, &NetServer::OnFlush, this);
  if (protocol.idle_timeout_s > 0) {
    // A common timeout keeps every session's idle timer in one O(1) queue
    // instead of the heap: re-arming it on each read costs almost nothing.
    timeval tv{static_cast<time_t>(protocol.idle_timeout_s), 0};
    idle_tv_ = event_base_init_common_timeout(loop_->base(), &tv);
  }
  auto& m = Metrics();
  m_sessions_ = m.GetGauge("lampyr_sessions", "Open client sessions");
  m_accepted_ = m.GetCounter("lampyr_sessions_accepted_total", "Client connections accepted");
  m_rejected_capacity_ = m.GetCounter("lampyr_sessions_rejected_total",
                                      "Client connections refused because max_connections was reached");
  m_requests_ = m.GetCounter("lampyr_requests_total", "Client requests received");
  m_pushes_ = m.GetCounter("lampyr_pushes_total", "Frames pushed to client sessions");
}

NetServer::~NetServer() {
  if (listener_) evconnlistener_free(listener_);
  sessions_.clear();
  m_sessions_->Set(0);
  event_free(reap_ev_);
  event_free(flush_ev_);
}

Status NetServer::Listen(const std::string& host, uint16_t port) {
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
  listener_ = evconnlistener_new_bind(loop_->base(), &NetServer::OnAccept, this,
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
                                      reinterpret_cast<sockaddr*>(&ss), len);
  if (!listener_) return Status::Error("cannot listen on " + spec + ": " + strerror(errno));
  evconnlistener_set_error_cb(listener_, &NetServer::OnAcceptError);
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(evconnlistener_get_fd(listener_), reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  LOG_INFO("net", "listening for clients on %s", spec.c_str());
  return Status::OK();
}

void NetServer::StopAccepting() {
  if (listener_) {
    evconnlistener_free(listener_);
    listener_ = nullptr;
  }
}

void NetServer::OnAccept(evconnlistener*, int fd, sockaddr* addr, int, void* arg) {
  auto* self = static_cast<NetServer*>(arg);
  if (self->sessions_.size() >= self->protocol_.max_connections) {
    self->m_rejected_capacity_->Inc();
    LOG_WARN("net", "refused connection from %s: max_connections (%u) reached", PeerName(addr).c_str(),
             self->protocol_.max_connections);
    close(fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bufferevent* bev = bufferevent_socket_new(self->loop_->base(), fd, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) {
    close(fd);
    return;
  }
  SessionId id = (static_cast<uint64_t>(self->node_id_) << kSessionNodeShift) | self->next_conn_++;
  std::string peer = PeerName(addr);
  auto session = std::make_unique<Session>(self, id, bev, peer);
  self->sessions_.emplace(id, std::move(session));
  self->m_accepted_->Inc();
  self->m_sessions_->Set(static_cast<int64_t>(self->sessions_.size()));
  LOG_DEBUG("net", "session %llu opened from %s", static_cast<unsigned long long>(id), peer.c_str());
  for (auto& cb : self->open_cbs_) cb(id, peer);
}

void NetServer::OnAcceptError(evconnlistener* l, void* arg) {
  auto* self = static_cast<NetServer*>(arg);
  int err = EVUTIL_SOCKET_ERROR();
  LOG_ERROR("net", "accept failed: %s; pausing accepts for 100 ms", evutil_socket_error_to_string(err));
  // Out of descriptors: the pending connection stays in the backlog and would
  // wake us in a tight loop. Back off briefly instead.
  evconnlistener_disable(l);
  self->loop_->RunAfter(0.1, [self, l] {
    if (self->listener_ == l) evconnlistener_enable(l);
  });
}

event_base* NetServer::loop_base() const { return loop_->base(); }

Session* NetServer::Find(SessionId id) const {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->closing()) return nullptr;
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
  self->flushing_.swap(self->to_flush_);  // a flush may queue another (it closes, a callback pushes)
  for (SessionId id : self->flushing_)
    if (Session* s = self->Find(id)) s->Flush();
  self->flushing_.clear();
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
    for (const std::string& g : s->groups()) {
      auto git = groups_.find(g);
      if (git == groups_.end()) continue;
      git->second.erase(id);
      if (git->second.empty()) groups_.erase(git);
    }
    std::string reason = s->close_reason();
    ClosedCounter(reason)->Inc();
    LOG_DEBUG("net", "session %llu closed: %s", static_cast<unsigned long long>(id), reason.c_str());
    s.reset();
    for (auto& cb : close_cbs_) cb(id, reason);
  }
  m_sessions_->Set(static_cast<int64_t>(sessions_.size()));
}

}  // namespace lampyr
