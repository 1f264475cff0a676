// The channel wire format (docs/protocol.md, "Channel protocol"): every
// message between two processes is one frame with a fixed 20-byte big-endian
// header, then three short names (source node, destination node, method)
// and the payload. Versioned by the header's version byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lampyr::channel {

constexpr uint16_t kMagic = 0x4C43;  // "LC"
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderSize = 20;
constexpr size_t kNonceSize = 32;
constexpr size_t kProofSize = 32;

enum class FrameType : uint8_t {
  kHello = 1,      // child -> root: src = child name, dst = expected root, payload = child nonce
  kChallenge = 2,  // root -> child: src = root name, payload = root nonce + root proof
  kAuth = 3,       // child -> root: payload = child proof
  kWelcome = 4,    // root -> child: link is up
  kReject = 5,     // either way: payload = reason; the sender closes
  kCall = 6,       // id = caller's request id, aux = timeout in ms
  kReply = 7,      // id = the call's id, aux = ReplyCode, payload = reply or error text
  kNotify = 8,     // one-way
  kPing = 9,
  kPong = 10,
  kPeers = 11,     // root -> child: payload = names of the root's children, '\n'-separated
};

// aux of a kReply.
enum class ReplyCode : uint32_t {
  kOk = 0,
  kUnknownMethod = 1,
  kUnknownNode = 2,
  kError = 3,      // the handler answered with an error Status
  kTimeout = 4,    // a relay's onward link timed out
  kLinkDown = 5,   // a relay lost the link to the destination
};

struct Frame {
  FrameType type = FrameType::kNotify;
  uint8_t flags = 0;
  uint32_t id = 0;
  uint32_t aux = 0;
  std::string_view src, dst, method, payload;  // views into the decoded buffer
};

// Appends the encoded frame. Names longer than 255 bytes are the caller's bug
// (node and method names are validated where they enter).
void AppendFrame(const Frame& f, std::string* out);
// Header + names only; the payload follows separately (no copy of big bodies).
size_t EncodePrefix(const Frame& f, uint8_t* out, size_t cap);

enum class DecodeResult { kOk, kNeedMore, kBadMagic, kBadVersion, kTooLarge, kBadType };
// Total frame size from a header (kHeaderSize bytes available), or an error.
DecodeResult PeekSize(const uint8_t* p, size_t max_frame, size_t* total);
// Parses one complete frame of `size` bytes (from PeekSize).
DecodeResult Decode(const uint8_t* p, size_t size, Frame* out);
const char* DecodeResultName(DecodeResult r);
const char* FrameTypeName(FrameType t);

// Big-endian helpers also used by the forwarding payloads.
void PutU16(std::string* s, uint16_t v);
void PutU32(std::string* s, uint32_t v);
void PutU64(std::string* s, uint64_t v);
// A small cursor over a payload; every getter returns false when short.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool U8(uint8_t* v);
  bool U16(uint16_t* v);
  bool U32(uint32_t* v);
  bool U64(uint64_t* v);
  bool Bytes(size_t n, std::string_view* v);
  // A u16-length-prefixed string.
  bool Str16(std::string_view* v);
  std::string_view Rest() const { return s_; }

 private:
  std::string_view s_;
};
void PutStr16(std::string* s, std::string_view v);

}  // namespace lampyr::channel
