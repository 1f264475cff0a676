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
  // Client connection limits (docs/protocol.md "Limits"):
  uint32_t max_connections_per_ip = 256;          // per IPv4 address / IPv6 /64; 0 = off
  uint32_t output_high_water_bytes = 256u << 10;  // unsent output above which a session is not read
  uint64_t output_budget_bytes = 256ull << 20;    // unsent output of all sessions; 0 = off
  uint32_t sndbuf_bytes = 65536;                  // SO_SNDBUF of client sockets; 0 = kernel autotuning
  uint32_t rcvbuf_bytes = 65536;                  // SO_RCVBUF of client sockets; 0 = kernel autotuning
  // WebSocket listeners (servers.<name>.wsport; docs/protocol.md "WebSocket"):
  std::string ws_path = "/";             // the only request target upgraded
  std::vector<std::string> ws_origins;   // allowed Origin values; empty = any (warned at start)
  std::string ws_tls_cert;               // ws_tls.cert: PEM chain, absolute; empty = plain ws
  std::string ws_tls_key;                // ws_tls.key: PEM private key, absolute
  struct Rate {
    uint32_t per_s = 0;  // requests a second per session; 0 = no rate limit
    uint32_t burst = 0;  // bucket size; 0 = per_s
  } rate;
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
  uint16_t wsport = 0;   // WebSocket clients (DESIGN §3a)
  uint16_t webport = 0;  // optional per-server admin API
  std::string admin_host;  // where webport binds (default master.admin_host)
  std::vector<RemoteLinkConfig> remoteport;
  std::string forward;   // root to hand unhandled client commands to
  bool db = false;
  bool mem = false;
  bool mem_given = false;  // "mem" present: false then means no record cache even with "db"
  int cpu = -1;          // CPU to pin to, -1 = none
  std::vector<std::string> plugins;
  std::map<std::string, uint32_t> builtins;  // built-in handler name -> command id ("echo")
  std::string log;       // absolute path; empty or "-" = stderr only
  std::string log_level = "info";
  uint32_t loop_stall_ms = 100;  // defaults to master.loop_stall_ms; 0 = off
  // Off-loop work of plugins ("work", docs/plugins.md): threads, and how
  // many jobs may wait for one before "work" says busy.
  uint32_t work_threads = 2;
  uint32_t work_queue = 1024;
};

struct PluginConfig {
  std::string name;
  std::string path;      // absolute
  Json::Value config{Json::objectValue};
  double drain_timeout_s = 30;
};

// Optional TLS on every channel link (master.channel_tls): each end shows
// `cert` and accepts only a peer whose certificate `ca` signed; the cluster
// secret is still proven inside. Paths absolute.
struct ChannelTlsConfig {
  bool enabled = false;
  std::string cert, key, ca;
};

struct MasterConfig {
  std::string roothost = "127.0.0.1";
  uint16_t rootport = 0;
  uint16_t webport = 0;
  std::string admin_token;     // LAMPYR_ADMIN_TOKEN overrides; never logged
  // Every admin listener (master.webport, servers.*.webport):
  std::string admin_host = "127.0.0.1";  // where master.webport binds; servers' default
  uint32_t admin_max_connections = 64;   // at the cap, new connections wait in the backlog
  uint32_t admin_request_timeout_s = 10; // absolute, per request (not per byte)
  std::string cluster_secret;  // LAMPYR_CLUSTER_SECRET overrides; never logged
  // Where the effective value came from when not the file ("LAMPYR_ADMIN_TOKEN",
  // "credential admin_token"): named in errors, the value never is.
  std::string admin_token_origin;
  std::string cluster_secret_origin;
  // Sample or short secrets are accepted (with a WARN at start): for tests
  // and throwaway setups only (CheckSecrets).
  bool insecure_dev = false;
  ChannelTlsConfig channel_tls;
  std::string log;
  // Supervision.
  uint32_t restart_backoff_ms = 200;
  uint32_t restart_backoff_max_ms = 10000;
  uint32_t give_up_restarts = 5;   // crashes within give_up_window_s before the master gives up
  uint32_t give_up_window_s = 60;
  uint32_t probation_s = 30;       // a crash this soon after a reload rolls the plugin back
  uint32_t stop_timeout_s = 10;
  // Where servers keep what they trust across restarts: the build that
  // passed probation, crash records (<state_dir>/<server>/). Absolute;
  // default "state" next to the config file. See docs/plugins.md.
  std::string state_dir;
  uint32_t loop_stall_ms = 100;  // loop-stall WARN threshold (0 = off)
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
  // Plain SQL for plugins (data/sql_pool.h, docs/plugins.md "SQL"):
  // connections, statements that may wait for one, how long a statement may
  // wait or run, how long a transaction may stay open.
  uint32_t sql_pool = 2;
  uint32_t sql_queue = 1024;
  uint32_t sql_timeout_ms = 5000;
  uint32_t tx_timeout_ms = 10000;
};

struct MemcachedConfig {
  bool present = false;
  std::vector<std::string> urls;  // "host:port"
  std::string hostname;           // key prefix
  // Plugins' shared key/value ("kv_*", docs/plugins.md): key prefix
  // (default "<hostname>:kv:"), threads, and calls that may wait.
  std::string kv_prefix;
  uint32_t kv_threads = 2;
  uint32_t kv_queue = 1024;
};

struct TableConfig {
  std::string name;
  std::string pk;
  std::string fk;  // empty = none
  bool autoinc = false;
  bool preload = false;  // load every row into the record cache at start (data_preload)
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

// A config file is a few kilobytes; anything past this is not one.
constexpr size_t kMaxConfigBytes = 4u << 20;

// Reads `file` into *text: only a regular file (after symlinks) of at most
// kMaxConfigBytes. A FIFO, a device (/dev/zero), a directory or an oversized
// file is refused at once; the message says why, the caller names the file.
Status ReadConfigFile(const std::string& file, std::string* text);

// Secrets shorter than this are refused (CheckSecrets).
constexpr size_t kMinSecretBytes = 16;

// The rules for the effective secrets (after the environment), which only
// a process that runs servers applies (`lampyr`, `lampyr --check`; not
// lampyrctl, which just reads the token):
//   master.cluster_secret, when any server links (master.rootport, rootport
//   or remoteport): required, at least kMinSecretBytes, not a sample value;
//   master.admin_token, when any admin API listens (webport): empty is
//   allowed (mutating calls are then refused, 403), otherwise at least
//   kMinSecretBytes and not a sample value.
// The problems are errors, or warnings when master.insecure_dev is true.
std::vector<ConfigIssue> CheckSecrets(const Config& config);

// Reads and validates `file`. On failure `issues` holds every error found
// (and warnings, which alone do not fail). `apply_env` lets the environment
// override secrets (LAMPYR_ADMIN_TOKEN, LAMPYR_CLUSTER_SECRET, LAMPYR_DB_PASSWD).
Status LoadConfig(const std::string& file, Config* out, std::vector<ConfigIssue>* issues, bool apply_env = true);

// Same, from text; `dir` is where relative paths resolve. `check_files`
// verifies that plugin files exist (off for fuzzing).
Status ParseConfig(std::string_view text, const std::string& dir, Config* out, std::vector<ConfigIssue>* issues,
                   bool apply_env = true, bool check_files = true);

}  // namespace lampyr
