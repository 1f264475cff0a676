/* Lampyr plugin contract (plain C). This header is the whole ABI between the
 * host daemon and a gameplay module (.so). Nothing of C++ crosses it: no
 * exceptions, no std:: types, no allocator ownership except through the
 * host's alloc/free below.
 *
 * Life of a plugin generation (DESIGN §5, §6):
 *   1. The host dlopens a private copy of the .so and calls the one exported
 *      symbol LAMPYR_PLUGIN_ENTRY_SYMBOL, which returns a static descriptor.
 *      The host checks size, ABI major/minor and the SDK signature BEFORE
 *      calling anything else.
 *   2. init(): the plugin looks host functions up by name through get_api,
 *      registers its commands / remote methods, keeps `host` (its handle).
 *   3. restore_state() when a previous generation saved state.
 *   4. Events arrive through the descriptor's callbacks, always on the host's
 *      event-loop thread, never concurrently.
 *   5. On reload: save_state() on the old generation, then the new one is
 *      initialised and takes the dispatch in one loop turn. The old one
 *      "drains": it still gets on_complete() for async work it started and
 *      may still answer requests it holds; its timers are cancelled and it
 *      may start nothing new. Then on_stop() and destroy(), then dlclose.
 *
 * Versioning rules:
 *   - ABI major: any incompatible change. The host refuses another major.
 *   - ABI minor: additions only (new descriptor fields at the end, new host
 *     functions). The host accepts a plugin with minor <= its own; fields
 *     beyond the plugin's `size` are treated as absent (NULL).
 *   - A host function's signature never changes under its name. A changed
 *     function gets a new name ("push" -> "push2"); get_api returns NULL for
 *     a name the host does not have, so a plugin can detect it.
 *
 * Ownership: every pointer the host passes to a callback is valid only for
 * the duration of that call, unless said otherwise. Every pointer the plugin
 * passes to a host function is copied by the host before it returns.
 * Buffers the plugin hands over for the host to keep (save_state output)
 * are allocated with the host's "alloc" and freed by the host.
 */
#ifndef LAMPYR_PLUGIN_H
#define LAMPYR_PLUGIN_H

#ifdef __cplusplus
/* C++ headers, so that libstdc++'s _GLIBCXX_USE_CXX11_ABI is defined before
 * LAMPYR_SDK_SIGNATURE reads it. */
#include <cstddef>
#include <cstdint>
#else
#include <stddef.h>
#include <stdint.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define LAMPYR_ABI_MAJOR 1
#define LAMPYR_ABI_MINOR 1

/* The only symbol a plugin exports. */
#define LAMPYR_PLUGIN_ENTRY_SYMBOL "lampyr_plugin_entry"

/* Return codes of plugin callbacks and host functions. */
#define LAMPYR_OK 0
#define LAMPYR_ERR (-1)          /* generic failure (see the error text) */
#define LAMPYR_ERR_STATE (-2)    /* not allowed now (e.g. draining generation) */
#define LAMPYR_ERR_ARG (-3)      /* bad argument (unknown token, empty name...) */
#define LAMPYR_ERR_UNAVAILABLE (-4) /* the feature is not configured on this server */

/* Client error-reply codes (docs/protocol.md) usable with "fail". */
#define LAMPYR_FAIL_HANDLER_ERROR 2
#define LAMPYR_FAIL_UNAVAILABLE 4
#define LAMPYR_FAIL_OVERLOADED 5

/* Completion status passed to on_complete(). */
#define LAMPYR_DONE_OK 0
#define LAMPYR_DONE_ERROR 1      /* remote error; data = message */
#define LAMPYR_DONE_TIMEOUT 2
#define LAMPYR_DONE_UNAVAILABLE 3 /* unknown node, link down, no such method */
#define LAMPYR_DONE_CANCELLED 4  /* the generation was retired first */

/* Log levels. */
#define LAMPYR_LOG_DEBUG 0
#define LAMPYR_LOG_INFO 1
#define LAMPYR_LOG_WARN 2
#define LAMPYR_LOG_ERROR 3

