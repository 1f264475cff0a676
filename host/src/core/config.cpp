#include "core/config.h"

#include "core/cpu_affinity.h"

#include <fcntl.h>
#include <json/reader.h>
#include <json/value.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <set>
#include <sstream>

#include "core/credentials.h"

namespace lampyr {
namespace fs = std::filesystem;

const ServerConfig* Config::FindServer(std::string_view name) const {
  auto it = servers.find(std::string(name));
  return it == servers.end() ? nullptr : &it->second;
}

const PluginConfig* Config::FindPlugin(std::string_view name) const {
  auto it = plugins.find(std::string(name));
  return it == plugins.end() ? nullptr : &it->second;
}

namespace {

// An empty key ({"": 1}) still gets a visible path: `""` (found by fuzz_config).
std::string Join(const std::string& base, const std::string& key) {
  const std::string k = key.empty() ? "\"\"" : key;
  return base.empty() ? k : base + "." + k;
}
std::string Index(const std::string& base, unsigned i) { return base + "[" + std::to_string(i) + "]"; }

// Walks the document, converting fields and collecting every problem with
// its JSON path. Converters leave the default in place when a field is
// absent or wrong, so validation can continue past the first error.
class Reader {
 public:
  explicit Reader(std::vector<ConfigIssue>* issues) : issues_(issues) {}

  void Error(const std::string& path, const std::string& reason) {
    issues_->push_back({path, reason, false});
    ++errors_;
  }
  void Warn(const std::string& path, const std::string& reason) { issues_->push_back({path, reason, true}); }
  int errors() const { return errors_; }

  bool IsObject(const Json::Value& v, const std::string& path) {
    if (v.isObject()) return true;
    Error(path, "expected object");
    return false;
  }

  void KnownKeys(const Json::Value& obj, const std::string& path, std::initializer_list<const char*> keys) {
    for (const auto& name : obj.getMemberNames()) {
      bool known = false;
      for (const char* k : keys) known = known || name == k;
      if (!known) Warn(Join(path, name), "unknown key, ignored");
    }
  }

  // Integer in [lo, hi]. Returns true when the key was present and valid.
  template <typename T>
  bool Int(const Json::Value& obj, const std::string& path, const char* key, int64_t lo, int64_t hi, T* out,
           bool required = false) {
    const std::string p = Join(path, key);
    if (!obj.isMember(key)) {
      if (required) Error(p, "required");
      return false;
    }
    const Json::Value& v = obj[key];
    if (!v.isIntegral() || !v.isInt64() || v.asInt64() < lo || v.asInt64() > hi) {
      Error(p, "expected integer " + std::to_string(lo) + ".." + std::to_string(hi));
      return false;
    }
    *out = static_cast<T>(v.asInt64());
    return true;
  }

  bool Port(const Json::Value& obj, const std::string& path, const char* key, uint16_t* out, bool required = false) {
    return Int(obj, path, key, 1, 65535, out, required);
  }

  bool String(const Json::Value& obj, const std::string& path, const char* key, std::string* out,
              bool required = false, bool nonempty = false) {
    const std::string p = Join(path, key);
    if (!obj.isMember(key)) {
      if (required) Error(p, "required");
      return false;
    }
    const Json::Value& v = obj[key];
    if (!v.isString()) {
      Error(p, "expected string");
      return false;
    }
    if (nonempty && v.asString().empty()) {
      Error(p, "must not be empty");
      return false;
    }
    *out = v.asString();
    return true;
  }

  bool Bool(const Json::Value& obj, const std::string& path, const char* key, bool* out) {
    if (!obj.isMember(key)) return false;
    const Json::Value& v = obj[key];
    // Firefly configs write db/mem as true/false or 1/0.
    if (v.isBool()) *out = v.asBool();
    else if (v.isIntegral() && (v.asInt64() == 0 || v.asInt64() == 1)) *out = v.asInt64() == 1;
    else {
      Error(Join(path, key), "expected boolean");
      return false;
    }
    return true;
  }

  bool Number(const Json::Value& obj, const std::string& path, const char* key, double lo, double hi, double* out) {
    if (!obj.isMember(key)) return false;
    const Json::Value& v = obj[key];
    if (!v.isNumeric() || v.asDouble() < lo || v.asDouble() > hi) {
      std::ostringstream os;
      os << "expected number " << lo << ".." << hi;
      Error(Join(path, key), os.str());
      return false;
    }
    *out = v.asDouble();
    return true;
  }

