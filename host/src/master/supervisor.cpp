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
#include "core/systemd.h"
#include "core/state_records.h"

extern char** environ;

namespace lampyr {

namespace {

constexpr const char* kRollbackEnv = "LAMPYR_ROLLBACK";

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return "killed by signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
  }
  return "status " + std::to_string(status);
}

// "room,chat": what PluginHost reads at start.
std::string Joined(const std::set<std::string>& names) {
  std::string v;
  for (const auto& n : names) v += (v.empty() ? "" : ",") + n;
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

void Supervisor::Add(const std::string& name, const std::vector<std::string>& plugins) {
  Child& c = children_[name];
  c.name = name;
  c.plugins = plugins;
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
    if (strncmp(*e, kRollbackEnv, strlen(kRollbackEnv)) == 0 && (*e)[strlen(kRollbackEnv)] == '=') continue;
    // The master alone speaks to systemd (core/systemd.h).
    if (systemd::IsServiceEnv(*e)) continue;
    env.emplace_back(*e);
  }
  if (!c.rollback.empty()) env.push_back(std::string(kRollbackEnv) + "=" + Joined(c.rollback));
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
    // Ignored across exec (a handled signal would reset to its default,
    // which kills): a SIGHUP the master forwards while the server is still
    // starting is dropped instead of killing it. The server's loop takes it over.
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &ign, nullptr);
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
  // What it loads now is on probation, except what is rolled back already.
  c.probation.clear();
  if (opt_.limits.probation_s > 0)
    for (const auto& p : c.plugins)
      if (!c.rollback.count(p)) c.probation[p] = c.started_us + int64_t{opt_.limits.probation_s} * 1000000;
  LOG_INFO("master", "started %s (pid %d)%s%s", c.name.c_str(), pid,
           c.rollback.empty() ? "" : ", with the last build that passed probation of: ",
           Joined(c.rollback).c_str());
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
  Json::Value record = CollectCrashRecord(c, pid);
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
  if (record.isNull()) {
    record = Json::Value(Json::objectValue);
    record["signal"] = WIFSIGNALED(wait_status) ? Json::Value(WTERMSIG(wait_status)) : Json::Value();
    record["plugin"] = Json::Value();
    record["generation"] = Json::Value();
    record["at"] = static_cast<Json::Int64>(c.last_exit_unix);
  }
  record["reason"] = c.last_exit;
  c.last_crash = record;
  std::string where;
  if (record["signal_name"].isString()) {
    where = ": " + record["signal_name"].asString() + " in " +
            (record["plugin"].isString() ? "plugin " + record["plugin"].asString() +
                                               (record["generation"].isUInt64()
                                                    ? " generation " + std::to_string(record["generation"].asUInt64())
                                                    : std::string())
                                         : std::string("host code"));
    if (!record["what"].asString().empty()) where += " while running " + record["what"].asString();
  }
  c.crashes.push_back(now);
  while (!c.crashes.empty() && now - c.crashes.front() > int64_t{opt_.limits.give_up_window_s} * 1000000) c.crashes.pop_front();
  ApplyRollback(c, now);
  if (ran_s >= opt_.stable_s) c.backoff_ms = opt_.limits.restart_backoff_ms;

  if (c.crashes.size() >= opt_.limits.give_up_restarts) {
    c.state = State::kFailed;
    m_giveups_->Inc();
    LOG_ERROR("master", "%s (pid %d) %s after %.1f s%s; %zu crashes within %u s: giving up (state failed; "
              "POST /restart starts it again)",
              c.name.c_str(), pid, c.last_exit.c_str(), ran_s, where.c_str(), c.crashes.size(),
              opt_.limits.give_up_window_s);
    for (auto& w : waiters) w();
    return;
  }
  const uint32_t delay = c.backoff_ms;
  c.backoff_ms = std::min(opt_.limits.restart_backoff_max_ms, c.backoff_ms * 2);
  c.state = State::kRestarting;
  LOG_WARN("master", "%s (pid %d) %s after %.1f s%s; restarting in %u ms", c.name.c_str(), pid,
           c.last_exit.c_str(), ran_s, where.c_str(), delay);
  c.restart_timer = loop_->RunAfter(delay / 1000.0, [this, name = c.name] { Start(name); });
  for (auto& w : waiters) w();
}