/* Cluster-unique session id (high 16 bits: owning net server's node id). */
typedef uint64_t lampyr_session;
/* A pending request or remote call the plugin must answer exactly once. */
typedef uint64_t lampyr_token;

/* The host's handle for one generation of one plugin; opaque. */
typedef struct lampyr_host lampyr_host;

/* Looks a host function up by name; NULL if this host does not have it.
 * Cast the result to the documented type (lampyr_fn_<name> below). */
typedef void* (*lampyr_get_api_fn)(const char* name);

/* A client request (command id + body). Answer with reply/decline/fail,
 * now or later, exactly once, using `token`. */
typedef struct lampyr_request {
  uint32_t size; /* sizeof(lampyr_request) as the host built it */
  lampyr_token token;
  lampyr_session session;
  uint32_t command;
  const char* body;
  size_t body_len;
} lampyr_request;

/* A remote call of a method the plugin registered ("remote"); answer with
 * reply (bytes back to the caller) or fail. A one-way notify has token 0
 * and must not be answered. */
typedef struct lampyr_remote_call {
  uint32_t size;
  lampyr_token token;
  const char* from_node; /* NUL-terminated server name */
  const char* method;    /* NUL-terminated */
  const char* args;
  size_t args_len;
} lampyr_remote_call;

/* What init() receives. */
typedef struct lampyr_init_args {
  uint32_t size;
  lampyr_host* host;          /* valid until destroy() returns */
  lampyr_get_api_fn get_api;  /* valid until destroy() returns */
  const char* server_name;    /* NUL-terminated; valid until destroy() */
  const char* config_json;    /* plugins.<name>.config as JSON text; valid until destroy() */
  size_t config_len;
  uint64_t generation;        /* 1 for the first load, +1 per reload */
} lampyr_init_args;

/* Callbacks of a plugin. All but `init` take the plugin's own context, the
 * value init stored in *ctx. Any callback may be NULL (= not used) except
 * init and destroy. A callback must not throw or longjmp. */
typedef struct lampyr_plugin_desc {
  uint32_t size;              /* sizeof(lampyr_plugin_desc) of the plugin's SDK */
  uint16_t abi_major;         /* LAMPYR_ABI_MAJOR of the plugin's SDK */
  uint16_t abi_minor;
  const char* sdk_signature;  /* LAMPYR_SDK_SIGNATURE: must equal the host's */
  const char* name;           /* plugin name, as in the config's "plugins" */
  const char* version;        /* free text, shown in /status */
  uint32_t state_schema;      /* version of the bytes save_state produces */

  /* Returns LAMPYR_OK or an error; on error writes a NUL-terminated reason
   * into err (capacity err_cap) and must leave nothing running. */
  int (*init)(const lampyr_init_args* args, void** ctx, char* err, size_t err_cap);
  /* Serialises the generation's state. *out must be allocated with the
   * host's "alloc" (the host frees it); *out may be NULL when len is 0. */
  int (*save_state)(void* ctx, char** out, size_t* out_len, char* err, size_t err_cap);
  /* Takes state saved by the previous generation, whose schema was
   * `from_schema` (migrate if it differs from this plugin's state_schema). */
  int (*restore_state)(void* ctx, const char* data, size_t len, uint32_t from_schema, char* err, size_t err_cap);
  void (*on_request)(void* ctx, const lampyr_request* req);
  void (*on_remote)(void* ctx, const lampyr_remote_call* call);
  /* A timer fired (cookie from "timer_start") or async work the plugin
   * started finished ("call", data ops...). status: LAMPYR_DONE_*. */
  void (*on_timer)(void* ctx, uint64_t cookie);
  void (*on_complete)(void* ctx, uint64_t cookie, int status, const char* data, size_t len);
  /* Session opened (open = 1) or closed (0), for plugins that called
   * "watch_sessions". */
  void (*on_session)(void* ctx, lampyr_session session, int open);
  /* Router hook (gate): picks the node for a forwarded request that has no
   * session binding; writes a NUL-terminated server name into node (empty =
   * no route) and returns LAMPYR_OK. Used only after "set_router". */
  int (*route)(void* ctx, lampyr_session session, uint32_t command, const char* body, size_t body_len, char* node,
               size_t node_cap);
  /* The generation stops getting new work (drain begins). Optional. */
  void (*on_stop)(void* ctx);
  /* Last call: free everything. After it returns the library is unloaded;
   * nothing of it may remain referenced by anyone. */
  void (*destroy)(void* ctx);
} lampyr_plugin_desc;