  bool StringList(const Json::Value& obj, const std::string& path, const char* key, std::vector<std::string>* out) {
    if (!obj.isMember(key)) return false;
    const Json::Value& v = obj[key];
    const std::string p = Join(path, key);
    if (!v.isArray()) {
      Error(p, "expected array of strings");
      return false;
    }
    for (Json::ArrayIndex i = 0; i < v.size(); ++i) {
      if (!v[i].isString() || v[i].asString().empty()) {
        Error(Index(p, i), "expected non-empty string");
        continue;
      }
      out->push_back(v[i].asString());
    }
    return true;
  }

 private:
  std::vector<ConfigIssue>* issues_;
  int errors_ = 0;
};

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  }
  return true;
}

std::string Resolve(const std::string& dir, const std::string& p) {
  if (p.empty()) return p;
  fs::path path(p);
  if (path.is_relative()) path = fs::path(dir) / path;
  return path.lexically_normal().string();
}

void ReadProtocol(Reader& r, const Json::Value& v, const std::string& dir, ProtocolConfig* p) {
  const std::string path = "protocol";
  if (!r.IsObject(v, path)) return;
  r.KnownKeys(v, path,
              {"head", "proto_version", "server_version", "max_body", "idle_timeout_s", "heartbeat_command",
               "max_connections", "max_output_bytes", "max_inflight", "error_command", "max_connections_per_ip",
               "output_high_water_bytes", "output_budget_bytes", "sndbuf_bytes", "rcvbuf_bytes", "rate", "ws_path",
               "ws_origins", "ws_tls"});
  if (v.isMember("head")) {
    const Json::Value& h = v["head"];
    if (!h.isArray() || h.size() != 4) {
      r.Error("protocol.head", "expected array of 4 integers 0..255");
    } else {
      for (Json::ArrayIndex i = 0; i < 4; ++i) {
        if (!h[i].isIntegral() || !h[i].isInt64() || h[i].asInt64() < 0 || h[i].asInt64() > 255)
          r.Error(Index("protocol.head", i), "expected integer 0..255");
        else
          p->head[i] = static_cast<uint8_t>(h[i].asInt64());
      }
    }
  }
  r.Int(v, path, "proto_version", 0, 255, &p->proto_version);
  r.Int(v, path, "server_version", 0, 0xFFFFFFFFLL, &p->server_version);
  r.Int(v, path, "max_body", 0, 0x7FFFFFFBLL, &p->max_body);
  r.Int(v, path, "idle_timeout_s", 0, 86400 * 7, &p->idle_timeout_s);
  r.Int(v, path, "heartbeat_command", 0, 0xFFFFFFFFLL, &p->heartbeat_command);
  r.Int(v, path, "max_connections", 1, 10000000, &p->max_connections);
  r.Int(v, path, "max_output_bytes", 4096, 0x7FFFFFFFLL, &p->max_output_bytes);
  r.Int(v, path, "max_inflight", 1, 1000000, &p->max_inflight);
  r.Int(v, path, "error_command", 0, 0xFFFFFFFFLL, &p->error_command);
  r.Int(v, path, "max_connections_per_ip", 0, 10000000, &p->max_connections_per_ip);
  r.Int(v, path, "output_high_water_bytes", 4096, 0x7FFFFFFFLL, &p->output_high_water_bytes);
  r.Int(v, path, "output_budget_bytes", 0, int64_t{1} << 46, &p->output_budget_bytes);
  r.Int(v, path, "sndbuf_bytes", 0, 64 << 20, &p->sndbuf_bytes);
  r.Int(v, path, "rcvbuf_bytes", 0, 64 << 20, &p->rcvbuf_bytes);
  if (v.isMember("rate") && r.IsObject(v["rate"], "protocol.rate")) {
    const Json::Value& rate = v["rate"];
    r.KnownKeys(rate, "protocol.rate", {"per_s", "burst"});
    r.Int(rate, "protocol.rate", "per_s", 0, 1000000, &p->rate.per_s);
    r.Int(rate, "protocol.rate", "burst", 1, 100000000, &p->rate.burst);
  }
  if (p->rate.burst == 0) p->rate.burst = p->rate.per_s;
  if (r.String(v, path, "ws_path", &p->ws_path, false, true)) {
    // Compared byte for byte with the request target's path.
    bool ok = p->ws_path.size() <= 256 && p->ws_path[0] == '/';
    for (char c : p->ws_path) ok = ok && c > 0x20 && c < 0x7f && c != '?' && c != '#';
    if (!ok) r.Error("protocol.ws_path", "expected a path starting with '/' (printable ASCII, no '?' or '#', at most 256)");
  }
  r.StringList(v, path, "ws_origins", &p->ws_origins);
  if (v.isMember("ws_tls") && r.IsObject(v["ws_tls"], "protocol.ws_tls")) {
    const Json::Value& tls = v["ws_tls"];
    r.KnownKeys(tls, "protocol.ws_tls", {"cert", "key"});
    r.String(tls, "protocol.ws_tls", "cert", &p->ws_tls_cert, true, true);
    r.String(tls, "protocol.ws_tls", "key", &p->ws_tls_key, true, true);
    p->ws_tls_cert = Resolve(dir, p->ws_tls_cert);
    p->ws_tls_key = Resolve(dir, p->ws_tls_key);
  }
  if (p->heartbeat_command != 0 && p->heartbeat_command == p->error_command)
    r.Error("protocol.heartbeat_command", "must differ from protocol.error_command");
}

