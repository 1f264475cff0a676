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
//
// Probation (docs/plugins.md): a generation that served master.probation_s
// without the process dying has PASSED; its build is then kept in the
// server's state dir (passed/<plugin>.so + passed/<plugin>.json with its
// SHA-256). A server the master restarts with LAMPYR_ROLLBACK="room,echo"
// loads those builds instead of the configured paths — after checking the
// file again (link, owner, mode, SHA-256, the ELF gate).
#pragma once

#include <json/value.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/config.h"
#include "core/event_loop.h"
#include "core/private_dir.h"
#include "core/status.h"
#include "net/dispatch.h"
#include "plugin/generation.h"
#include "plugin/plugin_web.h"

namespace lampyr {
namespace data {
class DataEngine;
class SqlPool;
class KvStore;
}
class NetServer;
class ChannelHub;
class Forwarder;
}  // namespace lampyr

namespace lampyr::plugin {

class WorkPool;

class PluginHost : NonCopyable {
 public:
  // Any of net/hub/forwarder may be null (features then report unavailable).
  // All must outlive the PluginHost.
  // `state` is this server's own state directory (<state_dir>/<server>).
  PluginHost(EventLoop* loop, const Config& config, const ServerConfig& self, const PrivateDir* state,
             CommandTable* commands, NetServer* net, ChannelHub* hub, Forwarder* forwarder);
  ~PluginHost();  // Shutdown()

  // Loads every plugin of the server (generation 1). A plugin listed in
  // LAMPYR_ROLLBACK ("room,echo", set by the master after a crash in
  // probation) starts from its build that passed probation; when that one is
  // missing or refused, from the configured path (logged at ERROR).
  Status LoadAll();
  // Stops and unloads every generation; unanswered requests get an error reply.
  void Shutdown();

  // {"ok": bool, "plugins": [{"plugin","ok","old_version","new_version",
  //  "generation","error","rollback_build","reload_ms","loop_ms"}]}; plugin "" = all.
  void Reload(const std::string& plugin, std::function<void(Json::Value)> done);
  // [{"name","version","generation","loaded_at","path","source","sha256",
  //   "passed","commands","draining":[...],"pinned":[...],"reloads","last_error"}]
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
  // Plain SQL ("sql_*", sql_api.cpp) on servers with "db": true; shared
  // key/value ("kv_*", kv_api.cpp) on servers with "mem": true. Null: absent.
  void set_sql(data::SqlPool* sql) { sql_ = sql; }
  data::SqlPool* sql() const { return sql_; }
  void set_kv(data::KvStore* kv) { kv_ = kv; }
  data::KvStore* kv() const { return kv_; }
  // A table declared in the config's "tables" (null: not declared).
  const TableConfig* FindTable(const std::string& name) const {
    auto it = config_.tables.find(name);
    return it == config_.tables.end() ? nullptr : &it->second;
  }
  // Off-loop work ("work", work_api.cpp): servers.<name>.work_threads threads.
  WorkPool* work();
  // A job of a generation whose retirement waited for its work returned.
  void WorkEnded(Generation* g);
  uint64_t NextId() { return ++next_id_; }
  // Ends a lease; retires a drained generation from a posted task.
  void LeaseEnded(Generation* g);
  void WatchSessions();
  std::unordered_map<std::string, std::string>* SessionData(SessionId s, bool create);
  // Web routes, HTTP client, link events, peer addresses (plugin_web.h).
  PluginWeb* web() const { return web_.get(); }
  // The serving generation of `plugin`, or null.
  Generation* Current(const std::string& plugin) const;
  void ForEachServing(const std::function<void(Generation&)>& fn);

 private:
  struct Slot {
    std::string name;
    const PluginConfig* config = nullptr;
    std::shared_ptr<Generation> current;
    std::vector<std::shared_ptr<Generation>> draining;
    std::vector<Json::Value> pinned;
    uint64_t reloads = 0;
    std::string last_error;
    Json::Value passed;  // {"version","sha256","generation","at"} of its kept build, or null
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
  Status LoadImage(Generation& g, std::string_view image);
  Status LoadPassed(const Slot& slot, std::shared_ptr<Generation>* out);
  void StartProbation(Slot& slot);
  void KeepPassedBuild(Slot& slot, const Generation& g);
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
  void OnSessionEvent(SessionId s, bool open, const std::string& info);

  EventLoop* loop_;
  const Config& config_;
  const ServerConfig& self_;
  const PrivateDir* state_;
  CommandTable* commands_;
  NetServer* net_;
  ChannelHub* hub_;
  Forwarder* forwarder_;
  data::DataEngine* data_ = nullptr;
  data::SqlPool* sql_ = nullptr;
  data::KvStore* kv_ = nullptr;
  std::unique_ptr<PrivateDir> passed_dir_;  // <state_dir>/<server>/passed
  std::map<std::string, std::unique_ptr<Slot>> slots_;
  std::map<uint32_t, std::string> command_owner_;
  std::deque<ReloadJob> reloads_;
  bool reload_posted_ = false;
  std::unique_ptr<RunningReload> running_;
  std::thread loader_;
  bool watching_ = false;
  uint64_t next_id_ = 0;
  std::unordered_map<SessionId, std::unordered_map<std::string, std::string>> session_data_;
  std::unique_ptr<WorkPool> work_;
  std::unique_ptr<PluginWeb> web_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The host function table: name -> function pointer (plugin.h); NULL for
// unknown names.
void* LookupHostFunction(const char* name);
// The data layer's part of it ("data_*", data_api.cpp).
void* LookupDataFunction(const char* name);
// "work", "sql_*", "kv_*" (work_api.cpp, sql_api.cpp, kv_api.cpp).
void* LookupWorkFunction(const char* name);
void* LookupSqlFunction(const char* name);
void* LookupKvFunction(const char* name);
// Web routes, HTTP client, links, peer address (web_api.cpp).
void* LookupWebFunction(const char* name);

}  // namespace lampyr::plugin
