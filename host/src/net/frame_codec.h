// Firefly's client framing (DESIGN §3), byte-compatible with netconnect:
//   0  4 x u8  head bytes        (protocol.head)
//   4  u8      proto_version
//   5  u32 BE  server_version
//   9  u32 BE  length = body length + 4
//  13  u32 BE  command id
//  17  body
// Pure functions over bytes: the server, the client library, the benchmark
// and the fuzzer all share this one implementation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lampyr::net {

constexpr size_t kHeaderSize = 17;

struct FrameLimits {
  std::array<uint8_t, 4> head{0, 0, 0, 0};
  uint8_t proto_version = 0;
  uint32_t server_version = 0;
  uint32_t max_body = 65536;
};

enum class FrameError {
  kOk = 0,
  kNeedMore,    // not an error: wait for more bytes
  kBadHead,     // head bytes differ from protocol.head
  kBadVersion,  // proto_version or server_version differ
  kBadLength,   // length field < 4
  kTooLarge,    // body > max_body
};

// Stable short name for logs and metric labels ("bad_head", ...).
const char* FrameErrorName(FrameError e);

struct FrameHeader {
  uint32_t command = 0;
  uint32_t body_len = 0;
};

inline uint32_t LoadBE32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
inline void StoreBE32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// Validates the 17 header bytes at `p` against `limits`.
FrameError ParseHeader(const uint8_t* p, const FrameLimits& limits, FrameHeader* out);

// Writes the 17 header bytes for a frame carrying `body_len` bytes.
void EncodeHeader(const FrameLimits& limits, uint32_t command, uint32_t body_len, uint8_t* out);

// Appends a whole frame to `out`.
void AppendFrame(const FrameLimits& limits, uint32_t command, std::string_view body, std::string* out);

// Incremental decoding of a byte stream that may be split or merged at any
// point. Decode() looks at the bytes at `data` and either returns kOk with
// one frame (its body points into `data`), kNeedMore, or an error; after an
// error the stream is unusable (the connection must be closed).
struct DecodedFrame {
  uint32_t command = 0;
  std::string_view body;
  size_t frame_size = 0;  // bytes consumed: header + body
};
FrameError DecodeFrame(const uint8_t* data, size_t len, const FrameLimits& limits, DecodedFrame* out);

}  // namespace lampyr::net