typedef const lampyr_plugin_desc* (*lampyr_plugin_entry_fn)(void);

/* ---- Host functions, looked up by name with get_api(name). ------------ */
/* Every function takes the generation's handle first. Return values are
 * LAMPYR_OK or LAMPYR_ERR_* unless stated. */

/* "alloc" / "free": memory the host owns (save_state output). */
typedef void* (*lampyr_fn_alloc)(size_t size);
typedef void (*lampyr_fn_free)(void* p);

/* "log": a NUL-terminated line at a LAMPYR_LOG_* level, tagged with the plugin name. */
typedef void (*lampyr_fn_log)(lampyr_host* h, int level, const char* message);

/* "register_command": route client command `command` to on_request. */
typedef int (*lampyr_fn_register_command)(lampyr_host* h, uint32_t command);
/* "register_remote": route channel method `method` to on_remote. */
typedef int (*lampyr_fn_register_remote)(lampyr_host* h, const char* method);

/* "reply": answers a request (client reply with the request's command id)
 * or a remote call (bytes returned to the caller). */
typedef int (*lampyr_fn_reply)(lampyr_host* h, lampyr_token token, const char* data, size_t len);
/* "decline": a request that gets no reply frame (remote calls: empty reply). */
typedef int (*lampyr_fn_decline)(lampyr_host* h, lampyr_token token);
/* "fail": the documented error reply with code LAMPYR_FAIL_* and a message. */
typedef int (*lampyr_fn_fail)(lampyr_host* h, lampyr_token token, int code, const char* message);

/* "push": server push of `command` to one session, anywhere in the cluster. */
typedef int (*lampyr_fn_push)(lampyr_host* h, lampyr_session s, uint32_t command, const char* data, size_t len);
/* "push_many": to n sessions. */
typedef int (*lampyr_fn_push_many)(lampyr_host* h, const lampyr_session* sessions, size_t n, uint32_t command,
                                   const char* data, size_t len);
/* "broadcast": to every member of a named group (NUL-terminated name). */
typedef int (*lampyr_fn_broadcast)(lampyr_host* h, const char* group, uint32_t command, const char* data,
                                   size_t len);
/* "join_group" / "leave_group". A session leaves every group when it closes. */
typedef int (*lampyr_fn_group)(lampyr_host* h, const char* group, lampyr_session s);
/* "kick": closes the session (after queued replies are sent). */
typedef int (*lampyr_fn_kick)(lampyr_host* h, lampyr_session s);

/* "session_set": stores bytes under (session, key) in the host; they survive
 * reloads and vanish when the session closes. len 0 with data NULL erases. */
typedef int (*lampyr_fn_session_set)(lampyr_host* h, lampyr_session s, const char* key, const char* data,
                                     size_t len);
/* "session_get": the host calls `sink(user, data, len)` once with the
 * value and returns LAMPYR_OK, or returns LAMPYR_ERR_ARG without calling it
 * when there is none. `data` is valid only during the sink call. */
typedef void (*lampyr_sink_fn)(void* user, const char* data, size_t len);
typedef int (*lampyr_fn_session_get)(lampyr_host* h, lampyr_session s, const char* key, lampyr_sink_fn sink,
                                     void* user);

/* "timer_start": on_timer(cookie) after delay_ms, then every repeat_ms if
 * repeat_ms > 0. Returns a timer id > 0, or 0 when refused (draining). */
typedef uint64_t (*lampyr_fn_timer_start)(lampyr_host* h, uint64_t delay_ms, uint64_t repeat_ms, uint64_t cookie);
/* "timer_cancel". */
typedef int (*lampyr_fn_timer_cancel)(lampyr_host* h, uint64_t timer_id);

/* "counter_add" / "gauge_set": metrics named `name` (Prometheus rules),
 * labelled plugin="<name>" by the host. */
