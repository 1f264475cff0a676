#include "admin/server_admin.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "admin/admin_http.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "core/version.h"
#include "core/metrics.h"
#include "net/net_server.h"
#include "server/server.h"

#include "channel/channel_hub.h"
#include "plugin/plugin_host.h"

namespace lampyr {

namespace {

// Process start, for uptime_s (static init runs before main).
const int64_t kProcessStartMicros = EventLoop::NowMicros();

Json::Value PluginsOf(Server* s) {
  return s->plugins() ? s->plugins()->StatusJson() : Json::Value(Json::arrayValue);
}

Json::Value LinksOf(Server* s) {
  return s->channels() ? s->channels()->LinksJson() : Json::Value(Json::arrayValue);
}

// Calls `done` with PluginHost::Reload's answer, or returns false when the
// server runs no plugins.
bool ReloadVia(Server* s, const std::string& plugin, std::function<void(Json::Value)>& done) {
  if (!s->plugins()) return false;
  s->plugins()->Reload(plugin, std::move(done));
  return true;
}

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "none" : out;
}

// Turns PluginHost's {"ok","plugins"} into a /reload "results" element.
Json::Value ResultFrom(const std::string& server, const Json::Value& host_answer) {
  Json::Value r(Json::objectValue);
  r["server"] = server;
  r["ok"] = host_answer.get("ok", false).asBool();
  Json::Value plugins = host_answer.get("plugins", Json::Value(Json::arrayValue));
  if (!plugins.isArray()) plugins = Json::Value(Json::arrayValue);
  std::string error = host_answer.get("error", "").asString();
  if (!r["ok"].asBool() && error.empty()) {
    for (const auto& p : plugins) {
      if (p.get("ok", true).asBool()) continue;
      if (!error.empty()) error += "; ";
      error += p.get("plugin", "?").asString() + ": " + p.get("error", "refused").asString();
    }
    if (error.empty()) error = "reload refused";
  }
  r["error"] = error;
  r["plugins"] = plugins;
  return r;
}

Json::Value ErrorJson(const std::string& message) {
  Json::Value v(Json::objectValue);
  v["error"] = message;
  return v;
}

}  // namespace

Json::Value ServerStatusJson(Server* server) {
  Json::Value s(Json::objectValue);
  s["name"] = server->server_config().name;
  s["pid"] = static_cast<Json::Int64>(getpid());
  s["state"] = "running";
  s["restarts"] = 0;  // a lone server does not restart itself; the master fills this in
  s["uptime_s"] = static_cast<Json::Int64>((EventLoop::NowMicros() - kProcessStartMicros) / 1000000);
  s["sessions"] = static_cast<Json::UInt64>(server->net() ? server->net()->session_count() : 0);
  s["plugins"] = PluginsOf(server);
  s["links"] = LinksOf(server);
  // The host build: in a mixed-version cluster (a rolling upgrade, a
  // forgotten machine) the master's /status shows who runs what.
  s["version"] = Version();
  return s;
}

Status ParseReloadBody(const Json::Value& body, std::string* plugin, std::string* server) {
  plugin->clear();
  server->clear();
  if (body.isNull()) return Status::OK();
  if (!body.isObject()) return Status::Error("body must be a JSON object like {\"plugin\": \"room\"}");
  for (const auto& key : body.getMemberNames()) {
    if (key != "plugin" && key != "server")
      return Status::Error("unknown key \"" + key + "\" (expected \"plugin\" and/or \"server\")");
  }
  for (auto [key, out] : {std::pair{"plugin", plugin}, std::pair{"server", server}}) {
    const Json::Value& v = body[key];
    if (v.isNull()) continue;
    if (!v.isString()) return Status::Error(std::string(key) + ": expected a string");
    *out = v.asString();
  }
  return Status::OK();
}

void ServerReload(Server* server, const std::string& plugin, std::function<void(Json::Value result)> done) {
  const ServerConfig& self = server->server_config();
  auto fail = [&](const std::string& why) {
    Json::Value host_answer(Json::objectValue);
    host_answer["ok"] = false;
    host_answer["error"] = why;
    done(ResultFrom(self.name, host_answer));
  };
  if (!plugin.empty() && std::find(self.plugins.begin(), self.plugins.end(), plugin) == self.plugins.end()) {
    fail("server " + self.name + " does not run plugin '" + plugin + "' (it runs: " + Joined(self.plugins) + ")");
    return;
  }
  const std::string name = self.name;
  std::function<void(Json::Value)> on_done = [name, done](Json::Value host_answer) {
    done(ResultFrom(name, host_answer));
  };
  if (!ReloadVia(server, plugin, on_done)) {
    // "Reload everything" on a server without plugins: nothing to do.
    Json::Value nothing(Json::objectValue);
    nothing["ok"] = true;
    nothing["plugins"] = Json::Value(Json::arrayValue);
    on_done(nothing);
  }
}

void InstallServerAdmin(AdminHttp* http, Server* server) {
  // Make sure the series an operator looks for first exists even on a
  // server without a client port.
  Metrics().GetGauge("lampyr_sessions", "Open client sessions");

  http->Route("GET", "/status", false, [server](const AdminRequest&, AdminHttp::Done done) {
    Json::Value v(Json::objectValue);
    v["servers"] = Json::Value(Json::arrayValue);
    v["servers"].append(ServerStatusJson(server));
    done(200, v);
  });

  http->Route("POST", "/reload", true, [server](const AdminRequest& req, AdminHttp::Done done) {
    std::string plugin, target;
    Status st = ParseReloadBody(req.json, &plugin, &target);
    if (!st.ok()) {
      done(400, ErrorJson(st.message()));
      return;
    }
    const ServerConfig& self = server->server_config();
    if (!target.empty() && target != self.name) {
      done(404, ErrorJson("no server '" + target + "' here: this is the admin API of server " + self.name +
                          " (use the master's admin API to reach other servers)"));
      return;
    }
    if (!plugin.empty() && std::find(self.plugins.begin(), self.plugins.end(), plugin) == self.plugins.end()) {
      done(404, ErrorJson("server " + self.name + " does not run plugin '" + plugin +
                          "' (it runs: " + Joined(self.plugins) + ")"));
      return;
    }
    LOG_INFO("admin", "reload of %s on %s requested", plugin.empty() ? "all plugins" : plugin.c_str(),
             self.name.c_str());
    ServerReload(server, plugin, [done](Json::Value result) {
      Json::Value v(Json::objectValue);
      const bool ok = result["ok"].asBool();
      v["ok"] = ok;
      v["results"] = Json::Value(Json::arrayValue);
      v["results"].append(std::move(result));
      done(ok ? 200 : 409, v);
    });
  });

  http->Route("POST", "/reopen-logs", true, [server](const AdminRequest& req, AdminHttp::Done done) {
    if (!req.json.isNull() && !(req.json.isObject() && req.json.empty())) {
      done(400, ErrorJson("POST /reopen-logs takes no arguments (an empty body or {})"));
      return;
    }
    Status st = server->ReopenLogs("POST /reopen-logs from " + req.peer);
    Json::Value v(Json::objectValue);
    v["ok"] = st.ok();
    if (st.ok()) v["message"] = "log reopened";
    else v["error"] = st.message();
    done(st.ok() ? 200 : 500, v);
  });

  http->RouteText("GET", "/metrics", false, [](const AdminRequest&, AdminHttp::TextDone done) {
    done(200, Metrics().RenderPrometheus());
  });
}

}  // namespace lampyr
