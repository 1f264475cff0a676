// ChannelHub: this process's end of the cluster's inter-process channels
// (DESIGN §4). One per process. As a root it listens for child nodes; as a
// child it keeps a persistent, authenticated link to each of its roots and
// reconnects with exponential backoff. On top of the links: remote calls by
// method name (both ways, async replies, per-call timeouts), one-way
// notifies, and relay through a common root for nodes that are not linked
// directly (Firefly's star: net and game both link to gate).
//
// Loop thread only. Every ReplyFn / Respond runs exactly once, never inside
// the call that started it, except that the hub's destructor drops pending
// calls without running them.
#pragma once

#include <json/value.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "channel/channel_link.h"
#include "channel/channel_tls.h"
#include "channel/node_policy.h"
#include "core/log_throttle.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "core/status.h"

struct evconnlistener;
struct sockaddr;

namespace lampyr {

// Inbound links still in their handshake, per root. Past it a new
// connection gets a reject and is closed at once: a flood of connections
// that never authenticate holds at most this many descriptors and a few KiB
// each (channel/channel_link.h), and the handshake deadline frees them.
constexpr size_t kMaxUnauthenticatedLinks = 64;

struct ChannelOptions {
  size_t max_frame = (16u << 20) + 4096;  // larger frames reset the link (after the handshake)
  size_t max_unauthenticated = kMaxUnauthenticatedLinks;
  size_t max_output = 64u << 20;          // unsent bytes per link before it is reset
  double handshake_timeout_s = 5;
  double ping_interval_s = 2;             // idle links are pinged this often
  double dead_after_s = 10;               // nothing heard for this long: link reset
  double reconnect_min_s = 0.1;           // first retry; doubles per failure
  double reconnect_max_s = 5;
};

// Why a call failed (Status carries the text; this the kind).
enum class CallError { kNone, kTimeout, kUnknownNode, kUnknownMethod, kLinkDown, kRemote };

class ChannelHub : channel::LinkDelegate, NonCopyable {
 public:
  ChannelHub(EventLoop* loop, std::string node_name, std::string cluster_secret, ChannelOptions options = {});
  ~ChannelHub() override;

  const std::string& name() const { return settings_.self; }

  Status Listen(const std::string& host, uint16_t port);  // root side (rootport / master.rootport)
  uint16_t port() const { return port_; }
  void StopListening();
  // Child side: persistent, reconnects with backoff. Again for the same root
  // replaces the address.
  void Connect(const std::string& root_name, const std::string& host, uint16_t port);

  using Respond = std::function<void(Status, std::string reply)>;  // call exactly once
  using MethodHandler = std::function<void(const std::string& from_node, std::string_view args, Respond respond)>;
  void RegisterMethod(const std::string& method, MethodHandler h);
  // Who may link to this root and call what (channel/node_policy.h). Unset:
  // any node with the secret, any method.
  void SetPolicy(std::unique_ptr<ChannelPolicy> policy) { policy_ = std::move(policy); }
  // Every link from now on runs over TLS (master.channel_tls); before Listen/Connect.
  Status EnableTls(const ChannelTlsConfig& config);
  void UnregisterMethod(const std::string& method);

  // Error Status on timeout, unknown method, unknown node, link down.
  using ReplyFn = std::function<void(Status, std::string reply)>;
  void Call(const std::string& node, const std::string& method, std::string_view args, ReplyFn done,
            double timeout_s = 5.0);
  // Same, with the kind of failure (forwarding maps it to client error codes).
  using DetailedReplyFn = std::function<void(CallError, Status, std::string reply)>;
  void CallDetailed(const std::string& node, const std::string& method, std::string_view args,
                    DetailedReplyFn done, double timeout_s = 5.0);
  // One-way; dropped (and counted) when there is no route.
  void Notify(const std::string& node, const std::string& method, std::string_view args);

