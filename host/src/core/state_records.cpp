#include "core/state_records.h"

#include <json/reader.h>

#include <memory>
#include <string>

namespace lampyr {

namespace {

Status ParseObject(std::string_view text, Json::Value* out) {
  if (text.size() > kMaxStateRecordBytes) return Status::Error("record larger than " + std::to_string(kMaxStateRecordBytes) + " bytes");
  Json::CharReaderBuilder b;
  b["rejectDupKeys"] = true;
  b["failIfExtra"] = true;
  b["stackLimit"] = 8;
  std::unique_ptr<Json::CharReader> r(b.newCharReader());
  std::string errs;
  bool ok = false;
  try {
    ok = r->parse(text.data(), text.data() + text.size(), out, &errs);
  } catch (const Json::Exception& e) {
    errs = e.what();
  }
  if (!ok) return Status::Error("not JSON: " + errs.substr(0, 200));
  if (!out->isObject()) return Status::Error("not a JSON object");
  return Status::OK();
}

bool PrintableName(const Json::Value& v, size_t max) {
  if (!v.isString()) return false;
  const std::string s = v.asString();
  if (s.empty() || s.size() > max) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f) return false;
  return true;
}

bool UInt(const Json::Value& v, uint64_t max) {
  return v.isIntegral() && v.isUInt64() && v.asUInt64() <= max;
}

}  // namespace

Status ParsePassedRecord(std::string_view text, Json::Value* out) {
  Json::Value v;
  Status s = ParseObject(text, &v);
  if (!s.ok()) return s;
  if (!PrintableName(v["version"], 128)) return Status::Error("bad \"version\"");
  const Json::Value& sha = v["sha256"];
  if (!sha.isString() || sha.asString().size() != 64 ||
      sha.asString().find_first_not_of("0123456789abcdef") != std::string::npos)
    return Status::Error("bad \"sha256\"");
  if (!UInt(v["generation"], UINT64_MAX) || !UInt(v["at"], INT64_MAX)) return Status::Error("bad \"generation\" or \"at\"");
  Json::Value r(Json::objectValue);
  for (const char* k : {"version", "sha256", "generation", "at"}) r[k] = v[k];
  *out = r;
  return Status::OK();
}

Status ParseCrashRecord(std::string_view text, Json::Value* out) {
  Json::Value v;
  Status s = ParseObject(text, &v);
  if (!s.ok()) return s;
  if (!UInt(v["pid"], INT32_MAX) || !UInt(v["signal"], 128) || !UInt(v["at"], INT64_MAX))
    return Status::Error("bad \"pid\", \"signal\" or \"at\"");
  if (!PrintableName(v["signal_name"], 32)) return Status::Error("bad \"signal_name\"");
  if (!v["plugin"].isNull() && !PrintableName(v["plugin"], 64)) return Status::Error("bad \"plugin\"");
  if (!v["generation"].isNull() && !UInt(v["generation"], UINT64_MAX)) return Status::Error("bad \"generation\"");
  if (!v["what"].isString() || v["what"].asString().size() > 512) return Status::Error("bad \"what\"");
  Json::Value r(Json::objectValue);
  for (const char* k : {"pid", "signal", "signal_name", "plugin", "generation", "what", "at"}) r[k] = v[k];
  *out = r;
  return Status::OK();
}

}  // namespace lampyr
