#include "server/server.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>

#include "admin/admin_http.h"
#include "admin/server_admin.h"
#include "channel/channel_hub.h"
#include "channel/forwarder.h"
#include "core/log.h"
#include "data/data_engine.h"
#include "net/net_server.h"
#include "plugin/plugin_host.h"
#include "server/control.h"

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
    // push_echo: pushes the body to the requesting session (from any node of
    // the cluster, through its net server), then replies with it.
    if (name == "push_echo") {
      commands_.Set(command, [this](const RequestContext& ctx, std::string_view body) {
        if (forwarder_) forwarder_->Push(ctx.session, ctx.command, body);
        else if (net_) net_->Push(ctx.session, ctx.command, body);
        ctx.responder->Reply(ctx, body);
      });
    }
    // sleep: replies with the body after the number of ms it starts with
    // (at most 60000): a slow handler for timeout tests and benchmarks.
    if (name == "sleep") {
      commands_.Set(command, [this](const RequestContext& ctx, std::string_view body) {
        std::string text(body);
        double ms = std::min(60000.0, std::max(0.0, std::strtod(text.c_str(), nullptr)));
        loop_.RunAfter(ms / 1000.0, [ctx, text] { ctx.responder->Reply(ctx, text); });
      });
    }
  }
}

Status Server::Start() {
  if (!self_) return Status::Error("no such server in config");
  InstallBuiltins();
  if (self_->db) {
    // The server name names this writer's dirty index, so a restarted server
    // flushes what a crashed one left behind.
    data_ = std::make_unique<data::DataEngine>(&loop_, config_, data::DataOptions{.writer_id = self_->name});
    Status s = data_->Start();
    if (!s.ok()) return s;
  }
  if (self_->netport != 0) {
    net_ = std::make_unique<NetServer>(&loop_, config_.protocol, &commands_, self_->node_id);
    Status s = net_->Listen(self_->host, self_->netport);
    if (!s.ok()) return s;
  }
  // Channels: a root listens, each remoteport entry is a persistent link, and
  // every server also links to the master when the cluster has one.
  if (self_->rootport != 0 || !self_->remoteport.empty() || config_.master.rootport != 0) {
    hub_ = std::make_unique<ChannelHub>(&loop_, self_->name, config_.master.cluster_secret);
    if (self_->rootport != 0) {
      Status s = hub_->Listen(self_->host, self_->rootport);
      if (!s.ok()) return s;
    }
    for (const auto& link : self_->remoteport) hub_->Connect(link.rootname, link.roothost, link.rootport);
    if (config_.master.rootport != 0) {
      const std::string& h = config_.master.roothost;
      hub_->Connect("master", h == "0.0.0.0" ? "127.0.0.1" : h, config_.master.rootport);
    }
    forwarder_ = std::make_unique<Forwarder>(&loop_, config_, *self_, hub_.get(), &commands_, net_.get());
    forwarder_->Install();
    InstallControl(this);  // lampyr.status/reload/metrics/stop for the master (server/control.h)
  }
  if (!self_->plugins.empty()) {
    plugins_ = std::make_unique<plugin::PluginHost>(&loop_, config_, *self_, &commands_, net_.get(), hub_.get(),
                                                    forwarder_.get());
    plugins_->set_data(data_.get());
    Status s = plugins_->LoadAll();
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
