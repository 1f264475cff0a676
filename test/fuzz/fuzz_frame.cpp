// Fuzzes the Firefly frame decoder over a byte stream.
//   input[0]   max_body selector, input[1] chunk size for incremental feeding
//   input[2..] the stream
// Checks, for every input: consumed sizes are header + body and never exceed
// what was given; re-encoding a decoded frame reproduces its exact bytes;
// feeding the same stream in small chunks (as a socket would) yields the same
// frames and the same final verdict as decoding it in one piece.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "net/frame_codec.h"

namespace {

using lampyr::net::DecodedFrame;
using lampyr::net::FrameError;
using lampyr::net::FrameLimits;

struct Outcome {
  std::vector<std::pair<uint32_t, std::string>> frames;
  FrameError end = FrameError::kNeedMore;  // verdict on what is left
  bool operator==(const Outcome& o) const { return frames == o.frames && end == o.end; }
};

[[noreturn]] void Fail(const char* what) {
  fprintf(stderr, "fuzz_frame: %s\n", what);
  abort();
}

// Decodes every complete frame of `buf` from the front; returns bytes consumed.
size_t DecodeAll(const std::string& buf, const FrameLimits& limits, Outcome* out) {
  size_t pos = 0;
  for (;;) {
    const size_t left = buf.size() - pos;
    // Never hand the decoder a null pointer, even for an empty rest.
    const uint8_t* p = reinterpret_cast<const uint8_t*>(buf.data()) + pos;
    DecodedFrame f;
    FrameError e = lampyr::net::DecodeFrame(p, left, limits, &f);
    if (e != FrameError::kOk) {
      out->end = e;
      if (e == FrameError::kNeedMore && left >= lampyr::net::kHeaderSize) {
        lampyr::net::FrameHeader h;
        if (lampyr::net::ParseHeader(p, limits, &h) != FrameError::kOk) Fail("NeedMore but header invalid");
        if (left >= lampyr::net::kHeaderSize + h.body_len) Fail("NeedMore with a whole frame present");
      }
      return pos;
    }
    if (f.frame_size != lampyr::net::kHeaderSize + f.body.size()) Fail("frame_size != header + body");
    if (f.frame_size > left) Fail("frame_size beyond the input");
    if (f.body.size() > limits.max_body) Fail("body larger than max_body accepted");
    if (f.body.data() != reinterpret_cast<const char*>(p) + lampyr::net::kHeaderSize) Fail("body not in place");
    std::string again;
    lampyr::net::AppendFrame(limits, f.command, f.body, &again);
    if (again.size() != f.frame_size || again.compare(0, again.size(), buf, pos, f.frame_size) != 0)
      Fail("re-encoding differs from the decoded bytes");
    out->frames.emplace_back(f.command, std::string(f.body));
    pos += f.frame_size;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  FrameLimits limits;
  limits.head = {0, 0, 0, 0};
  // Small limits reach the too-large branch often; 255 means "very large".
  limits.max_body = data[0] == 255 ? 0x7FFFFFFB : data[0] * 4u;
  const size_t chunk = data[1] % 32 + 1;
  const std::string stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  Outcome whole;
  DecodeAll(stream, limits, &whole);

  Outcome pieces;
  std::string buf;
  for (size_t off = 0; off < stream.size(); off += chunk) {
    buf.append(stream, off, chunk);
    Outcome step;
    size_t used = DecodeAll(buf, limits, &step);
    for (auto& fr : step.frames) pieces.frames.push_back(std::move(fr));
    pieces.end = step.end;
    buf.erase(0, used);
    if (step.end != FrameError::kNeedMore) break;  // the connection would be closed here
  }
  if (stream.empty()) pieces.end = whole.end;
  if (!(whole == pieces)) Fail("chunked decoding differs from whole-stream decoding");
  return 0;
}
