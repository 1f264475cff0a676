// The host functions of plugin.h, looked up by name. Each one receives the
// calling generation as its handle; nothing here throws into the plugin
// (every entry catches), and every pointer from the plugin is copied.
#include <algorithm>
#include <functional>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "channel/channel_hub.h"
#include "channel/forwarder.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/net_server.h"
#include "plugin/host_api.h"
#include "plugin/plugin_host.h"

namespace lampyr::plugin {
namespace {

using State = Generation::State;

Generation* G(lampyr_host* h) { return Generation::From(h); }

void* Alloc(size_t n) { return std::malloc(n ? n : 1); }
void Free(void* p) { std::free(p); }

void Log(lampyr_host* h, int level, const char* message) {
  Guard([&] {
    log::Level l = level <= LAMPYR_LOG_DEBUG  ? log::Level::kDebug
                   : level == LAMPYR_LOG_INFO ? log::Level::kInfo
                   : level == LAMPYR_LOG_WARN ? log::Level::kWarn
                                              : log::Level::kError;
    std::string component = "plugin:" + G(h)->plugin;
    LAMPYR_LOG(l, component.c_str(), "%s", message ? message : "");
    return LAMPYR_OK;
  });
}

int RegisterCommand(lampyr_host* h, uint32_t command) {
  return Guard([&] {
    Generation* g = G(h);
    if (g->state != State::kLoading) return LAMPYR_ERR_STATE;  // only during init
    if (std::find(g->commands.begin(), g->commands.end(), command) == g->commands.end())
      g->commands.push_back(command);
    return LAMPYR_OK;
  });
}

int RegisterRemote(lampyr_host* h, const char* method) {
  return Guard([&] {
    Generation* g = G(h);
    if (g->state != State::kLoading) return LAMPYR_ERR_STATE;
    if (!method || !*method || std::strncmp(method, "lampyr.", 7) == 0) return LAMPYR_ERR_ARG;  // reserved
    g->remotes.emplace_back(method);
    return LAMPYR_OK;
  });
}

// Answers a request or remote call; kind 0 reply, 1 decline, 2 fail.
int Answer(lampyr_host* h, lampyr_token token, int kind, std::string_view data, int code) {
  return Guard([&] {
    Generation* g = G(h);
    auto send = [&](const RequestContext& ctx) {
      if (kind == 0) ctx.responder->Reply(ctx, data);
      else if (kind == 1) ctx.responder->Decline(ctx);
      else ctx.responder->Fail(ctx, static_cast<ErrorCode>(code), data);
    };
    if (token != 0 && token == g->inline_token && !g->inline_answered) {
      g->inline_answered = true;
      send(*g->inline_ctx);
      return LAMPYR_OK;
    }
    if (auto it = g->requests.find(token); it != g->requests.end()) {
      RequestContext ctx = it->second;
      g->requests.erase(it);
      send(ctx);
      g->host->LeaseEnded(g);
      return LAMPYR_OK;
    }
    if (auto it = g->remote_calls.find(token); it != g->remote_calls.end()) {
      ChannelHub::Respond respond = std::move(it->second);
      g->remote_calls.erase(it);
      if (kind == 2) respond(Status::Error(std::string(data)), "");
      else respond(Status::OK(), std::string(kind == 0 ? data : std::string_view()));
      g->host->LeaseEnded(g);
      return LAMPYR_OK;
    }
    return LAMPYR_ERR_ARG;  // unknown or already answered
  });
}

int Reply(lampyr_host* h, lampyr_token t, const char* d, size_t n) { return Answer(h, t, 0, View(d, n), 0); }
int Decline(lampyr_host* h, lampyr_token t) { return Answer(h, t, 1, {}, 0); }
int Fail(lampyr_host* h, lampyr_token t, int code, const char* message) {
  if (code != LAMPYR_FAIL_HANDLER_ERROR && code != LAMPYR_FAIL_UNAVAILABLE && code != LAMPYR_FAIL_OVERLOADED)
    code = LAMPYR_FAIL_HANDLER_ERROR;
  return Answer(h, t, 2, message ? message : "", code);
}

// Session operations go through the Forwarder when the server has channel
// links (the session may belong to another net server), else to the local
// net server; both have the same calls.
template <typename Fn>
int SessionOp(lampyr_host* h, Fn&& fn) {
  return Guard([&] {
    PluginHost* host = G(h)->host;
    if (host->forwarder()) fn(*host->forwarder());
    else if (host->net()) fn(*host->net());
    else return LAMPYR_ERR_UNAVAILABLE;
    return LAMPYR_OK;
  });
}

int Push(lampyr_host* h, lampyr_session s, uint32_t command, const char* d, size_t n) {
  return SessionOp(h, [&](auto& to) { to.Push(s, command, View(d, n)); });
}

int PushMany(lampyr_host* h, const lampyr_session* ss, size_t count, uint32_t command, const char* d, size_t n) {
  return SessionOp(h, [&](auto& to) {
    to.PushMany(std::vector<SessionId>(ss, ss + (ss ? count : 0)), command, View(d, n));
  });
}

int Broadcast(lampyr_host* h, const char* group, uint32_t command, const char* d, size_t n) {
  if (!group) return LAMPYR_ERR_ARG;
  return SessionOp(h, [&](auto& to) { to.Broadcast(group, command, View(d, n)); });
}

int JoinGroup(lampyr_host* h, const char* group, lampyr_session s) {
  if (!group) return LAMPYR_ERR_ARG;
  return SessionOp(h, [&](auto& to) { to.JoinGroup(group, s); });
}

int LeaveGroup(lampyr_host* h, const char* group, lampyr_session s) {
  if (!group) return LAMPYR_ERR_ARG;
  return SessionOp(h, [&](auto& to) { to.LeaveGroup(group, s); });
}

int Kick(lampyr_host* h, lampyr_session s) {
  return SessionOp(h, [&](auto& to) { to.Kick(s); });
}

// Session data is namespaced by plugin: two plugins never see each other's keys.
int SessionSet(lampyr_host* h, lampyr_session s, const char* key, const char* d, size_t n) {
  return Guard([&] {
    Generation* g = G(h);
    if (!key) return LAMPYR_ERR_ARG;
    std::string k = g->plugin + "/" + key;
    if (!d && n == 0) {
      if (auto* m = g->host->SessionData(s, false)) m->erase(k);
      return LAMPYR_OK;
    }
    (*g->host->SessionData(s, true))[k] = std::string(View(d, n));
    return LAMPYR_OK;
  });
}

int SessionGet(lampyr_host* h, lampyr_session s, const char* key, lampyr_sink_fn sink, void* user) {
  return Guard([&] {
    Generation* g = G(h);
    if (!key || !sink) return LAMPYR_ERR_ARG;
    auto* m = g->host->SessionData(s, false);
    if (!m) return LAMPYR_ERR_ARG;
    auto it = m->find(g->plugin + "/" + key);
    if (it == m->end()) return LAMPYR_ERR_ARG;
    std::string value = it->second;  // the sink may call session_set
    sink(user, value.data(), value.size());
    return LAMPYR_OK;
  });
}

// Fires timer `id`; a repeating one re-arms itself first (so on_timer may
// cancel it).
void FireTimer(const std::weak_ptr<Generation>& w, uint64_t id, uint64_t cookie, uint64_t repeat_ms) {
  auto gen = w.lock();
  if (!gen || gen->state == State::kRetired) return;
  auto it = gen->timers.find(id);
  if (it == gen->timers.end()) return;
  if (repeat_ms) {
    it->second.loop_id = gen->host->loop()->RunAfter(static_cast<double>(repeat_ms) / 1000.0,
                                                     [w, id, cookie, repeat_ms] { FireTimer(w, id, cookie, repeat_ms); });
  } else {
    gen->timers.erase(it);
    --gen->one_shot_timers;
  }
  if (gen->desc()->on_timer) {
    Activity running = gen->Running("timer");
    gen->desc()->on_timer(gen->ctx, cookie);
  }
  if (!repeat_ms) gen->host->LeaseEnded(gen.get());
}

uint64_t TimerStart(lampyr_host* h, uint64_t delay_ms, uint64_t repeat_ms, uint64_t cookie) {
  uint64_t result = 0;
  Guard([&] {
    Generation* g = G(h);
    if (!g->active()) return LAMPYR_ERR_STATE;
    uint64_t id = g->host->NextId();
    std::weak_ptr<Generation> w = g->weak_from_this();
    Generation::Timer t;
    t.repeating = repeat_ms > 0;
    t.loop_id = g->host->loop()->RunAfter(static_cast<double>(delay_ms) / 1000.0,
                                          [w, id, cookie, repeat_ms] { FireTimer(w, id, cookie, repeat_ms); });
    if (!t.repeating) ++g->one_shot_timers;
    g->timers[id] = t;
    result = id;
    return LAMPYR_OK;
  });
  return result;
}

int TimerCancel(lampyr_host* h, uint64_t id) {
  return Guard([&] {
    Generation* g = G(h);
    auto it = g->timers.find(id);
    if (it == g->timers.end()) return LAMPYR_ERR_ARG;
    g->host->loop()->Cancel(it->second.loop_id);
    if (!it->second.repeating) --g->one_shot_timers;
    g->timers.erase(it);
    g->host->LeaseEnded(g);
    return LAMPYR_OK;
  });
}

bool ValidMetricName(const char* n) {
  if (!n || !*n) return false;
  for (const char* p = n; *p; ++p) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (p != n && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Plugins count per request: the registry (a lock and two map lookups) is
// asked once per name and generation, then the handle is reused.
template <typename Handle, typename Lookup>
int WithMetric(std::unordered_map<std::string, Handle*>& cache, const char* name, Lookup&& lookup,
               const std::function<void(Handle*)>& use) {
  return Guard([&] {
    auto it = cache.find(name ? name : "");
    if (it == cache.end()) {
      if (!ValidMetricName(name)) return LAMPYR_ERR_ARG;
      it = cache.emplace(name, lookup()).first;
    }
    use(it->second);
    return LAMPYR_OK;
  });
}

int CounterAdd(lampyr_host* h, const char* name, const char* help, uint64_t delta) {
  Generation* g = G(h);
  return WithMetric<Counter>(
      g->counters, name,
      [&] { return Metrics().GetCounter(name, help ? help : "", "plugin=\"" + g->plugin + "\""); },
      [&](Counter* c) { c->Inc(delta); });
}

int GaugeSet(lampyr_host* h, const char* name, const char* help, int64_t value) {
  Generation* g = G(h);
  return WithMetric<Gauge>(
      g->gauges, name, [&] { return Metrics().GetGauge(name, help ? help : "", "plugin=\"" + g->plugin + "\""); },
      [&](Gauge* m) { m->Set(value); });
}

uint64_t NowMs(lampyr_host*) { return static_cast<uint64_t>(EventLoop::NowMicros() / 1000); }

int Call(lampyr_host* h, const char* node, const char* method, const char* args, size_t len, uint64_t timeout_ms,
         uint64_t cookie) {
  return Guard([&] {
    Generation* g = G(h);
    if (!g->active()) return LAMPYR_ERR_STATE;
    if (!node || !method) return LAMPYR_ERR_ARG;
    ChannelHub* hub = g->host->hub();
    if (!hub) return LAMPYR_ERR_UNAVAILABLE;
    ++g->pending_calls;
    std::weak_ptr<Generation> w = g->weak_from_this();
    double timeout = timeout_ms ? static_cast<double>(timeout_ms) / 1000.0 : 5.0;
    hub->CallDetailed(
        node, method, View(args, len),
        [w, cookie](CallError kind, Status s, std::string reply) {
          auto gen = w.lock();
          if (!gen || gen->state == State::kRetired) return;
          --gen->pending_calls;
          int status = LAMPYR_DONE_OK;
          if (!s.ok()) {
            status = kind == CallError::kTimeout  ? LAMPYR_DONE_TIMEOUT
                     : kind == CallError::kRemote ? LAMPYR_DONE_ERROR
                                                  : LAMPYR_DONE_UNAVAILABLE;
            reply = s.message();
          }
          if (gen->desc()->on_complete) {
            Activity running = gen->Running("call completion");
            gen->desc()->on_complete(gen->ctx, cookie, status, reply.data(), reply.size());
          }
          gen->host->LeaseEnded(gen.get());
        },
        timeout);
    return LAMPYR_OK;
  });
}

int Notify(lampyr_host* h, const char* node, const char* method, const char* args, size_t len) {
  return Guard([&] {
    Generation* g = G(h);
    if (!g->active()) return LAMPYR_ERR_STATE;
    if (!node || !method) return LAMPYR_ERR_ARG;
    if (!g->host->hub()) return LAMPYR_ERR_UNAVAILABLE;
    g->host->hub()->Notify(node, method, View(args, len));
    return LAMPYR_OK;
  });
}

int Bind(lampyr_host* h, lampyr_session s, const char* node) {
  return Guard([&] {
    Forwarder* f = G(h)->host->forwarder();
    if (!f) return LAMPYR_ERR_UNAVAILABLE;
    f->Bind(s, node ? node : "");
    return LAMPYR_OK;
  });
}

int WatchSessions(lampyr_host* h) {
  return Guard([&] {
    Generation* g = G(h);
    g->watches_sessions = true;
    g->host->WatchSessions();
    return LAMPYR_OK;
  });
}

int SetRouter(lampyr_host* h) {
  return Guard([&] {
    Generation* g = G(h);
    if (g->state != State::kLoading) return LAMPYR_ERR_STATE;
    if (!g->host->forwarder()) return LAMPYR_ERR_UNAVAILABLE;
    g->routes = true;
    return LAMPYR_OK;
  });
}

struct Entry {
  const char* name;
  void* fn;
};

#define LAMPYR_FN(n, f) Entry{n, reinterpret_cast<void*>(&f)}
const Entry kTable[] = {
    LAMPYR_FN("alloc", Alloc),
    LAMPYR_FN("free", Free),
    LAMPYR_FN("log", Log),
    LAMPYR_FN("register_command", RegisterCommand),
    LAMPYR_FN("register_remote", RegisterRemote),
    LAMPYR_FN("reply", Reply),
    LAMPYR_FN("decline", Decline),
    LAMPYR_FN("fail", Fail),
    LAMPYR_FN("push", Push),
    LAMPYR_FN("push_many", PushMany),
    LAMPYR_FN("broadcast", Broadcast),
    LAMPYR_FN("join_group", JoinGroup),
    LAMPYR_FN("leave_group", LeaveGroup),
    LAMPYR_FN("kick", Kick),
    LAMPYR_FN("session_set", SessionSet),
    LAMPYR_FN("session_get", SessionGet),
    LAMPYR_FN("timer_start", TimerStart),
    LAMPYR_FN("timer_cancel", TimerCancel),
    LAMPYR_FN("counter_add", CounterAdd),
    LAMPYR_FN("gauge_set", GaugeSet),
    LAMPYR_FN("now_ms", NowMs),
    LAMPYR_FN("call", Call),
    LAMPYR_FN("notify", Notify),
    LAMPYR_FN("bind", Bind),
    LAMPYR_FN("watch_sessions", WatchSessions),
    LAMPYR_FN("set_router", SetRouter),
};
#undef LAMPYR_FN

// Compile-time proof that each entry has the type plugin.h documents.
static_assert(std::is_same_v<decltype(&Reply), lampyr_fn_reply>);
static_assert(std::is_same_v<decltype(&Push), lampyr_fn_push>);
static_assert(std::is_same_v<decltype(&PushMany), lampyr_fn_push_many>);
static_assert(std::is_same_v<decltype(&Broadcast), lampyr_fn_broadcast>);
static_assert(std::is_same_v<decltype(&JoinGroup), lampyr_fn_group>);
static_assert(std::is_same_v<decltype(&SessionGet), lampyr_fn_session_get>);
static_assert(std::is_same_v<decltype(&SessionSet), lampyr_fn_session_set>);
static_assert(std::is_same_v<decltype(&TimerStart), lampyr_fn_timer_start>);
static_assert(std::is_same_v<decltype(&TimerCancel), lampyr_fn_timer_cancel>);
static_assert(std::is_same_v<decltype(&Call), lampyr_fn_call>);
static_assert(std::is_same_v<decltype(&Notify), lampyr_fn_notify>);
static_assert(std::is_same_v<decltype(&CounterAdd), lampyr_fn_counter_add>);
static_assert(std::is_same_v<decltype(&GaugeSet), lampyr_fn_gauge_set>);
static_assert(std::is_same_v<decltype(&Fail), lampyr_fn_fail>);
static_assert(std::is_same_v<decltype(&Decline), lampyr_fn_decline>);
static_assert(std::is_same_v<decltype(&Log), lampyr_fn_log>);
static_assert(std::is_same_v<decltype(&RegisterCommand), lampyr_fn_register_command>);
static_assert(std::is_same_v<decltype(&RegisterRemote), lampyr_fn_register_remote>);
static_assert(std::is_same_v<decltype(&Kick), lampyr_fn_kick>);
static_assert(std::is_same_v<decltype(&NowMs), lampyr_fn_now_ms>);
static_assert(std::is_same_v<decltype(&Bind), lampyr_fn_bind>);
static_assert(std::is_same_v<decltype(&WatchSessions), lampyr_fn_watch_sessions>);
static_assert(std::is_same_v<decltype(&SetRouter), lampyr_fn_set_router>);
static_assert(std::is_same_v<decltype(&Alloc), lampyr_fn_alloc>);
static_assert(std::is_same_v<decltype(&Free), lampyr_fn_free>);

}  // namespace

void* LookupHostFunction(const char* name) {
  if (!name) return nullptr;
  for (const auto& e : kTable)
    if (std::strcmp(e.name, name) == 0) return e.fn;
  if (void* fn = LookupWebFunction(name)) return fn;
  return LookupDataFunction(name);
}

}  // namespace lampyr::plugin
