// The control methods every server registers on its channel hub, so the
// master drives the cluster over the links it already has (no admin port per
// server needed):
//   lampyr.status   ""                -> ServerStatusJson as JSON text
//   lampyr.reload   {"plugin"?: P}    -> ServerReload result as JSON text
//   lampyr.metrics  ""                -> this process's Prometheus text
//   lampyr.stop     ""                -> "stopping", then a graceful Server::Stop()
// Only calls that come from the node "master" are served: the links are
// authenticated by the cluster secret, and the master is the one node allowed
// to steer the others.
#pragma once

namespace lampyr {

class Server;

inline constexpr const char* kControlNode = "master";

// No-op for a server without a channel hub.
void InstallControl(Server* server);

}  // namespace lampyr
