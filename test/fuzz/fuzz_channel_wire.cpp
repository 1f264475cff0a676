// Fuzzes the channel frame decoder (channel/channel_wire.h) over a byte
// stream, as a link reads it from a peer that may be hostile before it has
// authenticated. Checks: sizes from PeekSize stay within the stream and the
// limit; a decoded frame's views lie inside the frame; re-encoding a decoded
// frame yields the same bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "channel/channel_wire.h"

namespace {
[[noreturn]] void Fail(const char* what) {
  fprintf(stderr, "fuzz_channel_wire: %s\n", what);
  abort();
}

bool Inside(std::string_view v, const uint8_t* p, size_t n) {
  if (v.empty()) return true;
  auto b = reinterpret_cast<const uint8_t*>(v.data());
  return b >= p && b + v.size() <= p + n;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lampyr::channel;
  if (size < 1) return 0;
  const size_t max_frame = 64 + static_cast<size_t>(data[0]) * 64;  // small limits reach kTooLarge
  const uint8_t* p = data + 1;
  size_t left = size - 1;
  while (left >= kHeaderSize) {
    size_t total = 0;
    DecodeResult r = PeekSize(p, max_frame, &total);
    if (r != DecodeResult::kOk) break;
    if (total < kHeaderSize || total > max_frame) Fail("PeekSize out of bounds");
    if (total > left) break;  // needs more bytes
    Frame f;
    r = Decode(p, total, &f);
    if (r == DecodeResult::kOk) {
      if (!Inside(f.src, p, total) || !Inside(f.dst, p, total) || !Inside(f.method, p, total) ||
          !Inside(f.payload, p, total))
        Fail("decoded view outside the frame");
      if (f.src.size() <= 255 && f.dst.size() <= 255 && f.method.size() <= 255) {
        std::string again;
        AppendFrame(f, &again);
        if (again.size() != total || again.compare(0, total, reinterpret_cast<const char*>(p), total) != 0)
          Fail("re-encoding a decoded frame changed its bytes");
      }
    } else {
      (void)DecodeResultName(r);
      break;
    }
    p += total;
    left -= total;
  }
  return 0;
}
