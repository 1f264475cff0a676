#include "core/json_text.h"

#include <json/reader.h>

#include <memory>
#include <string>

namespace lampyr {

namespace {

// jsoncpp's multi-line "* Line 1, Column 11\n  Syntax error: ..." as one line.
std::string OneLine(const std::string& errs) {
  std::string out;
  bool space = false;
  for (char c : errs) {
    if (c == '\n' || c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (c == '*' && out.empty()) continue;
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace

size_t JsonNestingDepth(std::string_view text, size_t stop_after) {
  size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped byte cannot end the string
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > stop_after) return deepest;
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

Status ParseJsonText(std::string_view text, Json::Value* out, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes)
    return Status::Error("larger than " + std::to_string(limits.max_bytes) + " bytes");
  if (JsonNestingDepth(text, limits.max_depth) > limits.max_depth)
    return Status::Error("nested deeper than " + std::to_string(limits.max_depth) + " levels");
  Json::CharReaderBuilder b;
  // Second line of defence: jsoncpp's own limit sits above ours, so the scan
  // above is what refuses, and a disagreement between the two is caught below.
  b["stackLimit"] = static_cast<Json::UInt>(limits.max_depth + 8);
  // A comment could hide a quote from the scan above; nobody sends comments.
  b["allowComments"] = false;
  if (limits.strict) {
    b["failIfExtra"] = true;
    b["rejectDupKeys"] = true;
  }
  std::string errs;
  Json::Value v;
  try {
    std::unique_ptr<Json::CharReader> reader(b.newCharReader());
    if (!reader->parse(text.data(), text.data() + text.size(), &v, &errs)) return Status::Error(OneLine(errs));
  } catch (const std::exception& e) {
    return Status::Error(OneLine(e.what()));
  }
  *out = std::move(v);
  return Status::OK();
}

}  // namespace lampyr