  // True when `node` can be reached now: itself, a direct link, or through a root.
  bool IsConnected(const std::string& node) const;
  // Direct links: [{"peer","state":"up|connecting|down","direction":"in|out","address", "error"?}]
  Json::Value LinksJson() const;
  // Direct links only; `up` false when one goes down.
  void AddPeerCallback(std::function<void(const std::string& node, bool up)> cb);
  // Names of the directly linked, up peers.
  std::vector<std::string> Peers() const;
  size_t pending_calls() const { return pending_.size(); }

 private:
  struct Outbound {
    std::string host;
    uint16_t port = 0;
    channel::Link* link = nullptr;
    double backoff_s = 0;
    TimerId retry = 0;
    std::string last_error;
    std::set<std::string> peers;  // the root's other children (kPeers)
  };
  struct Pending {
    DetailedReplyFn done;
    TimerId timer = 0;
    channel::Link* via = nullptr;  // next hop; null for calls to ourselves
    std::string node, method;
  };
  struct Relayed {
    channel::Link* to;
    int64_t deadline_us;
  };

  // LinkDelegate.
  void OnLinkUp(channel::Link* link) override;
  void OnLinkFrame(channel::Link* link, channel::Frame& f) override;
  void OnLinkClosed(channel::Link* link, const std::string& reason, bool auth) override;
  std::string AdmitChild(const std::string& name) override;

  static void OnAccept(evconnlistener* l, int fd, sockaddr* addr, int socklen, void* arg);
  void StartConnect(const std::string& root);
  void ScheduleRetry(const std::string& root, const std::string& error);
  channel::Link* Route(const std::string& node) const;
  void HandleCall(channel::Link* link, const channel::Frame& f);
  void HandleReply(channel::Link* link, const channel::Frame& f);
  void RefuseCall(const std::string& from, const std::string& method, uint32_t id, const std::string& via_peer,
                  const std::string& refusal);
  void Relay(channel::Link* from, const channel::Frame& f);
  void SendReply(channel::Link* link, const std::string& to, uint32_t id, channel::ReplyCode code,
                 std::string_view payload);
  void Complete(uint32_t id, CallError err, Status st, std::string reply);
  void InvokeLocal(const std::string& from, const std::string& method, std::string_view args, uint32_t id,
                   const std::string& via_peer, bool remote);
  void AnnouncePeers();
  // Refuses an accepted connection over the unauthenticated cap.
  void RefuseUnauthenticated(int fd, const std::string& address);
  size_t UnauthenticatedLinks() const;
  void Tick();
  void Reap();

  EventLoop* loop_;
  channel::LinkSettings settings_;
  ChannelOptions options_;
  evconnlistener* listener_ = nullptr;
  uint16_t port_ = 0;
  std::unordered_map<channel::Link*, std::unique_ptr<channel::Link>> links_;  // every live link
  std::map<std::string, channel::Link*> up_;                                   // peer name -> up link
  std::map<std::string, Outbound> outs_;                                       // root name -> link state
  std::unordered_map<std::string, MethodHandler> methods_;
  std::unique_ptr<ChannelPolicy> policy_;
  std::unique_ptr<channel::ChannelTls> tls_;
  // Anybody can connect: what strangers cause is logged at a bounded rate.
  LogThrottle stranger_lines_{10.0, 64};
  std::unordered_map<uint32_t, Pending> pending_;
  std::map<std::pair<std::string, uint32_t>, Relayed> relayed_;  // (origin, id) passing through us
  std::vector<std::function<void(const std::string&, bool)>> peer_cbs_;
  std::vector<std::unique_ptr<channel::Link>> graveyard_;
  TimerId reap_timer_ = 0;
  TimerId tick_timer_ = 0;
  uint32_t next_id_ = 1;
  std::shared_ptr<bool> alive_;

  Gauge* m_links_;
  Counter* m_calls_;
  Counter* m_relayed_;
  Counter* m_notify_dropped_;
};

}  // namespace lampyr
