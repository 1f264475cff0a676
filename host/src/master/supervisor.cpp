#include "master/supervisor.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <ctime>

#include "core/log.h"

extern char** environ;

namespace lampyr {

namespace {

constexpr const char* kPluginPathsEnv = "LAMPYR_PLUGIN_PATHS";

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return "killed by signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
  }
  return "status " + std::to_string(status);
}

// "room=/a/libroom.so;chat=/b/libchat.so": what PluginHost reads at start.
std::string PluginPathsValue(const std::map<std::string, std::string>& paths) {
  std::string v;
  for (const auto& [plugin, path] : paths) v += (v.empty() ? "" : ";") + plugin + "=" + path;
  return v;
}

}  // namespace

const char* Supervisor::StateName(State s) {
  switch (s) {
    case State::kStarting: return "starting";
    case State::kRunning: return "running";
    case State::kRestarting: return "restarting";
    case State::kFailed: return "failed";
    case State::kStopped: return "stopped";
  }
  return "?";
}

Supervisor::Supervisor(EventLoop* loop, Options options, std::function<void(const std::string&, pid_t)> ask_stop)
    : loop_(loop), opt_(std::move(options)), ask_stop_(std::move(ask_stop)) {
  m_giveups_ = Metrics().GetCounter("lampyr_master_giveups_total",
                                    "Servers the master stopped restarting (too many crashes in the window)");
}

Supervisor::~Supervisor() {
  for (auto& [name, c] : children_) {
    loop_->Cancel(c.restart_timer);
    loop_->Cancel(c.kill_timer);
  }
}

void Supervisor::Install() {
  if (installed_) return;
  installed_ = true;
  // Signals coalesce: one SIGCHLD may stand for several exits, so Reap loops.
  loop_->OnSignal(SIGCHLD, [this] { Reap(); });
}

void Supervisor::Add(const std::string& name) {
  Child& c = children_[name];
  c.name = name;
  c.backoff_ms = opt_.limits.restart_backoff_ms;
  const std::string label = "server=\"" + name + "\"";
  c.m_restarts = Metrics().GetCounter("lampyr_master_restarts_total", "Starts of a server after its first one", label);
  c.m_up = Metrics().GetGauge("lampyr_master_server_up", "1 while the server is linked to the master", label);
}

Supervisor::Child* Supervisor::Get(const std::string& name) {
  auto it = children_.find(name);
  return it == children_.end() ? nullptr : &it->second;
}

const Supervisor::Child* Supervisor::Find(const std::string& name) const {
  auto it = children_.find(name);
  return it == children_.end() ? nullptr : &it->second;
}

void Supervisor::Start(const std::string& name) {
  if (Child* c = Get(name); c && c->pid == 0) Spawn(*c);
}

void Supervisor::StartAll() {
  for (auto& [name, c] : children_)
    if (c.pid == 0) Spawn(c);
}

void Supervisor::Spawn(Child& c) {
  loop_->Cancel(c.restart_timer);
  c.restart_timer = 0;
  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls.
  std::vector<std::string> args = {"lampyr", "--conf", opt_.conf_path, "--server", c.name};
  if (!opt_.log_level.empty()) {
    args.push_back("--log-level");
    args.push_back(opt_.log_level);
  }
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    if (strncmp(*e, kPluginPathsEnv, strlen(kPluginPathsEnv)) == 0 && (*e)[strlen(kPluginPathsEnv)] == '=') continue;
    env.emplace_back(*e);
  }
  if (!c.plugin_paths.empty()) env.push_back(std::string(kPluginPathsEnv) + "=" + PluginPathsValue(c.plugin_paths));
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // The child: die with the master (SIGTERM = graceful stop, data flushed).
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);  // the master died before prctl
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // The master's listeners and links must not leak into servers.
    close_range(3, UINT_MAX, 0);
    execve("/proc/self/exe", argv.data(), envp.data());
    _exit(127);
  }
  if (pid < 0) {
    LOG_ERROR("master", "cannot start %s: fork: %s", c.name.c_str(), strerror(errno));
    c.state = State::kRestarting;
    c.restart_timer = loop_->RunAfter(c.backoff_ms / 1000.0, [this, name = c.name] { Start(name); });
    return;
  }
  if (c.started_us != 0) {
    ++c.restarts;
    c.m_restarts->Inc();
  }
  c.pid = pid;
  c.started_us = EventLoop::NowMicros();
  c.state = State::kStarting;
  c.stop_requested = false;
  LOG_INFO("master", "started %s (pid %d)%s%s", c.name.c_str(), pid, c.plugin_paths.empty() ? "" : " with ",
           c.plugin_paths.empty() ? "" : (std::string(kPluginPathsEnv) + "=" + PluginPathsValue(c.plugin_paths)).c_str());
}

