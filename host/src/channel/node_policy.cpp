#include "channel/node_policy.h"

namespace lampyr {

namespace {
// The master's node name on the channel (server/control.h has the same).
constexpr const char* kMasterNode = "master";
}  // namespace

NodePolicy::NodePolicy(const Config& config, std::string self) : self_(std::move(self)) {
  for (const auto& [name, s] : config.servers) {
    if (self_ == kMasterNode) {
      // Every server links to the master when the cluster has one.
      if (config.master.rootport != 0) children_.insert(name);
    } else {
      for (const auto& link : s.remoteport)
        if (link.rootname == self_) children_.insert(name);
    }
    if (s.netport != 0 && s.forward == self_) nets_.insert(name);
    if (name == self_) {
      for (const auto& link : s.remoteport) roots_.insert(link.rootname);
      if (config.master.rootport != 0) roots_.insert(kMasterNode);
    }
  }
}

std::string NodePolicy::Admit(const std::string& node) const {
  if (children_.count(node)) return "";
  return "unknown node " + node + ": no server of that name is configured to link to " + self_;
}

std::string NodePolicy::MayCall(const std::string& from, const std::string& method) const {
  if ((method == "lampyr.fwd" || method == "lampyr.live") && !nets_.count(from))
    return "only a net server that forwards to " + self_ + " may speak for players";
  if (method == "lampyr.req" && !roots_.count(from))
    return "only a root of " + self_ + " may hand it client requests";
  if (method == "lampyr.session" && !nets_.count(from) && !roots_.count(from))
    return "only a net server or a root of " + self_ + " may report sessions";
  return "";
}

}  // namespace lampyr
