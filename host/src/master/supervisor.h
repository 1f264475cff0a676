// Supervisor: the master's process manager. Starts each server as a child
// (fork + exec of this very binary with `--server NAME`), learns of exits
// through SIGCHLD on the loop, and restarts crashed servers with exponential
// backoff until too many crashes in a window make it give up ("failed").
//
// Children die with the master (PR_SET_PDEATHSIG = SIGTERM, i.e. a graceful
// stop), so even a kill -9 of the master leaves no orphan behind.
//
// Probation (DESIGN §6 step 7, docs/plugins.md): every start of a server and
// every plugin it reloads opens a window of probation_s for those plugins.
// A crash inside a plugin's window rolls that plugin back: from then on the
// server is started with LAMPYR_ROLLBACK naming it, and loads the last build
// of it that PASSED probation (served a whole window; the server keeps that
// build in its state dir) — never merely the previous one, which may be bad
// too. The override lasts until the operator reloads that plugin or restarts
// the server (both say so in the log).
//
// Crash reasons: on every exit the supervisor collects the crash record the
// server's crash handler left (<state_dir>/<server>/crash-<pid>.json) and
// shows it, or the bare signal, as `last_crash` in /status.
//
// Loop thread only.
#pragma once

#include <json/value.h>
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "core/private_dir.h"
#include "core/status.h"

namespace lampyr {

class Supervisor : NonCopyable {
 public:
  enum class State { kStarting, kRunning, kRestarting, kFailed, kStopped };
  static const char* StateName(State s);

  struct Options {
    std::string conf_path;  // absolute, passed to every child
    const PrivateDir* state = nullptr;  // master.state_dir (crash records); may be null
    std::string log_level;  // "" = each server's own
    MasterConfig limits;    // backoff, give-up, probation and stop timeouts
    // A server that ran this long before it exited starts over at the
    // first backoff step.
    double stable_s = 10;
  };

  struct Child {
    std::string name;
    State state = State::kStopped;
    pid_t pid = 0;
    int64_t started_us = 0;            // spawn time of the current process
    uint32_t restarts = 0;             // starts after the first one
    uint32_t backoff_ms = 0;           // delay before the next crash restart
    std::deque<int64_t> crashes;       // exit times within give_up_window_s
    std::string last_exit;             // "killed by signal 9 (Killed)", "exit status 1"
    int64_t last_exit_unix = 0;
    TimerId restart_timer = 0;
    TimerId kill_timer = 0;
    bool stop_requested = false;       // the next exit is expected: no restart
    std::vector<std::function<void()>> on_exit;  // run once when the process is gone
    std::vector<std::string> plugins;              // its configured plugins
    std::map<std::string, int64_t> probation;     // plugin -> end of its window (monotonic us)
    std::set<std::string> rollback;               // started from their last passed build
    Json::Value rolled_back{Json::arrayValue};    // [{"plugin","to","at"}]
    Json::Value last_crash;                       // {"signal","plugin","generation","at",...} or null
    Counter* m_restarts = nullptr;
    Gauge* m_up = nullptr;
  };

  // `ask_stop(name, pid)` asks a running server to stop gracefully (the
  // master sends lampyr.stop or SIGTERM); the supervisor adds the deadline.
  Supervisor(EventLoop* loop, Options options, std::function<void(const std::string&, pid_t)> ask_stop);
  ~Supervisor();

  // Must run before the first Start: installs the SIGCHLD handler.
  void Install();
  void Add(const std::string& name, const std::vector<std::string>& plugins = {});
  void Start(const std::string& name);
  void StartAll();  // in name order

  // The server's channel link to the master came up: it is serving.
  void MarkRunning(const std::string& name);

  // Stops `name` (graceful, SIGKILL after stop_timeout_s) and starts it
  // again; the crash history is cleared (an operator asked for it). `done`
  // gets the new pid once the new process is spawned.
  void Restart(const std::string& name, std::function<void(Status, pid_t old_pid, pid_t new_pid)> done);
  // Stops every server; `done` runs when all are gone. No more restarts.
  void StopAll(std::function<void()> done);

  // A reload answer ({"plugins":[{"plugin","ok"}]}) from `name`: each
  // reloaded plugin gets a new probation window, and loses its rollback
  // override (the operator chose the configured build).
  void NoteReload(const std::string& name, const Json::Value& result);

  const Child* Find(const std::string& name) const;
  const std::map<std::string, Child>& children() const { return children_; }
  bool stopping() const { return stopping_; }
  // The master's view of one server for /status.
  Json::Value ViewJson(const Child& c) const;

 private:
  Child* Get(const std::string& name);
  void Spawn(Child& c);
  void Reap();
  void OnExit(Child& c, int wait_status);
  void StopChild(Child& c, std::function<void()> then);
  void ApplyRollback(Child& c, int64_t now_us);
  Json::Value CollectCrashRecord(const Child& c, pid_t pid);

  EventLoop* loop_;
  Options opt_;
  std::function<void(const std::string&, pid_t)> ask_stop_;
  std::map<std::string, Child> children_;
  bool installed_ = false;
  bool stopping_ = false;
  Counter* m_giveups_;
};

}  // namespace lampyr
