// What one received WebSocket message means (DESIGN §3a): a binary message
// must hold exactly one Firefly frame; anything else ends the connection with
// the RFC 6455 code that says why. Pure, so the fuzzer checks the rule the
// server applies.
#pragma once

#include <cstddef>
#include <cstdint>

#include "net/frame_codec.h"

namespace lampyr::net {

constexpr uint16_t kWsUnsupportedData = 1003;  // a text message
constexpr uint16_t kWsInvalidPayload = 1007;   // not exactly one valid frame
constexpr uint16_t kWsMessageTooBig = 1009;    // the frame's body is over max_body

struct WsVerdict {
  uint16_t close_code = 0;   // 0: the message is the request in `frame`
  const char* reason = "";   // log / close reason when close_code != 0
};

// `opcode` is the message's RFC 6455 opcode (1 text, 2 binary); control
// messages never get here.
inline WsVerdict ClassifyWsMessage(uint8_t opcode, const uint8_t* data, size_t len, const FrameLimits& limits,
                                   DecodedFrame* frame) {
  if (opcode != 2) return {kWsUnsupportedData, "ws_text"};
  // Shorter than a header, empty included (wslay then passes no buffer at all).
  if (len < kHeaderSize) return {kWsInvalidPayload, "ws_not_one_frame"};
  FrameError err = DecodeFrame(data, len, limits, frame);
  if (err == FrameError::kOk && frame->frame_size == len) return {};
  if (err == FrameError::kTooLarge) return {kWsMessageTooBig, "too_large"};
  // Part of a frame, or a frame and more: the message boundary is the frame
  // boundary, so this client frames differently from us.
  if (err == FrameError::kOk || err == FrameError::kNeedMore) return {kWsInvalidPayload, "ws_not_one_frame"};
  return {kWsInvalidPayload, FrameErrorName(err)};
}

}  // namespace lampyr::net
