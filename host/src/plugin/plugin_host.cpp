#include "plugin/plugin_host.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "channel/channel_hub.h"
#include "channel/forwarder.h"
#include <json/writer.h>

#include "core/log.h"
#include "core/metrics.h"
#include "net/net_server.h"

namespace lampyr::plugin {

namespace fs = std::filesystem;

namespace {

double Now() { return static_cast<double>(EventLoop::NowMicros()) / 1e6; }

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// LAMPYR_PLUGIN_PATHS="room=/a/libroom.so;echo=/b/libecho.so"
std::map<std::string, std::string> PathOverrides() {
  std::map<std::string, std::string> out;
  const char* env = std::getenv("LAMPYR_PLUGIN_PATHS");
  if (!env) return out;
  std::string s(env);
  size_t b = 0;
  while (b < s.size()) {
    size_t e = s.find(';', b);
    if (e == std::string::npos) e = s.size();
    std::string item = s.substr(b, e - b);
    size_t eq = item.find('=');
    if (eq != std::string::npos && eq > 0) out[item.substr(0, eq)] = item.substr(eq + 1);
    b = e + 1;
  }
  return out;
}

// Removes staging folders of processes that no longer exist (a crashed
// server leaves its copies behind).
void RemoveStaleStages(const fs::path& root, const std::string& server) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    std::string n = e.path().filename().string();
    std::string prefix = server + "-";
    if (n.rfind(prefix, 0) != 0) continue;
    char* end = nullptr;
    long pid = std::strtol(n.c_str() + prefix.size(), &end, 10);
    if (!end || *end != '\0' || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
  }
}

Counter* ReloadCounter(const char* result) {
  return Metrics().GetCounter("lampyr_plugin_reloads_total", "Plugin reloads by result",
                              std::string("result=\"") + result + "\"");
}

}  // namespace

PluginHost::PluginHost(EventLoop* loop, const Config& config, const ServerConfig& self, CommandTable* commands,
                       NetServer* net, ChannelHub* hub, Forwarder* forwarder)
    : loop_(loop), config_(config), self_(self), commands_(commands), net_(net), hub_(hub), forwarder_(forwarder) {
  const char* env = std::getenv("LAMPYR_STAGE_DIR");
  fs::path root = env && *env ? fs::path(env) : fs::temp_directory_path() / ("lampyr-stage-" + std::to_string(::getuid()));
  RemoveStaleStages(root, self_.name);
  stage_dir_ = (root / (self_.name + "-" + std::to_string(::getpid()))).string();
  previous_dir_ = (root / (self_.name + "-previous")).string();
}

PluginHost::~PluginHost() {
  *alive_ = false;
  Shutdown();
}

std::string PluginHost::StagePath(const std::string& plugin, uint64_t number) const {
  return stage_dir_ + "/" + plugin + ".gen" + std::to_string(number) + "." + std::to_string(next_id_) + ".so";
}

Status PluginHost::LoadAll() {
  std::error_code ec;
  fs::create_directories(stage_dir_, ec);
  if (ec) return Status::Error("cannot create plugin staging folder " + stage_dir_ + ": " + ec.message());
  auto overrides = PathOverrides();
  for (const auto& name : self_.plugins) {
    auto slot = std::make_unique<Slot>();
    slot->name = name;
    slot->config = config_.FindPlugin(name);
    if (!slot->config) return Status::Error("plugin " + name + ": not in the config's \"plugins\"");
    std::string source = slot->config->path;
    if (auto it = overrides.find(name); it != overrides.end()) {
      source = it->second;
      LOG_WARN("plugin", "%s: loading %s (LAMPYR_PLUGIN_PATHS) instead of the configured build", name.c_str(),
               source.c_str());
    }
    std::shared_ptr<Generation> g = NewGeneration(*slot, source);
    Status s = LoadFile(*g);
    if (s.ok()) s = Activate(*slot, *g, nullptr, 0);
    else Discard(*g);
    if (!s.ok()) return Status::Error("plugin " + name + ": " + s.message());
    Swap(*slot, std::move(g));
    LOG_INFO("plugin", "%s %s loaded (generation 1)", name.c_str(), slot->current->desc()->version);
    slots_[name] = std::move(slot);
  }
  return Status::OK();
}