void ReadMaster(Reader& r, const Json::Value& v, const std::string& dir, MasterConfig* m) {
  const std::string path = "master";
  if (!r.IsObject(v, path)) return;
  r.KnownKeys(v, path,
              {"roothost", "rootport", "webport", "admin_token", "cluster_secret", "log", "restart_backoff_ms",
               "restart_backoff_max_ms", "give_up_restarts", "give_up_window_s", "probation_s", "stop_timeout_s",
               "admin_host", "admin_max_connections", "admin_request_timeout_s", "state_dir", "loop_stall_ms",
               "insecure_dev", "channel_tls"});
  r.String(v, path, "roothost", &m->roothost, false, true);
  r.Port(v, path, "rootport", &m->rootport);
  r.Port(v, path, "webport", &m->webport);
  r.String(v, path, "admin_token", &m->admin_token);
  r.String(v, path, "cluster_secret", &m->cluster_secret);
  r.Bool(v, path, "insecure_dev", &m->insecure_dev);
  if (v.isMember("channel_tls") && r.IsObject(v["channel_tls"], "master.channel_tls")) {
    const Json::Value& t = v["channel_tls"];
    const std::string tp = "master.channel_tls";
    r.KnownKeys(t, tp, {"cert", "key", "ca"});
    ChannelTlsConfig& tls = m->channel_tls;
    bool ok = r.String(t, tp, "cert", &tls.cert, true, true);
    ok &= r.String(t, tp, "key", &tls.key, true, true);
    ok &= r.String(t, tp, "ca", &tls.ca, true, true);
    if (ok) {
      tls.enabled = true;
      tls.cert = Resolve(dir, tls.cert);
      tls.key = Resolve(dir, tls.key);
      tls.ca = Resolve(dir, tls.ca);
    }
  }
  if (r.String(v, path, "log", &m->log) && m->log != "-") m->log = Resolve(dir, m->log);  // "-": stderr
  r.Int(v, path, "restart_backoff_ms", 1, 3600000, &m->restart_backoff_ms);
  r.Int(v, path, "restart_backoff_max_ms", 1, 3600000, &m->restart_backoff_max_ms);
  r.Int(v, path, "give_up_restarts", 1, 1000000, &m->give_up_restarts);
  r.Int(v, path, "give_up_window_s", 1, 86400, &m->give_up_window_s);
  r.Int(v, path, "probation_s", 0, 86400, &m->probation_s);
  r.Int(v, path, "stop_timeout_s", 1, 3600, &m->stop_timeout_s);
  r.String(v, path, "admin_host", &m->admin_host, false, true);
  r.Int(v, path, "admin_max_connections", 1, 100000, &m->admin_max_connections);
  r.Int(v, path, "admin_request_timeout_s", 1, 3600, &m->admin_request_timeout_s);
  if (r.String(v, path, "state_dir", &m->state_dir, false, true)) m->state_dir = Resolve(dir, m->state_dir);
  r.Int(v, path, "loop_stall_ms", 0, 600000, &m->loop_stall_ms);
}

// Firefly's "app" (the Python module a server imports) and "reload" (the
// module re-imported on a reload) have no meaning here: gameplay is plugins.
// Next to "plugins" they are leftovers (warned); without it, the server would
// start with no gameplay at all, so --check refuses and says what to write.
void FireflyModules(Reader& r, const Json::Value& v, const std::string& path) {
  for (const char* key : {"app", "reload"}) {
    if (!v.isMember(key)) continue;
    if (v.isMember("plugins")) {
      r.Warn(Join(path, key), "Firefly's module key is replaced by \"plugins\"; ignored");
      continue;
    }
    // "app.gameserver" -> "gameserver": a name the port will likely use.
    std::string module = v[key].isString() ? v[key].asString() : "";
    std::string plugin = module.substr(module.rfind('.') == std::string::npos ? 0 : module.rfind('.') + 1);
    if (!ValidName(plugin)) plugin = "game";
    r.Error(Join(path, key),
            std::string("Firefly's \"") + key + "\"" + (module.empty() ? "" : " (\"" + module + "\")") +
                " names a Python module; Lampyr runs gameplay as plugins. Port it to a plugin (docs/plugins.md), "
                "then write \"plugins\": [\"" + plugin + "\"] in " + path + " and declare it at the top level: "
                "\"plugins\": {\"" + plugin + "\": {\"path\": \"lib" + plugin + ".so\"}}; remove \"app\" and \"reload\"");
  }
}

