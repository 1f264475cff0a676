#include "server/server.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>

#include "admin/admin_http.h"
#include "admin/server_admin.h"
#include "channel/channel_hub.h"
#include "channel/forwarder.h"
#include "channel/node_policy.h"
#include "core/activity.h"
#include "core/cpu_affinity.h"
#include "core/crash_handler.h"
#include "core/log.h"
#include "core/state_records.h"
#include "core/systemd.h"
#include "data/data_engine.h"
#include "data/kv_store.h"
#include "data/preload.h"
#include "data/sql_pool.h"
#include "net/net_server.h"
#include "plugin/plugin_host.h"
#include "server/control.h"

namespace lampyr {

Server::Server(const Config& config, const std::string& name) : config_(config), self_(config_.FindServer(name)) {}

Server::~Server() { crash::SetRecordDir(-1); }  // the descriptor goes with state_

// The state dir is refused (and the server does not start) unless it and
// its folder for this server are private to this user (core/private_dir.h).
// A crash record still there was not collected by a master: it is logged.
Status Server::OpenState() {
  std::unique_ptr<PrivateDir> root;
  Status s = PrivateDir::Open(config_.master.state_dir, &root);
  if (s.ok()) s = root->OpenChild(self_->name, &state_);
  if (!s.ok()) return Status::Error("master.state_dir: " + s.message());
  for (const auto& name : state_->List()) {
    if (name.rfind("crash-", 0) != 0 || name.size() < 11 || name.compare(name.size() - 5, 5, ".json") != 0) continue;
    std::string text;
    Json::Value record;
    if (state_->ReadFile(name, kMaxStateRecordBytes, &text).ok() && ParseCrashRecord(text, &record).ok())
      LOG_WARN("server", "an earlier run crashed (pid %llu): %s in %s%s; nobody collected the report",
               static_cast<unsigned long long>(record["pid"].asUInt64()), record["signal_name"].asCString(),
               record["plugin"].isString() ? "plugin " : "host code",
               record["plugin"].isString() ? record["plugin"].asCString() : "");
    state_->Remove(name);
  }
  crash::SetRecordDir(state_->fd());
  return Status::OK();
}

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
    // decline: answers nothing (Responder::Decline), as a handler may; the
    // replies to later requests are not held back (clients' decline tests).
    if (name == "decline") {
      commands_.Set(command, [](const RequestContext& ctx, std::string_view) { ctx.responder->Decline(ctx); });
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
  crash::Install(self_->name);
  // First, while this is the only thread: threads started later (data
  // workers, the plugin loader) inherit the pin.
  if (Status s = PinToCpu(self_->cpu); !s.ok()) return Status::Error("servers." + self_->name + ".cpu: " + s.message());
  if (self_->cpu >= 0) LOG_INFO("server", "pinned to CPU %d (servers.%s.cpu)", self_->cpu, self_->name.c_str());
  SetLoopStallThresholdMs(self_->loop_stall_ms);
  if (Status s = OpenState(); !s.ok()) return s;
  InstallBuiltins();
  // "db" alone is Firefly's dbpool: plain SQL for plugins. The record cache
  // (memcached + write-behind) is "mem"; a config that names no "mem" keeps
  // the earlier meaning of "db" (records too), "mem": false turns them off.
  if (self_->db && (self_->mem || !self_->mem_given)) {
    // The server name names this writer's dirty index, so a restarted server
    // flushes what a crashed one left behind.
    data_ = std::make_unique<data::DataEngine>(&loop_, config_, data::DataOptions{.writer_id = self_->name});
    Status s = data_->Start();
    if (!s.ok()) return s;
    for (const auto& [name, table] : config_.tables) {
      if (!table.preload) continue;
      // In the background: the server serves meanwhile (a record not loaded
      // yet is read through from MySQL as always).
      data::Preload(data_.get(), table, [name = name](Status st, size_t rows) {
        if (st.ok()) LOG_INFO("data", "table %s preloaded: %zu rows", name.c_str(), rows);
        else LOG_ERROR("data", "table %s: preload stopped after %zu rows: %s", name.c_str(), rows, st.message().c_str());
      });
    }
  }
  if (self_->mem) {
    kv_ = std::make_unique<data::KvStore>(&loop_, config_.memcached);
    Status s = kv_->Start();
    if (!s.ok()) return s;
  }
  if (self_->db) {
    sql_ = std::make_unique<data::SqlPool>(&loop_, config_.db);
    sql_->Start();  // connects lazily: a database down at start fails calls, not the server
  }
  if (self_->netport != 0 || self_->wsport != 0) {
    net_ = std::make_unique<NetServer>(&loop_, config_.protocol, &commands_, self_->node_id);
    if (self_->netport != 0) {
      Status s = net_->Listen(self_->host, self_->netport);
      if (!s.ok()) return s;
    }
    if (self_->wsport != 0) {
      Status s = net_->ListenWs(self_->host, self_->wsport);
      if (!s.ok()) return s;
    }
  }
  // Channels: a root listens, each remoteport entry is a persistent link, and
  // every server also links to the master when the cluster has one.
  if (self_->rootport != 0 || !self_->remoteport.empty() || config_.master.rootport != 0) {
    hub_ = std::make_unique<ChannelHub>(&loop_, self_->name, config_.master.cluster_secret);
    // Configured names only, each to its role (channel/node_policy.h).
    hub_->SetPolicy(std::make_unique<NodePolicy>(config_, self_->name));
    if (config_.master.channel_tls.enabled) {
      Status s = hub_->EnableTls(config_.master.channel_tls);
      if (!s.ok()) return s;
    }
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
    plugins_ = std::make_unique<plugin::PluginHost>(&loop_, config_, *self_, state_.get(), &commands_, net_.get(),
                                                    hub_.get(), forwarder_.get());
    plugins_->set_data(data_.get());
    plugins_->set_sql(sql_.get());
    plugins_->set_kv(kv_.get());
    Status s = plugins_->LoadAll();
    if (!s.ok()) return s;
  }
  if (self_->webport != 0) {
    admin_ = std::make_unique<AdminHttp>(&loop_, config_.master.admin_token, AdminLimitsOf(config_.master));
    InstallServerAdmin(admin_.get(), this);
    if (plugins_) {
      // Plugins' web routes answer the paths the admin API does not have.
      plugin::PluginWeb* web = plugins_->web();
      web->set_request_timeout_s(admin_->request_timeout_s());
      admin_->SetWebRoutes([web](const std::string& method, const std::string& path, WebTarget* out) {
        return web->Lookup(method, path, out);
      });
      AdminHttp* admin = admin_.get();
      web->SetBodyCapListener([admin](size_t bytes) { admin->SetWebBodyCap(bytes); });
    }
    Status s = admin_->Listen(self_->admin_host, self_->webport);
    if (!s.ok()) return s;
  }
  loop_.OnSignal(SIGTERM, [this] { Stop(); });
  loop_.OnSignal(SIGINT, [this] { Stop(); });
  loop_.OnSignal(SIGHUP, [this] { ReopenLogs("SIGHUP"); });
  LOG_INFO("server", "server %s started (node %u)", self_->name.c_str(), self_->node_id);
  // Only a server run by systemd itself (lampyr@.service) has NOTIFY_SOCKET:
  // the master keeps it from the servers it starts.
  systemd::Ready("server " + self_->name + " serving");
  systemd::StartWatchdog(&loop_);
  return Status::OK();
}

void Server::Run() { loop_.Run(); }

Status Server::ReopenLogs(const std::string& why) {
  std::string err;
  if (!log::Reopen(&err)) {
    LOG_ERROR("server", "%s (%s); still writing to the old file", err.c_str(), why.c_str());
    return Status::Error(err);
  }
  LOG_INFO("server", "log file reopened (%s)", why.c_str());
  return Status::OK();
}

void Server::Stop() {
  if (stopping_) return;
  stopping_ = true;
  LOG_INFO("server", "stopping");
  systemd::Stopping("server " + self_->name + " stopping");
  if (net_) net_->StopAccepting();
  loop_.Quit();
}

}  // namespace lampyr
