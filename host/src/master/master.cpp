#include "master/master.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <memory>

#include "admin/server_admin.h"
#include "channel/channel_hub.h"
#include "channel/node_policy.h"
#include "core/json_text.h"
#include "core/activity.h"
#include "core/crash_handler.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/systemd.h"
#include "core/version.h"
#include "master/cluster_metrics.h"
#include "master/supervisor.h"

namespace lampyr {

namespace {

constexpr double kStatusTimeoutS = 2;
constexpr double kReloadTimeoutS = 60;  // a reload runs the plugin's init and state restore

Json::Value ErrorJson(const std::string& message) {
  Json::Value v(Json::objectValue);
  v["error"] = message;
  return v;
}

// Answers of servers: a broken or hostile server must not be able to throw
// out of the master's callbacks (core/json_text.h).
bool ParseJson(const std::string& text, Json::Value* out) {
  JsonLimits limits;
  limits.max_bytes = 64u << 20;  // the channel's frame limit is lower anyway
  return ParseJsonText(text, out, limits).ok();
}

// True when `host` names this machine: wildcard, loopback, or the address
// of one of its interfaces (or its hostname).
bool IsLocalHost(const std::string& host) {
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "::1" || host == "localhost" ||
      host.rfind("127.", 0) == 0)
    return true;
  char name[256] = "";
  if (gethostname(name, sizeof name - 1) == 0 && host == name) return true;
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) != 0) return true;  // cannot tell: run it here rather than nowhere
  bool local = false;
  for (ifaddrs* i = ifs; i && !local; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    char buf[INET6_ADDRSTRLEN] = "";
    if (i->ifa_addr->sa_family == AF_INET)
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    else if (i->ifa_addr->sa_family == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, buf, sizeof buf);
    local = host == buf;
  }
  freeifaddrs(ifs);
  return local;
}

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Master::Master(const Config& config, std::string log_level) : config_(config), log_level_(std::move(log_level)) {}

Master::~Master() {
  admin_.reset();
  hub_.reset();
}

bool Master::Supervised(const std::string& name) const { return sup_ && sup_->Find(name) != nullptr; }

Status Master::Start() {
  if (config_.master.rootport == 0)
    return Status::Error("master.rootport: required to run the master (every server links to it); "
                         "to run one server without a master use --server NAME");
  if (config_.servers.empty()) return Status::Error("servers: nothing to run");
  started_us_ = EventLoop::NowMicros();

  const MasterConfig& m = config_.master;
  crash::Install("master");
  SetLoopStallThresholdMs(m.loop_stall_ms);
  // Refused here already, so a bad state dir stops the cluster at once
  // instead of every server failing one by one.
  Status sd = PrivateDir::Open(m.state_dir, &state_);
  if (!sd.ok()) return Status::Error("master.state_dir: " + sd.message());
  hub_ = std::make_unique<ChannelHub>(&loop_, "master", m.cluster_secret);
  hub_->SetPolicy(std::make_unique<NodePolicy>(config_, "master"));  // configured servers only
  if (m.channel_tls.enabled) {
    Status tls = hub_->EnableTls(m.channel_tls);
    if (!tls.ok()) return tls;
  }
  Status st = hub_->Listen(m.roothost, m.rootport);
  if (!st.ok()) return st;

  Supervisor::Options opt;
  opt.conf_path = config_.path;
  opt.state = state_.get();
  opt.log_level = log_level_;
  opt.limits = m;
  sup_ = std::make_unique<Supervisor>(&loop_, opt, [this](const std::string& name, pid_t pid) { AskStop(name, pid); });
  hub_->AddPeerCallback([this](const std::string& node, bool up) {
    if (up) sup_->MarkRunning(node);
    UpdateService();
  });

  if (m.webport != 0) {
    admin_ = std::make_unique<AdminHttp>(&loop_, m.admin_token, AdminLimitsOf(m));
    InstallRoutes();
    st = admin_->Listen(m.admin_host, m.webport);
    if (!st.ok()) return st;
  } else {
    LOG_WARN("master", "no master.webport: the cluster admin API is off");
  }

  loop_.OnSignal(SIGTERM, [this] { Stop("SIGTERM"); });
  loop_.OnSignal(SIGINT, [this] { Stop("SIGINT"); });
  loop_.OnSignal(SIGHUP, [this] { ReopenLogs("SIGHUP"); });
  sup_->Install();
  std::vector<std::string> remote;
  for (const auto& [name, sc] : config_.servers) {
    if (IsLocalHost(sc.host)) sup_->Add(name, sc.plugins);
    else remote.push_back(name + "@" + sc.host);
  }
  if (!remote.empty())
    LOG_INFO("master", "not on this machine, expected to run there with --server: %s", Joined(remote).c_str());
  LOG_INFO("master", "master started (pid %d, channel root %s:%u, admin %s:%u); starting %zu servers", getpid(),
           m.roothost.c_str(), hub_->port(), m.admin_host.c_str(), admin_ ? admin_->port() : 0,
           sup_->children().size());
  sup_->StartAll();
  if (systemd::Enabled()) {
    systemd::StartWatchdog(&loop_);
    // Links tell of servers coming up; exits and restarts are seen here.
    loop_.RunEvery(1.0, [this] { UpdateService(); });
    UpdateService();  // no local server at all: ready now
  }
  return Status::OK();
}

