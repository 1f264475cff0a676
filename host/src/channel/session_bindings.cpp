#include "channel/session_bindings.h"

namespace lampyr {

bool SessionBindings::Open(SessionId id) {
  if (open_.count(id)) return true;
  if (open_.size() >= max_) return false;
  open_.emplace(id, std::string());
  return true;
}

void SessionBindings::Close(SessionId id) {
  auto it = open_.find(id);
  if (it == open_.end()) return;
  if (!it->second.empty()) --bound_;
  open_.erase(it);
}

void SessionBindings::DropNode(uint16_t net_node) {
  for (auto it = open_.begin(); it != open_.end();) {
    if (SessionNode(it->first) != net_node) {
      ++it;
      continue;
    }
    if (!it->second.empty()) --bound_;
    it = open_.erase(it);
  }
}

void SessionBindings::Replace(uint16_t net_node, const std::vector<SessionId>& open) {
  std::unordered_map<SessionId, std::string> kept;
  for (SessionId id : open) {
    if (SessionNode(id) != net_node) continue;  // a net server speaks for its own sessions only
    auto it = open_.find(id);
    kept.emplace(id, it == open_.end() ? std::string() : it->second);
  }
  DropNode(net_node);
  for (auto& [id, node] : kept) {
    if (open_.size() >= max_) break;
    if (!node.empty()) ++bound_;
    open_.emplace(id, std::move(node));
  }
}

Status SessionBindings::Bind(SessionId id, const std::string& node) {
  auto it = open_.find(id);
  if (it == open_.end()) return Status::Error("session " + std::to_string(id) + " is not open");
  if (it->second.empty() && !node.empty()) ++bound_;
  if (!it->second.empty() && node.empty()) --bound_;
  it->second = node;
  return Status::OK();
}

std::string SessionBindings::BoundNode(SessionId id) const {
  auto it = open_.find(id);
  return it == open_.end() ? "" : it->second;
}

std::vector<SessionId> SessionBindings::OpenOf(uint16_t net_node) const {
  std::vector<SessionId> ids;
  for (const auto& [id, node] : open_)
    if (SessionNode(id) == net_node) ids.push_back(id);
  return ids;
}

}  // namespace lampyr
