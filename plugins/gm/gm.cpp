// gm: a game-master tool on the server's webport (docs/plugins.md, "Web
// routes, HTTP client, links, peer address"), the example of that SDK block.
//
//   GET  /gm/players       (admin token) online sessions with their address
//   GET  /gm/links         (admin token) this server's channel links
//   GET  /gm/ping          (public)      "pong": a health page
//   POST /gm/echo          (public)      the body back, with the query and X-Echo
//   GET  /gm/later?ms=N    (public)      answers after N ms (at most 60000): a
//                                        slow handler, for reload and time-limit tests
//   GET  /gm/fetch?url=U[&insecure=1][&timeout_ms=N][&post=B]  (admin token) fetches U
//                                        with the host's HTTP client, answers
//                                        {"status","error","body","x_echo"}; with post=B it POSTs B
//                                        with header X-Echo: from-gm
//   POST /gm/grant?player=P&item=I&count=N&ref=R  (admin token) grants an item in one SQL
//                                        transaction: adds N to the player's item row and logs the
//                                        grant under the unique reference R; a grant whose R was
//                                        used before fails as a whole (nothing added): 409
//   client command 5001    the caller's own address, "ip:port" (Firefly
//                          handlers read the client address)
//
// Config: {"later_timeout_ms": N} sets /gm/later's time limit (default 5000);
// {"try_route": "/path"} registers one more GET route (tests of refusals).
// {"items_table": T, "grants_table": G} enables /gm/grant (a server with "db": true):
//   T (player BIGINT, item VARCHAR, count BIGINT, PRIMARY KEY (player, item)),
//   G (ref VARCHAR PRIMARY KEY, player BIGINT, item VARCHAR, count BIGINT).
// Built twice: GM_V2 reports version 2 (reload tests).
#include <lampyr/plugin.hpp>

#include <cctype>
#include <map>
#include <string>

namespace {

#ifdef GM_V2
constexpr const char* kVersion = "2";
#else
constexpr const char* kVersion = "1";
#endif

std::string Quote(std::string_view s) {
  std::string out;
  lampyr::sdk::datajson::put_string(out, s);
  return out;
}

class Gm : public lampyr::sdk::Plugin {
  void init() override {
    using lampyr::sdk::RouteOptions;
    using lampyr::sdk::WebRequest;
    watch_sessions([this](lampyr::sdk::Session s, bool open) {
      if (open) online_[s] = now_ms();
      else online_.erase(s);
    });
    watch_links([this](const std::string& node, bool up) { links_[node] = up; });
    on(5001, [this](lampyr::sdk::Request& r) {
      auto p = peer(r.session());
      r.reply(p ? (p->family == 6 ? "[" + p->ip + "]" : p->ip) + ":" + std::to_string(p->port) : "unknown");
    });
    if (!route("GET", "/gm/players", [this](WebRequest& r) { r.respond_json(200, Players()); }, RouteOptions{.admin = true}))
      warn("gm: this server has no webport: no GM pages");
    route("GET", "/gm/links", [this](WebRequest& r) { r.respond_json(200, Links()); }, RouteOptions{.admin = true});
    route("GET", "/gm/ping", [](WebRequest& r) { r.respond(200, "pong"); });
    route("POST", "/gm/echo", [](WebRequest& r) {
      r.respond(200, r.body(),
                {{"Content-Type", "application/octet-stream"},
                 {"X-Query", r.query()},
                 {"X-Echo", r.header("x-echo").value_or("")},
                 {"X-Path", r.path()},
                 {"X-Peer", r.peer_ip()}});
    });
    RouteOptions later;
    later.timeout_ms = static_cast<uint64_t>(config_int("later_timeout_ms", 5000));
    route("GET", "/gm/later", [this](WebRequest& r) {
      auto ms = lampyr::sdk::json::to_int(r.query_param("ms").value_or("0"));
      int64_t wait = ms ? std::min<int64_t>(std::max<int64_t>(*ms, 0), 60000) : 0;
      // A copy of the request in the continuation: answered later, maybe by
      // a generation that is draining by then.
      after(static_cast<uint64_t>(wait), [this, r] { r.respond(200, std::string("later from v") + kVersion); });
    }, later);
    route("GET", "/gm/fetch", [this](WebRequest& r) {
      lampyr::sdk::FetchOptions o;
      o.insecure = r.query_param("insecure").value_or("") == "1";
      if (auto body = r.query_param("post")) {  // POST this (raw query text) instead of a GET
        o.method = "POST";
        o.body = *body;
        o.headers = {{"X-Echo", "from-gm"}};
      }
      o.timeout_ms = static_cast<uint64_t>(lampyr::sdk::json::to_int(r.query_param("timeout_ms").value_or("")).value_or(5000));
      std::string url = r.query_param("url").value_or("");
      bool started = fetch(url, o, [r](lampyr::sdk::FetchResult f) {
        std::string echo;
        for (const auto& [k, v] : f.headers)
          if (k == "X-Echo" || k == "x-echo") echo = v;
        r.respond_json(200, "{\"status\":" + std::to_string(f.status) + ",\"error\":" + Quote(f.error) +
                                ",\"body\":" + Quote(f.body) + ",\"x_echo\":" + Quote(echo) + "}");
      });
      if (!started) r.respond_json(400, "{\"error\":\"fetch refused\"}");
    }, RouteOptions{.admin = true});
    GrantRoute();
    // A route the host must refuse (tests): init then fails, the load too.
    if (std::string extra = config_string("try_route"); !extra.empty()) route("GET", extra, [](WebRequest&) {});
  }

