#include "channel/forwarder.h"

#include <cstdlib>

#include "channel/channel_wire.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/net_server.h"

namespace lampyr {

using channel::PutStr16;
using channel::PutU32;
using channel::PutU64;
using channel::Reader;

namespace {

// Channel method names (docs/protocol.md, "Forwarding methods").
constexpr const char* kFwd = "lampyr.fwd";          // net -> root: a client request
constexpr const char* kReq = "lampyr.req";          // root -> node: run it
constexpr const char* kPush = "lampyr.push";        // any -> net: push to sessions
constexpr const char* kBcast = "lampyr.bcast";      // any -> net: broadcast to a group
constexpr const char* kGroup = "lampyr.group";      // any -> net: join/leave/kick
constexpr const char* kSession = "lampyr.session";  // net -> root -> watchers: open/close
constexpr const char* kWatch = "lampyr.watch";      // node -> root: send me session events
constexpr const char* kBind = "lampyr.bind";        // any -> root: bind a session to a node
constexpr const char* kLive = "lampyr.live";        // net -> root: its open sessions (on link up)

enum AnswerKind : uint8_t { kAnswerReply = 0, kAnswerDecline = 1, kAnswerFail = 2 };
enum GroupOp : uint8_t { kLeave = 0, kJoin = 1, kKickOp = 2 };

std::string RequestArgs(SessionId session, uint32_t command, uint32_t timeout_ms, std::string_view body) {
  std::string a;
  a.reserve(16 + body.size());
  PutU64(&a, session);
  PutU32(&a, command);
  PutU32(&a, timeout_ms);
  a.append(body);
  return a;
}

std::string FailAnswer(ErrorCode code, std::string_view message) {
  std::string a(1, static_cast<char>(kAnswerFail));
  PutU32(&a, static_cast<uint32_t>(code));
  a.append(message);
  return a;
}

ErrorCode CodeFor(CallError err) { return err == CallError::kTimeout ? ErrorCode::kTimeout : ErrorCode::kUnavailable; }

// Hands a routed answer to whoever received the request.
void Deliver(const RequestContext& ctx, std::string_view answer) {
  Reader r(answer);
  uint8_t kind = 0;
  if (!r.U8(&kind)) return ctx.responder->Fail(ctx, ErrorCode::kHandlerError, "malformed forwarded answer");
  switch (kind) {
    case kAnswerReply: return ctx.responder->Reply(ctx, r.Rest());
    case kAnswerDecline: return ctx.responder->Decline(ctx);
    case kAnswerFail: {
      uint32_t code = 0;
      if (!r.U32(&code)) break;
      return ctx.responder->Fail(ctx, static_cast<ErrorCode>(code), r.Rest());
    }
    default: break;
  }
  ctx.responder->Fail(ctx, ErrorCode::kHandlerError, "malformed forwarded answer");
}

}  // namespace

// Answers requests that arrived over a channel: each gets a token that maps
// back to its Respond. Entries whose caller has certainly given up (past
// their deadline) are swept so a handler that never answers leaks nothing.
class Forwarder::ChannelResponder : public Responder {
 public:
  explicit ChannelResponder(EventLoop* loop) : loop_(loop) {
    sweep_ = loop_->RunEvery(1.0, [this] { Sweep(); });
  }
  ~ChannelResponder() override { loop_->Cancel(sweep_); }

  uint64_t Add(ChannelHub::Respond respond, double timeout_s) {
    uint64_t token = next_++;
    open_[token] = {std::move(respond), EventLoop::NowMicros() + static_cast<int64_t>(timeout_s * 1e6) + 1000000};
    return token;
  }
  void Reply(const RequestContext& ctx, std::string_view body) override {
    std::string a(1, static_cast<char>(kAnswerReply));
    a.append(body);
    Finish(ctx.token, std::move(a));
  }
  void Decline(const RequestContext& ctx) override { Finish(ctx.token, std::string(1, static_cast<char>(kAnswerDecline))); }
  void Fail(const RequestContext& ctx, ErrorCode code, std::string_view message) override {
    Finish(ctx.token, FailAnswer(code, message));
  }
  size_t size() const { return open_.size(); }

