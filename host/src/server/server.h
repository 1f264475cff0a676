// Server: one named server process of the cluster (`lampyr --server NAME`).
// Wires the parts its config asks for — client listener, built-in handlers,
// plugins, channels, admin API, data layer — onto one event loop, and owns
// their lifetimes and the order of a graceful stop.
#pragma once

#include <memory>
#include <string>

#include "core/config.h"
#include "core/event_loop.h"
#include "core/private_dir.h"
#include "core/status.h"
#include "net/dispatch.h"

namespace lampyr {

class NetServer;
class ChannelHub;
class Forwarder;
class AdminHttp;
namespace data {
class DataEngine;
class SqlPool;
class KvStore;
}
namespace plugin {
class PluginHost;
}

class Server : NonCopyable {
 public:
  Server(const Config& config, const std::string& name);
  ~Server();

  // Binds every listener and loads every plugin; fails without side effects
  // left running.
  Status Start();
  // Runs the loop until SIGTERM/SIGINT or Stop().
  void Run();
  void Stop();
  // SIGHUP, POST /reopen-logs: opens the log file again by its path.
  Status ReopenLogs(const std::string& why);

  EventLoop* loop() { return &loop_; }
  CommandTable* commands() { return &commands_; }
  NetServer* net() { return net_.get(); }
  // Null when the server has no channel links (no rootport, remoteport or master).
  ChannelHub* channels() { return hub_.get(); }
  Forwarder* forwarder() { return forwarder_.get(); }
  AdminHttp* admin() { return admin_.get(); }
  // Null when the server runs no plugins.
  plugin::PluginHost* plugins() { return plugins_.get(); }  // null without servers.<name>.webport
  // The data layer (docs/data.md); null unless servers.<name>.db is true.
  data::DataEngine* data() { return data_.get(); }
  // Plain SQL for plugins (docs/plugins.md "SQL"); null unless servers.<name>.db.
  data::SqlPool* sql() { return sql_.get(); }
  const ServerConfig& server_config() const { return *self_; }
  const Config& config() const { return config_; }

 private:
  void InstallBuiltins();
  Status OpenState();

  Config config_;
  const ServerConfig* self_;
  // <state_dir>/<name>: plugin builds that passed probation, crash records.
  std::unique_ptr<PrivateDir> state_;
  EventLoop loop_;
  CommandTable commands_;
  // Before everything that may use it: destroyed (flushing) after them.
  std::unique_ptr<data::DataEngine> data_;
  std::unique_ptr<data::SqlPool> sql_;  // plain SQL for plugins ("db": true)
  std::unique_ptr<data::KvStore> kv_;   // shared key/value for plugins ("mem": true)
  std::unique_ptr<NetServer> net_;
  std::unique_ptr<ChannelHub> hub_;
  std::unique_ptr<Forwarder> forwarder_;  // after hub_: destroyed before it
  // After what plugins use: destroyed (plugins stopped) before it.
  std::unique_ptr<plugin::PluginHost> plugins_;
  bool stopping_ = false;
  std::unique_ptr<AdminHttp> admin_;  // last: destroyed first, before what its routes use
};

}  // namespace lampyr
