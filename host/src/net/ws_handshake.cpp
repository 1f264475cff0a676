#include "net/ws_handshake.h"

#include <openssl/evp.h>

#include <cstdint>

namespace lampyr::net {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (Lower(a[i]) != Lower(b[i])) return false;
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A comma-separated header value (Connection: keep-alive, Upgrade) holds `token`.
bool HasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (EqualsNoCase(Trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// RFC 7230 token characters (header names).
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsBase64Char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// A key is 16 random bytes in base64: 22 characters and "==".
bool ValidKey(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  for (size_t i = 0; i < 22; ++i)
    if (!IsBase64Char(key[i])) return false;
  return true;
}

const char* StatusText(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

WsUpgrade Refuse(int status, std::string error) {
  WsUpgrade u;
  u.status = status;
  u.error = std::move(error);
  u.response = WsRefusal(status);
  return u;
}

}  // namespace

size_t WsRequestLength(std::string_view data) {
  size_t end = data.find("\r\n\r\n");
  return end == std::string_view::npos ? 0 : end + 4;
}

std::string WsRefusal(int status) {
  std::string text = StatusText(status);
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + text + "\r\nConnection: close\r\n";
  if (status == 405) r += "Allow: GET\r\n";
  if (status == 426) r += "Sec-WebSocket-Version: 13\r\n";
  r += "Content-Type: text/plain\r\nContent-Length: " + std::to_string(text.size() + 1) + "\r\n\r\n" + text + "\n";
  return r;
}

std::string WsAcceptKey(std::string_view key) {
  std::string input(key);
  input += kGuid;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha1(), nullptr);
  unsigned char out[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  int n = EVP_EncodeBlock(out, digest, static_cast<int>(len));
  return std::string(reinterpret_cast<const char*>(out), n > 0 ? static_cast<size_t>(n) : 0);
}

WsUpgrade AnswerUpgrade(std::string_view request, const WsPolicy& policy) {
  if (request.size() > kWsMaxRequestBytes) return Refuse(431, "too_large");
  if (request.size() < 4 || request.substr(request.size() - 4) != "\r\n\r\n") return Refuse(400, "malformed");
  request.remove_suffix(2);  // every line, the last included, now ends with \r\n

  // Request line: GET <target> HTTP/1.1
  size_t eol = request.find("\r\n");
  std::string_view line = request.substr(0, eol);
  request.remove_prefix(eol + 2);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return Refuse(400, "malformed");
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  // HTTP/1.1 or a later 1.x: the upgrade mechanism does not exist in 1.0.
  if (version.size() != 8 || version.substr(0, 7) != "HTTP/1." || version[7] < '1' || version[7] > '9')
    return Refuse(400, "http_version");
  if (method != "GET") return Refuse(405, "method");
  // The path alone is compared; a query string (?token=...) is the game's business.
  std::string_view path = target.substr(0, target.find('?'));
  if (path != policy.path) return Refuse(404, "path");

  std::string_view host, upgrade, connection, key, ws_version, origin;
  bool duplicate = false;
  size_t headers = 0;
  while (!request.empty()) {
    eol = request.find("\r\n");
    line = request.substr(0, eol);
    request.remove_prefix(eol + 2);
    if (++headers > kWsMaxHeaders) return Refuse(431, "too_many_headers");
    size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return Refuse(400, "malformed");
    std::string_view name = line.substr(0, colon);
    for (char c : name)
      if (!IsTokenChar(c)) return Refuse(400, "malformed");  // also refuses obsolete line folding
    std::string_view value = Trim(line.substr(colon + 1));
    for (char c : value)
      if (c == '\0' || c == '\r' || c == '\n') return Refuse(400, "malformed");
    auto take = [&](std::string_view* slot) {
      if (!slot->empty()) duplicate = true;
      *slot = value;
    };
    if (EqualsNoCase(name, "host")) take(&host);
    else if (EqualsNoCase(name, "upgrade")) take(&upgrade);
    else if (EqualsNoCase(name, "connection")) take(&connection);
    else if (EqualsNoCase(name, "sec-websocket-key")) take(&key);
    else if (EqualsNoCase(name, "sec-websocket-version")) take(&ws_version);
    else if (EqualsNoCase(name, "origin")) take(&origin);
  }
  if (duplicate) return Refuse(400, "duplicate_header");
  if (host.empty()) return Refuse(400, "no_host");
  if (!HasToken(upgrade, "websocket") || !HasToken(connection, "upgrade")) return Refuse(400, "not_upgrade");
  if (ws_version != "13") return Refuse(426, "ws_version");
  if (!ValidKey(key)) return Refuse(400, "bad_key");
  // Only browsers send Origin, and only a browser page can be tricked into
  // connecting from another site; other clients may leave it out.
  if (!policy.origins.empty() && !origin.empty()) {
    bool allowed = false;
    for (const std::string& o : policy.origins) allowed = allowed || EqualsNoCase(o, origin);
    if (!allowed) return Refuse(403, "origin");
  }
  WsUpgrade u;
  u.status = 101;
  u.response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
               WsAcceptKey(key) + "\r\n\r\n";
  return u;
}

}  // namespace lampyr::net