 private:
  struct Entry {
    ChannelHub::Respond respond;
    int64_t deadline_us;
  };
  void Finish(uint64_t token, std::string answer) {
    auto it = open_.find(token);
    if (it == open_.end()) return;  // answered twice, or too late
    ChannelHub::Respond r = std::move(it->second.respond);
    open_.erase(it);
    r(Status::OK(), std::move(answer));
  }
  void Sweep() {
    int64_t now = EventLoop::NowMicros();
    for (auto it = open_.begin(); it != open_.end();) it = it->second.deadline_us < now ? open_.erase(it) : std::next(it);
  }

  EventLoop* loop_;
  TimerId sweep_;
  uint64_t next_ = 1;
  std::unordered_map<uint64_t, Entry> open_;
};

Forwarder::Forwarder(EventLoop* loop, const Config& config, const ServerConfig& self, ChannelHub* hub,
                     CommandTable* commands, NetServer* net)
    : loop_(loop),
      config_(config),
      self_(self),
      hub_(hub),
      commands_(commands),
      net_(net),
      responder_(std::make_unique<ChannelResponder>(loop)),
      alive_(std::make_shared<bool>(true)) {
  for (const auto& [name, s] : config_.servers) {
    node_names_[s.node_id] = name;
    if (s.netport != 0 || s.wsport != 0) net_nodes_.push_back(name);
    if (name == self_.name || !s.forward.empty()) continue;
    for (const auto& link : s.remoteport)
      if (link.rootname == self_.name) candidates_.push_back(name);
  }
  if (const char* t = getenv("LAMPYR_FORWARD_TIMEOUT_MS"); t && *t) {
    long ms = strtol(t, nullptr, 10);
    if (ms > 0) forward_timeout_s_ = static_cast<double>(ms) / 1000.0;
  }
  m_forwarded_ = Metrics().GetCounter("lampyr_forwarded_requests_total", "Client requests forwarded to a root");
  m_routed_ = Metrics().GetCounter("lampyr_routed_requests_total", "Forwarded requests this root routed to a node");
}

Forwarder::~Forwarder() {
  *alive_ = false;
  for (const char* m : {kFwd, kReq, kPush, kBcast, kGroup, kSession, kWatch, kBind, kLive}) hub_->UnregisterMethod(m);
}

std::string Forwarder::NodeName(uint16_t node_id) const {
  auto it = node_names_.find(node_id);
  return it == node_names_.end() ? "" : it->second;
}

size_t Forwarder::pending_requests() const { return responder_->size(); }

void Forwarder::Install() {
  if (net_ && !self_.forward.empty()) {
    commands_->SetFallback([this](const RequestContext& ctx, std::string_view body) { Forward(ctx, body); });
    LOG_INFO("forward", "client commands without a local handler go to %s", self_.forward.c_str());
  }
  hub_->RegisterMethod(kFwd, [this](const std::string& from, std::string_view args, ChannelHub::Respond r) {
    OnForwarded(from, args, std::move(r), true);
  });
  hub_->RegisterMethod(kReq, [this](const std::string& from, std::string_view args, ChannelHub::Respond r) {
    OnForwarded(from, args, std::move(r), false);
  });
  hub_->RegisterMethod(kSession, [this](const std::string& from, std::string_view args, ChannelHub::Respond) {
    OnSessionEvent(from, args);
  });
  hub_->RegisterMethod(kLive, [this](const std::string& from, std::string_view args, ChannelHub::Respond) {
    OnLiveList(from, args);
  });
  hub_->RegisterMethod(kWatch, [this](const std::string& from, std::string_view, ChannelHub::Respond) {
    remote_watchers_.insert(from);
  });
  // A notify from Forwarder::Bind; a call gets the refusal as its answer.
  hub_->RegisterMethod(kBind, [this](const std::string& from, std::string_view args, ChannelHub::Respond respond) {
    Reader r(args);
    uint64_t session = 0;
    std::string_view node;
    if (!r.U64(&session) || !r.Str16(&node)) return respond(Status::Error("lampyr.bind: malformed arguments"), "");
    Status st = BindHere(session, std::string(node));
    if (!st.ok()) {
      uint64_t left_out = 0;
      if (bind_lines_.Allow(from, EventLoop::NowMicros(), &left_out))
        LOG_WARN("forward", "bind from %s refused: %s%s", from.c_str(), st.message().c_str(),
                 left_out ? (" (" + std::to_string(left_out) + " more since the last line)").c_str() : "");
    }
    respond(st, "");
  });
  hub_->AddPeerCallback([this, alive = std::weak_ptr<bool>(alive_)](const std::string& node, bool up) {
    if (alive.expired()) return;
    if (!up) {
      remote_watchers_.erase(node);
      // A net server that forwards here is gone or cut off: its session ids
      // mean nothing until it says which are open (lampyr.live).
      if (const ServerConfig* s = config_.FindServer(node); s && s->netport != 0 && s->forward == self_.name)
        bindings_.DropNode(s->node_id);
      return;
    }
    if (net_ && node == self_.forward) SendLiveList();
    if (watchers_.empty()) return;
    for (const auto& link : self_.remoteport)
      if (link.rootname == node) hub_->Notify(node, kWatch, "");
  });

  if (!net_) return;
  hub_->RegisterMethod(kPush, [this](const std::string&, std::string_view args, ChannelHub::Respond) {
    Reader r(args);
    uint32_t command = 0;
    uint16_t n = 0;
    if (!r.U32(&command) || !r.U16(&n)) return;
    std::vector<SessionId> ids(n);
    for (auto& id : ids)
      if (!r.U64(&id)) return;
    if (n == 1) net_->Push(ids[0], command, r.Rest());
    else net_->PushMany(ids, command, r.Rest());
  });
  hub_->RegisterMethod(kBcast, [this](const std::string&, std::string_view args, ChannelHub::Respond) {
    Reader r(args);
    std::string_view group;
    uint32_t command = 0;
    if (r.Str16(&group) && r.U32(&command)) net_->Broadcast(std::string(group), command, r.Rest());
  });
  hub_->RegisterMethod(kGroup, [this](const std::string&, std::string_view args, ChannelHub::Respond) {
    Reader r(args);
    uint8_t op = 0;
    uint64_t session = 0;
    std::string_view group;
    if (!r.U8(&op) || !r.U64(&session) || !r.Str16(&group)) return;
    if (op == kJoin) net_->JoinGroup(std::string(group), session);
    else if (op == kLeave) net_->LeaveGroup(std::string(group), session);
    else if (op == kKickOp) net_->Kick(session, "kicked");
  });
  // Session events go to our root (which fans them out) and to local watchers.
  auto event = [this](SessionId id, bool open, const std::string& info) {
    for (auto& cb : std::vector(watchers_)) cb(id, open, info);
    if (self_.forward.empty()) return;
    std::string a(1, static_cast<char>(open ? 1 : 0));
    a += '\0';  // origin: not to be fanned out again by a watcher
    PutU64(&a, id);
    PutStr16(&a, info);
    hub_->Notify(self_.forward, kSession, a);
  };
  net_->AddOpenCallback([this, event](SessionId id, const std::string& peer) {
    bindings_.Open(id);
    event(id, true, peer);
  });
  net_->AddCloseCallback([this, event](SessionId id, const std::string& reason) {
    bindings_.Close(id);
    event(id, false, reason);
  });
}

void Forwarder::SetRouter(Router router) { router_ = std::move(router); }

std::string Forwarder::DefaultRoute(SessionId session) const {
  if (candidates_.empty()) return "";
  uint64_t h = session ^ (session >> kSessionNodeShift) * 0x9E3779B97F4A7C15ull;
  return candidates_[h % candidates_.size()];
}

void Forwarder::Forward(const RequestContext& ctx, std::string_view body) {
  m_forwarded_->Inc();
  uint32_t timeout_ms = static_cast<uint32_t>(forward_timeout_s_ * 1000);
  std::string args = RequestArgs(ctx.session, ctx.command, timeout_ms, body);
  RequestContext c = ctx;
  std::weak_ptr<bool> alive = alive_;
  std::string root = self_.forward;
  hub_->CallDetailed(
      root, kFwd, args,
      [c, alive, root](CallError err, Status st, std::string answer) {
        if (alive.expired()) return;
        if (err == CallError::kNone) return Deliver(c, answer);
        LOG_DEBUG("forward", "session %llu command %u: %s", static_cast<unsigned long long>(c.session), c.command,
                  st.message().c_str());
        c.responder->Fail(c, CodeFor(err),
                          err == CallError::kTimeout ? "request timed out" : "service unavailable (" + root + " unreachable)");
      },
      forward_timeout_s_);
}

void Forwarder::OnForwarded(const std::string& from, std::string_view args, ChannelHub::Respond respond, bool at_root) {
  Reader r(args);
  uint64_t session = 0;
  uint32_t command = 0, timeout_ms = 0;
  if (!r.U64(&session) || !r.U32(&command) || !r.U32(&timeout_ms)) {
    respond(Status::Error("malformed forwarded request from " + from), "");
    return;
  }
  std::string_view body = r.Rest();
  double timeout_s = timeout_ms / 1000.0;
  // A net server speaks for its own players only.
  if (at_root && SessionNode(session) != NodeId(from)) {
    respond(Status::Error("session " + std::to_string(session) + " is not a session of " + from), "");
    return;
  }
  if (!at_root || commands_->Find(command)) return RunLocally(session, command, body, timeout_s, std::move(respond));

  std::string node = bindings_.BoundNode(session);
  if (!node.empty()) {
    // The session's binding wins.
  } else if (router_) {
    try {
      node = router_(session, command, body);
    } catch (const std::exception& e) {
      LOG_ERROR("forward", "router threw for command %u: %s", command, e.what());
      node.clear();
    }
  } else {
    node = DefaultRoute(session);
  }
  if (node.empty()) {
    respond(Status::OK(), FailAnswer(ErrorCode::kUnavailable, "no route for command " + std::to_string(command)));
    return;
  }
  if (node == self_.name) return RunLocally(session, command, body, timeout_s, std::move(respond));
  m_routed_->Inc();
  // Answer the caller before its own timer fires: a slow node is our timeout.
  double margin = std::min(0.25, timeout_s / 5);
  double onward = std::max(0.001, timeout_s - margin);
  std::string onward_args = RequestArgs(session, command, static_cast<uint32_t>(onward * 1000), body);
  hub_->CallDetailed(
      node, kReq, onward_args,
      [respond, node, command](CallError err, Status st, std::string answer) {
        if (err == CallError::kNone) return respond(Status::OK(), std::move(answer));
        LOG_DEBUG("forward", "command %u to %s: %s", command, node.c_str(), st.message().c_str());
        respond(Status::OK(), FailAnswer(CodeFor(err), err == CallError::kTimeout
                                                           ? "request timed out"
                                                           : "service unavailable (" + node + " unreachable)"));
      },
      onward);
}

void Forwarder::RunLocally(SessionId session, uint32_t command, std::string_view body, double timeout_s,
                           ChannelHub::Respond respond) {
  RequestContext ctx;
  ctx.session = session;
  ctx.command = command;
  ctx.token = responder_->Add(std::move(respond), timeout_s);
  ctx.responder = responder_.get();
  commands_->Dispatch(ctx, body);
}

void Forwarder::OnSessionEvent(const std::string& from, std::string_view args) {
  Reader r(args);
  uint8_t open = 0, relayed = 0;
  uint64_t session = 0;
  std::string_view info;
  if (!r.U8(&open) || !r.U8(&relayed) || !r.U64(&session) || !r.Str16(&info)) return;
  // The owning net server's own word keeps the list of open sessions.
  if (!relayed && SessionNode(session) == NodeId(from)) {
    if (!open) {
      bindings_.Close(session);
    } else if (!bindings_.Open(session)) {
      uint64_t left_out = 0;
      if (bind_lines_.Allow("cap", EventLoop::NowMicros(), &left_out))
        LOG_WARN("forward", "tracking %zu open sessions already (the cap): session %llu from %s cannot be bound",
                 bindings_.open_count(), static_cast<unsigned long long>(session), from.c_str());
    }
  }
  std::string i(info);
  for (auto& cb : std::vector(watchers_)) cb(session, open != 0, i);
  if (relayed) return;
  std::string a(args);
  a[1] = 1;
  for (const auto& w : remote_watchers_) hub_->Notify(w, kSession, a);
}

void Forwarder::WatchSessions(SessionEvent cb) {
  bool first = watchers_.empty();
  watchers_.push_back(std::move(cb));
  if (!first) return;
  for (const auto& link : self_.remoteport)
    if (hub_->IsConnected(link.rootname)) hub_->Notify(link.rootname, kWatch, "");
}

void Forwarder::OnLiveList(const std::string& from, std::string_view args) {
  Reader r(args);
  uint32_t n = 0;
  if (!r.U32(&n) || n > kMaxTrackedSessions) return;
  std::vector<SessionId> ids(n);
  for (auto& id : ids)
    if (!r.U64(&id)) return;
  bindings_.Replace(NodeId(from), ids);
}

void Forwarder::SendLiveList() {
  std::vector<SessionId> ids = bindings_.OpenOf(self_.node_id);
  std::string a;
  PutU32(&a, static_cast<uint32_t>(ids.size()));
  for (SessionId id : ids) PutU64(&a, id);
  hub_->Notify(self_.forward, kLive, a);
}

uint16_t Forwarder::NodeId(const std::string& name) const {
  const ServerConfig* s = config_.FindServer(name);
  return s ? s->node_id : 0;
}

Status Forwarder::BindHere(SessionId session, const std::string& node) {
  if (!node.empty() && !config_.FindServer(node))
    return Status::Error("cannot bind session " + std::to_string(session) + " to " + node + ": no such server");
  return bindings_.Bind(session, node);
}

void Forwarder::Bind(SessionId session, const std::string& node) {
  std::string owner = NodeName(SessionNode(session));
  const ServerConfig* net = config_.FindServer(owner);
  std::string root = net ? net->forward : "";
  if (root.empty() || root == self_.name) {
    Status st = BindHere(session, node);
    uint64_t left_out = 0;
    if (!st.ok() && bind_lines_.Allow("", EventLoop::NowMicros(), &left_out))
      LOG_WARN("forward", "bind refused: %s", st.message().c_str());
    return;
  }
  std::string a;
  PutU64(&a, session);
  PutStr16(&a, node);
  hub_->Notify(root, kBind, a);
}

std::string Forwarder::BoundNode(SessionId session) const { return bindings_.BoundNode(session); }

void Forwarder::Push(SessionId session, uint32_t command, std::string_view body) {
  PushMany({session}, command, body);
}

void Forwarder::PushMany(const std::vector<SessionId>& sessions, uint32_t command, std::string_view body) {
  std::map<std::string, std::vector<SessionId>> by_owner;
  for (SessionId id : sessions) by_owner[NodeName(SessionNode(id))].push_back(id);
  for (auto& [owner, ids] : by_owner) {
    if (owner.empty()) continue;
    if (owner == self_.name) {
      if (net_) net_->PushMany(ids, command, body);
      continue;
    }
    for (size_t i = 0; i < ids.size(); i += 0xFFFF) {
      size_t n = std::min<size_t>(0xFFFF, ids.size() - i);
      std::string a;
      PutU32(&a, command);
      channel::PutU16(&a, static_cast<uint16_t>(n));
      for (size_t j = 0; j < n; ++j) PutU64(&a, ids[i + j]);
      a.append(body);
      hub_->Notify(owner, kPush, a);
    }
  }
}

void Forwarder::SendGroupOp(uint8_t op, const std::string& group, SessionId session) {
  std::string owner = NodeName(SessionNode(session));
  if (owner.empty()) return;
  if (owner == self_.name) {
    if (!net_) return;
    if (op == kJoin) net_->JoinGroup(group, session);
    else if (op == kLeave) net_->LeaveGroup(group, session);
    else net_->Kick(session, "kicked");
    return;
  }
  std::string a(1, static_cast<char>(op));
  PutU64(&a, session);
  PutStr16(&a, group);
  hub_->Notify(owner, kGroup, a);
}

void Forwarder::JoinGroup(const std::string& group, SessionId session) { SendGroupOp(kJoin, group, session); }
void Forwarder::LeaveGroup(const std::string& group, SessionId session) { SendGroupOp(kLeave, group, session); }
void Forwarder::Kick(SessionId session) { SendGroupOp(kKickOp, "", session); }

void Forwarder::Broadcast(const std::string& group, uint32_t command, std::string_view body) {
  std::string a;
  PutStr16(&a, group);
  PutU32(&a, command);
  a.append(body);
  for (const auto& node : net_nodes_) {
    if (node == self_.name) {
      if (net_) net_->Broadcast(group, command, body);
    } else {
      hub_->Notify(node, kBcast, a);
    }
  }
}

}  // namespace lampyr