typedef int (*lampyr_fn_counter_add)(lampyr_host* h, const char* name, const char* help, uint64_t delta);
typedef int (*lampyr_fn_gauge_set)(lampyr_host* h, const char* name, const char* help, int64_t value);

/* "now_ms": monotonic milliseconds (the loop's clock). */
typedef uint64_t (*lampyr_fn_now_ms)(lampyr_host* h);

/* "call": remote call of `method` on server `node`; the answer arrives as
 * on_complete(cookie, LAMPYR_DONE_*, bytes). timeout_ms 0 = host default.
 * Returns LAMPYR_OK when the completion is guaranteed to come (it may fail
 * later with a status), an error otherwise. */
typedef int (*lampyr_fn_call)(lampyr_host* h, const char* node, const char* method, const char* args, size_t len,
                              uint64_t timeout_ms, uint64_t cookie);
/* "notify": one-way message, no answer. */
typedef int (*lampyr_fn_notify)(lampyr_host* h, const char* node, const char* method, const char* args,
                                size_t len);

/* "bind": route this session's forwarded requests to server `node` ("" ends
 * the binding). "watch_sessions": on_session for every session of the
 * cluster. "set_router": the descriptor's `route` picks nodes (gate). */
typedef int (*lampyr_fn_bind)(lampyr_host* h, lampyr_session s, const char* node);
typedef int (*lampyr_fn_watch_sessions)(lampyr_host* h);
typedef int (*lampyr_fn_set_router)(lampyr_host* h);

/* ---- Data layer ("data_*", docs/data.md "From a plugin") ----------------
 * Records of the tables declared in the config's "tables", on servers with
 * "db": true (elsewhere every data_* function returns
 * LAMPYR_ERR_UNAVAILABLE). Each call starts one async operation and returns
 * LAMPYR_OK when its on_complete(cookie, status, data, len) is guaranteed to
 * come: status LAMPYR_DONE_OK with data = JSON text (below), or
 * LAMPYR_DONE_ERROR with data = the error message (unknown table or column,
 * missing record, value refused by the column type, MySQL error...). A
 * draining generation can start none (LAMPYR_ERR_STATE); malformed JSON
 * input is LAMPYR_ERR_ARG. The plugin's code never runs on a worker thread.
 *
 * JSON as it crosses this boundary:
 *   row     {"column": "value" | null, ...}: every value as a string, as
 *           MySQL prints it (integers in decimal, blobs as raw bytes). In
 *           input, integer numbers are accepted as values too.
 *   string  byte-transparent: the host escapes only '"', '\\' and bytes
 *           below 0x20 or 0x7F (as \u00XX), and passes any other byte raw,
 *           so binary values arrive unchanged (the text is then not strict
 *           UTF-8 JSON). In input, \uXXXX (and surrogate pairs) are decoded
 *           as standard JSON: to the code point's UTF-8 bytes (\u0000 = NUL).
 * pk, fk: a value's bytes (pk_len / fk_len). table, column, sql:
 * NUL-terminated. */

/* "data_get": one record. Completion: row, or null when it does not exist. */
typedef int (*lampyr_fn_data_get)(lampyr_host* h, const char* table, const char* pk, size_t pk_len,
                                  uint64_t cookie);
/* "data_get_many": pks_json = JSON array of keys. Completion: array of
 * (row | null) in the order of the keys. */
typedef int (*lampyr_fn_data_get_many)(lampyr_host* h, const char* table, const char* pks_json, size_t len,
                                       uint64_t cookie);
/* "data_get_by_fk": rows whose fk column (the table's declared "fk") equals
 * fk. Completion: array of rows. */
typedef int (*lampyr_fn_data_get_by_fk)(lampyr_host* h, const char* table, const char* fk, size_t fk_len,
                                        uint64_t cookie);
/* "data_create": inserts row_json into MySQL at once (durable when OK); an
 * autoinc table allocates the key when the row has none. Completion:
 * {"pk": "<key>"}. */
typedef int (*lampyr_fn_data_create)(lampyr_host* h, const char* table, const char* row_json, size_t len,
                                     uint64_t cookie);
/* "data_update": sets the columns of fields_json on an existing record
 * (compare-and-swap, write-behind). Completion: {}. */