void Master::Run() { loop_.Run(); }

void Master::Stop(const std::string& why) {
  if (stopping_) {
    LOG_INFO("master", "%s: already stopping", why.c_str());
    return;
  }
  stopping_ = true;
  LOG_INFO("master", "stopping the cluster (%s)", why.c_str());
  systemd::Stopping("stopping the cluster (" + why + ")");
  sup_->StopAll([this] {
    LOG_INFO("master", "every server has stopped; master exits");
    // A moment for the last admin answers (POST /stop) to leave the socket.
    loop_.RunAfter(0.1, [this] { loop_.Quit(); });
  });
}

void Master::AskStop(const std::string& name, pid_t pid) {
  if (!hub_->IsConnected(name)) {
    kill(pid, SIGTERM);  // not linked (yet): the server's SIGTERM handler stops it the same way
    return;
  }
  hub_->CallDetailed(
      name, "lampyr.stop", "",
      [this, name, pid](CallError err, Status st, std::string) {
        // Link down / timeout: it is exiting, or hung (the kill timer covers
        // that). Anything else (an old build without lampyr.stop): SIGTERM.
        if (err == CallError::kNone || err == CallError::kLinkDown || err == CallError::kTimeout) return;
        const Supervisor::Child* c = sup_->Find(name);
        if (c && c->pid == pid) {
          LOG_WARN("master", "lampyr.stop on %s failed (%s): SIGTERM", name.c_str(), st.message().c_str());
          kill(pid, SIGTERM);
        }
      },
      kStatusTimeoutS);
}

// The master's own file now; each server it runs gets SIGHUP and reopens
// its own (a server that cannot reopen keeps its old file and logs why).
// Servers of other machines rotate there: SIGHUP to their lampyr@ unit.
Json::Value Master::ReopenLogs(const std::string& why) {
  std::string err;
  const bool ok = log::Reopen(&err);
  Json::Value signalled(Json::arrayValue);
  for (const auto& [name, c] : sup_->children()) {
    if (c.pid > 0 && kill(c.pid, SIGHUP) == 0) signalled.append(name);
  }
  Json::Value v(Json::objectValue);
  v["ok"] = ok;
  v["servers"] = signalled;
  if (ok) {
    LOG_INFO("master", "log file reopened (%s); asked %u servers to reopen theirs", why.c_str(), signalled.size());
    v["message"] = "master log reopened; " + std::to_string(signalled.size()) + " servers asked to reopen theirs";
  } else {
    LOG_ERROR("master", "%s (%s); still writing to the old file", err.c_str(), why.c_str());
    v["error"] = err;
  }
  return v;
}

