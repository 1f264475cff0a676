// The small JSON records a server keeps in its state directory, and their
// readers. Whoever reads one treats it as untrusted input: size-capped,
// every field type- and range-checked, anything else refused.
//  - passed/<plugin>.json: the build of <plugin> that passed probation
//    {"version": "2.0", "sha256": "<64 hex>", "generation": 2, "at": <unix s>}
//  - crash-<pid>.json: written by the crash handler (core/crash_handler.h)
//    {"pid", "signal", "signal_name", "plugin"|null, "generation"|null, "what", "at"}
#pragma once

#include <json/value.h>

#include <string_view>

#include "core/status.h"

namespace lampyr {

inline constexpr size_t kMaxStateRecordBytes = 4096;

// On success *out holds exactly the fields above, normalised.
Status ParsePassedRecord(std::string_view text, Json::Value* out);
Status ParseCrashRecord(std::string_view text, Json::Value* out);

}  // namespace lampyr