void ReadServer(Reader& r, const Json::Value& v, const std::string& name, const std::string& dir,
                const std::string& default_host, ServerConfig* s) {
  const std::string path = Join("servers", name);
  s->name = name;
  s->host = default_host;
  if (!ValidName(name)) r.Error(path, "server name must be 1-64 characters of [A-Za-z0-9_.-]");
  if (!r.IsObject(v, path)) return;
  r.KnownKeys(v, path,
              {"host", "rootport", "netport", "wsport", "webport", "remoteport", "forward", "db", "mem", "cpu", "plugins",
               "builtins", "log", "log_level", "name", "app", "reload", "admin_host", "loop_stall_ms",
               "work_threads", "work_queue"});
  FireflyModules(r, v, path);
  r.String(v, path, "host", &s->host, false, true);
  r.Port(v, path, "rootport", &s->rootport);
  r.Port(v, path, "netport", &s->netport);
  r.Port(v, path, "wsport", &s->wsport);
  r.Port(v, path, "webport", &s->webport);
  r.String(v, path, "admin_host", &s->admin_host, false, true);
  r.String(v, path, "forward", &s->forward, false, true);
  r.Bool(v, path, "db", &s->db);
  r.Bool(v, path, "mem", &s->mem);
  s->mem_given = v.isMember("mem");
  r.Int(v, path, "cpu", -1, 4095, &s->cpu);
  if (r.String(v, path, "log", &s->log) && s->log != "-") s->log = Resolve(dir, s->log);  // "-": stderr
  if (r.String(v, path, "log_level", &s->log_level) && s->log_level != "debug" && s->log_level != "info" &&
      s->log_level != "warn" && s->log_level != "error") {
    r.Error(Join(path, "log_level"), "expected one of debug, info, warn, error");
    s->log_level = "info";
  }
  r.StringList(v, path, "plugins", &s->plugins);
  s->loop_stall_ms = UINT32_MAX;  // unset: master.loop_stall_ms (resolved by ParseConfig)
  r.Int(v, path, "loop_stall_ms", 0, 600000, &s->loop_stall_ms);
  r.Int(v, path, "work_threads", 1, 64, &s->work_threads);
  r.Int(v, path, "work_queue", 1, 1000000, &s->work_queue);
  if (v.isMember("builtins")) {
    const Json::Value& b = v["builtins"];
    const std::string bp = Join(path, "builtins");
    if (!b.isObject()) {
      r.Error(bp, "expected object of handler name -> command id");
    } else {
      for (const auto& key : b.getMemberNames()) {
        if (key != "echo" && key != "push_echo" && key != "sleep" && key != "decline") {
          r.Error(Join(bp, key), "unknown built-in handler (known: echo, push_echo, sleep, decline)");
          continue;
        }
        uint32_t cmd = 0;
        if (r.Int(b, bp, key.c_str(), 1, 0xFFFFFFFFLL, &cmd)) s->builtins[key] = cmd;
      }
    }
  }
  if (v.isMember("remoteport")) {
    const Json::Value& links = v["remoteport"];
    const std::string lp = Join(path, "remoteport");
    if (!links.isArray()) {
      r.Error(lp, "expected array of {\"rootname\", \"rootport\"}");
    } else {
      for (Json::ArrayIndex i = 0; i < links.size(); ++i) {
        const std::string ip = Index(lp, i);
        if (!r.IsObject(links[i], ip)) continue;
        r.KnownKeys(links[i], ip, {"rootname", "rootport", "roothost"});
        RemoteLinkConfig link;
        r.String(links[i], ip, "rootname", &link.rootname, true, true);
        r.Port(links[i], ip, "rootport", &link.rootport);
        r.String(links[i], ip, "roothost", &link.roothost, false, true);
        s->remoteport.push_back(std::move(link));
      }
    }
  }
}

