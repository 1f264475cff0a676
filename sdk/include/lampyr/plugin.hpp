// Lampyr plugin SDK, C++ layer (header-only, compiled INTO the plugin).
//
// The host only speaks the plain-C contract of plugin.h. This header turns it
// into something pleasant for gameplay code:
//
//   class Echo : public lampyr::sdk::Plugin {
//     void init() override {
//       on(1, [](lampyr::sdk::Request& r) { r.reply(r.body()); });
//     }
//   };
//   LAMPYR_PLUGIN(Echo, "echo", "1.0", 1)
//
// How it keeps the C boundary clean (docs/plugins.md, "Rules"):
//   - Handlers and continuations are std::function objects kept INSIDE the
//     plugin, in maps keyed by a cookie; the host only ever sees integers
//     (tokens, cookies, timer ids). Everything dies with the Plugin object,
//     which the host deletes through destroy() before it unloads the library.
//   - Every entry from the host is wrapped in try/catch(...): an exception
//     never crosses into the host. A throwing request handler answers the
//     request with fail(LAMPYR_FAIL_HANDLER_ERROR, what()) if it had not
//     answered yet; a throwing init() makes init fail with what().
//   - No static data with destructors, no inline/template static variables
//     (they would become STB_GNU_UNIQUE and pin the library), no
//     thread_local. The descriptor is a constant-initialised POD.
//   - Host functions are looked up once, at init, by name. A missing one makes
//     only the feature that needs it throw sdk::Error when used.
#ifndef LAMPYR_PLUGIN_HPP
#define LAMPYR_PLUGIN_HPP

#include <lampyr/plugin.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lampyr::sdk {

using Session = lampyr_session;

// Thrown by the SDK for programming errors (a host function this host does
// not have, a registration the host refused). Plugins may throw anything.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Plugin;
namespace detail {
struct Entry;  // the C callbacks (below), friends of Plugin, Request, RemoteCall
}

// printf-style body of Plugin::infof and friends (undefined after the class).
#define LAMPYR_SDK_VLOG_(level)                              \
  char buf[1024];                                            \
  va_list ap;                                                \
  va_start(ap, fmt);                                         \
  std::vsnprintf(buf, sizeof buf, fmt, ap);                  \
  va_end(ap);                                                \
  log(level, buf)

// A client request. Copyable and cheap to keep: it holds the token, the
// session, the command id and a copy of the body, so a handler may store it
// and answer later (after a remote call, a timer...). Answer exactly once.
// The answer functions return false when the host no longer knows the token
// (the session closed, the request was already answered).
class Request {
 public:
  Request() = default;
  Session session() const { return session_; }
  uint32_t command() const { return command_; }
  const std::string& body() const { return body_; }
  lampyr_token token() const { return token_; }

  bool reply(std::string_view bytes) const;
  bool decline() const;
  bool fail(int code, std::string_view message) const;

 private:
  friend class Plugin;
  friend struct detail::Entry;
  Plugin* plugin_ = nullptr;
  lampyr_token token_ = 0;
  Session session_ = 0;
  uint32_t command_ = 0;
  std::string body_;
};

// A remote call of a method registered with Plugin::remote(). A one-way
// notify has is_notify() == true and must not be answered.
class RemoteCall {
 public:
  RemoteCall() = default;
  const std::string& from() const { return from_; }
  const std::string& method() const { return method_; }
  const std::string& args() const { return args_; }
  bool is_notify() const { return token_ == 0; }
  lampyr_token token() const { return token_; }

  bool reply(std::string_view bytes) const;
  bool fail(std::string_view message) const;

 private:
  friend class Plugin;
  friend struct detail::Entry;
  Plugin* plugin_ = nullptr;
  lampyr_token token_ = 0;
  std::string from_;
  std::string method_;
  std::string args_;
};

// Outcome of call(): LAMPYR_DONE_* plus a readable name.
struct CallStatus {
  int code = LAMPYR_DONE_OK;
  bool ok() const { return code == LAMPYR_DONE_OK; }
  const char* name() const {
    switch (code) {
      case LAMPYR_DONE_OK: return "ok";
      case LAMPYR_DONE_ERROR: return "error";
      case LAMPYR_DONE_TIMEOUT: return "timeout";
      case LAMPYR_DONE_UNAVAILABLE: return "unavailable";
      case LAMPYR_DONE_CANCELLED: return "cancelled";
      default: return "unknown";
    }
  }
};

// ==== Web routes, HTTP client, links, peer address (ABI minor 1) =============
// docs/plugins.md "Web routes, HTTP client, links, peer address".
using Headers = std::vector<std::pair<std::string, std::string>>;

// A request on one of the plugin's web routes (Plugin::route). Copyable: keep
// it and respond later (after a call, a fetch...), exactly once, before the
// route's time limit (then the host has answered 504 and respond() is false).
class WebRequest {
 public:
  WebRequest() = default;
  const std::string& method() const { return method_; }
  const std::string& prefix() const { return prefix_; }
  const std::string& path() const { return path_; }    // percent-encoding kept
  const std::string& query() const { return query_; }  // after '?', "" if none
  const Headers& headers() const { return headers_; }
  const std::string& body() const { return body_; }
  const std::string& peer_ip() const { return peer_ip_; }
  uint16_t peer_port() const { return peer_port_; }
  lampyr_token token() const { return token_; }
  // The first header named `name` (ASCII case-insensitive).
  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [k, v] : headers_) {
      if (k.size() != name.size()) continue;
      bool same = true;
      for (size_t i = 0; i < k.size() && same; ++i) {
        char a = k[i], b = name[i];
        if (a >= 'A' && a <= 'Z') a = char(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z') b = char(b - 'A' + 'a');
        same = a == b;
      }
      if (same) return v;
    }
    return std::nullopt;
  }
  // The value of `key` in the query string (the raw text; no %-decoding).
  std::optional<std::string> query_param(std::string_view key) const {
    std::string_view q(query_);
    while (!q.empty()) {
      size_t amp = q.find('&');
      std::string_view part = q.substr(0, amp);
      size_t eq = part.find('=');
      if (part.substr(0, eq) == key) return std::string(eq == std::string_view::npos ? "" : part.substr(eq + 1));
      if (amp == std::string_view::npos) break;
      q.remove_prefix(amp + 1);
    }
    return std::nullopt;
  }
  // status 100..599; Content-Type defaults to text/plain. False when the host
  // no longer knows the request (answered, timed out) or refused a header.
  bool respond(int status, std::string_view body, const Headers& headers = {}) const;
  bool respond_json(int status, std::string_view json) const {
    return respond(status, json, {{"Content-Type", "application/json"}});
  }

 private:
  friend class Plugin;
  friend struct detail::Entry;
  Plugin* plugin_ = nullptr;
  lampyr_token token_ = 0;
  std::string method_, prefix_, path_, query_, body_, peer_ip_;
  Headers headers_;
  uint16_t peer_port_ = 0;
};

struct RouteOptions {
  bool admin = false;         // needs "Authorization: Bearer <admin_token>"
  size_t max_body = 0;        // 0 = 64 KiB (at most 1 MiB)
  uint64_t timeout_ms = 0;    // 0 = 5 s; then the host answers 504
};

struct FetchOptions {
  std::string method = "GET";  // or "POST"
  Headers headers;
  std::string body;
  uint64_t timeout_ms = 0;     // 0 = 10 s, at most 120 s
  bool insecure = false;       // https without certificate checks: tests only
};

struct FetchResult {
  int status = 0;              // HTTP status; 0 when there is none (see error)
  std::string error;           // why there is no status: timeout, TLS, refused...
  Headers headers;
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
};

// A session's client address.
struct Peer {
  std::string ip;   // "203.0.113.7" or "2001:db8::1"
  uint16_t port = 0;
  int family = 4;   // 4 or 6
};
// ==== end of web routes, HTTP client, links, peer address ====================

// ---- A tiny reader for the plugin's config object (JSON text) ----------------
// Enough for flat settings without pulling a JSON library into every plugin:
// top-level numbers, strings, booleans and arrays of strings. Malformed input
// yields "absent", never an exception.
namespace json {

inline size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

// Index just past the JSON string starting at s[i] == '"', or npos.
inline size_t skip_string(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// Index just past the value starting at s[i], or npos.
inline size_t skip_value(std::string_view s, size_t i) {
  i = skip_ws(s, i);
  if (i >= s.size()) return std::string_view::npos;
  if (s[i] == '"') return skip_string(s, i);
  if (s[i] == '{' || s[i] == '[') {
    std::string closers;  // the brackets still open, innermost last
    for (; i < s.size(); ++i) {
      char c = s[i];
      if (c == '"') {
        i = skip_string(s, i);
        if (i == std::string_view::npos) return i;
        --i;
      } else if (c == '{' || c == '[') {
        closers += c == '{' ? '}' : ']';
      } else if (c == '}' || c == ']') {
        if (closers.empty() || closers.back() != c) return std::string_view::npos;  // mismatched
        closers.pop_back();
        if (closers.empty()) return i + 1;
      }
    }
    return std::string_view::npos;
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n' &&
         s[i] != '\t' && s[i] != '\r')
    ++i;
  return i;
}

// Decodes the JSON string literal `lit` (with quotes). \uXXXX becomes UTF-8
// (surrogate pairs are not combined: config strings are names and paths).
inline std::optional<std::string> decode_string(std::string_view lit) {
  if (lit.size() < 2 || lit.front() != '"' || lit.back() != '"') return std::nullopt;
  std::string out;
  for (size_t i = 1; i + 1 < lit.size(); ++i) {
    char c = lit[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i >= lit.size() - 1) return std::nullopt;
    switch (lit[i]) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        if (i + 4 >= lit.size() - 1) return std::nullopt;
        unsigned cp = 0;
        for (int k = 1; k <= 4; ++k) {
          char h = lit[i + k];
          cp <<= 4;
          if (h >= '0' && h <= '9') cp |= unsigned(h - '0');
          else if (h >= 'a' && h <= 'f') cp |= unsigned(h - 'a' + 10);
          else if (h >= 'A' && h <= 'F') cp |= unsigned(h - 'A' + 10);
          else return std::nullopt;
        }
        i += 4;
        if (cp < 0x80) {
          out += char(cp);
        } else if (cp < 0x800) {
          out += char(0xC0 | (cp >> 6));
          out += char(0x80 | (cp & 0x3F));
        } else {
          out += char(0xE0 | (cp >> 12));
          out += char(0x80 | ((cp >> 6) & 0x3F));
          out += char(0x80 | (cp & 0x3F));
        }
        break;
      }
      default: out += lit[i]; break;  // \" \\ \/
    }
  }
  return out;
}