void PluginHost::Shutdown() {
  reloads_.clear();
  if (loader_.joinable()) loader_.join();  // its posted result is dropped (alive_ is false)
  running_.reset();
  for (auto& [name, slot] : slots_) {
    for (auto& g : std::vector(slot->draining)) Retire(g, "server stopping");
    if (slot->current) {
      auto g = std::move(slot->current);
      Unhook(*g, nullptr);
      g->state = Generation::State::kDraining;
      if (g->desc()->on_stop) g->desc()->on_stop(g->ctx);
      Retire(g, "server stopping");
    }
  }
  slots_.clear();
  std::error_code ec;
  if (!stage_dir_.empty()) fs::remove_all(stage_dir_, ec);
}

std::shared_ptr<Generation> PluginHost::NewGeneration(const Slot& slot, const std::string& source) {
  uint64_t number = slot.current ? slot.current->number + 1 : 1;
  auto g = std::make_shared<Generation>(this, slot.name, number);
  g->source = source;
  g->stage_path = StagePath(slot.name, number);
  return g;
}

// Touches nothing but `g` and files: runs on the loader thread.
Status PluginHost::LoadFile(Generation& g) {
  Status s = g.lib.Load(g.source, g.stage_path);
  if (s.ok()) s = CheckDescriptor(g.lib.desc(), g.plugin);
  return s;
}

Status PluginHost::Activate(Slot& slot, Generation& g, const std::string* state, uint32_t from_schema) {
  Status s = Initialise(g, state, from_schema);
  if (s.ok()) s = CheckConflicts(slot, g);
  if (!s.ok()) {
    Discard(g);
    return s;
  }
  g.loaded_at_unix = UnixNow();
  return Status::OK();
}

Status PluginHost::Initialise(Generation& g, const std::string* state, uint32_t from_schema) {
  const lampyr_plugin_desc* d = g.desc();
  const PluginConfig* pc = config_.FindPlugin(g.plugin);
  Json::StreamWriterBuilder w;
  w["indentation"] = "";
  g.config_json = Json::writeString(w, pc ? pc->config : Json::Value(Json::objectValue));
  lampyr_init_args args{};
  args.size = sizeof(args);
  args.host = &g;
  args.get_api = &LookupHostFunction;
  args.server_name = self_.name.c_str();
  args.config_json = g.config_json.c_str();
  args.config_len = g.config_json.size();
  args.generation = g.number;
  char err[512] = {0};
  g.state = Generation::State::kLoading;
  if (d->init(&args, &g.ctx, err, sizeof err) != LAMPYR_OK)
    return Status::Error(std::string("init failed: ") + (err[0] ? err : "no reason given"));
  g.initialised = true;
  if (state) {
    if (!d->restore_state) {
      if (!state->empty())
        return Status::Error("the new build has no restore_state but the running one saved " +
                             std::to_string(state->size()) + " bytes of state (it would be lost)");
    } else if (d->restore_state(g.ctx, state->data(), state->size(), from_schema, err, sizeof err) != LAMPYR_OK) {
      return Status::Error(std::string("restore_state failed (from schema ") + std::to_string(from_schema) +
                           " to " + std::to_string(d->state_schema) + "): " + (err[0] ? err : "no reason given"));
    }
  }
  return Status::OK();
}

Status PluginHost::CheckConflicts(const Slot& slot, const Generation& g) const {
  for (uint32_t c : g.commands) {
    auto it = command_owner_.find(c);
    if (it != command_owner_.end() && it->second != slot.name)
      return Status::Error("command " + std::to_string(c) + " is already handled by plugin " + it->second);
    if (it == command_owner_.end() && commands_->Find(c))
      return Status::Error("command " + std::to_string(c) + " is already handled by a built-in handler");
  }
  if (g.routes && !forwarder_) return Status::Error("set_router needs a server with channel links");
  return Status::OK();
}