// READY=1 once every server of this machine is running (linked to the
// master, so it bound its listeners and loaded its plugins); a STATUS= line
// whenever the summary changes. Later crashes do not withdraw readiness
// (systemd has no such message): they show in STATUS and in /status.
void Master::UpdateService() {
  if (!systemd::Enabled() || stopping_) return;
  size_t running = 0;
  std::vector<std::string> other;
  for (const auto& [name, c] : sup_->children()) {
    if (c.state == Supervisor::State::kRunning) ++running;
    else other.push_back(name + " " + Supervisor::StateName(c.state));
  }
  const size_t total = sup_->children().size();
  std::string text = std::to_string(running) + " of " + std::to_string(total) + " servers running";
  if (!other.empty()) text += " (" + Joined(other) + ")";
  if (!ready_ && running == total) {
    ready_ = true;
    service_status_ = text;
    LOG_INFO("master", "every local server is up: telling systemd READY=1");
    systemd::Ready(text);
    return;
  }
  if (text != service_status_) {
    service_status_ = text;
    systemd::SetStatus(text);
  }
}

std::vector<std::string> Master::LinkedServers() const {
  std::vector<std::string> v;
  for (const auto& [name, sc] : config_.servers)
    if (hub_->IsConnected(name)) v.push_back(name);
  return v;
}

void Master::CallEach(const std::vector<std::string>& names, const std::string& method, const std::string& args,
                      double timeout_s, std::function<void(Results)> done) {
  struct Gather {
    Results results;
    size_t left = 0;
    std::function<void(Results)> done;
  };
  auto g = std::make_shared<Gather>();
  g->results.resize(names.size());
  g->left = names.size();
  g->done = std::move(done);
  if (names.empty()) {
    g->done({});
    return;
  }
  for (size_t i = 0; i < names.size(); ++i) {
    hub_->Call(
        names[i], method, args,
        [g, i](Status st, std::string reply) {
          g->results[i] = {st, std::move(reply)};
          if (--g->left == 0) g->done(std::move(g->results));
        },
        timeout_s);
  }
}

void Master::InstallRoutes() {
  admin_->Route("GET", "/status", false, [this](const AdminRequest&, AdminHttp::Done done) { HandleStatus(done); });
  admin_->Route("POST", "/reload", true,
                [this](const AdminRequest& req, AdminHttp::Done done) { HandleReload(req, done); });
  admin_->Route("POST", "/restart", true,
                [this](const AdminRequest& req, AdminHttp::Done done) { HandleRestart(req, done); });
  admin_->Route("POST", "/stop", true, [this](const AdminRequest& req, AdminHttp::Done done) {
    if (!req.json.isNull() && !(req.json.isObject() && req.json.empty())) {
      done(400, ErrorJson("POST /stop takes no arguments (an empty body or {})"));
      return;
    }
    Json::Value v(Json::objectValue);
    v["ok"] = true;
    v["message"] = stopping_ ? "the cluster is already stopping" : "cluster stopping";
    done(200, v);
    // Answer first: the stop runs on a later turn.
    loop_.RunAfter(0, [this, peer = req.peer] { Stop("POST /stop from " + peer); });
  });
  admin_->Route("POST", "/reopen-logs", true, [this](const AdminRequest& req, AdminHttp::Done done) {
    if (!req.json.isNull() && !(req.json.isObject() && req.json.empty())) {
      done(400, ErrorJson("POST /reopen-logs takes no arguments (an empty body or {})"));
      return;
    }
    Json::Value v = ReopenLogs("POST /reopen-logs from " + req.peer);
    done(v["ok"].asBool() ? 200 : 500, v);
  });
  admin_->RouteText("GET", "/metrics", false,
                    [this](const AdminRequest&, AdminHttp::TextDone done) { HandleMetrics(done); });
}