// Raw text of the member `key` of the top-level object, or nullopt.
inline std::optional<std::string_view> find(std::string_view doc, std::string_view key) {
  size_t i = skip_ws(doc, 0);
  if (i >= doc.size() || doc[i] != '{') return std::nullopt;
  ++i;
  while (true) {
    i = skip_ws(doc, i);
    if (i >= doc.size() || doc[i] != '"') return std::nullopt;
    size_t kend = skip_string(doc, i);
    if (kend == std::string_view::npos) return std::nullopt;
    auto name = decode_string(doc.substr(i, kend - i));
    i = skip_ws(doc, kend);
    if (i >= doc.size() || doc[i] != ':') return std::nullopt;
    size_t vstart = skip_ws(doc, i + 1);
    size_t vend = skip_value(doc, vstart);
    if (vend == std::string_view::npos) return std::nullopt;
    if (name && *name == key) return doc.substr(vstart, vend - vstart);
    i = skip_ws(doc, vend);
    if (i >= doc.size() || doc[i] != ',') return std::nullopt;
    ++i;
  }
}

inline std::optional<int64_t> to_int(std::string_view raw) {
  if (raw.empty()) return std::nullopt;
  size_t i = 0;
  bool neg = false;
  if (raw[0] == '-') {
    neg = true;
    i = 1;
  }
  if (i >= raw.size()) return std::nullopt;
  uint64_t v = 0;
  for (; i < raw.size(); ++i) {
    if (raw[i] < '0' || raw[i] > '9') return std::nullopt;
    if (v > (UINT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + uint64_t(raw[i] - '0');
  }
  if (v > uint64_t(INT64_MAX)) return std::nullopt;
  return neg ? -int64_t(v) : int64_t(v);
}

inline std::optional<std::vector<std::string>> to_string_list(std::string_view raw) {
  size_t i = skip_ws(raw, 0);
  if (i >= raw.size() || raw[i] != '[') return std::nullopt;
  std::vector<std::string> out;
  i = skip_ws(raw, i + 1);
  if (i < raw.size() && raw[i] == ']') return out;
  while (i < raw.size()) {
    if (raw[i] != '"') return std::nullopt;
    size_t end = skip_string(raw, i);
    if (end == std::string_view::npos) return std::nullopt;
    auto s = decode_string(raw.substr(i, end - i));
    if (!s) return std::nullopt;
    out.push_back(std::move(*s));
    i = skip_ws(raw, end);
    if (i < raw.size() && raw[i] == ']') return out;
    if (i >= raw.size() || raw[i] != ',') return std::nullopt;
    i = skip_ws(raw, i + 1);
  }
  return std::nullopt;
}

}  // namespace json

// ---- Data layer records as they cross the C boundary (plugin.h, "Data
// layer"; docs/data.md "From a plugin") ----------------------------------------
// Rows travel as JSON objects of strings/null, byte-transparent both ways: the
// writer escapes only '"', '\\' and control bytes, so NUL, quotes, UTF-8 and
// binary blobs survive exactly. The host parses and prints with this same code.
using Value = std::optional<std::string>;  // nullopt = SQL NULL
using Row = std::map<std::string, Value>;  // column -> value, as MySQL prints it

// Outcome of a data operation: ok, or LAMPYR_DONE_ERROR with the host's message
// ("data: unknown column ...", "data: out of bounds ...", a MySQL error...).
struct DataStatus {
  int code = LAMPYR_DONE_OK;
  std::string message;
  bool ok() const { return code == LAMPYR_DONE_OK; }
};

namespace datajson {

inline void put_string(std::string& out, std::string_view v) {
  out += '"';
  for (char ch : v) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\u00";
      out += "0123456789abcdef"[c >> 4];  // a literal, not a static: no unique symbol
      out += "0123456789abcdef"[c & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}
inline void put_value(std::string& out, const Value& v) {
  if (v) put_string(out, *v);
  else out += "null";
}
inline void put_row(std::string& out, const Row& row) {
  out += '{';
  bool first = true;
  for (const auto& [name, v] : row) {
    if (!first) out += ',';
    first = false;
    put_string(out, name);
    out += ':';
    put_value(out, v);
  }
  out += '}';
}
inline std::string row(const Row& r) {
  std::string s;
  put_row(s, r);
  return s;
}
inline std::string values(const std::vector<Value>& vs) {
  std::string s = "[";
  for (size_t i = 0; i < vs.size(); ++i) {
    if (i) s += ',';
    put_value(s, vs[i]);
  }
  return s + "]";
}

// Recursive-descent reader; malformed input clears ok() and never throws
// (except bad_alloc). Values: string, null, a number (kept as its text),
// true/false ("1"/"0").
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool ok() const { return ok_; }
  bool done() {
    ws();
    return ok_ && i_ == s_.size();
  }
  bool eat(char c) {
    ws();
    if (!ok_ || i_ >= s_.size() || s_[i_] != c) return false;
    ++i_;
    return true;
  }
  void expect(char c) {
    if (!eat(c)) ok_ = false;
  }
  // Calls each() for every element of an array.
  template <class F>
  void array(F&& each) {
    expect('[');
    if (!ok_ || eat(']')) return;
    do each();
    while (ok_ && eat(','));
    expect(']');
  }
  // Calls each(key) for every member of an object, at its value.
  template <class F>
  void object(F&& each) {
    expect('{');
    if (!ok_ || eat('}')) return;
    do {
      std::string key = string();
      expect(':');
      if (ok_) each(key);
    } while (ok_ && eat(','));
    expect('}');
  }
  bool null() {
    ws();
    if (s_.substr(i_, 4) != "null") return false;
    i_ += 4;
    return true;
  }
  Value value() {
    ws();
    if (null()) return std::nullopt;
    if (i_ < s_.size() && s_[i_] == '"') return string();
    for (const char* w : {"true", "false"}) {
      std::string_view word(w);
      if (s_.substr(i_, word.size()) == word) {
        i_ += word.size();
        return std::string(word == "true" ? "1" : "0");
      }
    }
    size_t start = i_;
    auto numeric = [](char c) { return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'; };
    while (i_ < s_.size() && numeric(s_[i_])) ++i_;
    if (i_ == start) ok_ = false;
    return std::string(s_.substr(start, i_ - start));
  }
  Row row() {
    Row r;
    object([&](const std::string& key) { r[key] = value(); });
    return r;
  }
  std::optional<Row> row_or_null() {
    if (null()) return std::nullopt;
    return row();
  }
  std::string string() {
    ws();
    std::string out;
    if (i_ >= s_.size() || s_[i_] != '"') {
      ok_ = false;
      return out;
    }
    for (++i_; i_ < s_.size(); ++i_) {
      char c = s_[i_];
      if (c == '"') {
        ++i_;
        return out;
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (++i_ >= s_.size()) break;
      switch (s_[i_]) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (!ok_) return out;  // truncated or bad escape (i_ may be past the end)
          if (cp >= 0xD800 && cp < 0xDC00 && i_ + 2 < s_.size() && s_[i_ + 1] == '\\' &&
              s_[i_ + 2] == 'u') {  // surrogate pair
            i_ += 2;
            uint32_t lo = hex4();
            if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            else ok_ = false;
          }
          utf8(out, cp);
          break;
        }
        default: ok_ = false; return out;
      }
      if (!ok_) return out;
    }
    ok_ = false;  // unterminated
    return out;
  }

 private:
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  // The 4 hex digits after s_[i_] == 'u'; leaves i_ on the last one.
  uint32_t hex4() {
    uint32_t cp = 0;
    for (int k = 0; k < 4; ++k) {
      char h = ++i_ < s_.size() ? s_[i_] : 'x';
      cp <<= 4;
      if (h >= '0' && h <= '9') cp |= uint32_t(h - '0');
      else if (h >= 'a' && h <= 'f') cp |= uint32_t(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') cp |= uint32_t(h - 'A' + 10);
      else ok_ = false;
    }
    return cp;
  }
  static void utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  std::string_view s_;
  size_t i_ = 0;
  bool ok_ = true;
};

// Whole-document parsers: false on malformed input.
inline bool parse_row(std::string_view s, Row* out) {
  Reader r(s);
  *out = r.row();
  return r.done();
}
inline bool parse_row_or_null(std::string_view s, std::optional<Row>* out) {
  Reader r(s);
  *out = r.row_or_null();
  return r.done();
}
inline bool parse_rows(std::string_view s, std::vector<std::optional<Row>>* out) {
  Reader r(s);
  out->clear();
  r.array([&] { out->push_back(r.row_or_null()); });
  return r.done();
}
inline bool parse_values(std::string_view s, std::vector<Value>* out) {
  Reader r(s);
  out->clear();
  r.array([&] { out->push_back(r.value()); });
  return r.done();
}
// {"rows": [[value, ...], ...], "affected": N}
inline bool parse_query(std::string_view s, std::vector<std::vector<Value>>* rows, uint64_t* affected) {
  Reader r(s);
  rows->clear();
  *affected = 0;
  r.object([&](const std::string& key) {
    if (key == "rows") {
      r.array([&] {
        rows->emplace_back();
        r.array([&] { rows->back().push_back(r.value()); });
      });
    } else {
      Value v = r.value();
      if (key == "affected" && v) *affected = std::strtoull(v->c_str(), nullptr, 10);
    }
  });
  return r.done();
}

}  // namespace datajson

// ==== SQL, off-loop work, key/value: types ===================================
// Outcome of work(): ok, or the job threw (error = what()), or the host
// dropped it before it started (code LAMPYR_DONE_CANCELLED; only while the
// server stops).
struct WorkStatus {
  int code = LAMPYR_DONE_OK;
  std::string error;
  bool ok() const { return code == LAMPYR_DONE_OK && error.empty(); }
};

namespace detail {
// One job of Plugin::work(), owned by the plugin (jobs_) from start to
// completion. run() executes on a host worker thread, finish() on the loop.
struct WorkJob {
  virtual ~WorkJob() = default;
  virtual void run() noexcept = 0;
  virtual void finish(int code) = 0;
};
template <class Fn, class Done>
struct WorkJobOf final : WorkJob {
  using R = std::invoke_result_t<Fn&>;
  WorkJobOf(Fn f, Done d) : fn(std::move(f)), done(std::move(d)) {}
  void run() noexcept override {
    try {
      if constexpr (std::is_void_v<R>) fn();
      else result.emplace(fn());
    } catch (const std::exception& e) {
      error = e.what();
      if (error.empty()) error = "work threw";
    } catch (...) {
      error = "work threw a non-standard exception";
    }
  }
  void finish(int code) override {
    WorkStatus st{code, std::move(error)};
    if (code != LAMPYR_DONE_OK && st.error.empty()) st.error = "work cancelled";
    if constexpr (std::is_void_v<R>) done(std::move(st));
    else done(std::move(st), result ? std::move(*result) : R{});
  }
  Fn fn;
  Done done;
  std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> result;  // unused for void
  std::string error;
};
// The C entry the host calls on the worker.
inline void run_work_job(void* job) { static_cast<WorkJob*>(job)->run(); }
}  // namespace detail
// Result of one SQL statement (plugin.h "Plain SQL"): the rows of a
// statement with a result set (values as MySQL prints them, nullopt = NULL)
// with its column names, or the affected row count of one without.
struct SqlResult {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
  uint64_t affected = 0;
};
// One statement of Plugin::sql_transaction().
struct SqlStatement {
  std::string sql;
  std::vector<Value> params;
};
using SqlTx = uint64_t;  // a transaction begun with Plugin::sql_begin
// A shared key/value entry (Plugin::kv_get): its bytes and the CAS value to
// hand to kv_cas.
struct KvValue {
  std::string value;
  uint64_t cas = 0;
};

namespace datajson {
// {"columns": [...], "rows": [[...]], "affected": N}
inline bool parse_sql_result(std::string_view s, SqlResult* out) {
  Reader r(s);
  *out = SqlResult();
  r.object([&](const std::string& key) {
    if (key == "columns") {
      r.array([&] { out->columns.push_back(r.string()); });
    } else if (key == "rows") {
      r.array([&] {
        out->rows.emplace_back();
        r.array([&] { out->rows.back().push_back(r.value()); });
      });
    } else {
      Value v = r.value();
      if (key == "affected" && v) out->affected = std::strtoull(v->c_str(), nullptr, 10);
    }
  });
  return r.done();
}
}  // namespace datajson
// ==== end of "SQL, off-loop work, key/value" types ===========================

namespace detail {
template <class T>
int init_entry(const lampyr_init_args* args, void** ctx, char* err, size_t err_cap, const char* name,
               const char* version, uint32_t schema);
inline void write_err(char* err, size_t cap, const char* what) {
  if (err && cap > 0) std::snprintf(err, cap, "%s", what);
}
}  // namespace detail

// Base class of a plugin. Derive, override init() (register handlers there),
// export with LAMPYR_PLUGIN. One object per generation; the host deletes it
// (destroy) before unloading the library. The constructor runs before the
// plugin is attached to the host: call host functions from init(), not from
// the constructor.
class Plugin {
 public:
  using RequestHandler = std::function<void(Request&)>;
  using RemoteHandler = std::function<void(RemoteCall&)>;
  using Continuation = std::function<void(CallStatus, std::string_view)>;
  using SessionWatcher = std::function<void(Session, bool open)>;
  using Router = std::function<std::string(Session, uint32_t command, std::string_view body)>;
  using TimerId = uint64_t;

  Plugin() = default;
  virtual ~Plugin() = default;
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  // ---- Overridables ----
  // Registers handlers, reads config. Throw to refuse the load (the message
  // becomes the reload error and the old generation keeps serving).
  virtual void init() {}
  // State handed to the next generation on reload (schema = state_schema()).
  virtual std::string save_state() { return {}; }
  // State from the previous generation, saved with schema `from_schema`.
  // Return false (or throw) to refuse: the reload is rolled back.
  virtual bool restore_state(std::string_view /*bytes*/, uint32_t /*from_schema*/) { return true; }
  // This generation was replaced and drains: its repeating timers are gone,
  // its one-shot timers and call completions still arrive, it may answer
  // requests it holds, and it can start nothing new (after/call return 0/false).
  virtual void on_stop() {}

  // ---- Identity ----
  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }
  uint32_t state_schema() const { return schema_; }
  const std::string& server_name() const { return server_name_; }
  uint64_t generation() const { return generation_; }
  bool draining() const { return draining_; }

  // ---- Config: plugins.<name>.config as JSON text ----
  const std::string& config() const { return config_; }
  int64_t config_int(std::string_view key, int64_t fallback) const {
    auto raw = json::find(config_, key);
    auto v = raw ? json::to_int(*raw) : std::nullopt;
    return v ? *v : fallback;
  }
  std::string config_string(std::string_view key, std::string fallback = {}) const {
    auto raw = json::find(config_, key);
    auto v = raw ? json::decode_string(*raw) : std::nullopt;
    return v ? *v : fallback;
  }
  bool config_bool(std::string_view key, bool fallback) const {
    auto raw = json::find(config_, key);
    if (raw && *raw == "true") return true;
    if (raw && *raw == "false") return false;
    return fallback;
  }
  std::vector<std::string> config_strings(std::string_view key) const {
    auto raw = json::find(config_, key);
    auto v = raw ? json::to_string_list(*raw) : std::nullopt;
    return v ? *v : std::vector<std::string>{};
  }

  // ---- Handlers (call from init()) ----
  void on(uint32_t command, RequestHandler handler) {
    need(api_.register_command, "register_command");
    int rc = api_.register_command(host_, command);
    if (rc != LAMPYR_OK) throw Error("register_command " + std::to_string(command) + " refused (" + std::to_string(rc) + ")");
    commands_[command] = std::move(handler);
  }
  void remote(const std::string& method, RemoteHandler handler) {
    need(api_.register_remote, "register_remote");
    int rc = api_.register_remote(host_, method.c_str());
    if (rc != LAMPYR_OK) throw Error("register_remote " + method + " refused (" + std::to_string(rc) + ")");
    remotes_[method] = std::move(handler);
  }
  // Session open/close events of the whole cluster.
  void watch_sessions(SessionWatcher fn) {
    need(api_.watch_sessions, "watch_sessions");
    int rc = api_.watch_sessions(host_);
    if (rc != LAMPYR_OK) throw Error("watch_sessions refused (" + std::to_string(rc) + ")");
    watcher_ = std::move(fn);
  }
  // Gate: picks the node for forwarded requests without a session binding.
  // Return "" for "no route" (the client gets the unavailable error).
  void router(Router fn) {
    need(api_.set_router, "set_router");
    int rc = api_.set_router(host_);
    if (rc != LAMPYR_OK) throw Error("set_router refused (" + std::to_string(rc) + ")");
    router_ = std::move(fn);
  }

  // ---- Pushes and groups (false: the host refused, e.g. unknown session) ----
  bool push(Session s, uint32_t command, std::string_view bytes) {
    need(api_.push, "push");
    return api_.push(host_, s, command, bytes.data(), bytes.size()) == LAMPYR_OK;
  }
  bool push_many(const std::vector<Session>& sessions, uint32_t command, std::string_view bytes) {
    need(api_.push_many, "push_many");
    return api_.push_many(host_, sessions.data(), sessions.size(), command, bytes.data(), bytes.size()) == LAMPYR_OK;
  }
  bool broadcast(const std::string& group, uint32_t command, std::string_view bytes) {
    need(api_.broadcast, "broadcast");
    return api_.broadcast(host_, group.c_str(), command, bytes.data(), bytes.size()) == LAMPYR_OK;
  }
  bool join(const std::string& group, Session s) {
    need(api_.join_group, "join_group");
    return api_.join_group(host_, group.c_str(), s) == LAMPYR_OK;
  }
  bool leave(const std::string& group, Session s) {
    need(api_.leave_group, "leave_group");
    return api_.leave_group(host_, group.c_str(), s) == LAMPYR_OK;
  }
  bool kick(Session s) {
    need(api_.kick, "kick");
    return api_.kick(host_, s) == LAMPYR_OK;
  }
  // Routes this session's forwarded requests to `node` ("" unbinds).
  bool bind(Session s, const std::string& node) {
    need(api_.bind, "bind");
    return api_.bind(host_, s, node.c_str()) == LAMPYR_OK;
  }

  // ---- Session data kept by the host (survives reloads) ----
  std::optional<std::string> session_get(Session s, const std::string& key) {
    need(api_.session_get, "session_get");
    std::optional<std::string> out;
    auto sink = [](void* user, const char* data, size_t len) {
      static_cast<std::optional<std::string>*>(user)->emplace(data, len);
    };
    if (api_.session_get(host_, s, key.c_str(), +sink, &out) != LAMPYR_OK) return std::nullopt;
    return out;
  }
  bool session_set(Session s, const std::string& key, std::string_view bytes) {
    need(api_.session_set, "session_set");
    // A NULL pointer with length 0 means "erase": give an empty value a real pointer.
    return api_.session_set(host_, s, key.c_str(), bytes.data() ? bytes.data() : "", bytes.size()) == LAMPYR_OK;
  }
  bool session_erase(Session s, const std::string& key) {
    need(api_.session_set, "session_set");
    return api_.session_set(host_, s, key.c_str(), nullptr, 0) == LAMPYR_OK;
  }

  // ---- Timers (0 = refused: the generation is draining) ----
  TimerId after(uint64_t ms, std::function<void()> fn) { return start_timer(ms, 0, std::move(fn)); }
  TimerId every(uint64_t ms, std::function<void()> fn) { return start_timer(ms, ms, std::move(fn)); }
  bool cancel(TimerId id) {
    auto it = timers_.find(id);
    if (it == timers_.end()) return false;
    uint64_t host_id = it->second.host_id;
    timers_.erase(it);
    need(api_.timer_cancel, "timer_cancel");
    return api_.timer_cancel(host_, host_id) == LAMPYR_OK;
  }
  size_t timer_count() const { return timers_.size(); }
  uint64_t now_ms() {
    need(api_.now_ms, "now_ms");
    return api_.now_ms(host_);
  }

  // ---- Remote calls ----
  // The continuation runs exactly once (ok, error, timeout, unavailable,
  // cancelled) when this returns true; never when it returns false.
  bool call(const std::string& node, const std::string& method, std::string_view args, Continuation then,
            uint64_t timeout_ms = 0) {
    need(api_.call, "call");
    uint64_t cookie = ++next_cookie_;
    calls_.emplace(cookie, std::move(then));
    if (api_.call(host_, node.c_str(), method.c_str(), args.data(), args.size(), timeout_ms, cookie) != LAMPYR_OK) {
      calls_.erase(cookie);
      return false;
    }
    return true;
  }
  bool notify(const std::string& node, const std::string& method, std::string_view args) {
    need(api_.notify, "notify");
    return api_.notify(host_, node.c_str(), method.c_str(), args.data(), args.size()) == LAMPYR_OK;
  }
  size_t pending_calls() const { return calls_.size(); }

  // ---- Data layer (servers with "db": true; docs/data.md "From a plugin") ----
  // Each returns true when its continuation will run exactly once (ok or
  // error); false when the host refused at once (no data layer on this
  // server, draining generation, malformed input) and then it never runs.
  // Continuations run on the event loop like every other callback. These
  // share pending_calls() with call().
  using DataDone = std::function<void(DataStatus)>;
  using DataRowDone = std::function<void(DataStatus, std::optional<Row>)>;  // nullopt: no such record
  using DataRowsDone = std::function<void(DataStatus, std::vector<std::optional<Row>>)>;
  using DataListDone = std::function<void(DataStatus, std::vector<Row>)>;
  using DataPkDone = std::function<void(DataStatus, std::string pk)>;
  using DataQueryDone = std::function<void(DataStatus, std::vector<std::vector<Value>> rows, uint64_t affected)>;

  bool db_get(const std::string& table, std::string_view pk, DataRowDone then) {
    auto fn = data_fn<lampyr_fn_data_get>("data_get");
    return data_start(
        [&](uint64_t c) { return fn(host_, table.c_str(), pk.data(), pk.size(), c); },
        [then](DataStatus st, std::string_view data) {
          std::optional<Row> row;
          if (st.ok() && !datajson::parse_row_or_null(data, &row)) st = bad_reply();
          then(std::move(st), std::move(row));
        });
  }
  // Rows in the order of `pks` (nullopt for a missing one).
  bool db_get_many(const std::string& table, const std::vector<std::string>& pks, DataRowsDone then) {
    auto fn = data_fn<lampyr_fn_data_get_many>("data_get_many");
    std::string json = datajson::values(std::vector<Value>(pks.begin(), pks.end()));
    return data_start(
        [&](uint64_t c) { return fn(host_, table.c_str(), json.data(), json.size(), c); },
        [then](DataStatus st, std::string_view data) {
          std::vector<std::optional<Row>> rows;
          if (st.ok() && !datajson::parse_rows(data, &rows)) st = bad_reply();
          then(std::move(st), std::move(rows));
        });
  }
  // Rows whose fk column (the table's declared "fk") equals `fk`.
  bool db_get_by_fk(const std::string& table, std::string_view fk, DataListDone then) {
    auto fn = data_fn<lampyr_fn_data_get_by_fk>("data_get_by_fk");
    return data_start(
        [&](uint64_t c) { return fn(host_, table.c_str(), fk.data(), fk.size(), c); },
        [then](DataStatus st, std::string_view data) {
          std::vector<std::optional<Row>> rows;
          if (st.ok() && !datajson::parse_rows(data, &rows)) st = bad_reply();
          std::vector<Row> list;
          for (auto& r : rows)
            if (r) list.push_back(std::move(*r));
          then(std::move(st), std::move(list));
        });
  }
  // Inserted into MySQL at once; `pk` is the new key (autoinc tables allocate it).
  bool db_create(const std::string& table, const Row& row, DataPkDone then) {
    auto fn = data_fn<lampyr_fn_data_create>("data_create");
    std::string json = datajson::row(row);
    return data_start(
        [&](uint64_t c) { return fn(host_, table.c_str(), json.data(), json.size(), c); },
        [then](DataStatus st, std::string_view data) {
          Row r;
          if (st.ok() && (!datajson::parse_row(data, &r) || !r["pk"])) st = bad_reply();
          std::string pk = st.ok() ? *r["pk"] : std::string();
          then(std::move(st), std::move(pk));
        });
  }
  bool db_update(const std::string& table, std::string_view pk, const Row& fields, DataDone then) {
    auto fn = data_fn<lampyr_fn_data_update>("data_update");
    std::string json = datajson::row(fields);
    return data_start([&](uint64_t c) { return fn(host_, table.c_str(), pk.data(), pk.size(), json.data(), json.size(), c); },
                      [then](DataStatus st, std::string_view) { then(std::move(st)); });
  }
  // Atomic `column += delta` across every process; a result outside
  // [min, max] is refused ("data: out of bounds ..."), nothing changes.
  // The continuation gets the updated row.
  bool db_add(const std::string& table, std::string_view pk, const std::string& column, int64_t delta, DataRowDone then,
              int64_t min = INT64_MIN, int64_t max = INT64_MAX) {
    auto fn = data_fn<lampyr_fn_data_add>("data_add");
    return data_start(
        [&](uint64_t c) { return fn(host_, table.c_str(), pk.data(), pk.size(), column.c_str(), delta, min, max, c); },
        [then](DataStatus st, std::string_view data) {
          std::optional<Row> row;
          if (st.ok() && !datajson::parse_row_or_null(data, &row)) st = bad_reply();
          then(std::move(st), std::move(row));
        });
  }
  bool db_remove(const std::string& table, std::string_view pk, DataDone then) {
    auto fn = data_fn<lampyr_fn_data_remove>("data_remove");
    return data_start([&](uint64_t c) { return fn(host_, table.c_str(), pk.data(), pk.size(), c); },
                      [then](DataStatus st, std::string_view) { then(std::move(st)); });
  }
  // A raw prepared statement with `params` bound to its '?' markers. Sees
  // MySQL only (not unflushed record changes).
  bool db_query(const std::string& sql, const std::vector<Value>& params, DataQueryDone then) {
    auto fn = data_fn<lampyr_fn_data_query>("data_query");
    std::string json = datajson::values(params);
    return data_start(
        [&](uint64_t c) { return fn(host_, sql.c_str(), json.data(), json.size(), c); },
        [then](DataStatus st, std::string_view data) {
          std::vector<std::vector<Value>> rows;
          uint64_t affected = 0;
          if (st.ok() && !datajson::parse_query(data, &rows, &affected)) st = bad_reply();
          then(std::move(st), std::move(rows), affected);
        });
  }

  // ==== SQL, off-loop work, key/value =========================================
  // ---- Off-loop work (docs/plugins.md "Off-loop work") ----
  // Runs fn() on one of the host's worker threads, then done(WorkStatus, R)
  // on the loop with fn's result (done(WorkStatus) when fn returns void; R{}
  // when fn threw: status.error says what). fn runs CONCURRENTLY with the
  // loop: it must capture what it needs by value, touch no member of the
  // plugin and call no Plugin function. False (done never runs): the host
  // has no "work", the generation is not serving (init, draining) or the
  // queue is full (servers.<name>.work_queue).
  template <class Fn, class Done>
  bool work(Fn fn, Done done) {
    using Job = detail::WorkJobOf<Fn, Done>;
    static_assert(std::is_void_v<typename Job::R> || std::is_default_constructible_v<typename Job::R>,
                  "work(): the result type must be default-constructible (it is R{} when fn throws)");
    auto start = reinterpret_cast<lampyr_fn_work>(get_api_ ? get_api_("work") : nullptr);
    if (!start) return false;
    uint64_t cookie = ++next_cookie_;
    auto job = std::make_unique<Job>(std::move(fn), std::move(done));
    detail::WorkJob* raw = job.get();
    jobs_.emplace(cookie, std::move(job));
    calls_.emplace(cookie, [this, cookie](CallStatus cs, std::string_view) {
      auto it = jobs_.find(cookie);
      if (it == jobs_.end()) return;
      std::unique_ptr<detail::WorkJob> j = std::move(it->second);
      jobs_.erase(it);
      j->finish(cs.code);
    });
    if (start(host_, &detail::run_work_job, raw, cookie) != LAMPYR_OK) {
      calls_.erase(cookie);
      jobs_.erase(cookie);
      return false;
    }
    return true;
  }
  size_t pending_work() const { return jobs_.size(); }

  // ---- Plain SQL (servers with "db": true; docs/plugins.md "SQL") ----
  // Prepared statements with `params` bound to '?' markers, on the server's
  // SQL pool, with or without the record cache. Each returns true when its
  // continuation will run exactly once (DataStatus: ok, or code
  // LAMPYR_DONE_ERROR / _TIMEOUT / _UNAVAILABLE with the message); false
  // when the host refused at once (no "db" here, draining, queue full,
  // malformed input, not this generation's transaction).
  using SqlDone = std::function<void(DataStatus, SqlResult)>;
  using SqlTxDone = std::function<void(DataStatus, SqlTx)>;
  using SqlTxEnd = std::function<void(DataStatus)>;
  using SqlTransactionDone = std::function<void(DataStatus, std::vector<SqlResult>)>;

  bool sql_query(const std::string& sql, const std::vector<Value>& params, SqlDone then) {
    auto fn = data_fn<lampyr_fn_sql_query>("sql_query");
    std::string json = datajson::values(params);
    return data_start([&](uint64_t c) { return fn(host_, sql.c_str(), json.data(), json.size(), c); },
                      [then](DataStatus st, std::string_view data) {
                        SqlResult r;
                        if (st.ok() && !datajson::parse_sql_result(data, &r)) st = bad_reply();
                        then(std::move(st), std::move(r));
                      });
  }
  // Pins one pooled connection until sql_commit / sql_rollback (or the
  // host's db.tx_timeout_ms, which rolls it back).
  bool sql_begin(SqlTxDone then) {
    auto fn = data_fn<lampyr_fn_sql_begin>("sql_begin");
    return data_start([&](uint64_t c) { return fn(host_, c); },
                      [then](DataStatus st, std::string_view data) {
                        Row r;
                        SqlTx tx = 0;
                        if (st.ok() && (!datajson::parse_row(data, &r) || !r["tx"])) st = bad_reply();
                        if (st.ok()) tx = std::strtoull(r["tx"]->c_str(), nullptr, 10);
                        then(std::move(st), tx);
                      });
  }
  bool sql_tx_query(SqlTx tx, const std::string& sql, const std::vector<Value>& params, SqlDone then) {
    auto fn = data_fn<lampyr_fn_sql_tx_query>("sql_tx_query");
    std::string json = datajson::values(params);
    return data_start([&](uint64_t c) { return fn(host_, tx, sql.c_str(), json.data(), json.size(), c); },
                      [then](DataStatus st, std::string_view data) {
                        SqlResult r;
                        if (st.ok() && !datajson::parse_sql_result(data, &r)) st = bad_reply();
                        then(std::move(st), std::move(r));
                      });
  }
  bool sql_commit(SqlTx tx, SqlTxEnd then) { return sql_end("sql_commit", tx, std::move(then)); }
  bool sql_rollback(SqlTx tx, SqlTxEnd then) { return sql_end("sql_rollback", tx, std::move(then)); }
  // begin, every statement in order, commit; the first failure rolls back
  // and is what `then` gets (its message names the statement's index). On
  // success `then` gets each statement's result.
  bool sql_transaction(std::vector<SqlStatement> statements, SqlTransactionDone then) {
    auto state = std::make_shared<TxRun>();
    state->statements = std::move(statements);
    state->then = std::move(then);
    return sql_begin([this, state](DataStatus st, SqlTx tx) {
      if (!st.ok()) return state->then(std::move(st), {});
      state->tx = tx;
      tx_step(state);
    });
  }

 private:
  struct TxRun {
    std::vector<SqlStatement> statements;
    std::vector<SqlResult> results;
    SqlTransactionDone then;
    SqlTx tx = 0;
  };
  void tx_step(const std::shared_ptr<TxRun>& state) {
    auto fail = [this, state](DataStatus st) {
      // Best effort: if even the rollback cannot start, the host's tx timeout ends it.
      sql_rollback(state->tx, [](DataStatus) {});
      state->then(std::move(st), {});
    };
    size_t i = state->results.size();
    if (i == state->statements.size()) {
      if (!sql_commit(state->tx, [state](DataStatus st) {
            state->then(st, st.ok() ? std::move(state->results) : std::vector<SqlResult>{});
          }))
        fail(DataStatus{LAMPYR_DONE_ERROR, "sql: commit refused by the host"});
      return;
    }
    const SqlStatement& s = state->statements[i];
    bool started = sql_tx_query(state->tx, s.sql, s.params, [this, state, fail, i](DataStatus st, SqlResult r) {
      if (!st.ok()) {
        st.message = "statement " + std::to_string(i) + ": " + st.message;
        return fail(std::move(st));
      }
      state->results.push_back(std::move(r));
      tx_step(state);
    });
    if (!started) fail(DataStatus{LAMPYR_DONE_ERROR, "statement " + std::to_string(i) + ": refused by the host"});
  }
  bool sql_end(const char* name, SqlTx tx, SqlTxEnd then) {
    auto fn = data_fn<lampyr_fn_sql_end>(name);
    return data_start([&](uint64_t c) { return fn(host_, tx, c); },
                      [then](DataStatus st, std::string_view) { then(std::move(st)); });
  }

 public:
  // ---- Shared key/value (servers with "mem": true; docs/plugins.md "Key/value") ----
  // On the cluster's memcached under memcached.kv_prefix: every process sees
  // the same values. Each returns true when its continuation will run once;
  // DataStatus is not ok only when memcached could not be reached
  // (LAMPYR_DONE_UNAVAILABLE). `done` of set/add/cas/delete/unlock says
  // whether it took effect (add: the key was free; cas: unchanged since the
  // kv_get that gave `cas`; delete/unlock: it existed / we held it).
  // exptime_s 0 = no expiry.
  using KvGetDone = std::function<void(DataStatus, std::optional<KvValue>)>;
  using KvDone = std::function<void(DataStatus, bool done)>;
  using KvIncrDone = std::function<void(DataStatus, uint64_t value)>;
  using KvLockDone = std::function<void(DataStatus, std::optional<std::string> token)>;

  bool kv_get(std::string_view key, KvGetDone then) {
    auto fn = data_fn<lampyr_fn_kv_get>("kv_get");
    return data_start([&](uint64_t c) { return fn(host_, key.data(), key.size(), c); },
                      [then](DataStatus st, std::string_view data) {
                        std::optional<KvValue> out;
                        std::optional<Row> r;
                        if (st.ok() && !datajson::parse_row_or_null(data, &r)) st = bad_reply();
                        if (st.ok() && r) {
                          out.emplace();
                          out->value = (*r)["value"].value_or("");
                          out->cas = std::strtoull((*r)["cas"].value_or("0").c_str(), nullptr, 10);
                        }
                        then(std::move(st), std::move(out));
                      });
  }
  bool kv_set(std::string_view key, std::string_view value, uint32_t exptime_s, KvDone then) {
    return kv_store("kv_set", key, value, exptime_s, std::move(then));
  }
  bool kv_add(std::string_view key, std::string_view value, uint32_t exptime_s, KvDone then) {
    return kv_store("kv_add", key, value, exptime_s, std::move(then));
  }
  bool kv_cas(std::string_view key, std::string_view value, uint32_t exptime_s, uint64_t cas, KvDone then) {
    auto fn = data_fn<lampyr_fn_kv_cas>("kv_cas");
    return data_start(
        [&](uint64_t c) { return fn(host_, key.data(), key.size(), value.data(), value.size(), exptime_s, cas, c); },
        kv_ok(std::move(then)));
  }
  // delta < 0 decrements (memcached stops at 0); a missing key starts at `initial`.
  bool kv_incr(std::string_view key, int64_t delta, KvIncrDone then, uint64_t initial = 0, uint32_t exptime_s = 0) {
    auto fn = data_fn<lampyr_fn_kv_incr>("kv_incr");
    return data_start([&](uint64_t c) { return fn(host_, key.data(), key.size(), delta, initial, exptime_s, c); },
                      [then](DataStatus st, std::string_view data) {
                        Row r;
                        if (st.ok() && (!datajson::parse_row(data, &r) || !r["value"])) st = bad_reply();
                        then(std::move(st), st.ok() ? std::strtoull(r["value"]->c_str(), nullptr, 10) : 0);
                      });
  }
  bool kv_delete(std::string_view key, KvDone then) {
    auto fn = data_fn<lampyr_fn_kv_delete>("kv_delete");
    return data_start([&](uint64_t c) { return fn(host_, key.data(), key.size(), c); }, kv_ok(std::move(then)));
  }
  // Takes the lock `key` for ttl_s seconds if nobody holds it: `then` gets
  // the token to unlock with, or nullopt (held by someone). Never waits.
  bool kv_lock(std::string_view key, uint32_t ttl_s, KvLockDone then) {
    auto fn = data_fn<lampyr_fn_kv_lock>("kv_lock");
    return data_start([&](uint64_t c) { return fn(host_, key.data(), key.size(), ttl_s, c); },
                      [then](DataStatus st, std::string_view data) {
                        Row r;
                        if (st.ok() && !datajson::parse_row(data, &r)) st = bad_reply();
                        std::optional<std::string> token;
                        if (st.ok() && r["ok"] && *r["ok"] == "1" && r["token"]) token = *r["token"];
                        then(std::move(st), std::move(token));
                      });
  }
  bool kv_unlock(std::string_view key, std::string_view token, KvDone then) {
    auto fn = data_fn<lampyr_fn_kv_unlock>("kv_unlock");
    return data_start([&](uint64_t c) { return fn(host_, key.data(), key.size(), token.data(), token.size(), c); },
                      kv_ok(std::move(then)));
  }
  // Loads every row of a declared table into the record cache (servers
  // with the record layer); `then` gets the number of rows.
  bool db_preload(const std::string& table, std::function<void(DataStatus, uint64_t rows)> then) {
    auto fn = data_fn<lampyr_fn_data_preload>("data_preload");
    return data_start([&](uint64_t c) { return fn(host_, table.c_str(), c); },
                      [then](DataStatus st, std::string_view data) {
                        Row r;
                        if (st.ok() && (!datajson::parse_row(data, &r) || !r["rows"])) st = bad_reply();
                        then(std::move(st), st.ok() ? std::strtoull(r["rows"]->c_str(), nullptr, 10) : 0);
                      });
  }

 private:
  bool kv_store(const char* name, std::string_view key, std::string_view value, uint32_t exptime_s, KvDone then) {
    auto fn = data_fn<lampyr_fn_kv_store>(name);
    return data_start(
        [&](uint64_t c) { return fn(host_, key.data(), key.size(), value.data() ? value.data() : "", value.size(), exptime_s, c); },
        kv_ok(std::move(then)));
  }
  static std::function<void(DataStatus, std::string_view)> kv_ok(KvDone then) {
    return [then = std::move(then)](DataStatus st, std::string_view data) {
      Row r;
      if (st.ok() && !datajson::parse_row(data, &r)) st = bad_reply();
      then(std::move(st), st.ok() && r["ok"] && *r["ok"] == "1");
    };
  }

 public:
  // ==== end of "SQL, off-loop work, key/value" ================================

 private:
  template <class Fn>
  Fn data_fn(const char* name) const {
    Fn fn = reinterpret_cast<Fn>(get_api_ ? get_api_(name) : nullptr);
    need(fn != nullptr, name);
    return fn;
  }
  // Keeps `done` by cookie (like call()) and starts the host operation.
  template <class Start>
  bool data_start(Start&& start, std::function<void(DataStatus, std::string_view)> done) {
    uint64_t cookie = ++next_cookie_;
    calls_.emplace(cookie, [done = std::move(done)](CallStatus cs, std::string_view data) {
      DataStatus st;
      st.code = cs.code;
      if (!cs.ok()) st.message = data.empty() ? std::string(cs.name()) : std::string(data);
      done(std::move(st), cs.ok() ? data : std::string_view());
    });
    if (start(cookie) != LAMPYR_OK) {
      calls_.erase(cookie);
      return false;
    }
    return true;
  }
  static DataStatus bad_reply() { return DataStatus{LAMPYR_DONE_ERROR, "malformed data reply from the host"}; }

 public:

  // ---- Log (tagged with the plugin name by the host) ----
  void log(int level, std::string_view message) {
    std::string line(message);
    if (api_.log) {
      api_.log(host_, level, line.c_str());
    } else {
      std::fprintf(stderr, "[%s] %s\n", name_.c_str(), line.c_str());
    }
  }
  void debug(const std::string& m) { log(LAMPYR_LOG_DEBUG, m); }
  void info(const std::string& m) { log(LAMPYR_LOG_INFO, m); }
  void warn(const std::string& m) { log(LAMPYR_LOG_WARN, m); }
  void error(const std::string& m) { log(LAMPYR_LOG_ERROR, m); }
  __attribute__((format(printf, 2, 3))) void debugf(const char* fmt, ...) { LAMPYR_SDK_VLOG_(LAMPYR_LOG_DEBUG); }
  __attribute__((format(printf, 2, 3))) void infof(const char* fmt, ...) { LAMPYR_SDK_VLOG_(LAMPYR_LOG_INFO); }
  __attribute__((format(printf, 2, 3))) void warnf(const char* fmt, ...) { LAMPYR_SDK_VLOG_(LAMPYR_LOG_WARN); }
  __attribute__((format(printf, 2, 3))) void errorf(const char* fmt, ...) { LAMPYR_SDK_VLOG_(LAMPYR_LOG_ERROR); }

  // ---- Metrics (labelled plugin="<name>" by the host) ----
  bool counter_add(const std::string& name, const std::string& help, uint64_t delta = 1) {
    need(api_.counter_add, "counter_add");
    return api_.counter_add(host_, name.c_str(), help.c_str(), delta) == LAMPYR_OK;
  }
  bool gauge_set(const std::string& name, const std::string& help, int64_t value) {
    need(api_.gauge_set, "gauge_set");
    return api_.gauge_set(host_, name.c_str(), help.c_str(), value) == LAMPYR_OK;
  }

  // ==== Web routes, HTTP client, links, peer address (ABI minor 1) ===========
  using WebHandler = std::function<void(WebRequest&)>;
  using LinkWatcher = std::function<void(const std::string& node, bool up)>;
  using FetchDone = std::function<void(FetchResult)>;

  // Serves `method` ("GET"/"POST") requests for `prefix` and below on the
  // server's webport (call from init()). False when the server has no
  // webport; throws for a refused route (admin path, taken by another plugin).
  bool route(const std::string& method, const std::string& prefix, WebHandler handler, RouteOptions opts = {});
  // Link events of this server's channels (call from init()); links already
  // up are reported once after init. False when the server has no channels.
  bool watch_links(LinkWatcher fn);
  // The client address of a session (nullopt: unknown or closed).
  std::optional<Peer> peer(Session s) const {
    auto fn = web_fn<lampyr_fn_session_peer>("session_peer");
    char ip[64] = {0};
    Peer p;
    if (fn(host_, s, ip, sizeof ip, &p.port, &p.family) != LAMPYR_OK) return std::nullopt;
    p.ip = ip;
    return p;
  }
  // An async HTTP(S) request; `then` runs exactly once when this returns true
  // (with an error result on timeout, TLS or connection failure), never when
  // it returns false (draining generation, bad URL).
  bool fetch(const std::string& url, FetchOptions opts, FetchDone then);
  size_t pending_fetches() const { return fetches_.size(); }
  // ==== end of web routes, HTTP client, links, peer address ==================

  // The host's handle and lookup, for host functions this header does not wrap.
  lampyr_host* host_handle() const { return host_; }
  void* host_function(const char* name) const { return get_api_ ? get_api_(name) : nullptr; }

 private:
  friend class Request;
  friend class WebRequest;
  friend class RemoteCall;
  friend struct detail::Entry;
  template <class T>
  friend int detail::init_entry(const lampyr_init_args*, void**, char*, size_t, const char*, const char*, uint32_t);

  struct Api {
    lampyr_fn_alloc alloc = nullptr;
    lampyr_fn_log log = nullptr;
    lampyr_fn_register_command register_command = nullptr;
    lampyr_fn_register_remote register_remote = nullptr;
    lampyr_fn_reply reply = nullptr;
    lampyr_fn_decline decline = nullptr;
    lampyr_fn_fail fail = nullptr;
    lampyr_fn_push push = nullptr;
    lampyr_fn_push_many push_many = nullptr;
    lampyr_fn_broadcast broadcast = nullptr;
    lampyr_fn_group join_group = nullptr;
    lampyr_fn_group leave_group = nullptr;
    lampyr_fn_kick kick = nullptr;
    lampyr_fn_session_set session_set = nullptr;
    lampyr_fn_session_get session_get = nullptr;
    lampyr_fn_timer_start timer_start = nullptr;
    lampyr_fn_timer_cancel timer_cancel = nullptr;
    lampyr_fn_counter_add counter_add = nullptr;
    lampyr_fn_gauge_set gauge_set = nullptr;
    lampyr_fn_now_ms now_ms = nullptr;
    lampyr_fn_call call = nullptr;
    lampyr_fn_notify notify = nullptr;
    lampyr_fn_bind bind = nullptr;
    lampyr_fn_watch_sessions watch_sessions = nullptr;
    lampyr_fn_set_router set_router = nullptr;
  };
  struct Timer {
    uint64_t host_id = 0;
    bool repeat = false;
    std::function<void()> fn;
  };


  void attach(const lampyr_init_args* a, const char* name, const char* version, uint32_t schema) {
    host_ = a->host;
    get_api_ = a->get_api;
    name_ = name;
    version_ = version;
    schema_ = schema;
    if (a->server_name) server_name_ = a->server_name;
    if (a->config_json) config_.assign(a->config_json, a->config_len);
    generation_ = a->generation;
    auto get = [this](auto& slot, const char* fn) { slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(get_api_(fn)); };
    get(api_.alloc, "alloc");
    get(api_.log, "log");
    get(api_.register_command, "register_command");
    get(api_.register_remote, "register_remote");
    get(api_.reply, "reply");
    get(api_.decline, "decline");
    get(api_.fail, "fail");
    get(api_.push, "push");
    get(api_.push_many, "push_many");
    get(api_.broadcast, "broadcast");
    get(api_.join_group, "join_group");
    get(api_.leave_group, "leave_group");
    get(api_.kick, "kick");
    get(api_.session_set, "session_set");
    get(api_.session_get, "session_get");
    get(api_.timer_start, "timer_start");
    get(api_.timer_cancel, "timer_cancel");
    get(api_.counter_add, "counter_add");
    get(api_.gauge_set, "gauge_set");
    get(api_.now_ms, "now_ms");
    get(api_.call, "call");
    get(api_.notify, "notify");
    get(api_.bind, "bind");
    get(api_.watch_sessions, "watch_sessions");
    get(api_.set_router, "set_router");
  }

  static void need(bool present, const char* name) {
    if (!present) throw Error(std::string("this host has no '") + name + "' function");
  }

  TimerId start_timer(uint64_t delay, uint64_t repeat, std::function<void()> fn) {
    need(api_.timer_start, "timer_start");
    uint64_t cookie = ++next_cookie_;
    uint64_t host_id = api_.timer_start(host_, delay, repeat, cookie);
    if (host_id == 0) return 0;
    timers_.emplace(cookie, Timer{host_id, repeat > 0, std::move(fn)});
    return cookie;
  }

  // Answers go through here so a dispatch can tell whether its request was
  // answered (a throwing handler's request gets fail() only if not).
  int answer(lampyr_token token, int kind, std::string_view data, int code) {
    if (token == dispatch_token_) dispatch_answered_ = true;
    switch (kind) {
      case 0:
        need(api_.reply, "reply");
        return api_.reply(host_, token, data.data(), data.size());
      case 1:
        need(api_.decline, "decline");
        return api_.decline(host_, token);
      default: {
        need(api_.fail, "fail");
        std::string msg(data);
        return api_.fail(host_, token, code, msg.c_str());
      }
    }
  }

  // Logs an exception that escaped a callback; returns its text.
  std::string report(const char* where) {
    std::string what;
    try {
      throw;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "unknown exception";
    }
    try {
      log(LAMPYR_LOG_ERROR, std::string(where) + ": " + what);
    } catch (...) {
    }
    return what;
  }

  lampyr_host* host_ = nullptr;
  lampyr_get_api_fn get_api_ = nullptr;
  Api api_;
  std::string name_, version_, server_name_, config_;
  uint32_t schema_ = 0;
  uint64_t generation_ = 0;
  bool draining_ = false;
  uint64_t next_cookie_ = 0;
  lampyr_token dispatch_token_ = 0;
  bool dispatch_answered_ = false;
  bool dispatch_busy_ = false;
  Request dispatch_request_;  // reused by on_request (see there)
  std::unordered_map<uint32_t, RequestHandler> commands_;
  std::unordered_map<std::string, RemoteHandler> remotes_;
  std::unordered_map<uint64_t, Timer> timers_;
  std::unordered_map<uint64_t, Continuation> calls_;
  std::unordered_map<uint64_t, std::unique_ptr<detail::WorkJob>> jobs_;  // work() in flight
  SessionWatcher watcher_;
  Router router_;
  // ---- web routes, HTTP client, links (looked up when first used) ----
  template <class Fn>
  Fn web_fn(const char* name) const {
    Fn fn = reinterpret_cast<Fn>(get_api_ ? get_api_(name) : nullptr);
    need(fn != nullptr, name);
    return fn;
  }
  std::unordered_map<std::string, WebHandler> web_handlers_;  // "GET /gm"
  LinkWatcher link_watcher_;
  std::unordered_map<uint64_t, FetchDone> fetches_;
};

#undef LAMPYR_SDK_VLOG_

inline bool Request::reply(std::string_view bytes) const {
  return plugin_ && plugin_->answer(token_, 0, bytes, 0) == LAMPYR_OK;
}
inline bool Request::decline() const { return plugin_ && plugin_->answer(token_, 1, {}, 0) == LAMPYR_OK; }
inline bool Request::fail(int code, std::string_view message) const {
  return plugin_ && plugin_->answer(token_, 2, message, code) == LAMPYR_OK;
}
inline bool RemoteCall::reply(std::string_view bytes) const {
  return plugin_ && token_ != 0 && plugin_->answer(token_, 0, bytes, 0) == LAMPYR_OK;
}
inline bool RemoteCall::fail(std::string_view message) const {
  return plugin_ && token_ != 0 && plugin_->answer(token_, 2, message, LAMPYR_FAIL_HANDLER_ERROR) == LAMPYR_OK;
}
inline bool WebRequest::respond(int status, std::string_view body, const Headers& headers) const {
  if (!plugin_) return false;
  auto fn = plugin_->web_fn<lampyr_fn_http_respond>("http_respond");
  std::vector<lampyr_http_header> hs;
  for (const auto& [k, v] : headers) hs.push_back({k.data(), k.size(), v.data(), v.size()});
  return fn(plugin_->host_, token_, status, hs.data(), hs.size(), body.data(), body.size()) == LAMPYR_OK;
}

namespace detail {

// The C callbacks of the descriptor. Each one catches everything.
struct Entry {
  static Plugin* self(void* ctx) { return static_cast<Plugin*>(ctx); }

  static int save_state(void* ctx, char** out, size_t* out_len, char* err, size_t cap) {
    Plugin* p = self(ctx);
    try {
      std::string bytes = p->save_state();
      *out = nullptr;
      *out_len = 0;
      if (bytes.empty()) return LAMPYR_OK;
      Plugin::need(p->api_.alloc, "alloc");
      char* buf = static_cast<char*>(p->api_.alloc(bytes.size()));
      if (!buf) throw Error("host alloc failed");
      std::memcpy(buf, bytes.data(), bytes.size());
      *out = buf;
      *out_len = bytes.size();
      return LAMPYR_OK;
    } catch (...) {
      write_err(err, cap, p->report("save_state").c_str());
      return LAMPYR_ERR;
    }
  }

  static int restore_state(void* ctx, const char* data, size_t len, uint32_t from_schema, char* err, size_t cap) {
    Plugin* p = self(ctx);
    try {
      if (p->restore_state(std::string_view(data ? data : "", len), from_schema)) return LAMPYR_OK;
      write_err(err, cap, ("restore_state refused state of schema " + std::to_string(from_schema)).c_str());
      return LAMPYR_ERR;
    } catch (...) {
      write_err(err, cap, p->report("restore_state").c_str());
      return LAMPYR_ERR;
    }
  }

  static void on_request(void* ctx, const lampyr_request* req) {
    Plugin* p = self(ctx);
    const lampyr_token outer_token = p->dispatch_token_;
    const bool outer_answered = p->dispatch_answered_, outer_busy = p->dispatch_busy_;
    p->dispatch_token_ = req->token;
    p->dispatch_answered_ = false;
    // One Request per plugin is reused, body capacity included, so a request
    // costs no allocation (a handler that keeps it copies it). A nested
    // dispatch - the host does not re-enter, but nothing here relies on it -
    // gets its own.
    Request nested;
    Request& r = outer_busy ? nested : p->dispatch_request_;
    p->dispatch_busy_ = true;
    try {
      auto it = p->commands_.find(req->command);
      if (it == p->commands_.end()) throw Error("no handler for command " + std::to_string(req->command));
      r.plugin_ = p;
      r.token_ = req->token;
      r.session_ = req->session;
      r.command_ = req->command;
      r.body_.assign(req->body ? req->body : "", req->body_len);
      it->second(r);
    } catch (...) {
      std::string what = p->report(("command " + std::to_string(req->command)).c_str());
      if (!p->dispatch_answered_ && p->api_.fail) p->api_.fail(p->host_, req->token, LAMPYR_FAIL_HANDLER_ERROR, what.c_str());
    }
    // Nothing may answer through the reused object by accident later.
    r.token_ = 0;
    p->dispatch_busy_ = outer_busy;
    p->dispatch_token_ = outer_token;
    p->dispatch_answered_ = outer_answered;
  }

  static void on_remote(void* ctx, const lampyr_remote_call* call) {
    Plugin* p = self(ctx);
    p->dispatch_token_ = call->token;
    p->dispatch_answered_ = false;
    try {
      std::string method = call->method ? call->method : "";
      auto it = p->remotes_.find(method);
      if (it == p->remotes_.end()) throw Error("no handler for remote method " + method);
      RemoteCall c;
      c.plugin_ = p;
      c.token_ = call->token;
      c.from_ = call->from_node ? call->from_node : "";
      c.method_ = std::move(method);
      c.args_.assign(call->args ? call->args : "", call->args_len);
      it->second(c);
    } catch (...) {
      std::string what = p->report("remote method");
      if (call->token != 0 && !p->dispatch_answered_ && p->api_.fail)
        p->api_.fail(p->host_, call->token, LAMPYR_FAIL_HANDLER_ERROR, what.c_str());
    }
    p->dispatch_token_ = 0;
  }

  static void on_timer(void* ctx, uint64_t cookie) {
    Plugin* p = self(ctx);
    try {
      auto it = p->timers_.find(cookie);
      if (it == p->timers_.end()) return;  // cancelled meanwhile
      if (it->second.repeat) {
        // A copy: the callback may cancel its own timer (erasing the entry).
        std::function<void()> fn = it->second.fn;
        fn();
      } else {
        std::function<void()> fn = std::move(it->second.fn);
        p->timers_.erase(it);
        fn();
      }
    } catch (...) {
      p->report("timer");
    }
  }

  static void on_complete(void* ctx, uint64_t cookie, int status, const char* data, size_t len) {
    Plugin* p = self(ctx);
    try {
      auto it = p->calls_.find(cookie);
      if (it == p->calls_.end()) return;
      Plugin::Continuation fn = std::move(it->second);
      p->calls_.erase(it);
      fn(CallStatus{status}, std::string_view(data ? data : "", len));
    } catch (...) {
      p->report("call continuation");
    }
  }

  static void on_session(void* ctx, lampyr_session s, int open) {
    Plugin* p = self(ctx);
    try {
      if (p->watcher_) p->watcher_(s, open != 0);
    } catch (...) {
      p->report("session watcher");
    }
  }

  static int route(void* ctx, lampyr_session s, uint32_t command, const char* body, size_t body_len, char* node,
                   size_t node_cap) {
    Plugin* p = self(ctx);
    if (node_cap > 0) node[0] = '\0';
    try {
      if (!p->router_) return LAMPYR_OK;
      std::string name = p->router_(s, command, std::string_view(body ? body : "", body_len));
      if (name.size() >= node_cap) throw Error("node name too long: " + name);
      std::memcpy(node, name.c_str(), name.size() + 1);
      return LAMPYR_OK;
    } catch (...) {
      p->report("router");
      if (node_cap > 0) node[0] = '\0';
      return LAMPYR_ERR;
    }
  }

  static void on_stop(void* ctx) {
    Plugin* p = self(ctx);
    p->draining_ = true;
    // The host cancelled this generation's repeating timers (they would
    // never let it drain); one-shot timers are promised work and still fire.
    for (auto it = p->timers_.begin(); it != p->timers_.end();) {
      if (it->second.repeat) it = p->timers_.erase(it);
      else ++it;
    }
    try {
      p->on_stop();
    } catch (...) {
      p->report("on_stop");
    }
  }

  // ---- web routes, HTTP client, links ----
  static void on_http(void* ctx, const lampyr_http_request* req) {
    Plugin* p = self(ctx);
    WebRequest r;
    try {
      r.plugin_ = p;
      r.token_ = req->token;
      r.method_ = req->method ? req->method : "";
      r.prefix_ = req->prefix ? req->prefix : "";
      r.path_ = req->path ? req->path : "";
      r.query_ = req->query ? req->query : "";
      r.body_.assign(req->body ? req->body : "", req->body_len);
      r.peer_ip_ = req->peer_ip ? req->peer_ip : "";
      r.peer_port_ = req->peer_port;
      for (size_t i = 0; i < req->header_count; ++i) {
        const lampyr_http_header& h = req->headers[i];
        r.headers_.emplace_back(std::string(h.name, h.name_len), std::string(h.value, h.value_len));
      }
      auto it = p->web_handlers_.find(r.method_ + " " + r.prefix_);
      if (it == p->web_handlers_.end()) throw Error("no handler for web route " + r.method_ + " " + r.prefix_);
      it->second(r);
    } catch (...) {
      p->report(("web route " + r.prefix_).c_str());
      try {
        r.respond(500, "internal error\n");  // false (ignored) if the handler had answered
      } catch (...) {
      }
    }
  }

  static void on_link(void* ctx, const char* node, int up) {
    Plugin* p = self(ctx);
    try {
      if (p->link_watcher_) p->link_watcher_(node ? node : "", up != 0);
    } catch (...) {
      p->report("link watcher");
    }
  }

  static void on_fetch(void* ctx, uint64_t cookie, const lampyr_http_response* resp) {
    Plugin* p = self(ctx);
    try {
      auto it = p->fetches_.find(cookie);
      if (it == p->fetches_.end()) return;
      Plugin::FetchDone fn = std::move(it->second);
      p->fetches_.erase(it);
      FetchResult r;
      r.status = resp->status;
      r.error = resp->error ? resp->error : "";
      r.body.assign(resp->body ? resp->body : "", resp->body_len);
      for (size_t i = 0; i < resp->header_count; ++i) {
        const lampyr_http_header& h = resp->headers[i];
        r.headers.emplace_back(std::string(h.name, h.name_len), std::string(h.value, h.value_len));
      }
      fn(std::move(r));
    } catch (...) {
      p->report("fetch continuation");
    }
  }

  static void destroy(void* ctx) {
    try {
      delete self(ctx);
    } catch (...) {
    }
  }
};

}  // namespace detail

// ---- web routes, HTTP client, links: bodies that need detail::Entry ----
inline bool Plugin::route(const std::string& method, const std::string& prefix, WebHandler handler,
                              RouteOptions opts) {
  auto fn = web_fn<lampyr_fn_http_route>("http_route");
  int rc = fn(host_, method.c_str(), prefix.c_str(), opts.admin ? LAMPYR_HTTP_ADMIN : LAMPYR_HTTP_PUBLIC,
              opts.max_body, opts.timeout_ms, &detail::Entry::on_http);
  if (rc == LAMPYR_ERR_UNAVAILABLE) return false;
  if (rc != LAMPYR_OK) throw Error("web route " + method + " " + prefix + " refused (" + std::to_string(rc) + ")");
  web_handlers_[method + " " + prefix] = std::move(handler);
  return true;
}
inline bool Plugin::watch_links(LinkWatcher fn) {
  auto api = web_fn<lampyr_fn_watch_links>("watch_links");
  int rc = api(host_, &detail::Entry::on_link);
  if (rc == LAMPYR_ERR_UNAVAILABLE) return false;
  if (rc != LAMPYR_OK) throw Error("watch_links refused (" + std::to_string(rc) + ")");
  link_watcher_ = std::move(fn);
  return true;
}
inline bool Plugin::fetch(const std::string& url, FetchOptions opts, FetchDone then) {
  auto fn = web_fn<lampyr_fn_http_fetch>("http_fetch");
  std::vector<lampyr_http_header> hs;
  for (const auto& [k, v] : opts.headers) hs.push_back({k.data(), k.size(), v.data(), v.size()});
  uint64_t cookie = ++next_cookie_;
  fetches_.emplace(cookie, std::move(then));
  if (fn(host_, opts.method.c_str(), url.c_str(), hs.data(), hs.size(), opts.body.data(), opts.body.size(),
         opts.timeout_ms, opts.insecure ? LAMPYR_FETCH_INSECURE : 0, cookie, &detail::Entry::on_fetch) != LAMPYR_OK) {
    fetches_.erase(cookie);
    return false;
  }
  return true;
}

namespace detail {

template <class T>
int init_entry(const lampyr_init_args* args, void** ctx, char* err, size_t err_cap, const char* name,
               const char* version, uint32_t schema) {
  *ctx = nullptr;
  T* p = nullptr;
  try {
    p = new T();
    Plugin* base = p;
    base->attach(args, name, version, schema);
    base->init();
    *ctx = base;
    return LAMPYR_OK;
  } catch (const std::exception& e) {
    write_err(err, err_cap, e.what());
  } catch (...) {
    write_err(err, err_cap, "init threw a non-standard exception");
  }
  // Leave nothing running: timers started in init are the host's to forget
  // (the generation is discarded), our side is freed here.
  delete p;
  return LAMPYR_ERR;
}

}  // namespace detail
}  // namespace lampyr::sdk

