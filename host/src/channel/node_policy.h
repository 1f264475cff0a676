// Who may join a root, and what a node may ask of this one (docs/operations.md,
// "Security model"). The cluster secret proves that a peer belongs to the
// cluster; the config says which node it may be and what that node is for.
// Without this a process with the secret could join under any name, speak
// for players (lampyr.fwd) or answer their requests (issue 8).
#pragma once

#include <set>
#include <string>

#include "core/config.h"

namespace lampyr {

// The hub asks its policy; a hub without one (unit tests) admits every
// name and every call.
class ChannelPolicy {
 public:
  virtual ~ChannelPolicy() = default;
  // Root side, after the peer proved the secret: "" admits `node`,
  // anything else is the reason it is refused.
  virtual std::string Admit(const std::string& node) const = 0;
  // "" when the linked node `from` may invoke `method` on this node.
  virtual std::string MayCall(const std::string& from, const std::string& method) const = 0;
};

// The policy of one node of a cluster config.
//
// Admission: the master's channel root admits every configured server (each
// links to it); any other root admits the servers whose `remoteport` names it.
//
// Roles, for the host's reserved methods (plugins' own methods are open to
// every admitted node, as are push, broadcast, group/kick, bind and watch,
// which gameplay on any node uses):
//   lampyr.fwd,     only a net server (netport) whose `forward` is this node:
//   lampyr.live     a request "from a player", the list of open sessions are
//                   a net server's word (and only about its own sessions);
//   lampyr.req      only a root of this node (its `remoteport`): the node
//                   that routes requests here;
//   lampyr.session  a net server forwarding here, or a root of this node
//                   (which fans session events out).
// The control methods (lampyr.status/reload/metrics/stop) are the master's
// only (server/control.cpp).
class NodePolicy : public ChannelPolicy {
 public:
  NodePolicy(const Config& config, std::string self);
  std::string Admit(const std::string& node) const override;
  std::string MayCall(const std::string& from, const std::string& method) const override;

 private:
  std::string self_;
  std::set<std::string> children_;  // may link to us
  std::set<std::string> roots_;     // we link to them
  std::set<std::string> nets_;      // net servers that forward to us
};

}  // namespace lampyr
