// lampyrctl: talks to the admin API of the master (or of one server's
// webport). Human-readable output by default, raw JSON with --json.
// Exit codes: 0 success, 1 reload refused, 2 usage error, 3 connection or
// HTTP error (including 401).
#include <json/value.h>
#include <json/writer.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "admin/http_client.h"
#include "core/config.h"
#include "core/credentials.h"
#include "core/json_text.h"
#include "core/version.h"

namespace {

constexpr int kOk = 0;
constexpr int kRefused = 1;
constexpr int kUsage = 2;
constexpr int kFailed = 3;

void Usage(FILE* out) {
  fprintf(out,
          "usage: lampyrctl [--url URL | --conf FILE] [--token T] [--json] [--timeout S] COMMAND\n"
          "commands:\n"
          "  status                      servers, plugins (version, generation, draining), links\n"
          "  reload [PLUGIN] [--server S] hot-reload one plugin or all, on one server or all\n"
          "  stop                        graceful stop of the cluster (master)\n"
          "  restart SERVER              restart one server (master)\n"
          "  metrics                     Prometheus metrics text\n"
          "  reopen-logs                 reopen log files (after logrotate moved them)\n"
          "options:\n"
          "  --url URL      admin API (default http://127.0.0.1:9998, env LAMPYR_ADMIN_URL)\n"
          "  --conf FILE    take the master's address (admin_host:webport) and admin_token from the\n"
          "                 cluster config instead\n"
          "  --token T      admin token for reload/stop/restart/reopen-logs (default: the systemd\n"
          "                 credential admin_token, then env LAMPYR_ADMIN_TOKEN, then --conf's\n"
          "                 master.admin_token; prefer those: arguments are visible to other users)\n"
          "  --token-file F read the admin token from file F (e.g. /etc/lampyr/credentials/admin_token)\n"
          "  --json         print the raw JSON answer\n"
          "  --timeout S    seconds to wait for an answer (default 60)\n"
          "exit status: 0 ok, 1 reload refused, 2 usage error, 3 connection/HTTP error\n");
}

// Whatever answers on the URL may send anything: limits, never an exception.
bool ParseJson(const std::string& text, Json::Value* out) {
  lampyr::JsonLimits limits;
  limits.max_bytes = 64u << 20;
  return lampyr::ParseJsonText(text, out, limits).ok();
}

std::string Pretty(const Json::Value& v) {
  Json::StreamWriterBuilder b;
  b["indentation"] = "  ";
  b["emitUTF8"] = true;
  return Json::writeString(b, v);
}

std::string Duration(int64_t s) {
  char buf[64];
  if (s < 60) snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  else if (s < 3600) snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else if (s < 86400)
    snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s % 3600 / 60));
  else snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(s / 86400), static_cast<long long>(s % 86400 / 3600));
  return buf;
}

std::string UtcTime(int64_t unix_s) {
  if (unix_s <= 0) return "-";
  time_t t = static_cast<time_t>(unix_s);
  tm tmv;
  gmtime_r(&t, &tmv);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tmv);
  return buf;
}

std::string Str(const Json::Value& v, const char* key, const char* dflt = "-") {
  const Json::Value& x = v[key];
  if (x.isString()) return x.asString();
  if (x.isIntegral()) return std::to_string(x.asInt64());
  if (x.isBool()) return x.asBool() ? "true" : "false";
  return dflt;
}

