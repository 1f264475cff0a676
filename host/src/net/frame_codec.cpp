#include "net/frame_codec.h"

#include <cstring>

namespace lampyr::net {

const char* FrameErrorName(FrameError e) {
  switch (e) {
    case FrameError::kOk: return "ok";
    case FrameError::kNeedMore: return "need_more";
    case FrameError::kBadHead: return "bad_head";
    case FrameError::kBadVersion: return "bad_version";
    case FrameError::kBadLength: return "bad_length";
    case FrameError::kTooLarge: return "too_large";
  }
  return "unknown";
}

FrameError ParseHeader(const uint8_t* p, const FrameLimits& limits, FrameHeader* out) {
  if (std::memcmp(p, limits.head.data(), 4) != 0) return FrameError::kBadHead;
  if (p[4] != limits.proto_version || LoadBE32(p + 5) != limits.server_version) return FrameError::kBadVersion;
  const uint32_t length = LoadBE32(p + 9);
  if (length < 4) return FrameError::kBadLength;
  if (length - 4 > limits.max_body) return FrameError::kTooLarge;
  out->body_len = length - 4;
  out->command = LoadBE32(p + 13);
  return FrameError::kOk;
}

void EncodeHeader(const FrameLimits& limits, uint32_t command, uint32_t body_len, uint8_t* out) {
  std::memcpy(out, limits.head.data(), 4);
  out[4] = limits.proto_version;
  StoreBE32(out + 5, limits.server_version);
  StoreBE32(out + 9, body_len + 4);
  StoreBE32(out + 13, command);
}

void AppendFrame(const FrameLimits& limits, uint32_t command, std::string_view body, std::string* out) {
  uint8_t h[kHeaderSize];
  EncodeHeader(limits, command, static_cast<uint32_t>(body.size()), h);
  out->append(reinterpret_cast<const char*>(h), kHeaderSize);
  out->append(body);
}

FrameError DecodeFrame(const uint8_t* data, size_t len, const FrameLimits& limits, DecodedFrame* out) {
  if (len < kHeaderSize) {
    // Reject a bad head as soon as its bytes arrive, not only at 17 bytes:
    // a client sending garbage slowly is cut off early.
    size_t n = len < 4 ? len : 4;
    if (std::memcmp(data, limits.head.data(), n) != 0) return FrameError::kBadHead;
    return FrameError::kNeedMore;
  }
  FrameHeader h;
  FrameError e = ParseHeader(data, limits, &h);
  if (e != FrameError::kOk) return e;
  if (len - kHeaderSize < h.body_len) return FrameError::kNeedMore;
  out->command = h.command;
  out->body = std::string_view(reinterpret_cast<const char*>(data) + kHeaderSize, h.body_len);
  out->frame_size = kHeaderSize + h.body_len;
  return FrameError::kOk;
}

}  // namespace lampyr::net