void PluginHost::CancelTimers(Generation& g, bool only_repeating) {
  for (auto it = g.timers.begin(); it != g.timers.end();) {
    if (only_repeating && !it->second.repeating) {
      ++it;
      continue;
    }
    loop_->Cancel(it->second.loop_id);
    if (!it->second.repeating) --g.one_shot_timers;
    it = g.timers.erase(it);
  }
}

void PluginHost::Discard(Generation& g) {
  CancelTimers(g, false);
  if (g.initialised && g.desc()->destroy) g.desc()->destroy(g.ctx);
  g.initialised = false;
  g.ctx = nullptr;
  g.state = Generation::State::kRetired;
  g.lib.Unload();
}

void PluginHost::Dispatch(Slot& slot, const RequestContext& ctx, std::string_view body) {
  Generation& g = *slot.current;
  const lampyr_plugin_desc* d = g.desc();
  if (!d->on_request) {
    ctx.responder->Fail(ctx, ErrorCode::kUnknownCommand, "plugin " + slot.name + " has no request handler");
    return;
  }
  lampyr_request r;
  r.size = sizeof r;
  r.token = ++next_id_;
  r.session = ctx.session;
  r.command = ctx.command;
  r.body = body.data();
  r.body_len = body.size();
  g.inline_token = r.token;
  g.inline_ctx = &ctx;
  g.inline_answered = false;
  d->on_request(g.ctx, &r);
  bool answered = g.inline_answered;
  g.inline_token = 0;
  g.inline_ctx = nullptr;
  if (!answered) g.requests.emplace(r.token, ctx);
}

// Removes the entry points of `old` that `next` (null: none) does not take over.
void PluginHost::Unhook(const Generation& old, const Generation* next) {
  auto kept = [](const auto& list, const auto& item) {
    return std::find(list.begin(), list.end(), item) != list.end();
  };
  for (uint32_t c : old.commands)
    if (!next || !kept(next->commands, c)) {
      commands_->Remove(c);
      command_owner_.erase(c);
    }
  if (hub_)
    for (const auto& m : old.remotes)
      if (!next || !kept(next->remotes, m)) hub_->UnregisterMethod(m);
  if (old.routes && (!next || !next->routes) && forwarder_) forwarder_->SetRouter(nullptr);
}

void PluginHost::Swap(Slot& slot, std::shared_ptr<Generation> next) {
  std::shared_ptr<Generation> old = slot.current;
  Slot* s = &slot;
  if (old) Unhook(*old, next.get());
  for (uint32_t c : next->commands) {
    commands_->Set(c, [this, s](const RequestContext& ctx, std::string_view body) { Dispatch(*s, ctx, body); });
    command_owner_[c] = slot.name;
  }
  if (hub_) {
    for (const auto& m : next->remotes) {
      hub_->RegisterMethod(m, [this, s, m](const std::string& from, std::string_view args, ChannelHub::Respond respond) {
        Generation& g = *s->current;
        if (!g.desc()->on_remote) {
          respond(Status::Error("plugin " + s->name + " has no remote handler"), "");
          return;
        }
        lampyr_remote_call call;
        call.size = sizeof call;
        call.token = ++next_id_;
        call.from_node = from.c_str();
        call.method = m.c_str();
        call.args = args.data();
        call.args_len = args.size();
        g.remote_calls.emplace(call.token, std::move(respond));
        g.desc()->on_remote(g.ctx, &call);
      });
    }
  }
  if (next->routes) {
    forwarder_->SetRouter([s](SessionId session, uint32_t command, std::string_view body) -> std::string {
      Generation& g = *s->current;
      if (!g.routes || !g.desc()->route) return "";
      char node[256] = {0};
      if (g.desc()->route(g.ctx, session, command, body.data(), body.size(), node, sizeof node) != LAMPYR_OK)
        return "";
      node[sizeof node - 1] = '\0';
      return node;
    });
  }
  next->state = Generation::State::kServing;
  slot.current = std::move(next);
  if (old) StartDrain(slot, std::move(old));
}

