// The cluster config (DESIGN §2): one JSON file read with jsoncpp into typed
// structs and validated as a whole. Every problem is reported as
// "json.path: reason" so an operator can fix all of them in one pass.
#pragma once

#include <json/value.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lampyr {

struct ProtocolConfig {
  std::array<uint8_t, 4> head{0, 0, 0, 0};
  uint8_t proto_version = 0;
  uint32_t server_version = 0;
  uint32_t max_body = 65536;
  uint32_t idle_timeout_s = 120;   // 0 = never close idle sessions
  uint32_t heartbeat_command = 0;  // 0 = off
  // Lampyr additions (optional keys, documented in docs/protocol.md):
  uint32_t max_connections = 10000;       // per net server; further accepts are closed at once
  uint32_t max_output_bytes = 4u << 20;   // a session whose unsent output exceeds this is closed
  uint32_t max_inflight = 256;            // unanswered requests per session before reading pauses
  uint32_t error_command = 0xFFFFFFFFu;   // command id of the error reply
};

struct RemoteLinkConfig {
  std::string rootname;  // the server this link connects to
  std::string roothost;  // defaults to that server's host
  uint16_t rootport = 0; // defaults to that server's rootport
};

struct ServerConfig {
  std::string name;
  uint16_t node_id = 0;  // 1-based, by name order: stable across the cluster
  std::string host;      // address this server binds and is reached at (default master.roothost)
  uint16_t rootport = 0;
  uint16_t netport = 0;
  uint16_t webport = 0;  // optional per-server admin API
  std::vector<RemoteLinkConfig> remoteport;
  std::string forward;   // root to hand unhandled client commands to
  bool db = false;
  bool mem = false;
  int cpu = -1;          // CPU to pin to, -1 = none
  std::vector<std::string> plugins;
  std::map<std::string, uint32_t> builtins;  // built-in handler name -> command id ("echo")
  std::string log;       // absolute path, empty = stderr only
  std::string log_level = "info";
};

struct PluginConfig {
  std::string name;
  std::string path;      // absolute
  Json::Value config{Json::objectValue};
  double drain_timeout_s = 30;
};

struct MasterConfig {
  std::string roothost = "127.0.0.1";
  uint16_t rootport = 0;
  uint16_t webport = 0;
  std::string admin_token;     // LAMPYR_ADMIN_TOKEN overrides; never logged
  std::string cluster_secret;  // LAMPYR_CLUSTER_SECRET overrides; never logged
  std::string log;
  // Supervision.
  uint32_t restart_backoff_ms = 200;
  uint32_t restart_backoff_max_ms = 10000;
  uint32_t give_up_restarts = 5;   // crashes within give_up_window_s before the master gives up
  uint32_t give_up_window_s = 60;
  uint32_t probation_s = 30;       // a crash this soon after a reload rolls the plugin back
  uint32_t stop_timeout_s = 10;
};

struct DbConfig {
  bool present = false;
  std::string host = "127.0.0.1";
  uint16_t port = 3306;
  std::string user;
  std::string passwd;  // LAMPYR_DB_PASSWD overrides; never logged
  std::string db;
  std::string charset = "utf8mb4";
  uint32_t pool = 4;
  uint32_t flush_interval_ms = 1000;
  uint32_t flush_batch = 500;
  uint32_t idle_evict_s = 600;
};

struct MemcachedConfig {
  bool present = false;
  std::vector<std::string> urls;  // "host:port"
  std::string hostname;           // key prefix
};

struct TableConfig {
  std::string name;
  std::string pk;
  std::string fk;  // empty = none
  bool autoinc = false;
};

struct Config {
  std::string path;  // absolute path of the file
  std::string dir;   // its directory; relative paths resolve against it
  MasterConfig master;
  std::map<std::string, ServerConfig> servers;
  std::map<std::string, PluginConfig> plugins;
  ProtocolConfig protocol;
  DbConfig db;
  MemcachedConfig memcached;
  std::map<std::string, TableConfig> tables;
  Json::Value raw;  // the parsed document as read

  const ServerConfig* FindServer(std::string_view name) const;
  const PluginConfig* FindPlugin(std::string_view name) const;
};

struct ConfigIssue {
  std::string path;    // JSON path, "servers.net.netport"
  std::string reason;  // "expected integer 1..65535"
  bool warning = false;
  std::string ToString() const { return (warning ? "warning: " : "") + path + ": " + reason; }
};

// Reads and validates `file`. On failure `issues` holds every error found
// (and warnings, which alone do not fail). `apply_env` lets the environment
// override secrets (LAMPYR_ADMIN_TOKEN, LAMPYR_CLUSTER_SECRET, LAMPYR_DB_PASSWD).
Status LoadConfig(const std::string& file, Config* out, std::vector<ConfigIssue>* issues, bool apply_env = true);

// Same, from text; `dir` is where relative paths resolve. `check_files`
// verifies that plugin files exist (off for fuzzing).
Status ParseConfig(std::string_view text, const std::string& dir, Config* out, std::vector<ConfigIssue>* issues,
                   bool apply_env = true, bool check_files = true);

}  // namespace lampyr