void Supervisor::MarkRunning(const std::string& name) {
  Child* c = Get(name);
  if (!c || c->pid == 0 || c->state != State::kStarting) return;
  c->state = State::kRunning;
  c->m_up->Set(1);
  LOG_INFO("master", "%s is up (pid %d, %.0f ms after start)", name.c_str(), c->pid,
           (EventLoop::NowMicros() - c->started_us) / 1000.0);
}

void Supervisor::Reap() {
  for (;;) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    auto it = std::find_if(children_.begin(), children_.end(), [pid](const auto& kv) { return kv.second.pid == pid; });
    if (it == children_.end()) continue;  // not one of ours (cannot happen: we fork nothing else)
    OnExit(it->second, status);
  }
}

void Supervisor::OnExit(Child& c, int wait_status) {
  const int64_t now = EventLoop::NowMicros();
  const double ran_s = (now - c.started_us) / 1e6;
  c.last_exit = DescribeExit(wait_status);
  c.last_exit_unix = time(nullptr);
  const pid_t pid = c.pid;
  c.pid = 0;
  c.m_up->Set(0);
  loop_->Cancel(c.kill_timer);
  c.kill_timer = 0;
  auto waiters = std::move(c.on_exit);
  c.on_exit.clear();

  if (c.stop_requested || stopping_) {
    c.stop_requested = false;
    c.state = State::kStopped;
    LOG_INFO("master", "%s (pid %d) stopped: %s", c.name.c_str(), pid, c.last_exit.c_str());
    for (auto& w : waiters) w();
    return;
  }

  // An exit nobody asked for: a crash (whatever the status).
  c.crashes.push_back(now);
  while (!c.crashes.empty() && now - c.crashes.front() > int64_t{opt_.limits.give_up_window_s} * 1000000) c.crashes.pop_front();
  if (now < c.probation_until_us && !c.previous_builds.empty()) ApplyRollback(c);
  if (ran_s >= opt_.stable_s) c.backoff_ms = opt_.limits.restart_backoff_ms;

  if (c.crashes.size() >= opt_.limits.give_up_restarts) {
    c.state = State::kFailed;
    m_giveups_->Inc();
    LOG_ERROR("master", "%s (pid %d) %s after %.1f s; %zu crashes within %u s: giving up (state failed; "
              "POST /restart starts it again)",
              c.name.c_str(), pid, c.last_exit.c_str(), ran_s, c.crashes.size(), opt_.limits.give_up_window_s);
    for (auto& w : waiters) w();
    return;
  }
  const uint32_t delay = c.backoff_ms;
  c.backoff_ms = std::min(opt_.limits.restart_backoff_max_ms, c.backoff_ms * 2);
  c.state = State::kRestarting;
  LOG_WARN("master", "%s (pid %d) %s after %.1f s; restarting in %u ms", c.name.c_str(), pid, c.last_exit.c_str(),
           ran_s, delay);
  c.restart_timer = loop_->RunAfter(delay / 1000.0, [this, name = c.name] { Start(name); });
  for (auto& w : waiters) w();
}

void Supervisor::ApplyRollback(Child& c) {
  const int64_t at = time(nullptr);
  for (const auto& [plugin, path] : c.previous_builds) {
    c.plugin_paths[plugin] = path;
    Json::Value r(Json::objectValue);
    r["plugin"] = plugin;
    r["to"] = path;
    r["at"] = static_cast<Json::Int64>(at);
    c.rolled_back.append(r);
    LOG_WARN("master", "%s crashed within %u s of reloading %s: rolling it back to %s", c.name.c_str(),
             opt_.limits.probation_s, plugin.c_str(), path.c_str());
  }
  c.previous_builds.clear();
  c.probation_until_us = 0;
}