void PluginHost::StartDrain(Slot& slot, std::shared_ptr<Generation> old) {
  old->state = Generation::State::kDraining;
  old->drain_started = Now();
  // Repeating timers would never let it drain; one-shot timers are work it
  // already promised (a delayed reply) and still fire.
  CancelTimers(*old, true);
  if (old->desc()->on_stop) old->desc()->on_stop(old->ctx);
  slot.draining.push_back(old);
  std::weak_ptr<Generation> w = old;
  const PluginConfig* pc = slot.config;
  double timeout = pc ? pc->drain_timeout_s : 30;
  std::shared_ptr<bool> alive = alive_;
  loop_->RunAfter(timeout, [this, w, alive] {
    if (!*alive) return;
    if (auto g = w.lock()) Retire(g, "drain timeout");
  });
  LeaseEnded(old.get());
}

void PluginHost::LeaseEnded(Generation* g) {
  if (g->state != Generation::State::kDraining || g->leases() != 0) return;
  std::weak_ptr<Generation> w = g->weak_from_this();
  std::shared_ptr<bool> alive = alive_;
  // Not from inside the plugin's own callback: the library must not be
  // unloaded while its code is on the stack.
  loop_->Post([this, w, alive] {
    if (!*alive) return;
    if (auto g = w.lock(); g && g->state == Generation::State::kDraining && g->leases() == 0) Retire(g, "drained");
  });
}

void PluginHost::Retire(const std::shared_ptr<Generation>& g, const char* why) {
  if (g->state == Generation::State::kRetired) return;
  Slot* slot = slots_.count(g->plugin) ? slots_[g->plugin].get() : nullptr;
  size_t dropped = g->requests.size() + g->remote_calls.size() + g->one_shot_timers + g->pending_calls;
  if (dropped && std::string(why) != "drained")
    LOG_ERROR("plugin", "%s generation %llu retired (%s) with %zu unfinished item(s): requests get an error reply",
              g->plugin.c_str(), static_cast<unsigned long long>(g->number), why, dropped);
  auto requests = std::move(g->requests);
  auto remotes = std::move(g->remote_calls);
  g->requests.clear();
  g->remote_calls.clear();
  for (auto& [token, ctx] : requests)
    ctx.responder->Fail(ctx, ErrorCode::kUnavailable, "the plugin was reloaded before it answered");
  for (auto& [token, respond] : remotes) respond(Status::Error("the plugin was reloaded before it answered"), "");
  g->pending_calls = 0;  // their completions find the generation gone
  std::string version = g->desc() && g->desc()->version ? g->desc()->version : "";
  std::string staged = g->lib.staged_path();
  CancelTimers(*g, false);
  if (g->initialised) g->desc()->destroy(g->ctx);
  g->initialised = false;
  g->ctx = nullptr;
  g->state = Generation::State::kRetired;
  bool gone = g->lib.Unload();
  if (!gone) {
    LOG_ERROR("plugin", "%s generation %llu is still mapped after unload (pinned): %s", g->plugin.c_str(),
              static_cast<unsigned long long>(g->number), staged.c_str());
    Metrics().GetCounter("lampyr_plugin_pinned_total", "Plugin generations still mapped after unload", "")->Inc();
    if (slot) {
      Json::Value p;
      p["generation"] = Json::UInt64(g->number);
      p["version"] = version;
      slot->pinned.push_back(p);
    }
  } else {
    LOG_INFO("plugin", "%s generation %llu unloaded (%s)", g->plugin.c_str(),
             static_cast<unsigned long long>(g->number), why);
  }
  if (slot) std::erase(slot->draining, g);
}

// The build that served before a reload stays available for the master's
// probation rollback. A hard link: the staged copy is never written again.
std::string PluginHost::KeepPreviousBuild(const Generation& old) {
  std::error_code ec;
  fs::create_directories(previous_dir_, ec);
  std::string to = previous_dir_ + "/" + old.plugin + ".so";
  std::string tmp = to + ".tmp" + std::to_string(::getpid());
  fs::remove(tmp, ec);
  fs::create_hard_link(old.lib.staged_path(), tmp, ec);
  if (ec) return CopyFileAtomically(old.lib.staged_path(), to).ok() ? to : "";
  fs::rename(tmp, to, ec);
  return ec ? "" : to;
}