typedef int (*lampyr_fn_data_update)(lampyr_host* h, const char* table, const char* pk, size_t pk_len,
                                     const char* fields_json, size_t len, uint64_t cookie);
/* "data_add": atomically adds delta to the integer column `column` (NULL
 * counts as 0), refusing a result outside [min, max] (then nothing changes
 * and the error message starts with "data: out of bounds"). Concurrent adds
 * from any number of processes all count. Completion: the updated row. */
typedef int (*lampyr_fn_data_add)(lampyr_host* h, const char* table, const char* pk, size_t pk_len,
                                  const char* column, int64_t delta, int64_t min, int64_t max, uint64_t cookie);
/* "data_remove": deletes the record (flushed as DELETE). Completion: {}. */
typedef int (*lampyr_fn_data_remove)(lampyr_host* h, const char* table, const char* pk, size_t pk_len,
                                     uint64_t cookie);
/* "data_query": a raw prepared statement; params_json = JSON array of values
 * bound to its '?' markers (never splice values into sql). It sees MySQL
 * only, not unflushed record changes. Completion:
 * {"rows": [[value, ...], ...], "affected": N}. */
typedef int (*lampyr_fn_data_query)(lampyr_host* h, const char* sql, const char* params_json, size_t len,
                                    uint64_t cookie);

/* ==== SQL, off-loop work, key/value (ABI minor 1) ========================
 * docs/plugins.md "SQL, off-loop work, key/value". Every function here is
 * looked up by name; a host of minor 0 returns NULL for them. */

/* The host's queue for this kind of work is full: nothing was started; try
 * again later or answer the client "busy" (LAMPYR_FAIL_OVERLOADED). */
#define LAMPYR_ERR_BUSY (-16)

/* ---- Off-loop work ("work") ----------------------------------------------
 * "work": runs fn(arg) once on one of the host's worker threads
 * (servers.<name>.work_threads), then on_complete(cookie, LAMPYR_DONE_OK,
 * NULL, 0) on the event loop. Only a serving generation may start work
 * (LAMPYR_ERR_STATE in init, while draining); LAMPYR_ERR_BUSY when
 * servers.<name>.work_queue jobs already wait. The generation stays loaded
 * until every job it started has completed (a lease, like a remote call); a
 * reload waits for them up to the plugin's drain_timeout_s, after which jobs
 * that have not started are dropped (no completion: the generation is gone)
 * and the library is unloaded as soon as the ones running return.
 * fn runs concurrently with the loop and with other jobs: it may touch only
 * what arg gives it, must not call any host function, must not throw and
 * owns nothing the host frees. arg is the plugin's; the host never reads it.
 * Plugins must not create threads of their own: the loader refuses a plugin
 * that imports pthread_create, thrd_create or std::thread. */
typedef void (*lampyr_work_fn)(void* arg);
typedef int (*lampyr_fn_work)(lampyr_host* h, lampyr_work_fn fn, void* arg, uint64_t cookie);

/* ---- Plain SQL ("sql_*") -------------------------------------------------
 * Firefly's dbpool: SQL on the MySQL of the config's "db" section, on
 * servers with "db": true, whether or not they cache records ("mem"); other
 * servers get LAMPYR_ERR_UNAVAILABLE. Every statement is prepared: values
 * are bound to its '?' markers from params_json (a JSON array of strings,
 * numbers or null, as for "data_query"); never splice values into sql.
 * Each call returns LAMPYR_OK when on_complete(cookie, status, data, len)
 * is guaranteed to come; LAMPYR_ERR_BUSY when db.sql_queue statements
 * already wait; LAMPYR_ERR_STATE for a draining generation (which may
 * still run statements of, commit and roll back transactions it began).
 * Completion status: LAMPYR_DONE_OK; LAMPYR_DONE_ERROR (MySQL refused the
 * statement: data = "sql statement: <MySQL's message> (error N, state S)");
 * LAMPYR_DONE_TIMEOUT (no connection free within db.sql_timeout_ms: the
 * statement did not run); LAMPYR_DONE_UNAVAILABLE (the database cannot be
 * reached, or the connection broke: it may or may not have run).
 * A dead database fails calls at once, never blocks the event loop.
 *
 * Result of a statement (JSON, strings byte-transparent as for data_*):
 *   {"columns": ["name", ...], "rows": [[value|null, ...], ...], "affected": N}
 * (columns and rows empty for statements without a result set; affected 0
 * for those with one).
 *
 * Transactions: "sql_begin" pins one pooled connection (completion data:
 * {"tx": "<id>"}); "sql_tx_query" runs statements on it in order; then
 * exactly one "sql_commit" or "sql_rollback" (completion data: {}). A
 * transaction still open db.tx_timeout_ms after it began is rolled back by
 * the host; later calls on it complete with LAMPYR_DONE_ERROR. Only the
 * generation that began a transaction may use it (LAMPYR_ERR_ARG else). */
