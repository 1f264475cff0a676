// The HTTP/1.1 upgrade request that opens a WebSocket (RFC 6455 §4.2),
// parsed by hand: it is a request line and a few headers, and a full HTTP
// parser would be more code to trust than this. Pure functions over bytes,
// so the fuzzer (test/fuzz/fuzz_ws.cpp) drives exactly what the server runs.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace lampyr::net {

// Limits of the request: a browser's upgrade request is well under 2 KiB.
constexpr size_t kWsMaxRequestBytes = 8192;
constexpr size_t kWsMaxHeaders = 64;

struct WsPolicy {
  std::string path = "/";            // protocol.ws_path: the only target accepted
  std::vector<std::string> origins;  // protocol.ws_origins; empty = any
};

struct WsUpgrade {
  int status = 0;          // 101 when the upgrade is accepted, else the HTTP error sent
  std::string error;       // why it was refused: a short label for logs and metrics
  std::string response;    // the complete HTTP response to write
};

// Length of the request head in `data` (through the blank line), 0 while it
// is incomplete. A head longer than kWsMaxRequestBytes is refused by the
// caller (431) without waiting for the rest.
size_t WsRequestLength(std::string_view data);

// Checks the request head (as delimited by WsRequestLength) against the
// policy and builds the answer: 101 with Sec-WebSocket-Accept, or 400 (bad
// request), 403 (Origin not allowed), 404 (other path), 405 (not GET), 426
// (not version 13), each with Connection: close.
WsUpgrade AnswerUpgrade(std::string_view request, const WsPolicy& policy);

// The HTTP response for a refusal decided before parsing (431, 503).
std::string WsRefusal(int status);

// base64(SHA-1(key + RFC 6455 GUID)).
std::string WsAcceptKey(std::string_view key);

}  // namespace lampyr::net