void PluginHost::Reload(const std::string& plugin, std::function<void(Json::Value)> done) {
  reloads_.push_back({plugin, std::move(done)});
  PostNextReload();
}

void PluginHost::PostNextReload() {
  if (reload_posted_ || running_) return;
  reload_posted_ = true;
  std::shared_ptr<bool> alive = alive_;
  loop_->Post([this, alive] {
    if (!*alive) return;
    reload_posted_ = false;
    StartNextReload();
  });
}

void PluginHost::StartNextReload() {
  if (running_ || reloads_.empty()) return;
  running_ = std::make_unique<RunningReload>();
  running_->job = std::move(reloads_.front());
  reloads_.pop_front();
  Json::Value& answer = running_->answer;
  answer["ok"] = true;
  answer["plugins"] = Json::Value(Json::arrayValue);
  const std::string& wanted = running_->job.plugin;
  if (!wanted.empty() && !slots_.count(wanted)) {
    Json::Value r;
    r["plugin"] = wanted;
    r["ok"] = false;
    r["error"] = "server " + self_.name + " does not run plugin '" + wanted + "'";
    answer["ok"] = false;
    answer["plugins"].append(r);
  }
  for (const auto& [name, slot] : slots_)
    if (wanted.empty() || name == wanted) running_->names.push_back(name);
  ReloadNextPlugin();
}

// Copying, gating and dlopen-ing the new build take milliseconds (more for a
// large .so): they run on a loader thread while the loop keeps serving. Only
// save/init/restore/swap run on the loop (FinishReload).
void PluginHost::ReloadNextPlugin() {
  RunningReload& run = *running_;
  if (run.next == run.names.size()) {
    auto job = std::move(running_);
    job->job.done(std::move(job->answer));
    PostNextReload();
    return;
  }
  Slot& slot = *slots_[run.names[run.next]];
  run.started_us = EventLoop::NowMicros();
  std::shared_ptr<Generation> g = NewGeneration(slot, slot.config->path);
  if (loader_.joinable()) loader_.join();
  std::shared_ptr<bool> alive = alive_;
  loader_ = std::thread([this, alive, g] {
    auto status = std::make_shared<Status>(LoadFile(*g));
    loop_->Post([this, alive, g, status] {
      if (*alive) FinishReload(g, *status);
    });
  });
}

void PluginHost::FinishReload(std::shared_ptr<Generation> next, Status loaded) {
  // The loader thread is joined lazily (next reload or shutdown): joining
  // here would wait for it to be scheduled again just to exit.
  int64_t on_loop_since = EventLoop::NowMicros();
  RunningReload& run = *running_;
  Slot& slot = *slots_[next->plugin];
  std::shared_ptr<Generation> old = slot.current;
  Json::Value r;
  r["plugin"] = slot.name;
  r["old_version"] = old->desc()->version ? old->desc()->version : "";
  r["generation"] = Json::UInt64(old->number);
  Status s = loaded;
  std::string state;
  const lampyr_plugin_desc* od = old->desc();
  if (s.ok() && od->save_state) {
    char* out = nullptr;
    size_t len = 0;
    char err[512] = {0};
    if (od->save_state(old->ctx, &out, &len, err, sizeof err) != LAMPYR_OK)
      s = Status::Error(std::string("save_state of the running generation failed: ") + (err[0] ? err : "no reason"));
    if (out) {
      if (s.ok()) state.assign(out, len);
      std::free(out);  // "alloc" is malloc
    }
  }
  if (s.ok()) s = Activate(slot, *next, od->save_state ? &state : nullptr, od->state_schema);
  else Discard(*next);
  double ms = static_cast<double>(EventLoop::NowMicros() - run.started_us) / 1000.0;
  if (!s.ok()) {
    r["ok"] = false;
    r["error"] = s.message();
    slot.last_error = s.message();
    ReloadCounter("refused")->Inc();
    LOG_WARN("plugin", "reload of %s refused, generation %llu keeps serving: %s", slot.name.c_str(),
             static_cast<unsigned long long>(old->number), s.message().c_str());
    run.answer["ok"] = false;
  } else {
    std::string previous = KeepPreviousBuild(*old);
    Swap(slot, next);
    ++slot.reloads;
    slot.last_error.clear();
    ReloadCounter("ok")->Inc();
    r["ok"] = true;
    r["new_version"] = next->desc()->version ? next->desc()->version : "";
    r["generation"] = Json::UInt64(next->number);
    r["previous_build"] = previous;
    r["reload_ms"] = ms;
    // What the loop spent (requests wait that long): save, init, restore, swap.
    double loop_ms = static_cast<double>(EventLoop::NowMicros() - on_loop_since) / 1000.0;
    r["loop_ms"] = loop_ms;
    LOG_INFO("plugin", "%s reloaded: %s -> %s (generation %llu, %.2f ms, %.3f ms of it on the loop)",
             slot.name.c_str(), r["old_version"].asCString(), r["new_version"].asCString(),
             static_cast<unsigned long long>(next->number), ms, loop_ms);
  }
  run.answer["plugins"].append(r);
  ++run.next;
  ReloadNextPlugin();
}