// Exports the plugin class `Class` under `name` (as in the config's
// "plugins"), with a free-text `version` and the `schema` number of the
// bytes its save_state() produces. Use once per plugin, in one .cpp file.
// The descriptor is a constant-initialised POD with internal linkage, so
// nothing here needs a constructor, a destructor or a unique symbol.
#define LAMPYR_PLUGIN(Class, name, version, schema)                                                            \
  static int lampyr_sdk_init_(const lampyr_init_args* args, void** ctx, char* err, size_t err_cap) {            \
    return ::lampyr::sdk::detail::init_entry<Class>(args, ctx, err, err_cap, name, version, schema);           \
  }                                                                                                            \
  static const lampyr_plugin_desc lampyr_sdk_desc_ = {                                                         \
      sizeof(lampyr_plugin_desc),                                                                              \
      LAMPYR_ABI_MAJOR,                                                                                        \
      LAMPYR_ABI_MINOR,                                                                                        \
      LAMPYR_SDK_SIGNATURE,                                                                                    \
      name,                                                                                                    \
      version,                                                                                                 \
      schema,                                                                                                  \
      &lampyr_sdk_init_,                                                                                       \
      &::lampyr::sdk::detail::Entry::save_state,                                                               \
      &::lampyr::sdk::detail::Entry::restore_state,                                                            \
      &::lampyr::sdk::detail::Entry::on_request,                                                               \
      &::lampyr::sdk::detail::Entry::on_remote,                                                                \
      &::lampyr::sdk::detail::Entry::on_timer,                                                                 \
      &::lampyr::sdk::detail::Entry::on_complete,                                                              \
      &::lampyr::sdk::detail::Entry::on_session,                                                               \
      &::lampyr::sdk::detail::Entry::route,                                                                    \
      &::lampyr::sdk::detail::Entry::on_stop,                                                                  \
      &::lampyr::sdk::detail::Entry::destroy,                                                                  \
  };                                                                                                           \
  extern "C" __attribute__((visibility("default"))) const lampyr_plugin_desc* lampyr_plugin_entry(void) {     \
    return &lampyr_sdk_desc_;                                                                                  \
  }

#endif  // LAMPYR_PLUGIN_HPP
