// Generation: one loaded copy of one plugin, and everything it holds in the
// host. It is the `lampyr_host` handle the plugin gets, so a host function
// always knows which generation called it — a draining generation can still
// answer what it owes but cannot start anything new.
//
// Leases (what keeps a draining generation alive): unanswered requests and
// remote calls, pending one-shot timers, outstanding remote calls it made.
#pragma once

#include <lampyr/plugin.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "channel/channel_hub.h"
#include "core/activity.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "net/dispatch.h"
#include "plugin/generation_web.h"
#include "plugin/plugin_library.h"

// The C handle is the base of Generation (plugin.h keeps it opaque).
struct lampyr_host {};

namespace lampyr::plugin {

class PluginHost;

class Generation : public lampyr_host, public std::enable_shared_from_this<Generation>, NonCopyable {
 public:
  enum class State { kLoading, kServing, kDraining, kRetired };

  Generation(PluginHost* host, std::string plugin, uint64_t number) : host(host), plugin(std::move(plugin)), number(number) {}

  static Generation* From(lampyr_host* h) { return static_cast<Generation*>(h); }
  const lampyr_plugin_desc* desc() const { return lib.desc(); }
  // May it start new work (timers, calls)?
  bool active() const { return state == State::kLoading || state == State::kServing; }
  size_t leases() const {
    return requests.size() + remote_calls.size() + one_shot_timers + pending_calls + web.leases();
  }
  // Marks a call into the plugin for the stall watchdog and crash reports:
  // "plugin room: command 1001".
  Activity Running(const char* what, uint64_t number = Activity::kNoNumber, const char* detail = nullptr) const {
    return Activity(what, plugin.c_str(), number, detail);
  }

  struct Timer {
    TimerId loop_id = 0;
    bool repeating = false;
  };

  PluginHost* const host;
  const std::string plugin;
  const uint64_t number;
  State state = State::kLoading;
  PluginLibrary lib;
  void* ctx = nullptr;
  bool initialised = false;
  std::string source;       // the file it was read from
  bool rollback = false;    // the build that passed probation (LAMPYR_ROLLBACK)
  std::string config_json;  // plugins.<name>.config; valid until destroy()
  int64_t loaded_at_unix = 0;
  double drain_started = 0;  // EventLoop::NowMicros()/1e6

  std::vector<uint32_t> commands;
  std::vector<std::string> remotes;
  bool watches_sessions = false;
  bool routes = false;

  // The request being dispatched right now: answering it inline needs no map.
  uint64_t inline_token = 0;
  const RequestContext* inline_ctx = nullptr;
  bool inline_answered = false;

  std::unordered_map<uint64_t, RequestContext> requests;
  std::unordered_map<uint64_t, ChannelHub::Respond> remote_calls;
  std::unordered_map<uint64_t, Timer> timers;
  // Metric handles by name (counter_add / gauge_set), from the registry.
  std::unordered_map<std::string, Counter*> counters;
  std::unordered_map<std::string, Gauge*> gauges;
  size_t one_shot_timers = 0;
  size_t pending_calls = 0;
  // Off-loop work (work_api.cpp): set when Retire found this generation's
  // code still running on a worker; the retirement (with this reason)
  // completes when the last such job returns.
  const char* retire_after_work = nullptr;
  // Web routes, HTTP fetches, link events (plugin_web.h).
  GenerationWeb web;
};

}  // namespace lampyr::plugin