  // Table names come from the config (never from a request) and are still
  // checked: they are the only text spliced into the SQL.
  static bool Identifier(const std::string& s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
    return true;
  }

  void GrantRoute() {
    const std::string items = config_string("items_table"), grants = config_string("grants_table");
    if (items.empty() && grants.empty()) return;
    if (!Identifier(items) || !Identifier(grants)) {
      warn("gm: items_table and grants_table must both be table names ([A-Za-z0-9_]): no /gm/grant");
      return;
    }
    route("POST", "/gm/grant", [this, items, grants](lampyr::sdk::WebRequest& r) {
      auto player = lampyr::sdk::json::to_int(r.query_param("player").value_or(""));
      auto count = lampyr::sdk::json::to_int(r.query_param("count").value_or(""));
      std::string item = r.query_param("item").value_or(""), ref = r.query_param("ref").value_or("");
      if (!player || !count || *count <= 0 || item.empty() || ref.empty()) {
        r.respond_json(400, "{\"error\":\"need player, item, count > 0 and ref\"}");
        return;
      }
      const std::string p = std::to_string(*player), n = std::to_string(*count);
      // Both statements or neither: the reference makes a retried grant fail
      // instead of granting twice.
      bool started = sql_transaction(
          {{"INSERT INTO " + items + " (player, item, count) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE count = count + ?",
            {p, item, n, n}},
           {"INSERT INTO " + grants + " (ref, player, item, count) VALUES (?, ?, ?, ?)", {ref, p, item, n}}},
          [r](lampyr::sdk::DataStatus st, std::vector<lampyr::sdk::SqlResult>) {
            if (st.ok()) {
              r.respond_json(200, "{\"granted\":true}");
              return;
            }
            const bool dup = st.message.find("Duplicate entry") != std::string::npos;
            r.respond_json(dup ? 409 : 500, "{\"error\":" + Quote(st.message) + "}");
          });
      if (!started) r.respond_json(503, "{\"error\":\"sql unavailable on this server\"}");
    }, lampyr::sdk::RouteOptions{.admin = true});
  }

  std::string Players() {
    std::string out = "{\"version\":\"" + std::string(kVersion) + "\",\"players\":[";
    bool first = true;
    for (const auto& [s, since] : online_) {
      auto p = peer(s);
      out += std::string(first ? "" : ",") + "{\"session\":" + std::to_string(s) +
             ",\"ip\":" + Quote(p ? p->ip : "") + ",\"port\":" + std::to_string(p ? p->port : 0) +
             ",\"online_ms\":" + std::to_string(now_ms() - since) + "}";
      first = false;
    }
    return out + "]}";
  }

  std::string Links() {
    std::string out = "{";
    bool first = true;
    for (const auto& [node, up] : links_) {
      out += std::string(first ? "" : ",") + Quote(node) + ":" + (up ? "true" : "false");
      first = false;
    }
    return out + "}";
  }

  std::map<lampyr::sdk::Session, uint64_t> online_;  // session -> opened at (ms)
  std::map<std::string, bool> links_;
};

}  // namespace

LAMPYR_PLUGIN(Gm, "gm", kVersion, 1)