void PrintStatus(const Json::Value& v) {
  const Json::Value& servers = v["servers"];
  if (!servers.isArray() || servers.empty()) {
    printf("no servers\n");
    return;
  }
  printf("%-16s %-8s %-10s %-8s %-9s %-8s %s\n", "SERVER", "PID", "STATE", "RESTARTS", "UPTIME", "SESSIONS", "LINKS");
  for (const auto& s : servers) {
    std::string links;
    for (const auto& l : s["links"]) {
      if (!links.empty()) links += " ";
      links += Str(l, "peer", "?") + (l["direction"].asString() == "in" ? "<" : ">") + Str(l, "state", "?");
    }
    printf("%-16s %-8s %-10s %-8s %-9s %-8s %s\n", Str(s, "name", "?").c_str(), Str(s, "pid").c_str(),
           Str(s, "state").c_str(), Str(s, "restarts", "0").c_str(),
           s["uptime_s"].isIntegral() ? Duration(s["uptime_s"].asInt64()).c_str() : "-",
           Str(s, "sessions", "0").c_str(), links.empty() ? "-" : links.c_str());
    if (s.isMember("error")) printf("  error: %s\n", Str(s, "error").c_str());
    // The master's view: why it last exited, probation and rollbacks.
    if (s["last_exit"].isString())
      printf("  last exit: %s at %s\n", s["last_exit"].asCString(),
             s["last_exit_at"].isNumeric() ? UtcTime(s["last_exit_at"].asInt64()).c_str() : "-");
    if (s["last_crash"].isObject()) {
      const Json::Value& c = s["last_crash"];
      printf("  last crash: %s in %s%s%s\n", Str(c, "signal_name", Str(c, "reason", "?").c_str()).c_str(),
             c["plugin"].isString() ? "plugin " : "host code",
             c["plugin"].isString() ? (c["plugin"].asString() + " generation " + Str(c, "generation", "?")).c_str() : "",
             c["what"].isString() && !c["what"].asString().empty() ? (" while running " + c["what"].asString()).c_str()
                                                                   : "");
    }
    if (s["probation"].isObject()) {
      std::string plugins;
      for (const auto& name : s["probation"]["plugins"]) plugins += " " + name.asString();
      printf("  probation: %ss left; a crash rolls back to their last build that passed:%s\n",
             Str(s["probation"], "remaining_s").c_str(), plugins.c_str());
    }
    for (const auto& name : s["rollback"]) printf("  rollback override: %s\n", name.asCString());
    for (const auto& r : s["rolled_back"])
      printf("  rolled back: %s to %s at %s\n", Str(r, "plugin", "?").c_str(), Str(r, "to", "?").c_str(),
             r["at"].isNumeric() ? UtcTime(r["at"].asInt64()).c_str() : "-");
    for (const auto& p : s["plugins"]) {
      printf("  plugin %-14s %-10s generation %-4s %-8s loaded %s\n", Str(p, "name", "?").c_str(),
             Str(p, "version").c_str(), Str(p, "generation").c_str(), Str(p, "state", "").c_str(),
             p["loaded_at"].isNumeric() ? UtcTime(p["loaded_at"].asInt64()).c_str() : "-");
      for (const auto& d : p["draining"]) {
        printf("    draining generation %s: %s pending, %s pinned\n", Str(d, "generation").c_str(),
               Str(d, "pending", "0").c_str(), Str(d, "pinned", "0").c_str());
      }
    }
  }
}

// Prints one line per server and plugin; returns whether everything succeeded.
bool PrintReload(const Json::Value& v) {
  bool all_ok = v.get("ok", false).asBool();
  const Json::Value& results = v["results"];
  if (!results.isArray() || results.empty()) {
    printf("%s\n", all_ok ? "ok (nothing to reload)" : "REFUSED: no server reported");
    return all_ok;
  }
  for (const auto& r : results) {
    const std::string server = Str(r, "server", "?");
    const bool ok = r.get("ok", false).asBool();
    if (!ok) all_ok = false;
    const Json::Value& plugins = r["plugins"];
    if (!plugins.isArray() || plugins.empty()) {
      if (ok) printf("%s: ok (no plugins)\n", server.c_str());
      else printf("%s: REFUSED: %s\n", server.c_str(), Str(r, "error", "reload refused").c_str());
      continue;
    }
    for (const auto& p : plugins) {
      const std::string name = Str(p, "plugin", "?");
      if (p.get("ok", false).asBool()) {
        printf("%s %s: ok %s -> %s (generation %s)\n", server.c_str(), name.c_str(), Str(p, "old_version").c_str(),
               Str(p, "new_version").c_str(), Str(p, "generation").c_str());
      } else {
        printf("%s %s: REFUSED: %s\n", server.c_str(), name.c_str(), Str(p, "error", "reload refused").c_str());
      }
    }
    // A server-level error not attributed to any plugin.
    if (!ok && r.isMember("error") && !r["error"].asString().empty()) {
      bool any_plugin_failed = false;
      for (const auto& p : plugins) any_plugin_failed |= !p.get("ok", false).asBool();
      if (!any_plugin_failed) printf("%s: REFUSED: %s\n", server.c_str(), r["error"].asString().c_str());
    }
  }
  // The master's word on a partial reload (what was kept, what not).
  if (!all_ok && v["note"].isString()) printf("note: %s\n", v["note"].asCString());
  return all_ok;
}

