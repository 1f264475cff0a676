// Parsing JSON that came from outside the process (admin request bodies,
// answers of other processes, tools reading a server's answer) with limits
// checked before jsoncpp sees the text: jsoncpp recurses once per nesting
// level and, past its stack limit, throws instead of reporting. A body of a
// thousand '[' must be a clear error, never an exception in a loop callback.
#pragma once

#include <json/value.h>

#include <cstddef>
#include <string_view>

#include "core/status.h"

namespace lampyr {

struct JsonLimits {
  size_t max_bytes = 1 << 20;
  size_t max_depth = 64;  // arrays and objects nested in each other
  // Admin bodies are strict: no trailing text, no duplicate keys.
  bool strict = false;
};

// The deepest nesting of arrays/objects in `text`, counting brackets outside
// string literals; stops counting (and returns) once it exceeds `stop_after`.
// Works on any bytes, valid JSON or not.
size_t JsonNestingDepth(std::string_view text, size_t stop_after);

// Parses `text` into *out. Errors are one line: "nested deeper than 32
// levels", "larger than N bytes", or jsoncpp's message ("Line 1, Column 5:
// Missing ']'..."). Never throws.
Status ParseJsonText(std::string_view text, Json::Value* out, const JsonLimits& limits = {});

}  // namespace lampyr