void Supervisor::ApplyRollback(Child& c, int64_t now_us) {
  const int64_t at = time(nullptr);
  for (const auto& [plugin, until] : c.probation) {
    if (now_us >= until || c.rollback.count(plugin)) continue;
    c.rollback.insert(plugin);
    Json::Value r(Json::objectValue);
    r["plugin"] = plugin;
    r["to"] = "its last build that passed probation";
    r["at"] = static_cast<Json::Int64>(at);
    c.rolled_back.append(r);
    LOG_WARN("master", "%s crashed within %u s of loading %s: rolling %s back to its last build that passed probation",
             c.name.c_str(), opt_.limits.probation_s, plugin.c_str(), plugin.c_str());
  }
  c.probation.clear();
}

void Supervisor::NoteReload(const std::string& name, const Json::Value& result) {
  Child* c = Get(name);
  if (!c || !result.isObject() || !result["plugins"].isArray()) return;
  for (const auto& p : result["plugins"]) {
    if (!p.isObject() || !p.get("ok", false).asBool() || !p["plugin"].isString()) continue;
    const std::string plugin = p["plugin"].asString();
    if (c->rollback.erase(plugin))
      LOG_INFO("master", "%s: the reload of %s clears the rollback override of %s: it serves the configured build "
               "and later starts load it too", name.c_str(), plugin.c_str(), plugin.c_str());
    if (opt_.limits.probation_s > 0)
      c->probation[plugin] = EventLoop::NowMicros() + int64_t{opt_.limits.probation_s} * 1000000;
  }
}

// The record the server's crash handler left for this process, if any (it
// is removed: each is reported once).
Json::Value Supervisor::CollectCrashRecord(const Child& c, pid_t pid) {
  if (!opt_.state) return Json::Value();
  std::unique_ptr<PrivateDir> dir;
  Status s = opt_.state->OpenChild(c.name, &dir);
  if (!s.ok()) {
    LOG_WARN("master", "cannot look for a crash record of %s: %s", c.name.c_str(), s.message().c_str());
    return Json::Value();
  }
  const std::string name = "crash-" + std::to_string(pid) + ".json";
  if (!dir->Exists(name)) return Json::Value();
  std::string text;
  Json::Value record;
  s = dir->ReadFile(name, kMaxStateRecordBytes, &text);
  if (s.ok()) s = ParseCrashRecord(text, &record);
  dir->Remove(name);
  if (!s.ok() || record["pid"].asInt64() != pid) {
    LOG_WARN("master", "crash record of %s (pid %d) ignored: %s", c.name.c_str(), pid,
             s.ok() ? "it names another process" : s.message().c_str());
    return Json::Value();
  }
  return record;
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
    if (!ch->rollback.empty()) {
      LOG_INFO("master", "restart of %s by the operator clears the rollback override of %s: it starts the configured "
               "build", name.c_str(), Joined(ch->rollback).c_str());
      ch->rollback.clear();
    }
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
  int64_t remaining_us = 0;
  Json::Value on_probation(Json::arrayValue);
  for (const auto& [plugin, until] : c.probation)
    if (until > now) {
      on_probation.append(plugin);
      remaining_us = std::max(remaining_us, until - now);
    }
  if (!on_probation.empty() && c.pid) {
    Json::Value p(Json::objectValue);
    p["remaining_s"] = static_cast<Json::Int64>((remaining_us + 999999) / 1000000);
    p["plugins"] = on_probation;
    v["probation"] = p;
  }
  if (!c.rollback.empty()) {
    v["rollback"] = Json::Value(Json::arrayValue);
    for (const auto& p : c.rollback) v["rollback"].append(p);
  }
  if (!c.last_crash.isNull()) v["last_crash"] = c.last_crash;
  if (!c.rolled_back.empty()) v["rolled_back"] = c.rolled_back;
  return v;
}

}  // namespace lampyr