typedef int (*lampyr_fn_sql_query)(lampyr_host* h, const char* sql, const char* params_json, size_t len,
                                   uint64_t cookie);
typedef int (*lampyr_fn_sql_begin)(lampyr_host* h, uint64_t cookie);
typedef int (*lampyr_fn_sql_tx_query)(lampyr_host* h, uint64_t tx, const char* sql, const char* params_json,
                                      size_t len, uint64_t cookie);
/* "sql_commit" and "sql_rollback". */
typedef int (*lampyr_fn_sql_end)(lampyr_host* h, uint64_t tx, uint64_t cookie);

/* ---- Shared key/value ("kv_*") and preload ("data_preload") -------------
 * Firefly's mclient/MemObject: plain values on the cluster's memcached, on
 * servers with "mem": true (else LAMPYR_ERR_UNAVAILABLE), shared by every
 * process of the cluster. Keys live under memcached.kv_prefix (default
 * "<memcached.hostname>:kv:"), apart from the record layer's keys; two
 * plugins using the same key share the value. key: 1 byte or more, at most
 * 250 with the prefix, no spaces or control bytes; value: at most 1,000,000
 * bytes; else LAMPYR_ERR_ARG. exptime_s: 0 = no expiry, else seconds
 * (memcached's rule: more than 30 days is an absolute unix time).
 * LAMPYR_OK: on_complete(cookie, status, data, len) will come with status
 * LAMPYR_DONE_OK and data = JSON below, or LAMPYR_DONE_UNAVAILABLE (data =
 * the message) when memcached cannot be reached. LAMPYR_ERR_BUSY when
 * memcached.kv_queue calls already wait; LAMPYR_ERR_STATE when draining.
 *   kv_get                       {"value": "<bytes>", "cas": "<n>"} | null
 *   kv_set, kv_add, kv_cas,
 *   kv_delete, kv_unlock         {"ok": true} | {"ok": false, "why": "exists" | "not_found"}
 *                                (add: the key exists; cas: changed since read
 *                                or gone; delete: no such key; unlock: lock
 *                                held by another token or gone)
 *   kv_incr                      {"value": "<n>"} (delta < 0 decrements, not
 *                                below 0; a missing key starts at `initial`;
 *                                a value that is not a decimal number:
 *                                LAMPYR_DONE_ERROR)
 *   kv_lock                      {"ok": true, "token": "<t>"} | {"ok": false, "why": "exists"}
 * kv_lock is an add of a random token under "lock:<key>" with expiry
 * ttl_s (1..86400): whoever adds first holds it until kv_unlock with that
 * token or the TTL passes. Nobody waits: a plugin that wants to retry uses
 * a timer. */
typedef int (*lampyr_fn_kv_get)(lampyr_host* h, const char* key, size_t key_len, uint64_t cookie);
/* "kv_set" and "kv_add". */
typedef int (*lampyr_fn_kv_store)(lampyr_host* h, const char* key, size_t key_len, const char* value, size_t len,
                                  uint32_t exptime_s, uint64_t cookie);
typedef int (*lampyr_fn_kv_cas)(lampyr_host* h, const char* key, size_t key_len, const char* value, size_t len,
                                uint32_t exptime_s, uint64_t cas, uint64_t cookie);