// Reads the master's admin address and token from a cluster config. Plugin
// files need not exist here: lampyrctl may run on another machine.
bool FromConfig(const std::string& file, std::string* url, std::string* token) {
  std::string text;
  if (lampyr::Status st = lampyr::ReadConfigFile(file, &text); !st.ok()) {
    fprintf(stderr, "lampyrctl: --conf: %s: %s\n", file.c_str(), st.message().c_str());
    return false;
  }
  lampyr::Config config;
  std::vector<lampyr::ConfigIssue> issues;
  std::string dir = file.find('/') == std::string::npos ? "." : file.substr(0, file.rfind('/'));
  lampyr::Status st = lampyr::ParseConfig(text, dir, &config, &issues, /*apply_env=*/true, /*check_files=*/false);
  if (!st.ok()) {
    for (const auto& i : issues)
      if (!i.warning) fprintf(stderr, "%s: %s\n", file.c_str(), i.ToString().c_str());
    fprintf(stderr, "lampyrctl: --conf: %s\n", st.message().c_str());
    return false;
  }
  if (config.master.webport == 0) {
    fprintf(stderr, "lampyrctl: --conf: %s has no master.webport; pass --url\n", file.c_str());
    return false;
  }
  // The admin API binds master.admin_host (not roothost, the channel's).
  std::string host = config.master.admin_host;
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  *url = "http://" + host + ":" + std::to_string(config.master.webport);
  *token = config.master.admin_token;
  return true;
}

}  // namespace