void Master::HandleStatus(AdminHttp::Done done) {
  const std::vector<std::string> linked = LinkedServers();
  CallEach(linked, "lampyr.status", "", kStatusTimeoutS, [this, linked, done](Results results) {
    Json::Value out(Json::objectValue);
    out["servers"] = Json::Value(Json::arrayValue);
    for (const auto& [name, sc] : config_.servers) {
      Json::Value v(Json::objectValue);
      auto it = std::find(linked.begin(), linked.end(), name);
      if (it != linked.end()) {
        const auto& [st, reply] = results[it - linked.begin()];
        Json::Value own;
        if (st.ok() && ParseJson(reply, &own) && own.isObject()) v = own;
        else v["error"] = "status unavailable: " + (st.ok() ? std::string("not JSON") : st.message());
      }
      if (!v.isMember("plugins")) v["plugins"] = Json::Value(Json::arrayValue);
      if (!v.isMember("links")) v["links"] = Json::Value(Json::arrayValue);
      if (!v.isMember("sessions")) v["sessions"] = 0;
      // The master's view wins over the server's own (pid, state, restarts, uptime).
      if (const Supervisor::Child* c = sup_->Find(name)) {
        const Json::Value view = sup_->ViewJson(*c);
        for (const auto& key : view.getMemberNames()) v[key] = view[key];
        v["supervised"] = true;
      } else {
        v["name"] = name;
        v["state"] = it != linked.end() ? "running" : "unreachable";
        v["supervised"] = false;
        v["host"] = sc.host;
      }
      out["servers"].append(v);
    }
    Json::Value m(Json::objectValue);
    m["pid"] = static_cast<Json::Int64>(getpid());
    m["state"] = stopping_ ? "stopping" : "running";
    m["uptime_s"] = static_cast<Json::Int64>((EventLoop::NowMicros() - started_us_) / 1000000);
    m["links"] = hub_->LinksJson();
    m["version"] = Version();
    m["sdk_abi"] = SdkAbiVersion();
    out["master"] = m;
    done(200, out);
  });
}

void Master::HandleReload(const AdminRequest& req, AdminHttp::Done done) {
  std::string plugin, server;
  Status st = ParseReloadBody(req.json, &plugin, &server);
  if (!st.ok()) {
    done(400, ErrorJson(st.message()));
    return;
  }
  if (stopping_) {
    done(409, ErrorJson("the cluster is stopping"));
    return;
  }
  std::vector<std::string> names;
  for (const auto& [name, sc] : config_.servers) names.push_back(name);
  auto runs = [&](const ServerConfig& sc) {
    return std::find(sc.plugins.begin(), sc.plugins.end(), plugin) != sc.plugins.end();
  };
  std::vector<std::string> targets;
  if (!server.empty()) {
    const ServerConfig* sc = config_.FindServer(server);
    if (!sc) {
      done(404, ErrorJson("no such server: " + server + " (servers: " + Joined(names) + ")"));
      return;
    }
    if (!plugin.empty() && !runs(*sc)) {
      done(404, ErrorJson("server " + server + " does not run plugin '" + plugin + "'"));
      return;
    }
    targets.push_back(server);
  } else {
    for (const auto& [name, sc] : config_.servers)
      if (plugin.empty() ? !sc.plugins.empty() : runs(sc)) targets.push_back(name);
    if (!plugin.empty() && targets.empty()) {
      done(404, ErrorJson("no server runs plugin '" + plugin + "'"));
      return;
    }
  }
  LOG_INFO("master", "reload of %s on %s", plugin.empty() ? "all plugins" : plugin.c_str(),
           targets.empty() ? "no server" : Joined(targets).c_str());

  Json::Value args(Json::objectValue);
  if (!plugin.empty()) args["plugin"] = plugin;
  // Staged: one server after the other, in name order. Each server's result
  // stands on its own; a refusal does not undo what others already did.
  struct Run {
    std::vector<std::string> targets;
    size_t next = 0;
    Json::Value results{Json::arrayValue};
    std::string args;
    AdminHttp::Done done;
    std::function<void()> step;
  };
  auto run = std::make_shared<Run>();
  run->targets = std::move(targets);
  run->args = AdminJsonText(args);
  run->done = std::move(done);
  std::weak_ptr<Run> weak = run;
  run->step = [this, weak] {
    auto r = weak.lock();
    if (!r) return;
    if (r->next == r->targets.size()) {
      size_t ok = 0;
      for (const auto& res : r->results) ok += res["ok"].asBool() ? 1 : 0;
      const bool all_ok = ok == r->results.size();
      Json::Value v(Json::objectValue);
      v["ok"] = all_ok;
      v["results"] = r->results;
      if (r->results.empty()) {
        v["note"] = "no server runs plugins: nothing to reload";
      } else if (all_ok) {
        v["note"] = "reloaded server by server; every server accepted";
      } else {
        v["note"] = std::to_string(r->results.size() - ok) + " of " + std::to_string(r->results.size()) +
                    " servers refused and keep serving their previous build; the reload is staged server by "
                    "server and nothing was undone: servers that accepted (" + std::to_string(ok) +
                    ") serve the new build";
      }
      auto finish = std::move(r->done);
      r->step = nullptr;  // breaks the cycle step -> run
      finish(all_ok ? 200 : 409, v);
      return;
    }
    const std::string name = r->targets[r->next++];
    auto fail = [&](const std::string& why) {
      Json::Value res(Json::objectValue);
      res["server"] = name;
      res["ok"] = false;
      res["error"] = why;
      res["plugins"] = Json::Value(Json::arrayValue);
      r->results.append(res);
    };
    if (!hub_->IsConnected(name)) {
      const Supervisor::Child* c = sup_->Find(name);
      fail("server " + name + " is not running (state " +
           (c ? Supervisor::StateName(c->state) : "unreachable") + ")");
      loop_.RunAfter(0, [r] { r->step(); });
      return;
    }
    hub_->Call(
        name, "lampyr.reload", r->args,
        [this, r, name](Status st, std::string reply) {
          Json::Value res;
          // A server's answer is checked before anything reads it: jsoncpp
          // throws on asBool() of a string.
          if (!st.ok() || !ParseJson(reply, &res) || !res.isObject() || !res["ok"].isBool()) {
            res = Json::Value(Json::objectValue);
            res["server"] = name;
            res["ok"] = false;
            res["error"] = st.ok() ? "bad answer from the server" : st.message();
            res["plugins"] = Json::Value(Json::arrayValue);
          }
          sup_->NoteReload(name, res);  // per plugin: a partial success counts for what succeeded
          r->results.append(res);
          r->step();
        },
        kReloadTimeoutS);
  };
  // The run lives as long as a pending call or timer holds it (step itself
  // only holds it weakly, or it would never be freed).
  loop_.RunAfter(0, [run] { run->step(); });
}