typedef int (*lampyr_fn_kv_incr)(lampyr_host* h, const char* key, size_t key_len, int64_t delta, uint64_t initial,
                                 uint32_t exptime_s, uint64_t cookie);
typedef int (*lampyr_fn_kv_delete)(lampyr_host* h, const char* key, size_t key_len, uint64_t cookie);
typedef int (*lampyr_fn_kv_lock)(lampyr_host* h, const char* key, size_t key_len, uint32_t ttl_s, uint64_t cookie);
typedef int (*lampyr_fn_kv_unlock)(lampyr_host* h, const char* key, size_t key_len, const char* token,
                                   size_t token_len, uint64_t cookie);
/* "data_preload": loads every row of the declared table into the record
 * cache (Firefly's MAdmin.load), on servers with the record layer; the
 * config's tables.<name>.preload does it once at start. Completion:
 * {"rows": "<n>"}. */
typedef int (*lampyr_fn_data_preload)(lampyr_host* h, const char* table, uint64_t cookie);

/* ==== end of "SQL, off-loop work, key/value" ============================== */

/* ==== Web routes, HTTP client, links, peer address (ABI minor 1) ==========
 * docs/plugins.md "Web routes, HTTP client, links, peer address".
 *
 * The callbacks of these features are passed to the function that enables
 * them instead of being new descriptor fields: features added in the same
 * minor release stay independent of each other, and the host holds each
 * pointer only while the generation that passed it is loaded. A draining
 * generation keeps getting the events of work it started (its pending web
 * requests can still be answered, its HTTP calls still complete), no new
 * ones (no new web requests, no link events). */

/* A link of this server's channels came up (up = 1) or went down (0). node is
 * the peer server's name ("master" for the master), valid during the call.
 * Right after init, every link already up is reported once as up. */
typedef void (*lampyr_link_fn)(void* ctx, const char* node, int up);
/* "watch_links": during init only. */
typedef int (*lampyr_fn_watch_links)(lampyr_host* h, lampyr_link_fn fn);

/* "session_peer": the client address of a session: the IP as text (dotted
 * IPv4 or IPv6, NUL-terminated, at most 46 bytes with the NUL) into ip,
 * the port into *port, 4 or 6 into *family. LAMPYR_ERR_ARG: unknown session
 * (closed, or opened before this server started) or ip_cap too small. */
typedef int (*lampyr_fn_session_peer)(lampyr_host* h, lampyr_session s, char* ip, size_t ip_cap, uint16_t* port,
                                      int* family);

/* One HTTP header; name and value are bytes (not NUL-terminated). */
typedef struct lampyr_http_header {
  const char* name;
  size_t name_len;
  const char* value;
  size_t value_len;
} lampyr_http_header;

/* A request on a plugin's web route. Every pointer is valid during the
 * callback only. Answer it with "http_respond", now or later, exactly once;
 * past its time limit the host answers 504 itself and the token is gone. */
typedef struct lampyr_http_request {
  uint32_t size;
  lampyr_token token;
  const char* method;  /* "GET" or "POST" */
  const char* prefix;  /* the registered prefix that matched */
  const char* path;    /* as sent (percent-encoding kept), without the query */
  const char* query;   /* text after '?', "" when none */
  const lampyr_http_header* headers;
  size_t header_count;
  const char* body;    /* POST only; at most the route's max_body bytes */
  size_t body_len;
  const char* peer_ip; /* the client's address (IPv4 or IPv6 text) */
  uint16_t peer_port;
} lampyr_http_request;
typedef void (*lampyr_http_fn)(void* ctx, const lampyr_http_request* req);

/* Route flags. */
#define LAMPYR_HTTP_PUBLIC 0 /* anyone who reaches the webport */
#define LAMPYR_HTTP_ADMIN 1  /* needs "Authorization: Bearer <admin_token>" (401 otherwise) */

/* "http_route": during init only. method "GET" or "POST"; prefix "/gm"
 * matches "/gm" and "/gm/..." (segment boundaries). Refused: the admin
 * API's paths (/status, /reload, /stop, /restart, /metrics, /upgrade and
 * what lies under them), "/", a prefix another plugin holds.
 * max_body: bytes of request body accepted (0 = 64 KiB, at most 1 MiB;
 * larger is answered 413). timeout_ms: time to answer (0 = 5000, at most
 * the admin request timeout); then the host answers 504.
 * LAMPYR_ERR_UNAVAILABLE: the server has no webport. */
