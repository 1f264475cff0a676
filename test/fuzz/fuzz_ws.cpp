// Fuzzes what a WebSocket client controls (DESIGN §3a), through the code the
// server runs: the upgrade request (net/ws_handshake.h), then the bytes after
// it through wslay's server context and the one-message-one-frame rule
// (net/ws_message.h), with the limits WsSession sets.
//   input[0]   max_body selector
//   input[1..] the connection's bytes: the request head, then WebSocket frames
// Checks: an answer is always a complete HTTP response with a status the
// docs list, 101 only with the accept key of the request's key; every
// accepted message is exactly one frame within max_body; wslay never hands
// over a message longer than the limit.
#include <wslay/wslay.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "net/frame_codec.h"
#include "net/ws_handshake.h"
#include "net/ws_message.h"

namespace {

using namespace lampyr::net;

[[noreturn]] void Fail(const char* what) {
  fprintf(stderr, "fuzz_ws: %s\n", what);
  abort();
}

struct Feed {
  const uint8_t* data = nullptr;
  size_t len = 0;
  size_t pos = 0;
  FrameLimits limits;
  uint64_t max_message = 0;
  bool stopped = false;
};

ssize_t Recv(wslay_event_context_ptr ctx, uint8_t* buf, size_t len, int, void* user) {
  auto* f = static_cast<Feed*>(user);
  // Small, uneven reads, as a socket delivers them.
  size_t n = std::min({len, f->len - f->pos, size_t{1} + f->pos % 97});
  if (n == 0 || f->stopped) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  memcpy(buf, f->data + f->pos, n);
  f->pos += n;
  return static_cast<ssize_t>(n);
}

ssize_t Send(wslay_event_context_ptr, const uint8_t*, size_t len, int, void*) { return static_cast<ssize_t>(len); }

void OnMessage(wslay_event_context_ptr ctx, const wslay_event_on_msg_recv_arg* arg, void* user) {
  auto* f = static_cast<Feed*>(user);
  if (arg->msg_length > f->max_message) Fail("wslay delivered a message over the limit");
  if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME) return;
  DecodedFrame frame;
  WsVerdict v = ClassifyWsMessage(arg->opcode, arg->msg, arg->msg_length, f->limits, &frame);
  if (v.close_code == 0) {
    if (frame.frame_size != arg->msg_length || frame.body.size() > f->limits.max_body)
      Fail("accepted a message that is not one frame within max_body");
    return;
  }
  if (v.close_code != kWsUnsupportedData && v.close_code != kWsInvalidPayload && v.close_code != kWsMessageTooBig)
    Fail("unexpected close code");
  wslay_event_queue_close(ctx, v.close_code, nullptr, 0);  // as WsSession: the session ends here
  f->stopped = true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const uint32_t kMaxBodies[] = {0, 16, 1024, 65536};
  Feed feed;
  feed.data = data + 1;
  feed.len = size - 1;
  feed.limits.max_body = kMaxBodies[data[0] % 4];
  feed.max_message = kHeaderSize + uint64_t{feed.limits.max_body};
  std::string_view bytes(reinterpret_cast<const char*>(feed.data), feed.len);

  size_t head = WsRequestLength(bytes.substr(0, kWsMaxRequestBytes));
  if (head == 0) return 0;  // the server waits for more, or answers 431 (no parsing)
  WsPolicy policy;
  policy.path = "/game";
  if (data[0] & 4) policy.origins = {"https://play.example"};
  WsUpgrade u = AnswerUpgrade(bytes.substr(0, head), policy);
  static const int kStatuses[] = {101, 400, 403, 404, 405, 426, 431};
  if (std::find(std::begin(kStatuses), std::end(kStatuses), u.status) == std::end(kStatuses)) Fail("status");
  if (u.response.compare(0, 9, "HTTP/1.1 ") != 0 || WsRequestLength(u.response) == 0)
    Fail("response is not a complete HTTP head");
  if (u.status != 101) return 0;
  size_t key_at = u.response.find("Sec-WebSocket-Accept: ");
  if (key_at == std::string::npos || u.response.find("\r\n", key_at) - key_at - 22 != 28) Fail("accept key");

  feed.pos = head;
  wslay_event_context_ptr ctx = nullptr;
  static const wslay_event_callbacks kCallbacks = {Recv, Send, nullptr, nullptr, nullptr, nullptr, OnMessage};
  if (wslay_event_context_server_init(&ctx, &kCallbacks, &feed) != 0) return 0;
  wslay_event_config_set_max_recv_msg_length(ctx, feed.max_message);
  while (feed.pos < feed.len && !feed.stopped && wslay_event_want_read(ctx)) {
    if (wslay_event_recv(ctx) != 0) break;
    wslay_event_send(ctx);
  }
  wslay_event_context_free(ctx);
  return 0;
}
