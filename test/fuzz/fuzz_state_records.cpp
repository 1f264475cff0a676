// Fuzzes the readers of the records a server keeps in its state directory
// (core/state_records.h): passed/<plugin>.json, read by the server before a
// rollback, and crash-<pid>.json, read by the master. Both files live in a
// directory another process could have written. Checks: no crash (ASan,
// UBSan), and an accepted record has exactly the documented fields with
// their types.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "core/state_records.h"

namespace {
[[noreturn]] void Fail(const char* what) {
  fprintf(stderr, "fuzz_state_records: %s\n", what);
  abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Json::Value v;
  if (lampyr::ParsePassedRecord(text, &v).ok()) {
    if (v.size() != 4 || !v["version"].isString() || v["sha256"].asString().size() != 64 ||
        !v["generation"].isUInt64() || !v["at"].isUInt64())
      Fail("accepted a passed record with wrong fields");
  }
  Json::Value c;
  if (lampyr::ParseCrashRecord(text, &c).ok()) {
    if (c.size() != 7 || !c["signal"].isUInt64() || !c["signal_name"].isString() || !c["what"].isString() ||
        !(c["plugin"].isNull() || c["plugin"].isString()) || !(c["generation"].isNull() || c["generation"].isUInt64()))
      Fail("accepted a crash record with wrong fields");
  }
  return 0;
}