Json::Value PluginHost::StatusJson() const {
  Json::Value out(Json::arrayValue);
  double now = Now();
  for (const auto& [name, slot] : slots_) {
    const Generation& g = *slot->current;
    Json::Value p;
    p["name"] = name;
    p["version"] = g.desc()->version ? g.desc()->version : "";
    p["generation"] = Json::UInt64(g.number);
    p["loaded_at"] = Json::Int64(g.loaded_at_unix);
    p["path"] = g.source;
    p["state_schema"] = g.desc()->state_schema;
    p["commands"] = Json::Value(Json::arrayValue);
    for (uint32_t c : g.commands) p["commands"].append(c);
    p["pending"] = Json::UInt64(g.requests.size() + g.remote_calls.size());
    p["draining"] = Json::Value(Json::arrayValue);
    for (const auto& d : slot->draining) {
      Json::Value j;
      j["generation"] = Json::UInt64(d->number);
      j["version"] = d->desc()->version ? d->desc()->version : "";
      j["pending"] = Json::UInt64(d->leases());
      j["draining_s"] = now - d->drain_started;
      p["draining"].append(j);
    }
    p["pinned"] = Json::Value(Json::arrayValue);
    for (const auto& x : slot->pinned) p["pinned"].append(x);
    p["reloads"] = Json::UInt64(slot->reloads);
    p["last_error"] = slot->last_error;
    out.append(p);
  }
  return out;
}

void PluginHost::WatchSessions() {
  if (watching_) return;
  watching_ = true;
  std::shared_ptr<bool> alive = alive_;
  if (forwarder_) {
    forwarder_->WatchSessions([this, alive](SessionId s, bool open, const std::string&) {
      if (*alive) OnSessionEvent(s, open);
    });
  } else if (net_) {
    net_->AddOpenCallback([this, alive](SessionId s, const std::string&) {
      if (*alive) OnSessionEvent(s, true);
    });
    net_->AddCloseCallback([this, alive](SessionId s, const std::string&) {
      if (*alive) OnSessionEvent(s, false);
    });
  }
}

void PluginHost::OnSessionEvent(SessionId s, bool open) {
  if (!open) session_data_.erase(s);
  for (auto& [name, slot] : slots_) {
    Generation& g = *slot->current;
    if (g.watches_sessions && g.desc()->on_session) g.desc()->on_session(g.ctx, s, open ? 1 : 0);
  }
}

std::unordered_map<std::string, std::string>* PluginHost::SessionData(SessionId s, bool create) {
  auto it = session_data_.find(s);
  if (it != session_data_.end()) return &it->second;
  if (!create) return nullptr;
  WatchSessions();  // to forget the data when the session closes
  return &session_data_[s];
}

}  // namespace lampyr::plugin
