#include "channel/channel_wire.h"

#include <cstring>

namespace lampyr::channel {

namespace {

uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 |
         p[3];
}
void Set16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void Set32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace

size_t EncodePrefix(const Frame& f, uint8_t* out, size_t cap) {
  size_t need = kHeaderSize + f.src.size() + f.dst.size() + f.method.size();
  if (cap < need) return 0;
  Set16(out, kMagic);
  out[2] = kVersion;
  out[3] = static_cast<uint8_t>(f.type);
  out[4] = f.flags;
  out[5] = static_cast<uint8_t>(f.src.size());
  out[6] = static_cast<uint8_t>(f.dst.size());
  out[7] = static_cast<uint8_t>(f.method.size());
  Set32(out + 8, f.id);
  Set32(out + 12, f.aux);
  Set32(out + 16, static_cast<uint32_t>(f.payload.size()));
  uint8_t* p = out + kHeaderSize;
  for (std::string_view part : {f.src, f.dst, f.method}) {
    if (!part.empty()) memcpy(p, part.data(), part.size());
    p += part.size();
  }
  return need;
}

void AppendFrame(const Frame& f, std::string* out) {
  uint8_t prefix[kHeaderSize + 3 * 255];
  size_t n = EncodePrefix(f, prefix, sizeof prefix);
  out->append(reinterpret_cast<const char*>(prefix), n);
  out->append(f.payload);
}

DecodeResult PeekSize(const uint8_t* p, size_t max_frame, size_t* total) {
  if (Get16(p) != kMagic) return DecodeResult::kBadMagic;
  if (p[2] != kVersion) return DecodeResult::kBadVersion;
  uint64_t size = kHeaderSize + uint64_t{p[5]} + p[6] + p[7] + Get32(p + 16);
  if (size > max_frame) return DecodeResult::kTooLarge;
  *total = static_cast<size_t>(size);
  return DecodeResult::kOk;
}

DecodeResult Decode(const uint8_t* p, size_t size, Frame* out) {
  size_t total = 0;
  DecodeResult r = PeekSize(p, size, &total);
  if (r != DecodeResult::kOk) return r == DecodeResult::kTooLarge ? DecodeResult::kNeedMore : r;
  if (total != size) return DecodeResult::kNeedMore;
  uint8_t type = p[3];
  if (type < static_cast<uint8_t>(FrameType::kHello) || type > static_cast<uint8_t>(FrameType::kPeers))
    return DecodeResult::kBadType;
  out->type = static_cast<FrameType>(type);
  out->flags = p[4];
  out->id = Get32(p + 8);
  out->aux = Get32(p + 12);
  const char* c = reinterpret_cast<const char*>(p) + kHeaderSize;
  out->src = std::string_view(c, p[5]);
  c += p[5];
  out->dst = std::string_view(c, p[6]);
  c += p[6];
  out->method = std::string_view(c, p[7]);
  c += p[7];
  out->payload = std::string_view(c, Get32(p + 16));
  return DecodeResult::kOk;
}

const char* DecodeResultName(DecodeResult r) {
  switch (r) {
    case DecodeResult::kOk: return "ok";
    case DecodeResult::kNeedMore: return "short frame";
    case DecodeResult::kBadMagic: return "bad magic";
    case DecodeResult::kBadVersion: return "unsupported protocol version";
    case DecodeResult::kTooLarge: return "frame too large";
    case DecodeResult::kBadType: return "unknown frame type";
  }
  return "?";
}

const char* FrameTypeName(FrameType t) {
  switch (t) {
    case FrameType::kHello: return "hello";
    case FrameType::kChallenge: return "challenge";
    case FrameType::kAuth: return "auth";
    case FrameType::kWelcome: return "welcome";
    case FrameType::kReject: return "reject";
    case FrameType::kCall: return "call";
    case FrameType::kReply: return "reply";
    case FrameType::kNotify: return "notify";
    case FrameType::kPing: return "ping";
    case FrameType::kPong: return "pong";
    case FrameType::kPeers: return "peers";
  }
  return "?";
}

void PutU16(std::string* s, uint16_t v) {
  uint8_t b[2];
  Set16(b, v);
  s->append(reinterpret_cast<char*>(b), 2);
}
void PutU32(std::string* s, uint32_t v) {
  uint8_t b[4];
  Set32(b, v);
  s->append(reinterpret_cast<char*>(b), 4);
}
void PutU64(std::string* s, uint64_t v) {
  PutU32(s, static_cast<uint32_t>(v >> 32));
  PutU32(s, static_cast<uint32_t>(v));
}
void PutStr16(std::string* s, std::string_view v) {
  PutU16(s, static_cast<uint16_t>(v.size()));
  s->append(v.substr(0, 0xFFFF));
}

bool Reader::U8(uint8_t* v) {
  if (s_.size() < 1) return false;
  *v = static_cast<uint8_t>(s_[0]);
  s_.remove_prefix(1);
  return true;
}
bool Reader::U16(uint16_t* v) {
  if (s_.size() < 2) return false;
  *v = Get16(reinterpret_cast<const uint8_t*>(s_.data()));
  s_.remove_prefix(2);
  return true;
}
bool Reader::U32(uint32_t* v) {
  if (s_.size() < 4) return false;
  *v = Get32(reinterpret_cast<const uint8_t*>(s_.data()));
  s_.remove_prefix(4);
  return true;
}
bool Reader::U64(uint64_t* v) {
  uint32_t hi, lo;
  if (s_.size() < 8) return false;
  U32(&hi);
  U32(&lo);
  *v = uint64_t{hi} << 32 | lo;
  return true;
}
bool Reader::Bytes(size_t n, std::string_view* v) {
  if (s_.size() < n) return false;
  *v = s_.substr(0, n);
  s_.remove_prefix(n);
  return true;
}
bool Reader::Str16(std::string_view* v) {
  uint16_t n;
  return U16(&n) && Bytes(n, v);
}

}  // namespace lampyr::channel
