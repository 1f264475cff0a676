#include "server/server.h"

#include <csignal>

#include "admin/admin_http.h"
#include "admin/server_admin.h"
#include "core/log.h"
#include "net/net_server.h"

namespace lampyr {

Server::Server(const Config& config, const std::string& name) : config_(config), self_(config_.FindServer(name)) {}

Server::~Server() = default;

void Server::InstallBuiltins() {
  for (const auto& [name, command] : self_->builtins) {
    if (name == "echo") {
      commands_.Set(command, [this](const RequestContext& ctx, std::string_view body) {
        ctx.responder->Reply(ctx, body);
      });
    }
  }
}

Status Server::Start() {
  if (!self_) return Status::Error("no such server in config");
  InstallBuiltins();
  if (self_->netport != 0) {
    net_ = std::make_unique<NetServer>(&loop_, config_.protocol, &commands_, self_->node_id);
    Status s = net_->Listen(self_->host, self_->netport);
    if (!s.ok()) return s;
  }
  if (self_->webport != 0) {
    admin_ = std::make_unique<AdminHttp>(&loop_, config_.master.admin_token);
    InstallServerAdmin(admin_.get(), this);
    Status s = admin_->Listen(self_->host, self_->webport);
    if (!s.ok()) return s;
  }
  loop_.OnSignal(SIGTERM, [this] { Stop(); });
  loop_.OnSignal(SIGINT, [this] { Stop(); });
  LOG_INFO("server", "server %s started (node %u)", self_->name.c_str(), self_->node_id);
  return Status::OK();
}

void Server::Run() { loop_.Run(); }

void Server::Stop() {
  if (stopping_) return;
  stopping_ = true;
  LOG_INFO("server", "stopping");
  if (net_) net_->StopAccepting();
  loop_.Quit();
}

}  // namespace lampyr
