#include "plugin/plugin_host.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <set>

#include "channel/channel_hub.h"
#include "channel/forwarder.h"
#include <json/writer.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/state_records.h"
#include "net/net_server.h"
#include "plugin/elf_gate.h"
#include "plugin/work_pool.h"

namespace lampyr::plugin {

namespace {

double Now() { return static_cast<double>(EventLoop::NowMicros()) / 1e6; }

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// LAMPYR_ROLLBACK="room,echo": the plugins the master wants started from
// the build that passed probation.
std::set<std::string> RollbackPlugins() {
  std::set<std::string> out;
  const char* env = std::getenv("LAMPYR_ROLLBACK");
  if (!env) return out;
  std::string s(env);
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    if (e > b) out.insert(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

Counter* ReloadCounter(const char* result) {
  return Metrics().GetCounter("lampyr_plugin_reloads_total", "Plugin reloads by result",
                              std::string("result=\"") + result + "\"");
}

}  // namespace

PluginHost::PluginHost(EventLoop* loop, const Config& config, const ServerConfig& self, const PrivateDir* state,
                       CommandTable* commands, NetServer* net, ChannelHub* hub, Forwarder* forwarder)
    : loop_(loop),
      config_(config),
      self_(self),
      state_(state),
      commands_(commands),
      net_(net),
      hub_(hub),
      forwarder_(forwarder),
      web_(std::make_unique<PluginWeb>(this, self.webport != 0)) {
  if (hub_) {
    std::shared_ptr<bool> alive = alive_;
    hub_->AddPeerCallback([this, alive](const std::string& node, bool up) {
      if (*alive) web_->OnLink(node, up);
    });
  }
}

PluginHost::~PluginHost() {
  *alive_ = false;
  Shutdown();
}

Status PluginHost::LoadAll() {
  if (const char* env = std::getenv("LAMPYR_STAGE_DIR"); env && *env)
    LOG_WARN("plugin", "LAMPYR_STAGE_DIR is ignored: builds are staged in memory, and what the server keeps "
                       "lives in master.state_dir (%s)", state_->path().c_str());
  Status st = state_->OpenChild("passed", &passed_dir_);
  if (!st.ok()) return st;
  const std::set<std::string> rollback = RollbackPlugins();
  // Client addresses come with session open events ("session_peer").
  if (net_ || forwarder_) WatchSessions();
  for (const auto& name : self_.plugins) {
    auto slot = std::make_unique<Slot>();
    slot->name = name;
    slot->config = config_.FindPlugin(name);
    if (!slot->config) return Status::Error("plugin " + name + ": not in the config's \"plugins\"");
    std::string record;
    if (passed_dir_->ReadFile(name + ".json", kMaxStateRecordBytes, &record).ok() &&
        !ParsePassedRecord(record, &slot->passed).ok())
      slot->passed = Json::Value();
    std::shared_ptr<Generation> g;
    Status s;
    if (rollback.count(name)) {
      s = LoadPassed(*slot, &g);
      if (s.ok()) {
        LOG_WARN("plugin", "%s: started from its last build that passed probation (%s, sha256 %s), not the "
                           "configured %s (the master rolled it back)",
                 name.c_str(), slot->passed["version"].asCString(), g->lib.sha256().c_str(),
                 slot->config->path.c_str());
      } else {
        LOG_ERROR("plugin", "rollback build of %s refused: %s; loading the configured build %s", name.c_str(),
                  s.message().c_str(), slot->config->path.c_str());
        g.reset();
      }
    }
    if (!g) {
      g = NewGeneration(*slot, slot->config->path);
      s = LoadFile(*g);
    }
    if (s.ok()) s = Activate(*slot, *g, nullptr, 0);
    else Discard(*g);
    if (!s.ok()) return Status::Error("plugin " + name + ": " + s.message());
    Swap(*slot, std::move(g));
    LOG_INFO("plugin", "%s %s loaded (generation 1)", name.c_str(), slot->current->desc()->version);
    Slot& placed = *(slots_[name] = std::move(slot));
    StartProbation(placed);
  }
  return Status::OK();
}

// The kept build is trusted only after the same checks as any file from
// disk, and only if it is byte for byte the build that passed.
Status PluginHost::LoadPassed(const Slot& slot, std::shared_ptr<Generation>* out) {
  if (slot.passed.isNull()) return Status::Error("no build of it has passed probation on this server yet");
  std::string image;
  Status s = passed_dir_->ReadFile(slot.name + ".so", kMaxPluginBytes, &image);
  if (!s.ok()) return s;
  const std::string path = passed_dir_->path() + "/" + slot.name + ".so";
  const std::string sha = Sha256Hex(image), want = slot.passed["sha256"].asString();
  if (sha != want)
    return Status::Error(path + ": does not match the build that passed probation (sha256 " + want + ", the file has " +
                         sha + ")");
  auto g = NewGeneration(slot, path);
  g->rollback = true;
  s = LoadImage(*g, image);
  if (!s.ok()) {
    Discard(*g);
    return s;
  }
  *out = std::move(g);
  return Status::OK();
}

// The generation serving now passes if it still serves probation_s later
// (the master restarts a server that dies sooner with the last one that did).
void PluginHost::StartProbation(Slot& slot) {
  const uint32_t probation_s = config_.master.probation_s;
  if (probation_s == 0) return;
  std::weak_ptr<Generation> w = slot.current;
  Slot* s = &slot;
  std::shared_ptr<bool> alive = alive_;
  loop_->RunAfter(probation_s, [this, s, w, alive] {
    if (!*alive) return;
    auto g = w.lock();
    if (g && s->current == g) KeepPassedBuild(*s, *g);
  });
}

void PluginHost::KeepPassedBuild(Slot& slot, const Generation& g) {
  const std::string& sha = g.lib.sha256();
  Json::Value record(Json::objectValue);
  record["version"] = g.desc()->version ? g.desc()->version : "";
  record["sha256"] = sha;
  record["generation"] = Json::UInt64(g.number);
  record["at"] = Json::Int64(UnixNow());
  Status s;
  if (slot.passed["sha256"].asString() != sha) {  // else that build is kept already
    std::string image;
    s = g.lib.ReadImage(&image);
    // The build first: a record naming a build that is not there yet would
    // only make the next rollback refuse (sha256 mismatch).
    if (s.ok()) s = passed_dir_->WriteFile(slot.name + ".so", image.data(), image.size());
  }
  if (s.ok()) {
    Json::StreamWriterBuilder w;
    w["indentation"] = "";
    const std::string text = Json::writeString(w, record) + "\n";
    s = passed_dir_->WriteFile(slot.name + ".json", text.data(), text.size());
  }
  if (!s.ok()) {
    LOG_ERROR("plugin", "%s generation %llu passed probation but its build could not be kept: %s", slot.name.c_str(),
              static_cast<unsigned long long>(g.number), s.message().c_str());
    return;
  }
  slot.passed = record;
  LOG_INFO("plugin", "%s %s (generation %llu) passed probation (%u s): it is the rollback build now", slot.name.c_str(),
           record["version"].asCString(), static_cast<unsigned long long>(g.number), config_.master.probation_s);
}

void PluginHost::Shutdown() {
  reloads_.clear();
  if (loader_.joinable()) loader_.join();  // its posted result is dropped (alive_ is false)
  // No plugin code may be on a worker's stack when the libraries go: jobs
  // not started are dropped, running ones are waited for.
  if (work_) work_->Stop();
  running_.reset();
  for (auto& [name, slot] : slots_) {
    for (auto& g : std::vector(slot->draining)) Retire(g, "server stopping");
    if (slot->current) {
      auto g = std::move(slot->current);
      Unhook(*g, nullptr);
      g->state = Generation::State::kDraining;
      if (g->desc()->on_stop) {
        Activity running = g->Running("on_stop");
        g->desc()->on_stop(g->ctx);
      }
      Retire(g, "server stopping");
    }
  }
  slots_.clear();
}

std::shared_ptr<Generation> PluginHost::NewGeneration(const Slot& slot, const std::string& source) {
  uint64_t number = slot.current ? slot.current->number + 1 : 1;
  auto g = std::make_shared<Generation>(this, slot.name, number);
  g->source = source;
  return g;
}

// Touches nothing but `g` and files: runs on the loader thread.
// The file is read once: the gate checks exactly the bytes that are loaded,
// whatever happens to it meanwhile.
Status PluginHost::LoadFile(Generation& g) {
  std::string image;
  Status s = ReadWholeFile(g.source, kMaxPluginBytes, &image);
  return s.ok() ? LoadImage(g, image) : s;
}

Status PluginHost::LoadImage(Generation& g, std::string_view image) {
  Status s = g.lib.Load(image, g.plugin, g.number);
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
  int rc;
  {
    Activity running = g.Running("init");
    rc = d->init(&args, &g.ctx, err, sizeof err);
  }
  if (rc != LAMPYR_OK)
    return Status::Error(std::string("init failed: ") + (err[0] ? err : "no reason given"));
  g.initialised = true;
  if (state) {
    if (!d->restore_state) {
      if (!state->empty())
        return Status::Error("the new build has no restore_state but the running one saved " +
                             std::to_string(state->size()) + " bytes of state (it would be lost)");
    } else if (Activity running = g.Running("restore_state");
               d->restore_state(g.ctx, state->data(), state->size(), from_schema, err, sizeof err) != LAMPYR_OK) {
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
  return web_->CheckConflicts(g);
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
  if (g.initialised && g.desc()->destroy) {
    Activity running = g.Running("destroy");
    g.desc()->destroy(g.ctx);
  }
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
  {
    Activity running = g.Running("command", ctx.command);
    d->on_request(g.ctx, &r);
  }
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
  if (!next) web_->Swap(&old, nullptr);
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
        Activity running = g.Running("remote", Activity::kNoNumber, m.c_str());
        g.desc()->on_remote(g.ctx, &call);
      });
    }
  }
  if (next->routes) {
    forwarder_->SetRouter([s](SessionId session, uint32_t command, std::string_view body) -> std::string {
      Generation& g = *s->current;
      if (!g.routes || !g.desc()->route) return "";
      char node[256] = {0};
      Activity running = g.Running("route", command);
      if (g.desc()->route(g.ctx, session, command, body.data(), body.size(), node, sizeof node) != LAMPYR_OK)
        return "";
      node[sizeof node - 1] = '\0';
      return node;
    });
  }
  next->state = Generation::State::kServing;
  web_->Swap(old.get(), next);
  slot.current = std::move(next);
  if (old) StartDrain(slot, std::move(old));
}

void PluginHost::StartDrain(Slot& slot, std::shared_ptr<Generation> old) {
  old->state = Generation::State::kDraining;
  old->drain_started = Now();
  // Repeating timers would never let it drain; one-shot timers are work it
  // already promised (a delayed reply) and still fire.
  CancelTimers(*old, true);
  if (old->desc()->on_stop) {
    Activity running = old->Running("on_stop");
    old->desc()->on_stop(old->ctx);
  }
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

WorkPool* PluginHost::work() {
  // Made on first use: servers whose plugins never call "work" run no threads for it.
  if (!work_) work_ = std::make_unique<WorkPool>(loop_, self_.work_threads, self_.work_queue);
  return work_.get();
}

void PluginHost::WorkEnded(Generation* g) {
  if (!g->retire_after_work || g->state == Generation::State::kRetired || (work_ && work_->Running(g) > 0)) return;
  Retire(g->shared_from_this(), g->retire_after_work);
}

void PluginHost::Retire(const std::shared_ptr<Generation>& g, const char* why) {
  if (g->state == Generation::State::kRetired) return;
  // Its code is still executing on a worker (a job that outlived the drain
  // timeout): unloading now would pull the code from under it. Jobs not yet
  // started are dropped; the retirement completes when the last running one
  // returns (WorkEnded).
  if (work_) {
    if (size_t running = work_->Cancel(g.get()); running > 0) {
      if (!g->retire_after_work)
        LOG_ERROR("plugin", "%s generation %llu: %zu work job(s) still running at %s; it is unloaded when they return",
                  g->plugin.c_str(), static_cast<unsigned long long>(g->number), running, why);
      g->retire_after_work = why;
      return;
    }
    work_->Forget(g.get());
  }
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
  web_->Retire(*g);
  g->pending_calls = 0;  // their completions find the generation gone
  std::string version = g->desc() && g->desc()->version ? g->desc()->version : "";
  const std::string sha = g->lib.sha256();
  CancelTimers(*g, false);
  if (g->initialised) {
    Activity running = g->Running("destroy");
    g->desc()->destroy(g->ctx);
  }
  g->initialised = false;
  g->ctx = nullptr;
  g->state = Generation::State::kRetired;
  bool gone = g->lib.Unload();
  if (!gone) {
    LOG_ERROR("plugin", "%s generation %llu is still mapped after unload (pinned): build sha256 %s", g->plugin.c_str(),
              static_cast<unsigned long long>(g->number), sha.c_str());
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
    int rc;
    {
      Activity running = old->Running("save_state");
      rc = od->save_state(old->ctx, &out, &len, err, sizeof err);
    }
    if (rc != LAMPYR_OK)
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
    Swap(slot, next);
    StartProbation(slot);
    ++slot.reloads;
    slot.last_error.clear();
    ReloadCounter("ok")->Inc();
    r["ok"] = true;
    r["new_version"] = next->desc()->version ? next->desc()->version : "";
    r["generation"] = Json::UInt64(next->number);
    r["rollback_build"] = slot.passed;
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
    p["source"] = g.rollback ? "rollback" : "config";
    p["sha256"] = g.lib.sha256();
    p["passed"] = slot->passed;
    p["state_schema"] = g.desc()->state_schema;
    p["commands"] = Json::Value(Json::arrayValue);
    for (uint32_t c : g.commands) p["commands"].append(c);
    p["pending"] = Json::UInt64(g.requests.size() + g.remote_calls.size() + g.web.requests.size());
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
    forwarder_->WatchSessions([this, alive](SessionId s, bool open, const std::string& info) {
      if (*alive) OnSessionEvent(s, open, info);
    });
  } else if (net_) {
    net_->AddOpenCallback([this, alive](SessionId s, const std::string& peer) {
      if (*alive) OnSessionEvent(s, true, peer);
    });
    net_->AddCloseCallback([this, alive](SessionId s, const std::string& reason) {
      if (*alive) OnSessionEvent(s, false, reason);
    });
  }
}

Generation* PluginHost::Current(const std::string& plugin) const {
  auto it = slots_.find(plugin);
  return it == slots_.end() || !it->second->current ? nullptr : it->second->current.get();
}

void PluginHost::ForEachServing(const std::function<void(Generation&)>& fn) {
  // A copy: a callback may not change the slots, but nothing here relies on it.
  std::vector<std::shared_ptr<Generation>> serving;
  for (auto& [name, slot] : slots_)
    if (slot->current) serving.push_back(slot->current);
  for (auto& g : serving)
    if (g->state == Generation::State::kServing) fn(*g);
}

void PluginHost::OnSessionEvent(SessionId s, bool open, const std::string& info) {
  web_->OnSession(s, open, info);
  if (!open) session_data_.erase(s);
  for (auto& [name, slot] : slots_) {
    Generation& g = *slot->current;
    if (g.watches_sessions && g.desc()->on_session) {
      Activity running = g.Running("session event");
      g.desc()->on_session(g.ctx, s, open ? 1 : 0);
    }
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
