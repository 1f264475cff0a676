// A small blocking HTTP/1.1 client for the admin API: lampyrctl and the tests
// use it. One request per connection ("Connection: close"), poll() timeouts,
// Content-Length or read-to-close bodies. Not a general-purpose client.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace lampyr {

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  // First value of header `name` (lower case), empty if absent.
  std::string Header(const std::string& name) const;
};

struct HttpUrl {
  std::string host = "127.0.0.1";
  uint16_t port = 80;
  std::string base_path;  // "" or "/prefix" without trailing slash
};

// Accepts "http://host:port[/prefix]", "host:port" and "[::1]:port".
Status ParseHttpUrl(const std::string& text, HttpUrl* out);

// Sends `method path` with `body` (Content-Type application/json when
// non-empty) and extra `headers`; fills `out` on any HTTP answer. The error
// Status covers only transport problems (refused, timeout, malformed reply).
Status HttpCall(const std::string& host, uint16_t port, const std::string& method, const std::string& path,
                const std::string& body, const std::vector<std::pair<std::string, std::string>>& headers,
                HttpResponse* out, int timeout_ms = 10000);

}  // namespace lampyr