static int Run(int argc, char** argv) {
  std::string url = getenv("LAMPYR_ADMIN_URL") ? getenv("LAMPYR_ADMIN_URL") : "http://127.0.0.1:9998";
  std::string token = getenv("LAMPYR_ADMIN_TOKEN") ? getenv("LAMPYR_ADMIN_TOKEN") : "";
  // Under systemd (ExecReload=) the credential the unit loaded wins over
  // the environment, as in the server (core/credentials.h).
  {
    std::string cred;
    bool found = false;
    if (lampyr::Status cs = lampyr::ReadCredential("admin_token", &cred, &found); !cs.ok()) {
      fprintf(stderr, "lampyrctl: %s\n", cs.message().c_str());
      return kUsage;
    }
    if (found) token = cred;
  }
  bool json = false;
  double timeout_s = 60;
  std::string server, conf, token_arg;
  bool url_given = false, token_given = false;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string* out) -> bool {
      if (i + 1 >= argc) {
        fprintf(stderr, "lampyrctl: %s needs a value\n", a.c_str());
        return false;
      }
      *out = argv[++i];
      return true;
    };
    if (a == "--url") {
      if (!value(&url)) return kUsage;
      url_given = true;
    } else if (a == "--conf") {
      if (!value(&conf)) return kUsage;
    } else if (a == "--token") {
      if (!value(&token_arg)) return kUsage;
      token_given = true;
    } else if (a == "--token-file") {
      std::string file, text;
      if (!value(&file)) return kUsage;
      if (lampyr::Status ts = lampyr::ReadConfigFile(file, &text); !ts.ok()) {
        fprintf(stderr, "lampyrctl: --token-file %s: %s\n", file.c_str(), ts.message().c_str());
        return kUsage;
      }
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
      token_arg = text;
      token_given = true;
    } else if (a == "--server") {
      if (!value(&server)) return kUsage;
    } else if (a == "--timeout") {
      std::string t;
      if (!value(&t)) return kUsage;
      char* end = nullptr;
      timeout_s = strtod(t.c_str(), &end);
      if (!end || *end || !(timeout_s > 0)) {
        fprintf(stderr, "lampyrctl: --timeout: expected a positive number of seconds, got '%s'\n", t.c_str());
        return kUsage;
      }
    } else if (a == "--json") {
      json = true;
    } else if (a == "--version") {
      printf("lampyrctl %s\n", lampyr::Version());
      return kOk;
    } else if (a == "--help" || a == "-h") {
      Usage(stdout);
      return kOk;
    } else if (a.size() > 1 && a[0] == '-') {
      fprintf(stderr, "lampyrctl: unknown option %s\n", a.c_str());
      Usage(stderr);
      return kUsage;
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) {
    Usage(stderr);
    return kUsage;
  }
  if (!conf.empty()) {
    if (url_given) {
      fprintf(stderr, "lampyrctl: --url and --conf both name the API; pass one\n");
      return kUsage;
    }
    std::string conf_token;
    if (!FromConfig(conf, &url, &conf_token)) return kUsage;
    if (token.empty()) token = conf_token;  // the environment wins over the file
  }
  if (token_given) token = token_arg;
  const std::string cmd = args[0];
  std::string method = "GET", path, body;
  bool mutating = false;
  auto extra_args = [&](size_t max) {
    if (args.size() - 1 > max) {
      fprintf(stderr, "lampyrctl: %s: unexpected argument '%s'\n", cmd.c_str(), args[max + 1].c_str());
      return false;
    }
    return true;
  };
  if (!server.empty() && cmd != "reload") {
    fprintf(stderr, "lampyrctl: --server only applies to reload\n");
    return kUsage;
  }
  if (cmd == "status") {
    if (!extra_args(0)) return kUsage;
    path = "/status";
  } else if (cmd == "metrics") {
    if (!extra_args(0)) return kUsage;
    path = "/metrics";
  } else if (cmd == "reload") {
    if (!extra_args(1)) return kUsage;
    method = "POST";
    path = "/reload";
    mutating = true;
    Json::Value b(Json::objectValue);
    if (args.size() > 1) b["plugin"] = args[1];
    if (!server.empty()) b["server"] = server;
    Json::StreamWriterBuilder w;
    w["indentation"] = "";
    body = Json::writeString(w, b);
  } else if (cmd == "stop") {
    if (!extra_args(0)) return kUsage;
    method = "POST";
    path = "/stop";
    mutating = true;
    body = "{}";
  } else if (cmd == "restart") {
    if (args.size() != 2) {
      fprintf(stderr, "lampyrctl: restart needs exactly one SERVER\n");
      return kUsage;
    }
    method = "POST";
    path = "/restart";
    mutating = true;
    Json::Value b(Json::objectValue);
    b["server"] = args[1];
    Json::StreamWriterBuilder w;
    w["indentation"] = "";
    body = Json::writeString(w, b);
  } else if (cmd == "reopen-logs") {
    if (!extra_args(0)) return kUsage;
    method = "POST";
    path = "/reopen-logs";
    mutating = true;
    body = "{}";
  } else {
    fprintf(stderr, "lampyrctl: unknown command '%s'\n", cmd.c_str());
    Usage(stderr);
    return kUsage;
  }

  lampyr::HttpUrl u;
  lampyr::Status st = lampyr::ParseHttpUrl(url, &u);
  if (!st.ok()) {
    fprintf(stderr, "lampyrctl: --url: %s\n", st.message().c_str());
    return kUsage;
  }
  std::vector<std::pair<std::string, std::string>> headers;
  if (mutating && !token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  lampyr::HttpResponse resp;
  st = lampyr::HttpCall(u.host, u.port, method, u.base_path + path, body, headers, &resp,
                        static_cast<int>(timeout_s * 1000));
  if (!st.ok()) {
    fprintf(stderr, "lampyrctl: %s\n", st.message().c_str());
    return kFailed;
  }

  if (path == "/metrics") {
    if (resp.status != 200) {
      fprintf(stderr, "lampyrctl: HTTP %d: %s\n", resp.status, resp.body.c_str());
      return kFailed;
    }
    fwrite(resp.body.data(), 1, resp.body.size(), stdout);
    return kOk;
  }

  Json::Value v;
  const bool parsed = ParseJson(resp.body, &v);
  if (resp.status == 401) {
    fprintf(stderr, "lampyrctl: unauthorized: missing or wrong token%s\n",
            token.empty() ? " (set LAMPYR_ADMIN_TOKEN or pass --token)" : "");
    return kFailed;
  }
  const bool reload_answer = path == "/reload" && (resp.status == 200 || resp.status == 409) && parsed &&
                             v.isObject() && v.isMember("results");
  if (resp.status / 100 != 2 && !reload_answer) {
    std::string why = parsed && v.isObject() && v["error"].isString() ? v["error"].asString() : resp.body;
    while (!why.empty() && why.back() == '\n') why.pop_back();
    fprintf(stderr, "lampyrctl: HTTP %d: %s\n", resp.status, why.c_str());
    return kFailed;
  }
  if (!parsed) {
    fprintf(stderr, "lampyrctl: the answer is not JSON: %s\n", resp.body.c_str());
    return kFailed;
  }
  if (json) printf("%s\n", Pretty(v).c_str());

  if (cmd == "status") {
    if (!json) PrintStatus(v);
    return kOk;
  }
  if (cmd == "reload") {
    bool ok = json ? (resp.status == 200 && v.get("ok", false).asBool()) : PrintReload(v);
    if (resp.status == 409) ok = false;
    if (!ok && json) fprintf(stderr, "lampyrctl: reload refused\n");
    return ok ? kOk : kRefused;
  }
  if (!json) {
    std::string msg = v.isObject() && v["message"].isString() ? v["message"].asString() : "ok";
    printf("%s\n", msg.c_str());
  }
  return kOk;
}

int main(int argc, char** argv) {
  // Whatever answers on the URL may send JSON of unexpected types, which
  // jsoncpp's accessors throw on: a clear error, not an abort.
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    fprintf(stderr, "lampyrctl: unexpected answer: %s\n", e.what());
    return kFailed;
  }
}