void Supervisor::NoteReload(const std::string& name, const Json::Value& result) {
  Child* c = Get(name);
  if (!c || !result.get("ok", false).asBool() || opt_.limits.probation_s == 0) return;
  const Json::Value& plugins = result["plugins"];
  if (!plugins.isArray()) return;
  for (const auto& p : plugins) {
    if (!p.isObject() || !p.get("ok", false).asBool() || !p["plugin"].isString()) continue;
    const std::string plugin = p["plugin"].asString();
    // The server now runs the configured build of this plugin: an earlier
    // rollback override no longer applies to later starts.
    c->plugin_paths.erase(plugin);
    const Json::Value& prev = p["previous_build"];
    if (prev.isString() && !prev.asString().empty()) c->previous_builds[plugin] = prev.asString();
  }
  if (!c->previous_builds.empty()) c->probation_until_us = EventLoop::NowMicros() + int64_t{opt_.limits.probation_s} * 1000000;
}

void Supervisor::StopChild(Child& c, std::function<void()> then) {
  loop_->Cancel(c.restart_timer);
  c.restart_timer = 0;
  if (c.pid == 0) {
    if (c.state != State::kFailed) c.state = State::kStopped;
    if (then) then();
    return;
  }
  if (then) c.on_exit.push_back(std::move(then));
  if (c.stop_requested) return;  // already on its way down
  c.stop_requested = true;
  ask_stop_(c.name, c.pid);
  const pid_t pid = c.pid;
  c.kill_timer = loop_->RunAfter(opt_.limits.stop_timeout_s, [this, name = c.name, pid] {
    Child* ch = Get(name);
    if (!ch || ch->pid != pid) return;
    ch->kill_timer = 0;
    LOG_WARN("master", "%s (pid %d) did not stop within %u s: SIGKILL", name.c_str(), pid, opt_.limits.stop_timeout_s);
    kill(pid, SIGKILL);
  });
}

void Supervisor::Restart(const std::string& name, std::function<void(Status, pid_t, pid_t)> done) {
  Child* c = Get(name);
  if (!c) {
    done(Status::Error("no such server: " + name), 0, 0);
    return;
  }
  if (stopping_) {
    done(Status::Error("the cluster is stopping"), 0, 0);
    return;
  }
  const pid_t old_pid = c->pid;
  LOG_INFO("master", "restart of %s requested (pid %d)", name.c_str(), old_pid);
  if (old_pid != 0) c->state = State::kRestarting;
  StopChild(*c, [this, name, old_pid, done] {
    Child* ch = Get(name);
    if (stopping_) {
      done(Status::Error("the cluster is stopping"), old_pid, 0);
      return;
    }
    ch->crashes.clear();
    ch->backoff_ms = opt_.limits.restart_backoff_ms;
    if (ch->pid == 0) Spawn(*ch);
    if (ch->pid == 0) done(Status::Error("could not start " + name + " (see the master's log)"), old_pid, 0);
    else done(Status::OK(), old_pid, ch->pid);
  });
}

void Supervisor::StopAll(std::function<void()> done) {
  stopping_ = true;
  auto left = std::make_shared<size_t>(children_.size() + 1);
  auto one_gone = [left, done] {
    if (--*left == 0) done();
  };
  for (auto& [name, c] : children_) StopChild(c, one_gone);
  one_gone();  // the +1: `done` never runs inside the loop above
}

Json::Value Supervisor::ViewJson(const Child& c) const {
  const int64_t now = EventLoop::NowMicros();
  Json::Value v(Json::objectValue);
  v["name"] = c.name;
  v["pid"] = c.pid ? Json::Value(static_cast<Json::Int64>(c.pid)) : Json::Value();
  v["state"] = StateName(c.state);
  v["restarts"] = c.restarts;
  v["uptime_s"] = static_cast<Json::Int64>(c.pid ? (now - c.started_us) / 1000000 : 0);
  v["crashes_in_window"] = static_cast<Json::UInt64>(c.crashes.size());
  if (!c.last_exit.empty()) {
    v["last_exit"] = c.last_exit;
    v["last_exit_at"] = static_cast<Json::Int64>(c.last_exit_unix);
  }
  if (now < c.probation_until_us && !c.previous_builds.empty()) {
    Json::Value p(Json::objectValue);
    p["remaining_s"] = static_cast<Json::Int64>((c.probation_until_us - now + 999999) / 1000000);
    p["previous_builds"] = Json::Value(Json::objectValue);
    for (const auto& [plugin, path] : c.previous_builds) p["previous_builds"][plugin] = path;
    v["probation"] = p;
  }
  if (!c.rolled_back.empty()) v["rolled_back"] = c.rolled_back;
  return v;
}

}  // namespace lampyr
