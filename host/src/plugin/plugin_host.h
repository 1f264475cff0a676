// PluginHost: the plugins of one server — loading, dispatch, hot reload and
// retirement of generations (DESIGN §5, §6; docs/plugins.md).
//
// Dispatch goes through a Slot per plugin: command handlers, remote methods
// and the router capture the Slot, never a Generation, so a reload swaps
// every entry point by changing one pointer in one loop turn.
//
// Reloads are queued and run from a posted task — between loop turns, never
// from inside a plugin callback. A refused reload leaves the serving
// generation untouched.
#pragma once

#include <json/value.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/config.h"
#include "core/event_loop.h"
#include "core/status.h"
#include "net/dispatch.h"
#include "plugin/generation.h"

namespace lampyr {
namespace data {
class DataEngine;
}
class NetServer;
class ChannelHub;
class Forwarder;
}  // namespace lampyr

namespace lampyr::plugin {

class PluginHost : NonCopyable {
 public:
  // Any of net/hub/forwarder may be null (features then report unavailable).
  // All must outlive the PluginHost.
  PluginHost(EventLoop* loop, const Config& config, const ServerConfig& self, CommandTable* commands, NetServer* net,
             ChannelHub* hub, Forwarder* forwarder);
  ~PluginHost();  // Shutdown()

  // Loads every plugin of the server (generation 1). LAMPYR_PLUGIN_PATHS
  // ("name=/path;name2=/path2") overrides configured paths: the master uses
  // it to restart a server with the previous build after a failed reload.
  Status LoadAll();
  // Stops and unloads every generation; unanswered requests get an error reply.
  void Shutdown();

  // {"ok": bool, "plugins": [{"plugin","ok","old_version","new_version",
  //  "generation","error","previous_build","reload_ms","loop_ms"}]}; plugin "" = all.
  void Reload(const std::string& plugin, std::function<void(Json::Value)> done);
  // [{"name","version","generation","loaded_at","path","commands",
  //   "draining":[...],"pinned":[...],"reloads","last_error"}]
  Json::Value StatusJson() const;

  // --- for the host functions (host_api.cpp) ---
  EventLoop* loop() const { return loop_; }
  NetServer* net() const { return net_; }
  ChannelHub* hub() const { return hub_; }
  Forwarder* forwarder() const { return forwarder_; }
  const std::string& server_name() const { return self_.name; }
  // The data layer for the "data_*" host functions (null: not configured).
  void set_data(data::DataEngine* data) { data_ = data; }
  data::DataEngine* data() const { return data_; }
  uint64_t NextId() { return ++next_id_; }
  // Ends a lease; retires a drained generation from a posted task.
  void LeaseEnded(Generation* g);
  void WatchSessions();
  std::unordered_map<std::string, std::string>* SessionData(SessionId s, bool create);

 private:
  struct Slot {
    std::string name;
    const PluginConfig* config = nullptr;
    std::shared_ptr<Generation> current;
    std::vector<std::shared_ptr<Generation>> draining;
    std::vector<Json::Value> pinned;
    uint64_t reloads = 0;
    std::string last_error;
  };
  struct ReloadJob {
    std::string plugin;
    std::function<void(Json::Value)> done;
  };

  struct RunningReload {
    ReloadJob job;
    std::vector<std::string> names;  // plugins to reload, in order
    size_t next = 0;
    int64_t started_us = 0;
    Json::Value answer;
  };

  std::shared_ptr<Generation> NewGeneration(const Slot& slot, const std::string& source);
  Status LoadFile(Generation& g);  // thread-safe: files and dlopen only
  Status Activate(Slot& slot, Generation& g, const std::string* state, uint32_t from_schema);
  Status Initialise(Generation& g, const std::string* state, uint32_t from_schema);
  Status CheckConflicts(const Slot& slot, const Generation& g) const;
  void Discard(Generation& g);  // a generation that never served
  void Unhook(const Generation& old, const Generation* next);
  void Swap(Slot& slot, std::shared_ptr<Generation> next);
  void StartDrain(Slot& slot, std::shared_ptr<Generation> old);
  void Retire(const std::shared_ptr<Generation>& g, const char* why);
  void CancelTimers(Generation& g, bool only_repeating);
  void Dispatch(Slot& slot, const RequestContext& ctx, std::string_view body);
  void PostNextReload();
  void StartNextReload();
  void ReloadNextPlugin();
  void FinishReload(std::shared_ptr<Generation> next, Status loaded);
  std::string KeepPreviousBuild(const Generation& old);
  void OnSessionEvent(SessionId s, bool open);
  std::string StagePath(const std::string& plugin, uint64_t number) const;

  EventLoop* loop_;
  const Config& config_;
  const ServerConfig& self_;
  CommandTable* commands_;
  NetServer* net_;
  ChannelHub* hub_;
  Forwarder* forwarder_;
  data::DataEngine* data_ = nullptr;
  std::string stage_dir_;     // this process's staged copies
  std::string previous_dir_;  // the build that served before the last reload
  std::map<std::string, std::unique_ptr<Slot>> slots_;
  std::map<uint32_t, std::string> command_owner_;
  std::deque<ReloadJob> reloads_;
  bool reload_posted_ = false;
  std::unique_ptr<RunningReload> running_;
  std::thread loader_;
  bool watching_ = false;
  uint64_t next_id_ = 0;
  std::unordered_map<SessionId, std::unordered_map<std::string, std::string>> session_data_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The host function table: name -> function pointer (plugin.h); NULL for
// unknown names.
void* LookupHostFunction(const char* name);
// The data layer's part of it ("data_*", data_api.cpp).
void* LookupDataFunction(const char* name);

}  // namespace lampyr::plugin
