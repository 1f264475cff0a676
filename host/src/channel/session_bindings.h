// SessionBindings: a root's view of the client sessions of the net servers
// that forward to it, and where each is bound (Forwarder::Bind). A binding
// is accepted only for a session that is open now, to a configured server,
// and it goes when the session closes or its net server's link drops. So
// nobody can bind ids that do not exist yet ("future" ids taken by the next
// players; issue 8) and the map never outgrows the sessions really open.
// Loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "net/dispatch.h"

namespace lampyr {

// Open sessions a root tracks (and so bindings it holds), all net servers
// together: 100 net servers at the default protocol.max_connections.
constexpr size_t kMaxTrackedSessions = 1u << 20;

class SessionBindings : NonCopyable {
 public:
  explicit SessionBindings(size_t max_sessions = kMaxTrackedSessions) : max_(max_sessions) {}

  // Session events of a net server (lampyr.session). False when over the cap.
  bool Open(SessionId id);
  void Close(SessionId id);
  // A net server's full list (lampyr.live, sent when its link comes up):
  // replaces what was known of that server; its other bindings go.
  void Replace(uint16_t net_node, const std::vector<SessionId>& open);
  // The net server's link is down: its sessions may be gone (ids restart
  // with a new process), so they and their bindings are forgotten.
  void DropNode(uint16_t net_node);

  bool IsOpen(SessionId id) const { return open_.count(id) != 0; }
  // `node` "" unbinds. Error when the session is not open now.
  Status Bind(SessionId id, const std::string& node);
  std::string BoundNode(SessionId id) const;
  std::vector<SessionId> OpenOf(uint16_t net_node) const;
  size_t open_count() const { return open_.size(); }
  size_t bound_count() const { return bound_; }

 private:
  size_t max_;
  size_t bound_ = 0;
  std::unordered_map<SessionId, std::string> open_;  // open session -> bound node ("" = none)
};

}  // namespace lampyr