void Master::HandleRestart(const AdminRequest& req, AdminHttp::Done done) {
  const Json::Value& b = req.json;
  if (!b.isObject() || !b["server"].isString() || b.size() != 1) {
    done(400, ErrorJson("body must be {\"server\": NAME}"));
    return;
  }
  const std::string name = b["server"].asString();
  if (!config_.FindServer(name)) {
    std::vector<std::string> names;
    for (const auto& [n, sc] : config_.servers) names.push_back(n);
    done(404, ErrorJson("no such server: " + name + " (servers: " + Joined(names) + ")"));
    return;
  }
  if (!Supervised(name)) {
    done(409, ErrorJson("server " + name + " runs on another machine (" + config_.FindServer(name)->host +
                        "): restart it there"));
    return;
  }
  if (stopping_) {
    done(409, ErrorJson("the cluster is stopping"));
    return;
  }
  sup_->Restart(name, [name, done](Status st, pid_t old_pid, pid_t new_pid) {
    if (!st.ok()) {
      done(409, ErrorJson(st.message()));
      return;
    }
    Json::Value v(Json::objectValue);
    v["ok"] = true;
    v["server"] = name;
    v["previous_pid"] = old_pid ? Json::Value(static_cast<Json::Int64>(old_pid)) : Json::Value();
    v["pid"] = static_cast<Json::Int64>(new_pid);
    v["message"] = "restarted " + name + " (pid " + (old_pid ? std::to_string(old_pid) : std::string("-")) +
                   " -> " + std::to_string(new_pid) + ")";
    done(200, v);
  });
}

void Master::HandleMetrics(AdminHttp::TextDone done) {
  const std::vector<std::string> linked = LinkedServers();
  CallEach(linked, "lampyr.metrics", "", kStatusTimeoutS, [linked, done](Results results) {
    std::vector<std::pair<std::string, std::string>> texts;
    for (size_t i = 0; i < linked.size(); ++i) {
      if (results[i].first.ok()) texts.emplace_back(linked[i], std::move(results[i].second));
      else LOG_WARN("master", "metrics of %s unavailable: %s", linked[i].c_str(), results[i].first.message().c_str());
    }
    done(200, MergePrometheus(Metrics().RenderPrometheus(), texts));
  });
}

}  // namespace lampyr