void ReadDb(Reader& r, const Json::Value& v, DbConfig* d) {
  const std::string path = "db";
  if (!r.IsObject(v, path)) return;
  d->present = true;
  r.KnownKeys(v, path,
              {"host", "port", "user", "passwd", "db", "charset", "pool", "flush_interval_ms", "flush_batch",
               "idle_evict_s",
               "sql_pool", "sql_queue", "sql_timeout_ms", "tx_timeout_ms"});
  r.String(v, path, "host", &d->host, false, true);
  r.Port(v, path, "port", &d->port);
  r.String(v, path, "user", &d->user, true, true);
  r.String(v, path, "passwd", &d->passwd);
  r.String(v, path, "db", &d->db, true, true);
  r.String(v, path, "charset", &d->charset, false, true);
  r.Int(v, path, "pool", 1, 256, &d->pool);
  r.Int(v, path, "flush_interval_ms", 1, 3600000, &d->flush_interval_ms);
  r.Int(v, path, "flush_batch", 1, 100000, &d->flush_batch);
  r.Int(v, path, "idle_evict_s", 1, 86400 * 30, &d->idle_evict_s);
  r.Int(v, path, "sql_pool", 1, 256, &d->sql_pool);
  r.Int(v, path, "sql_queue", 1, 1000000, &d->sql_queue);
  r.Int(v, path, "sql_timeout_ms", 100, 3600000, &d->sql_timeout_ms);
  r.Int(v, path, "tx_timeout_ms", 100, 3600000, &d->tx_timeout_ms);
}

void ReadMemcached(Reader& r, const Json::Value& v, MemcachedConfig* m) {
  const std::string path = "memcached";
  if (!r.IsObject(v, path)) return;
  m->present = true;
  r.KnownKeys(v, path, {"urls", "hostname",
                        "kv_prefix", "kv_threads", "kv_queue"});
  if (!r.StringList(v, path, "urls", &m->urls) || m->urls.empty()) {
    if (!v.isMember("urls") || m->urls.empty()) r.Error("memcached.urls", "expected non-empty array of \"host:port\"");
  }
  for (size_t i = 0; i < m->urls.size(); ++i) {
    const std::string& u = m->urls[i];
    auto colon = u.rfind(':');
    bool ok = colon != std::string::npos && colon > 0 && colon + 1 < u.size();
    if (ok) {
      char* end = nullptr;
      long port = strtol(u.c_str() + colon + 1, &end, 10);
      ok = *end == '\0' && port >= 1 && port <= 65535;
    }
    if (!ok) r.Error(Index("memcached.urls", static_cast<unsigned>(i)), "expected \"host:port\"");
  }
  r.String(v, path, "hostname", &m->hostname, false, false);
  // Plugins' shared key/value (data/kv_store.h): a namespace of its own, so
  // a plugin key can never name a cached record ("<hostname>:r:...") or the
  // record layer's bookkeeping (every other "<hostname>:..." key).
  const std::string records = m->hostname + ":";
  m->kv_prefix = records + "kv:";
  if (r.String(v, path, "kv_prefix", &m->kv_prefix, false, true)) {
    const std::string& kv = m->kv_prefix;
    if (records.rfind(kv, 0) == 0 || (kv.rfind(records, 0) == 0 && kv.rfind(records + "kv:", 0) != 0))
      r.Error("memcached.kv_prefix", "must not overlap the record keys (\"" + records + "...\"); e.g. \"" + records +
                                         "kv:\" or another name");
    for (char ch : kv)
      if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f) {
        r.Error("memcached.kv_prefix", "no spaces or control characters (memcached keys)");
        break;
      }
    if (kv.size() > 100) r.Error("memcached.kv_prefix", "at most 100 bytes");
  }
  r.Int(v, path, "kv_threads", 1, 64, &m->kv_threads);
  r.Int(v, path, "kv_queue", 1, 1000000, &m->kv_queue);
}

void ReadTables(Reader& r, const Json::Value& v, std::map<std::string, TableConfig>* tables) {
  if (!r.IsObject(v, "tables")) return;
  for (const auto& name : v.getMemberNames()) {
    const std::string path = Join("tables", name);
    TableConfig t;
    t.name = name;
    if (!ValidName(name) || name.find('.') != std::string::npos || name.find('-') != std::string::npos)
      r.Error(path, "table name must be 1-64 characters of [A-Za-z0-9_]");
    if (!r.IsObject(v[name], path)) continue;
    r.KnownKeys(v[name], path, {"pk", "fk", "autoinc", "preload"});
    r.String(v[name], path, "pk", &t.pk, true, true);
    r.String(v[name], path, "fk", &t.fk, false, true);
    r.Bool(v[name], path, "autoinc", &t.autoinc);
    r.Bool(v[name], path, "preload", &t.preload);
    (*tables)[name] = std::move(t);
  }
}

