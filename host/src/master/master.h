// Master: `lampyr --conf FILE` without --server (DESIGN §1, §8). The control
// root of the cluster: every server links to its hub node "master" on
// master.rootport; it starts and supervises the servers of this machine
// (Supervisor), and serves the cluster admin API on master.webport:
//   GET  /status   every configured server: its own status (lampyr.status)
//                  merged with the master's view (pid, state, restarts, ...)
//   POST /reload   {"server"?, "plugin"?}: server by server, each result kept
//   POST /stop     graceful stop of the whole cluster
//   POST /restart  {"server": S}
//   GET  /metrics  the master's series + every server's, labelled server="S"
//   POST /reopen-logs  reopen the log files (also SIGHUP), servers' too
//
// Servers whose `host` is not an address of this machine are not spawned
// here (they run with --server on their own machine); they still link to the
// master and show up in /status with "supervised": false.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "admin/admin_http.h"
#include "core/config.h"
#include "core/event_loop.h"
#include "core/private_dir.h"
#include "core/status.h"

namespace lampyr {

class ChannelHub;
class Supervisor;

class Master : NonCopyable {
 public:
  // `log_level` ("" = each server's own) is passed on to every server.
  Master(const Config& config, std::string log_level);
  ~Master();

  // Binds the channel root and the admin API, then starts every local server.
  Status Start();
  // Until the cluster has stopped (SIGTERM/SIGINT or POST /stop).
  void Run();

 private:
  using Results = std::vector<std::pair<Status, std::string>>;

  void Stop(const std::string& why);
  void AskStop(const std::string& name, pid_t pid);
  bool Supervised(const std::string& name) const;
  void InstallRoutes();
  void HandleStatus(AdminHttp::Done done);
  void HandleReload(const AdminRequest& req, AdminHttp::Done done);
  void HandleRestart(const AdminRequest& req, AdminHttp::Done done);
  void HandleMetrics(AdminHttp::TextDone done);
  // Calls `method` on every one of `names` at once; `done` gets the answers
  // in the same order.
  void CallEach(const std::vector<std::string>& names, const std::string& method, const std::string& args,
                double timeout_s, std::function<void(Results)> done);
  std::vector<std::string> LinkedServers() const;
  // sd_notify: READY=1 / STATUS= (core/systemd.h).
  void UpdateService();
  // SIGHUP, POST /reopen-logs: the master's log file and every local server's.
  Json::Value ReopenLogs(const std::string& why);

  Config config_;
  std::string log_level_;
  EventLoop loop_;
  std::unique_ptr<PrivateDir> state_;  // master.state_dir
  std::unique_ptr<ChannelHub> hub_;
  std::unique_ptr<Supervisor> sup_;
  std::unique_ptr<AdminHttp> admin_;  // after what its routes use: destroyed first
  int64_t started_us_ = 0;
  bool stopping_ = false;
  bool ready_ = false;           // READY=1 sent
  std::string service_status_;   // the last STATUS= sent
};

}  // namespace lampyr
