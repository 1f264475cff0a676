// Fuzzes the data layer's memcached value codecs (data/record_codec.h): a
// cached value may be corrupt, truncated or written by another version, so
// decoding must fail cleanly. Checks: whatever decodes re-encodes to the
// same bytes (records, chunk heads, pk lists) and key escaping round-trips.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "data/record_codec.h"

namespace {
[[noreturn]] void Fail(const char* what) {
  fprintf(stderr, "fuzz_record_codec: %s\n", what);
  abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lampyr::data;
  std::string_view in(reinterpret_cast<const char*>(data), size);

  CachedRecord rec;
  if (DecodeRecord(in, &rec)) {
    CachedRecord again;
    if (!DecodeRecord(EncodeRecord(rec), &again)) Fail("re-encoded record does not decode");
    if (again.version != rec.version || again.dirty != rec.dirty || again.deleted != rec.deleted ||
        again.row != rec.row)
      Fail("record changed through encode/decode");
  }
  ChunkHead head;
  if (DecodeChunkHead(in, &head)) {
    ChunkHead h2;
    if (!DecodeChunkHead(EncodeChunkHead(head), &h2) || h2.token != head.token || h2.chunks != head.chunks ||
        h2.total != head.total)
      Fail("chunk head changed through encode/decode");
  }
  std::vector<std::string> pks;
  if (DecodePkList(in, &pks)) {
    std::vector<std::string> again;
    if (!DecodePkList(EncodePkList(pks), &again) || again != pks) Fail("pk list changed through encode/decode");
  }
  std::string unescaped;
  if (!UnescapeKeyPart(EscapeKeyPart(in), &unescaped) || unescaped != in) Fail("key escaping does not round-trip");
  return 0;
}
