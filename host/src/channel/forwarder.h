// Forwarder: client traffic across processes (DESIGN §4), on the hub.
//
// - A net server with `forward` sets the CommandTable fallback: a request
//   with no local handler goes to the forward root as (session, command, body).
// - The root (gate) runs it itself when it has a handler for the command,
//   otherwise routes it to a node — the session's binding (Bind), else the
//   router hook, else a default (see DefaultRoute) — which runs its own
//   CommandTable and answers through a channel Responder.
// - The answer (reply, decline or error reply) travels back the same way; the
//   net server's Session keeps replies in request order. Every failure (no
//   route, node down, timeout) becomes the client's error reply.
// - Pushes, group membership and broadcasts from any process reach the net
//   server that owns the session (SessionNode(id) -> server node_id).
// - Session open/close events go from each net server to its forward root,
//   which passes them to every node that asked (WatchSessions).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "channel/channel_hub.h"
#include "channel/session_bindings.h"
#include "core/config.h"
#include "net/dispatch.h"

namespace lampyr {

class NetServer;

class Forwarder : NonCopyable {
 public:
  // `net` is null for a server without netport. Everything must outlive the Forwarder.
  Forwarder(EventLoop* loop, const Config& config, const ServerConfig& self, ChannelHub* hub, CommandTable* commands,
            NetServer* net);
  ~Forwarder();

  // Registers the channel methods and, for a net server with `forward`, the fallback.
  void Install();

  // Root side: picks the node for a request that has no session binding; ""
  // = no route (the client gets kUnavailable). Unset: DefaultRoute.
  using Router = std::function<std::string(SessionId, uint32_t command, std::string_view body)>;
  void SetRouter(Router router);
  // Routes this session's requests to `node` ("" removes the binding) until
  // the session closes. From any process: sent to the session's root, which
  // refuses (logged) a session that is not open or an unknown node.
  void Bind(SessionId session, const std::string& node);
  std::string BoundNode(SessionId session) const;

  // From any process to the net server that owns the session(s).
  void Push(SessionId session, uint32_t command, std::string_view body);
  void PushMany(const std::vector<SessionId>& sessions, uint32_t command, std::string_view body);
  void JoinGroup(const std::string& group, SessionId session);
  void LeaveGroup(const std::string& group, SessionId session);
  void Kick(SessionId session);
  // Groups live on the net servers: every one of them gets the broadcast.
  void Broadcast(const std::string& group, uint32_t command, std::string_view body);

  // Session open/close of every net server of the cluster (through the roots).
  using SessionEvent = std::function<void(SessionId, bool open, const std::string& info)>;
  void WatchSessions(SessionEvent cb);

  // How long a forwarded request may take end to end (default 10 s, or
  // LAMPYR_FORWARD_TIMEOUT_MS). The root gives its onward call a little less,
  // so a slow node yields kTimeout from the root, not silence.
  void SetForwardTimeout(double seconds) { forward_timeout_s_ = seconds; }
  double forward_timeout() const { return forward_timeout_s_; }

  // Server name of a node id ("" if none), and of a session's owner.
  std::string NodeName(uint16_t node_id) const;
  // Nodes the default router chooses among: servers linked to this root that
  // do not forward themselves (the game servers), by name.
  const std::vector<std::string>& route_candidates() const { return candidates_; }
  std::string DefaultRoute(SessionId session) const;
  size_t pending_requests() const;

 private:
  class ChannelResponder;

  void Forward(const RequestContext& ctx, std::string_view body);
  void OnForwarded(const std::string& from, std::string_view args, ChannelHub::Respond respond, bool at_root);
  void RunLocally(SessionId session, uint32_t command, std::string_view body, double timeout_s,
                  ChannelHub::Respond respond);
  void OnSessionEvent(const std::string& from, std::string_view args);
  // Root side: a net server's list of its open sessions (lampyr.live).
  void OnLiveList(const std::string& from, std::string_view args);
  // Net side: tells the forward root which sessions are open (link up).
  void SendLiveList();
  // The binding, checked: `from` is the asking node ("" = this process).
  Status BindHere(SessionId session, const std::string& node);
  uint16_t NodeId(const std::string& name) const;
  void SendGroupOp(uint8_t op, const std::string& group, SessionId session);

  EventLoop* loop_;
  const Config& config_;
  const ServerConfig& self_;
  ChannelHub* hub_;
  CommandTable* commands_;
  NetServer* net_;
  double forward_timeout_s_ = 10;
  Router router_;
  SessionBindings bindings_;
  std::vector<std::string> candidates_;
  std::map<uint16_t, std::string> node_names_;
  std::vector<std::string> net_nodes_;        // servers with a netport
  std::set<std::string> remote_watchers_;     // nodes that asked us for session events
  std::vector<SessionEvent> watchers_;
  std::unique_ptr<ChannelResponder> responder_;
  LogThrottle bind_lines_{10.0, 64};  // refused binds, by asking node
  std::shared_ptr<bool> alive_;
  Counter* m_forwarded_;
  Counter* m_routed_;
};

}  // namespace lampyr