void ReadPlugins(Reader& r, const Json::Value& v, const std::string& dir, bool check_files,
                 std::map<std::string, PluginConfig>* plugins) {
  if (!r.IsObject(v, "plugins")) return;
  for (const auto& name : v.getMemberNames()) {
    const std::string path = Join("plugins", name);
    PluginConfig p;
    p.name = name;
    if (!ValidName(name)) r.Error(path, "plugin name must be 1-64 characters of [A-Za-z0-9_.-]");
    if (!r.IsObject(v[name], path)) continue;
    r.KnownKeys(v[name], path, {"path", "config", "drain_timeout_s"});
    if (r.String(v[name], path, "path", &p.path, true, true)) {
      p.path = Resolve(dir, p.path);
      std::error_code ec;
      if (check_files && !fs::is_regular_file(p.path, ec))
        r.Error(Join(path, "path"), "no such file: " + p.path);
    }
    if (v[name].isMember("config")) {
      if (!v[name]["config"].isObject()) r.Error(Join(path, "config"), "expected object");
      else p.config = v[name]["config"];
    }
    r.Number(v[name], path, "drain_timeout_s", 0, 3600, &p.drain_timeout_s);
    (*plugins)[name] = std::move(p);
  }
}

// Cross-references: links, forward, plugins, ports, services.
void Validate(Reader& r, Config* c) {
  // Node ids by name order, so every process derives the same ids.
  uint16_t next_id = 1;
  for (auto& [name, s] : c->servers) s.node_id = next_id++;

  std::map<std::pair<std::string, uint16_t>, std::string> ports;  // (host, port) -> path
  auto claim = [&](const std::string& host, uint16_t port, const std::string& path) {
    if (port == 0) return;
    // 0.0.0.0 overlaps every address on the machine.
    for (const auto& [key, other] : ports) {
      if (key.second == port && (key.first == host || key.first == "0.0.0.0" || host == "0.0.0.0")) {
        r.Error(path, "port " + std::to_string(port) + " is already used by " + other);
        return;
      }
    }
    ports[{host, port}] = path;
  };
  claim(c->master.roothost, c->master.rootport, "master.rootport");
  claim(c->master.admin_host, c->master.webport, "master.webport");
  for (auto& [name, s] : c->servers) {
    const std::string path = Join("servers", name);
    claim(s.host, s.rootport, Join(path, "rootport"));
    claim(s.host, s.netport, Join(path, "netport"));
    claim(s.host, s.wsport, Join(path, "wsport"));
    claim(s.admin_host, s.webport, Join(path, "webport"));
    std::set<std::string> roots;
    for (size_t i = 0; i < s.remoteport.size(); ++i) {
      RemoteLinkConfig& link = s.remoteport[i];
      const std::string lp = Index(Join(path, "remoteport"), static_cast<unsigned>(i));
      if (link.rootname.empty()) continue;
      const ServerConfig* root = c->FindServer(link.rootname);
      if (!root) {
        r.Error(Join(lp, "rootname"), "unknown server \"" + link.rootname + "\"");
        continue;
      }
      if (link.rootname == name) r.Error(Join(lp, "rootname"), "a server cannot link to itself");
      if (!roots.insert(link.rootname).second) r.Error(Join(lp, "rootname"), "duplicate link to " + link.rootname);
      if (root->rootport == 0) {
        r.Error(Join(lp, "rootname"), "servers." + link.rootname + " has no rootport to connect to");
      } else if (link.rootport != 0 && link.rootport != root->rootport) {
        r.Error(Join(lp, "rootport"), "does not match servers." + link.rootname + ".rootport (" +
                                          std::to_string(root->rootport) + ")");
      }
      if (link.rootport == 0) link.rootport = root->rootport;
      if (link.roothost.empty()) link.roothost = root->host == "0.0.0.0" ? "127.0.0.1" : root->host;
    }
    if (!s.forward.empty()) {
      if (s.netport == 0 && s.wsport == 0)
        r.Error(Join(path, "forward"), "only a server with netport or wsport forwards client requests");
      if (!roots.count(s.forward))
        r.Error(Join(path, "forward"), "must name a server in this server's remoteport (\"" + s.forward + "\")");
    }
    // Built-ins also serve requests forwarded over channels, so any server may have them.
    for (size_t i = 0; i < s.plugins.size(); ++i) {
      if (!c->plugins.count(s.plugins[i]))
        r.Error(Index(Join(path, "plugins"), static_cast<unsigned>(i)),
                "unknown plugin \"" + s.plugins[i] + "\" (not in \"plugins\")");
    }
    if (s.db && !c->db.present) r.Error(Join(path, "db"), "true, but there is no \"db\" section");
    if (s.mem && !c->memcached.present) r.Error(Join(path, "mem"), "true, but there is no \"memcached\" section");
  }
  if (c->servers.empty()) r.Error("servers", "at least one server is required");
  if (c->master.restart_backoff_max_ms < c->master.restart_backoff_ms)
    r.Error("master.restart_backoff_max_ms", "must be >= master.restart_backoff_ms");
}

}  // namespace

