// Fuzzes the JSON readers compiled into every plugin (sdk/include/lampyr/
// plugin.hpp): the config reader (json::find / to_int / decode_string /
// to_string_list) on arbitrary config text, and the data layer's row codec
// (datajson) on arbitrary completion data. Checks: no crash or overread
// (ASan), and rows that parse survive print + parse unchanged.
#include <lampyr/plugin.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {
[[noreturn]] void Fail(const char* what) {
  fprintf(stderr, "fuzz_sdk_json: %s\n", what);
  abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace json = lampyr::sdk::json;
  namespace dj = lampyr::sdk::datajson;
  std::string_view doc(reinterpret_cast<const char*>(data), size);

  for (std::string_view key : {"nodes", "command", "max_rooms", "name", ""}) {
    if (auto raw = json::find(doc, key)) {
      if (raw->data() < doc.data() || raw->data() + raw->size() > doc.data() + doc.size())
        Fail("find returned a view outside the document");
      (void)json::to_int(*raw);
      (void)json::decode_string(*raw);
      (void)json::to_string_list(*raw);
    }
  }

  lampyr::sdk::Row row;
  if (dj::parse_row(doc, &row)) {
    std::string printed;
    dj::put_row(printed, row);
    lampyr::sdk::Row again;
    if (!dj::parse_row(printed, &again) || again != row) Fail("row changed through print/parse");
  }
  std::vector<std::optional<lampyr::sdk::Row>> rows;
  (void)dj::parse_rows(doc, &rows);
  std::vector<lampyr::sdk::Value> values;
  (void)dj::parse_values(doc, &values);
  std::vector<std::vector<lampyr::sdk::Value>> qrows;
  uint64_t affected = 0;
  (void)dj::parse_query(doc, &qrows, &affected);
  return 0;
}
