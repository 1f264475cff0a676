#include "channel/channel_hub.h"

#include <arpa/inet.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "core/accept_backoff.h"
#include "core/guard.h"
#include "core/log.h"

namespace lampyr {

using channel::Frame;
using channel::FrameType;
using channel::Link;
using channel::ReplyCode;

namespace {

std::string PeerAddress(const sockaddr* addr) {
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

Counter* FailureCounter(const char* reason) {
  return Metrics().GetCounter("lampyr_channel_call_failures_total", "Remote calls that failed, by reason",
                              std::string("reason=\"") + reason + "\"");
}

const char* CallErrorName(CallError e) {
  switch (e) {
    case CallError::kNone: return "none";
    case CallError::kTimeout: return "timeout";
    case CallError::kUnknownNode: return "unknown_node";
    case CallError::kUnknownMethod: return "unknown_method";
    case CallError::kLinkDown: return "link_down";
    case CallError::kRemote: return "remote_error";
  }
  return "?";
}

void CountReset(const std::string& reason) {
  // A few fixed buckets keep the label set bounded.
  const char* bucket = "other";
  if (reason.find("over the cap") != std::string::npos) bucket = "output_cap";
  else if (reason.find("bad frame") != std::string::npos || reason.find("version") != std::string::npos) bucket = "bad_frame";
  else if (reason.find("silent") != std::string::npos) bucket = "silent";
  else if (reason.find("closed") != std::string::npos || reason.find("error") != std::string::npos) bucket = "closed";
  Metrics()
      .GetCounter("lampyr_channel_link_resets_total", "Channel links that went down, by reason",
                  std::string("reason=\"") + bucket + "\"")
      ->Inc();
}

}  // namespace

ChannelHub::ChannelHub(EventLoop* loop, std::string node_name, std::string cluster_secret, ChannelOptions options)
    : loop_(loop), options_(options), alive_(std::make_shared<bool>(true)) {
  settings_.self = std::move(node_name);
  settings_.secret = std::move(cluster_secret);
  settings_.max_frame = options_.max_frame;
  settings_.max_output = options_.max_output;
  settings_.handshake_timeout_s = options_.handshake_timeout_s;
  auto& m = Metrics();
  m_links_ = m.GetGauge("lampyr_channel_links", "Channel links up (both directions)");
  m_calls_ = m.GetCounter("lampyr_channel_calls_total", "Remote calls started by this process");
  m_relayed_ = m.GetCounter("lampyr_channel_relayed_total", "Frames relayed between two other nodes");
  m_notify_dropped_ = m.GetCounter("lampyr_channel_notifies_dropped_total", "Notifies dropped for lack of a route");
  if (settings_.secret.empty())
    LOG_WARN("channel", "no cluster_secret configured: any process that speaks the channel protocol can join");
  tick_timer_ = loop_->RunEvery(options_.ping_interval_s, [this] { Tick(); });
}

ChannelHub::~ChannelHub() {
  *alive_ = false;
  loop_->Cancel(tick_timer_);
  if (reap_timer_) loop_->Cancel(reap_timer_);
  for (auto& [name, out] : outs_)
    if (out.retry) loop_->Cancel(out.retry);
  for (auto& [id, p] : pending_) loop_->Cancel(p.timer);
  if (listener_) evconnlistener_free(listener_);
  m_links_->Add(-static_cast<int64_t>(up_.size()));
  // Links are destroyed without callbacks: nobody is left to hear them.
  links_.clear();
  graveyard_.clear();
}

Status ChannelHub::Listen(const std::string& host, uint16_t port) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  std::string spec = host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                                          : host + ":" + std::to_string(port);
  // libevent refuses port 0 ("any free port", for tests): parse with 1, then clear it.
  std::string parse_spec = port != 0 ? spec : spec.substr(0, spec.size() - 1) + "1";
  if (evutil_parse_sockaddr_port(parse_spec.c_str(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return Status::Error("bad channel listen address " + spec);
  if (port == 0) {
    if (ss.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = 0;
    else reinterpret_cast<sockaddr_in*>(&ss)->sin_port = 0;
  }
  listener_ = evconnlistener_new_bind(loop_->base(), &ChannelHub::OnAccept, this,
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 512,
                                      reinterpret_cast<sockaddr*>(&ss), len);
  if (!listener_) return Status::Error("cannot listen for nodes on " + spec + ": " + strerror(errno));
  // Out of descriptors: pause and resume with a growing delay instead of spinning (core/accept_backoff.h).
  evconnlistener_set_error_cb(listener_, [](evconnlistener* l, void* arg) {
    auto* self = static_cast<ChannelHub*>(arg);
    Guarded("channel", [&] {
      PauseAcceptsAfterError(self->loop_, l, "channel", [self, l, alive = std::weak_ptr<bool>(self->alive_)] {
        if (auto a = alive.lock(); a && *a && self->listener_ == l) evconnlistener_enable(l);
      });
    });
  });
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(evconnlistener_get_fd(listener_), reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  LOG_INFO("channel", "node %s listening for nodes on %s", settings_.self.c_str(), spec.c_str());
  return Status::OK();
}

void ChannelHub::StopListening() {
  if (listener_) evconnlistener_free(listener_);
  listener_ = nullptr;
}

Status ChannelHub::EnableTls(const ChannelTlsConfig& config) {
  Status st = channel::ChannelTls::Create(config, &tls_);
  if (st.ok()) {
    settings_.tls = tls_.get();
    LOG_INFO("channel", "channel links use TLS (certificate %s, CA %s)", config.cert.c_str(), config.ca.c_str());
  }
  return st;
}

size_t ChannelHub::UnauthenticatedLinks() const {
  size_t n = 0;
  for (const auto& [raw, link] : links_)
    if (link->direction() == Link::Direction::kIn && !link->up()) ++n;
  return n;
}

void ChannelHub::RefuseUnauthenticated(int fd, const std::string& address) {
  Metrics()
      .GetCounter("lampyr_channel_unauthenticated_refused_total",
                  "Connections to a channel root closed at accept: too many links in their handshake")
      ->Inc();
  uint64_t left_out = 0;
  if (stranger_lines_.Allow("cap", EventLoop::NowMicros(), &left_out))
    LOG_WARN("channel", "refused a connection from %s: %zu links are in their handshake (the cap)%s",
             address.c_str(), options_.max_unauthenticated,
             left_out ? (", " + std::to_string(left_out) + " more since the last line").c_str() : "");
  Frame f;
  f.type = FrameType::kReject;
  f.src = settings_.self;
  f.payload = "too many unauthenticated links";
  std::string bytes;
  channel::AppendFrame(f, &bytes);
  // Over TLS a plain frame would be noise: the peer just sees the close.
  if (!tls_) (void)!send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  evutil_closesocket(fd);
}

void ChannelHub::OnAccept(evconnlistener*, int fd, sockaddr* addr, int, void* arg) {
  auto* self = static_cast<ChannelHub*>(arg);
  if (self->UnauthenticatedLinks() >= self->options_.max_unauthenticated)
    return self->RefuseUnauthenticated(fd, PeerAddress(addr));
  auto link = std::make_unique<Link>(self->loop_, static_cast<channel::LinkDelegate*>(self), &self->settings_, Link::Direction::kIn, fd,
                                     PeerAddress(addr), "");
  Link* raw = link.get();
  self->links_.emplace(raw, std::move(link));
}

void ChannelHub::Connect(const std::string& root, const std::string& host, uint16_t port) {
  Outbound& out = outs_[root];
  out.host = host;
  out.port = port;
  out.backoff_s = options_.reconnect_min_s;
  if (out.link) out.link->Close("address changed");
  if (out.retry) {
    loop_->Cancel(out.retry);
    out.retry = 0;
  }
  StartConnect(root);
}

void ChannelHub::StartConnect(const std::string& root) {
  auto it = outs_.find(root);
  if (it == outs_.end() || it->second.link) return;
  Outbound& out = it->second;
  std::string spec = out.host + ":" + std::to_string(out.port);
  sockaddr_storage ss{};
  int len = sizeof ss;
  std::string numeric = out.host.find(':') != std::string::npos ? "[" + out.host + "]:" + std::to_string(out.port) : spec;
  if (evutil_parse_sockaddr_port(numeric.c_str(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    // A host name: resolve it now (rare, and /etc/hosts in practice).
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(out.host.c_str(), std::to_string(out.port).c_str(), &hints, &res);
    if (rc != 0 || !res) {
      ScheduleRetry(root, "cannot resolve " + out.host + ": " + gai_strerror(rc));
      return;
    }
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    len = static_cast<int>(res->ai_addrlen);
    freeaddrinfo(res);
  }
  auto link = std::make_unique<Link>(loop_, static_cast<channel::LinkDelegate*>(this), &settings_, Link::Direction::kOut, -1, spec, root);
  Link* raw = link.get();
  links_.emplace(raw, std::move(link));
  out.link = raw;
  Status st = raw->Connect(reinterpret_cast<sockaddr*>(&ss), static_cast<socklen_t>(len));
  if (!st.ok()) raw->Close(st.message());
}

void ChannelHub::ScheduleRetry(const std::string& root, const std::string& error) {
  auto it = outs_.find(root);
  if (it == outs_.end()) return;
  Outbound& out = it->second;
  out.last_error = error;
  double delay = out.backoff_s;
  out.backoff_s = std::min(out.backoff_s * 2, options_.reconnect_max_s);
  if (out.retry) loop_->Cancel(out.retry);
  out.retry = loop_->RunAfter(delay, [this, root] {
    auto i = outs_.find(root);
    if (i == outs_.end()) return;
    i->second.retry = 0;
    StartConnect(root);
  });
}

std::string ChannelHub::AdmitChild(const std::string& name) {
  if (name == settings_.self) return "node name " + name + " is this root's own name";
  if (policy_) {
    std::string refusal = policy_->Admit(name);
    if (!refusal.empty()) return refusal;
  }
  if (up_.count(name)) return "duplicate node name " + name + " (a node of that name is already linked)";
  return "";
}

void ChannelHub::OnLinkUp(Link* link) {
  const std::string& peer = link->peer();
  if (up_.count(peer)) {  // e.g. a root we also accepted as a child
    link->Close("duplicate link to " + peer);
    return;
  }
  up_[peer] = link;
  m_links_->Add(1);
  if (link->direction() == Link::Direction::kOut) {
    Outbound& out = outs_[peer];
    out.backoff_s = options_.reconnect_min_s;
    out.last_error.clear();
    out.peers.clear();
  }
  LOG_INFO("channel", "link %s %s %s is up (%s)", settings_.self.c_str(),
           link->direction() == Link::Direction::kOut ? "->" : "<-", peer.c_str(), link->address().c_str());
  if (link->direction() == Link::Direction::kIn) AnnouncePeers();
  for (auto& cb : std::vector(peer_cbs_)) cb(peer, true);
}

void ChannelHub::OnLinkClosed(Link* link, const std::string& reason, bool auth) {
  std::string peer = link->peer();
  bool was_up = false;
  auto uit = up_.find(peer);
  if (uit != up_.end() && uit->second == link) {
    up_.erase(uit);
    m_links_->Add(-1);
    was_up = true;
  }
  // Every inbound peer that never authenticated counts, whoever hung up.
  if (auth || (!was_up && link->direction() == Link::Direction::kIn)) {
    Metrics()
        .GetCounter("lampyr_channel_auth_rejected_total", "Peers dropped during the handshake")
        ->Inc();
  }
  if (was_up) {
    CountReset(reason);
    LOG_WARN("channel", "link %s %s %s went down: %s", settings_.self.c_str(),
             link->direction() == Link::Direction::kOut ? "->" : "<-", peer.c_str(), reason.c_str());
  } else if (link->direction() == Link::Direction::kIn) {
    // One line per node name (or per stranger) per 10 s: a refused process
    // retries, and anybody can connect.
    uint64_t left_out = 0;
    if (stranger_lines_.Allow(peer.empty() ? "?" : peer, EventLoop::NowMicros(), &left_out))
      LOG_WARN("channel", "dropped node %s from %s during handshake: %s%s", peer.empty() ? "?" : peer.c_str(),
               link->address().c_str(), reason.c_str(),
               left_out ? (" (" + std::to_string(left_out) + " more since the last line)").c_str() : "");
  } else {
    // Retries repeat the same failure: say it once, then only on change.
    auto oit = outs_.find(peer);
    if (oit != outs_.end() && oit->second.last_error == reason)
      LOG_DEBUG("channel", "link to %s (%s) failed: %s", peer.c_str(), link->address().c_str(), reason.c_str());
    else
      LOG_WARN("channel", "link to %s (%s) failed: %s", peer.c_str(), link->address().c_str(), reason.c_str());
  }
  // Calls waiting on this hop fail now rather than at their timeout.
  std::vector<uint32_t> failed;
  for (auto& [id, p] : pending_)
    if (p.via == link) failed.push_back(id);
  for (uint32_t id : failed) {
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;
    std::string msg = "channel: call " + it->second.node + "." + it->second.method + " failed: link to " + peer +
                      " went down (" + reason + ")";
    Complete(id, CallError::kLinkDown, Status::Error(msg), "");
  }
  // Calls we relayed towards this peer get their error from us.
  for (auto it = relayed_.begin(); it != relayed_.end();) {
    if (it->second.to != link) {
      ++it;
      continue;
    }
    auto [origin, id] = it->first;
    it = relayed_.erase(it);
    auto oit = up_.find(origin);
    if (oit != up_.end())
      SendReply(oit->second, origin, id, ReplyCode::kLinkDown, "link from " + settings_.self + " to " + peer +
                                                                   " went down (" + reason + ")");
  }
  // Move the object to the graveyard; it is freed after this loop turn.
  auto lit = links_.find(link);
  if (lit != links_.end()) {
    graveyard_.push_back(std::move(lit->second));
    links_.erase(lit);
    if (!reap_timer_) reap_timer_ = loop_->RunAfter(0, [this] { Reap(); });
  }
  if (link->direction() == Link::Direction::kOut) {
    auto oit = outs_.find(peer);
    if (oit != outs_.end() && oit->second.link == link) {
      oit->second.link = nullptr;
      oit->second.peers.clear();
      ScheduleRetry(peer, reason);
    }
  } else if (was_up) {
    AnnouncePeers();
  }
  if (was_up)
    for (auto& cb : std::vector(peer_cbs_)) cb(peer, false);
}

void ChannelHub::Reap() {
  reap_timer_ = 0;
  graveyard_.clear();
}

void ChannelHub::AnnouncePeers() {
  std::string names;
  for (auto& [name, link] : up_) {
    if (link->direction() != Link::Direction::kIn) continue;
    if (!names.empty()) names += '\n';
    names += name;
  }
  Frame f;
  f.type = FrameType::kPeers;
  f.src = settings_.self;
  f.payload = names;
  std::vector<Link*> children;
  for (auto& [name, link] : up_)
    if (link->direction() == Link::Direction::kIn) children.push_back(link);
  for (Link* l : children) l->Send(f);
}

void ChannelHub::Tick() {
  int64_t now = EventLoop::NowMicros();
  int64_t dead_us = static_cast<int64_t>(options_.dead_after_s * 1e6);
  std::vector<Link*> silent;
  Frame ping;
  ping.type = FrameType::kPing;
  for (auto& [name, link] : up_) {
    if (now - link->last_recv_us() > dead_us) silent.push_back(link);
  }
  for (Link* l : silent) l->Close("peer silent for " + std::to_string(options_.dead_after_s) + "s");
  std::vector<Link*> live;
  for (auto& [name, link] : up_) live.push_back(link);
  for (Link* l : live) l->Send(ping);
  // Relay bookkeeping of calls whose caller has given up.
  for (auto it = relayed_.begin(); it != relayed_.end();)
    it = it->second.deadline_us < now ? relayed_.erase(it) : std::next(it);
}

void ChannelHub::RegisterMethod(const std::string& method, MethodHandler h) { methods_[method] = std::move(h); }
void ChannelHub::UnregisterMethod(const std::string& method) { methods_.erase(method); }

void ChannelHub::AddPeerCallback(std::function<void(const std::string&, bool)> cb) { peer_cbs_.push_back(std::move(cb)); }

Link* ChannelHub::Route(const std::string& node) const {
  auto it = up_.find(node);
  if (it != up_.end()) return it->second;
  // Through a root that has the node as a child. Data roots (gate) before
  // the master, which is the control plane.
  Link* fallback = nullptr;
  for (const auto& [root, out] : outs_) {
    if (!out.link || !out.link->up() || !out.peers.count(node)) continue;
    if (root != "master") return out.link;
    fallback = out.link;
  }
  return fallback;
}

bool ChannelHub::IsConnected(const std::string& node) const { return node == settings_.self || Route(node) != nullptr; }

std::vector<std::string> ChannelHub::Peers() const {
  std::vector<std::string> v;
  for (auto& [name, link] : up_) v.push_back(name);
  return v;
}

Json::Value ChannelHub::LinksJson() const {
  Json::Value arr(Json::arrayValue);
  for (const auto& [root, out] : outs_) {
    Json::Value l;
    l["peer"] = root;
    l["direction"] = "out";
    l["address"] = out.host + ":" + std::to_string(out.port);
    if (out.link && out.link->up()) l["state"] = "up";
    else if (out.link) l["state"] = "connecting";
    else l["state"] = "down";
    if (!out.last_error.empty() && !(out.link && out.link->up())) l["error"] = out.last_error;
    arr.append(l);
  }
  for (const auto& [name, link] : up_) {
    if (link->direction() != Link::Direction::kIn) continue;
    Json::Value l;
    l["peer"] = name;
    l["direction"] = "in";
    l["state"] = "up";
    l["address"] = link->address();
    arr.append(l);
  }
  return arr;
}

void ChannelHub::Call(const std::string& node, const std::string& method, std::string_view args, ReplyFn done,
                      double timeout_s) {
  CallDetailed(
      node, method, args, [done = std::move(done)](CallError, Status st, std::string reply) { done(st, std::move(reply)); },
      timeout_s);
}

void ChannelHub::CallDetailed(const std::string& node, const std::string& method, std::string_view args,
                              DetailedReplyFn done, double timeout_s) {
  m_calls_->Inc();
  uint32_t id = next_id_++;
  if (id == 0) id = next_id_++;
  Link* via = nullptr;
  if (node != settings_.self) {
    via = Route(node);
    if (!via) {
      FailureCounter("unknown_node")->Inc();
      std::weak_ptr<bool> alive = alive_;
      std::string msg = "channel: call " + node + "." + method + ": unknown node " + node +
                        " (not configured or not connected)";
      loop_->Post([alive, done = std::move(done), msg] {
        if (!alive.expired()) done(CallError::kUnknownNode, Status::Error(msg), "");
      });
      return;
    }
  }
  Pending& p = pending_[id];
  p.done = std::move(done);
  p.via = via;
  p.node = node;
  p.method = method;
  p.timer = loop_->RunAfter(timeout_s, [this, id, timeout_s] {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    it->second.timer = 0;
    char secs[32];
    snprintf(secs, sizeof secs, "%.3g", timeout_s);
    Complete(id, CallError::kTimeout,
             Status::Error("channel: call " + it->second.node + "." + it->second.method + " timed out after " +
                           secs + "s"),
             "");
  });
  if (!via) {
    // A call to ourselves still answers asynchronously, like any other.
    std::string a(args);
    std::weak_ptr<bool> alive = alive_;
    loop_->Post([this, alive, method, a = std::move(a), id] {
      if (alive.expired() || !pending_.count(id)) return;
      InvokeLocal(settings_.self, method, a, id, "", false);
    });
    return;
  }
  Frame f;
  f.type = FrameType::kCall;
  f.id = id;
  f.aux = static_cast<uint32_t>(std::min(timeout_s * 1000.0, 4e9));
  f.src = settings_.self;
  f.dst = node;
  f.method = method;
  f.payload = args;
  via->Send(f);
}

void ChannelHub::Notify(const std::string& node, const std::string& method, std::string_view args) {
  if (node == settings_.self) {
    auto it = methods_.find(method);
    if (it == methods_.end()) return;
    std::string a(args);
    std::weak_ptr<bool> alive = alive_;
    loop_->Post([this, alive, method, a = std::move(a)] {
      if (alive.expired()) return;
      InvokeLocal(settings_.self, method, a, 0, "", false);
    });
    return;
  }
  Link* via = Route(node);
  if (!via) {
    m_notify_dropped_->Inc();
    LOG_DEBUG("channel", "notify %s.%s dropped: no route", node.c_str(), method.c_str());
    return;
  }
  Frame f;
  f.type = FrameType::kNotify;
  f.src = settings_.self;
  f.dst = node;
  f.method = method;
  f.payload = args;
  via->Send(f);
}

void ChannelHub::Complete(uint32_t id, CallError err, Status st, std::string reply) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  if (p.timer) loop_->Cancel(p.timer);
  if (err != CallError::kNone) {
    if (err != CallError::kUnknownNode) FailureCounter(CallErrorName(err))->Inc();
    LOG_DEBUG("channel", "%s", st.message().c_str());
  }
  p.done(err, std::move(st), std::move(reply));
}

void ChannelHub::OnLinkFrame(Link* link, Frame& f) {
  // A child speaks only for itself; only a root relays for others.
  if (link->direction() == Link::Direction::kIn) f.src = link->peer();
  bool for_us = f.dst.empty() || f.dst == settings_.self;
  switch (f.type) {
    case FrameType::kCall:
      if (for_us) HandleCall(link, f);
      else Relay(link, f);
      break;
    case FrameType::kReply:
      if (for_us) HandleReply(link, f);
      else Relay(link, f);
      break;
    case FrameType::kNotify:
      if (for_us) InvokeLocal(std::string(f.src), std::string(f.method), f.payload, 0, link->peer(), true);
      else Relay(link, f);
      break;
    case FrameType::kPeers:
      if (link->direction() == Link::Direction::kOut) {
        auto& peers = outs_[link->peer()].peers;
        peers.clear();
        std::string_view rest = f.payload;
        while (!rest.empty()) {
          size_t nl = rest.find('\n');
          std::string_view n = rest.substr(0, nl);
          if (!n.empty() && n != settings_.self) peers.emplace(n);
          if (nl == std::string_view::npos) break;
          rest.remove_prefix(nl + 1);
        }
      }
      break;
    default:
      link->Close(std::string("unexpected ") + channel::FrameTypeName(f.type) + " frame");
      break;
  }
}

void ChannelHub::HandleCall(Link* link, const Frame& f) {
  InvokeLocal(std::string(f.src), std::string(f.method), f.payload, f.id, link->peer(), true);
}

void ChannelHub::InvokeLocal(const std::string& from, const std::string& method, std::string_view args, uint32_t id,
                             const std::string& via_peer, bool remote) {
  auto it = methods_.find(method);
  bool is_call = id != 0;
  if (remote && policy_) {
    std::string refusal = policy_->MayCall(from, method);
    if (!refusal.empty()) {
      RefuseCall(from, method, id, via_peer, refusal);
      return;
    }
  }
  if (it == methods_.end()) {
    std::string msg = "channel: node " + settings_.self + " has no method " + method;
    if (!is_call) {
      LOG_DEBUG("channel", "notify from %s: %s", from.c_str(), msg.c_str());
      return;
    }
    if (!remote) {
      Complete(id, CallError::kUnknownMethod, Status::Error(msg), "");
    } else {
      auto l = up_.find(via_peer);
      if (l != up_.end()) SendReply(l->second, from, id, ReplyCode::kUnknownMethod, msg);
    }
    return;
  }
  Respond respond;
  if (is_call) {
    std::weak_ptr<bool> alive = alive_;
    auto answered = std::make_shared<bool>(false);
    respond = [this, alive, answered, from, via_peer, id, remote](Status st, std::string reply) {
      if (alive.expired() || *answered) return;
      *answered = true;
      if (!remote) {
        if (st.ok()) Complete(id, CallError::kNone, Status::OK(), std::move(reply));
        else Complete(id, CallError::kRemote, st, "");
        return;
      }
      auto l = up_.find(via_peer);
      if (l == up_.end()) return;  // the caller's link is gone; its call already failed
      if (st.ok()) SendReply(l->second, from, id, ReplyCode::kOk, reply);
      else SendReply(l->second, from, id, ReplyCode::kError, st.message());
    };
  } else {
    respond = [](Status, std::string) {};
  }
  // Copy: the handler may unregister itself.
  MethodHandler h = it->second;
  try {
    h(from, args, respond);
  } catch (const std::exception& e) {
    LOG_ERROR("channel", "method %s threw: %s", method.c_str(), e.what());
    respond(Status::Error("channel: method " + method + " on " + settings_.self + " failed: " + e.what()), "");
  } catch (...) {
    LOG_ERROR("channel", "method %s threw", method.c_str());
    respond(Status::Error("channel: method " + method + " on " + settings_.self + " failed"), "");
  }
}

void ChannelHub::RefuseCall(const std::string& from, const std::string& method, uint32_t id,
                            const std::string& via_peer, const std::string& refusal) {
  Metrics()
      .GetCounter("lampyr_channel_calls_refused_total", "Remote calls and notifies refused: not the caller's role")
      ->Inc();
  std::string msg = "channel: " + method + " from " + from + " refused: " + refusal;
  uint64_t left_out = 0;
  if (stranger_lines_.Allow(from + " " + method, EventLoop::NowMicros(), &left_out))
    LOG_WARN("channel", "%s%s", msg.c_str(),
             left_out ? (" (" + std::to_string(left_out) + " more since the last line)").c_str() : "");
  if (id == 0) return;  // a notify has nobody to answer
  auto l = up_.find(via_peer);
  if (l != up_.end()) SendReply(l->second, from, id, ReplyCode::kError, msg);
}

void ChannelHub::HandleReply(Link* link, const Frame& f) {
  auto it = pending_.find(f.id);
  if (it == pending_.end()) return;  // timed out already
  const Pending& p = it->second;
  // Only the hop the call went out on answers it: ids are sequential, and
  // another node must not answer (say, a player's request) in its place.
  if (p.via != link) return;
  std::string payload(f.payload);
  switch (static_cast<ReplyCode>(f.aux)) {
    case ReplyCode::kOk: Complete(f.id, CallError::kNone, Status::OK(), std::move(payload)); return;
    case ReplyCode::kUnknownMethod: Complete(f.id, CallError::kUnknownMethod, Status::Error(payload), ""); return;
    case ReplyCode::kUnknownNode:
      Complete(f.id, CallError::kUnknownNode, Status::Error("channel: call " + p.node + "." + p.method + ": " + payload), "");
      return;
    case ReplyCode::kTimeout:
      Complete(f.id, CallError::kTimeout, Status::Error("channel: call " + p.node + "." + p.method + ": " + payload), "");
      return;
    case ReplyCode::kLinkDown:
      Complete(f.id, CallError::kLinkDown, Status::Error("channel: call " + p.node + "." + p.method + ": " + payload), "");
      return;
    case ReplyCode::kError:
    default: Complete(f.id, CallError::kRemote, Status::Error(payload), ""); return;
  }
}

void ChannelHub::Relay(Link* from, const Frame& f) {
  // Only one hop through a root: a relay never relays again, so there are no loops.
  std::string dst(f.dst);
  auto it = up_.find(dst);
  Link* to = it == up_.end() ? nullptr : it->second;
  if (f.type == FrameType::kReply) {
    // A reply passes only for a call we relayed to the node that answers.
    auto r = relayed_.find({dst, f.id});
    if (r == relayed_.end() || r->second.to != from) return;
    relayed_.erase(r);
    if (to) {
      m_relayed_->Inc();
      to->Send(f);
    }
    return;
  }
  if (!to || from->direction() != Link::Direction::kIn) {
    if (f.type == FrameType::kCall)
      SendReply(from, std::string(f.src), f.id, ReplyCode::kUnknownNode,
                "unknown node " + dst + " (not linked to " + settings_.self + ")");
    else
      m_notify_dropped_->Inc();
    return;
  }
  m_relayed_->Inc();
  if (f.type == FrameType::kCall)
    relayed_[{std::string(f.src), f.id}] = {to, EventLoop::NowMicros() + int64_t{f.aux} * 1000 + 1000000};
  to->Send(f);
}

void ChannelHub::SendReply(Link* link, const std::string& to, uint32_t id, ReplyCode code, std::string_view payload) {
  Frame r;
  r.type = FrameType::kReply;
  r.id = id;
  r.aux = static_cast<uint32_t>(code);
  r.src = settings_.self;
  r.dst = to;
  r.payload = payload;
  link->Send(r);
}

}  // namespace lampyr
