// gate_router: the gate's router hook for a cluster of game servers running
// `room`. A request that has no session binding goes to a node chosen by:
//   - join (command `join_command`, default 100): a hash of the room name in
//     the body, so every member of a room lands on the same game server; the
//     session is then bound to that node, so its later say/who/leave follow;
//   - anything else: a hash of the session id (stable per session).
// Config: {"nodes": ["game1", "game2"], "join_command": 100}.
// The hash is FNV-1a, never std::hash: every gate (and every reload) must
// pick the same node for the same room.
#include <lampyr/plugin.hpp>

namespace {

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

class GateRouter : public lampyr::sdk::Plugin {
  void init() override {
    nodes_ = config_strings("nodes");
    if (nodes_.empty()) throw lampyr::sdk::Error("gate_router: config.nodes must list at least one server");
    join_command_ = uint32_t(config_int("join_command", 100));
    router([this](lampyr::sdk::Session s, uint32_t command, std::string_view body) {
      if (command == join_command_) {
        const std::string& node = nodes_[Fnv1a(body) % nodes_.size()];
        bind(s, node);
        counter_add("gate_router_joins_total", "join requests routed by room");
        return node;
      }
      return nodes_[Fnv1a(std::string_view(reinterpret_cast<const char*>(&s), sizeof s)) % nodes_.size()];
    });
  }

  std::vector<std::string> nodes_;
  uint32_t join_command_ = 100;
};

}  // namespace

LAMPYR_PLUGIN(GateRouter, "gate_router", "1.0", 1)