typedef int (*lampyr_fn_http_route)(lampyr_host* h, const char* method, const char* prefix, int flags,
                                    size_t max_body, uint64_t timeout_ms, lampyr_http_fn fn);
/* "http_respond": status 100..599, headers (Content-Type defaults to
 * text/plain), body of at most 16 MiB. LAMPYR_ERR_ARG: unknown token
 * (answered, timed out, client gone) or a bad header (CR/LF/NUL in a value,
 * or Content-Length, Transfer-Encoding, Connection: the host frames the
 * answer); the request then stays pending. */
typedef int (*lampyr_fn_http_respond)(lampyr_host* h, lampyr_token token, int status,
                                      const lampyr_http_header* headers, size_t header_count, const char* body,
                                      size_t body_len);

/* The outcome of an outbound HTTP(S) request. status is the HTTP status, or
 * 0 when there is none: then error says why (timeout, refused connection,
 * certificate not trusted, response too large, cancelled by a reload...). */
typedef struct lampyr_http_response {
  uint32_t size;
  int status;
  const char* error; /* "" when status > 0 */
  const lampyr_http_header* headers;
  size_t header_count;
  const char* body;
  size_t body_len;
} lampyr_http_response;
typedef void (*lampyr_http_response_fn)(void* ctx, uint64_t cookie, const lampyr_http_response* resp);

/* Flags of "http_fetch". */
#define LAMPYR_FETCH_INSECURE 1 /* https without certificate verification (tests only) */

/* "http_fetch": an async GET/POST of url ("http://..." or "https://...")
 * with headers and body; fn(ctx, cookie, response) runs exactly once, on
 * the loop, when this returned LAMPYR_OK — unless the generation is
 * unloaded first (a draining generation's fetches still complete or time
 * out; the drain waits for them). timeout_ms: whole request (0 = 10000, at
 * most 120000). Responses over 4 MiB fail. https verifies the server's
 * certificate and name against the system trust store (SSL_CERT_FILE /
 * SSL_CERT_DIR override it) unless LAMPYR_FETCH_INSECURE. */
typedef int (*lampyr_fn_http_fetch)(lampyr_host* h, const char* method, const char* url,
                                    const lampyr_http_header* headers, size_t header_count, const char* body,
                                    size_t body_len, uint64_t timeout_ms, int flags, uint64_t cookie,
                                    lampyr_http_response_fn fn);
/* ==== end of web routes, HTTP client, links, peer address ================ */

/* The SDK signature: SDK ABI major, C++ ABI family, libstdc++ dual ABI,
 * pointer size ("lampyr-sdk/1;itanium;cxx11abi=1;ptr=8"). The host refuses
 * a plugin whose parts differ from its own; "cxx11abi=none" (a plain C
 * plugin) matches any. */
#define LAMPYR_STR2_(x) #x
#define LAMPYR_STR_(x) LAMPYR_STR2_(x)
#if defined(__GNUC__) /* g++ and clang++ share the Itanium C++ ABI */
#define LAMPYR_SDK_COMPILER_ "itanium"
#else
#define LAMPYR_SDK_COMPILER_ "other"
#endif
#if defined(_GLIBCXX_USE_CXX11_ABI)
#define LAMPYR_SDK_CXXABI_ LAMPYR_STR_(_GLIBCXX_USE_CXX11_ABI)
#else
#define LAMPYR_SDK_CXXABI_ "none"
#endif
#define LAMPYR_SDK_SIGNATURE                                                                     \
  "lampyr-sdk/" LAMPYR_STR_(LAMPYR_ABI_MAJOR) ";" LAMPYR_SDK_COMPILER_ ";cxx11abi=" LAMPYR_SDK_CXXABI_ \
                                              ";ptr=" LAMPYR_STR_(__SIZEOF_POINTER__)

#ifdef __cplusplus
}
#endif

#endif /* LAMPYR_PLUGIN_H */