Status ParseConfig(std::string_view text, const std::string& dir, Config* out, std::vector<ConfigIssue>* issues,
                   bool apply_env, bool check_files) {
  std::vector<ConfigIssue> local;
  if (!issues) issues = &local;
  Reader r(issues);
  Config c;
  c.dir = dir;

  Json::CharReaderBuilder builder;
  builder["rejectDupKeys"] = true;
  builder["allowComments"] = true;
  builder["failIfExtra"] = true;
  builder["allowSpecialFloats"] = false;
  std::unique_ptr<Json::CharReader> reader(builder.newCharReader());
  std::string errs;
  bool parsed = false;
  try {
    parsed = reader->parse(text.data(), text.data() + text.size(), &c.raw, &errs);
  } catch (const Json::Exception& e) {
    // jsoncpp throws instead of reporting for nesting deeper than its stack
    // limit (found by fuzz_config: "[[[[..." crashed `lampyr --check`).
    errs = e.what();
  }
  if (!parsed) {
    while (!errs.empty() && (errs.back() == '\n' || errs.back() == ' ')) errs.pop_back();
    r.Error("(document)", "invalid JSON: " + errs);
    return Status::Error("invalid config");
  }
  if (!c.raw.isObject()) {
    r.Error("(document)", "expected a JSON object at the top level");
    return Status::Error("invalid config");
  }
  const Json::Value& root = c.raw;
  r.KnownKeys(root, "", {"master", "servers", "plugins", "protocol", "db", "memcached", "tables"});
  if (root.isMember("master")) ReadMaster(r, root["master"], dir, &c.master);
  if (root.isMember("protocol")) ReadProtocol(r, root["protocol"], dir, &c.protocol);
  if (root.isMember("plugins")) ReadPlugins(r, root["plugins"], dir, check_files, &c.plugins);
  if (root.isMember("db")) ReadDb(r, root["db"], &c.db);
  if (root.isMember("memcached")) ReadMemcached(r, root["memcached"], &c.memcached);
  if (root.isMember("tables")) ReadTables(r, root["tables"], &c.tables);
  if (!root.isMember("servers")) {
    r.Error("servers", "required");
  } else if (r.IsObject(root["servers"], "servers")) {
    for (const auto& name : root["servers"].getMemberNames()) {
      ServerConfig& s = c.servers[name];
      ReadServer(r, root["servers"][name], name, dir, c.master.roothost, &s);
      if (s.admin_host.empty()) s.admin_host = c.master.admin_host;
    }
  }
  if (c.master.state_dir.empty()) c.master.state_dir = Resolve(dir, "state");
  for (auto& [name, sc] : c.servers)
    if (sc.loop_stall_ms == UINT32_MAX) sc.loop_stall_ms = c.master.loop_stall_ms;
  Validate(r, &c);
  // "cpu" pins at start or the server refuses to start (core/cpu_affinity.h);
  // a CPU this machine does not offer is only a warning here, because the
  // config may be checked on another machine than the one that runs it.
  if (check_files)
    for (const auto& [name, sc] : c.servers)
      if (sc.cpu >= 0 && !CpuAllowed(sc.cpu))
        r.Warn(Join(Join("servers", name), "cpu"), "CPU " + std::to_string(sc.cpu) +
                                                       " is not available on this machine (allowed: " +
                                                       AllowedCpuList() + "): the server will refuse to start here");

  if (apply_env) {
    // credential > environment > file (core/credentials.h).
    struct Secret {
      const char* credential;
      const char* env;
      const char* path;
      std::string* value;
      std::string* origin;  // where the effective value came from, for error messages
    };
    for (const Secret& s : {Secret{"admin_token", "LAMPYR_ADMIN_TOKEN", "master.admin_token", &c.master.admin_token,
                                   &c.master.admin_token_origin},
                            Secret{"cluster_secret", "LAMPYR_CLUSTER_SECRET", "master.cluster_secret",
                                   &c.master.cluster_secret, &c.master.cluster_secret_origin},
                            Secret{"db_passwd", "LAMPYR_DB_PASSWD", "db.passwd", &c.db.passwd, nullptr}}) {
      std::string value;
      bool found = false;
      if (Status st = ReadCredential(s.credential, &value, &found); !st.ok()) {
        r.Error(s.path, st.message());
      } else if (found) {
        *s.value = std::move(value);
        if (s.origin) *s.origin = std::string("credential ") + s.credential;
      } else if (const char* t = getenv(s.env); t && *t) {
        *s.value = t;
        if (s.origin) *s.origin = s.env;
      }
    }
  }
  if (r.errors() > 0) return Status::Error("invalid config: " + std::to_string(r.errors()) + " error(s)");
  *out = std::move(c);
  return Status::OK();
}

namespace {

// The values the shipped configs (conf/*.json) and the docs carry: known
// to everybody, so as good as none.
constexpr const char* kSampleSecrets[] = {"change-me", "change-me-too"};

// Why `value` may not serve as the secret at `path`; "" if it may.
std::string WeakSecret(const std::string& value) {
  for (const char* sample : kSampleSecrets)
    if (value == sample) return "is the sample value of the shipped configs";
  if (value.size() < kMinSecretBytes)
    return "is shorter than " + std::to_string(kMinSecretBytes) + " bytes (" + std::to_string(value.size()) + ")";
  return "";
}

}  // namespace

std::vector<ConfigIssue> CheckSecrets(const Config& c) {
  bool links = c.master.rootport != 0, admin = c.master.webport != 0;
  for (const auto& [name, s] : c.servers) {
    links |= s.rootport != 0 || !s.remoteport.empty();
    admin |= s.webport != 0;
  }
  const bool warn = c.master.insecure_dev;
  const std::string how =
      "; set a random value of at least " + std::to_string(kMinSecretBytes) +
      " bytes (e.g. `openssl rand -hex 24`), preferably in the environment";
  std::vector<ConfigIssue> issues;
  auto check = [&](const char* path, const char* env, const std::string& value, const std::string& origin) {
    std::string why = WeakSecret(value);
    if (why.empty()) return;
    std::string where = origin.empty() ? std::string(path) : std::string(path) + " (from " + origin + ")";
    std::string reason = (value.empty() ? std::string("is required when servers link to each other (master.rootport, "
                                                      "rootport or remoteport)")
                                        : why) +
                         how + " (" + env + ")";
    if (warn) reason += "; accepted because master.insecure_dev is true";
    issues.push_back({where, reason, warn});
  };
  if (links) check("master.cluster_secret", "LAMPYR_CLUSTER_SECRET", c.master.cluster_secret, c.master.cluster_secret_origin);
  // An empty token is a decision: the admin API is read-only.
  if (admin && !c.master.admin_token.empty())
    check("master.admin_token", "LAMPYR_ADMIN_TOKEN", c.master.admin_token, c.master.admin_token_origin);
  return issues;
}

Status ReadConfigFile(const std::string& file, std::string* text) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
  // below anyway); regular files ignore the flag.
  const int fd = open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return Status::Error(std::string("cannot open: ") + strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0) return Status::Error(std::string("cannot stat: ") + strerror(errno));
  if (S_ISDIR(st.st_mode)) return Status::Error("is a directory, not a regular file");
  if (!S_ISREG(st.st_mode))
    return Status::Error("not a regular file (a FIFO, device or socket); a config must be a file");
  const auto limit = std::to_string(kMaxConfigBytes >> 20) + " MiB";
  if (static_cast<uint64_t>(st.st_size) > kMaxConfigBytes)
    return Status::Error("larger than " + limit + " (" + std::to_string(st.st_size) + " bytes)");
  // The size may change while we read: the cap is on what is read.
  std::string out;
  out.resize(kMaxConfigBytes + 1);
  size_t have = 0;
  while (have < out.size()) {
    const ssize_t n = read(fd, out.data() + have, out.size() - have);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Error(std::string("cannot read: ") + strerror(errno));
    }
    have += static_cast<size_t>(n);
  }
  if (have > kMaxConfigBytes) return Status::Error("larger than " + limit);
  out.resize(have);
  *text = std::move(out);
  return Status::OK();
}

Status LoadConfig(const std::string& file, Config* out, std::vector<ConfigIssue>* issues, bool apply_env) {
  std::vector<ConfigIssue> local;
  if (!issues) issues = &local;
  std::string text;
  if (Status st = ReadConfigFile(file, &text); !st.ok()) {
    issues->push_back({file, st.message(), false});
    return Status::Error("cannot read config " + file + ": " + st.message());
  }
  std::error_code ec;
  fs::path abs = fs::absolute(file, ec);
  std::string dir = abs.parent_path().lexically_normal().string();
  Status s = ParseConfig(text, dir, out, issues, apply_env, true);
  if (s.ok()) out->path = abs.lexically_normal().string();
  return s;
}

}  // namespace lampyr
