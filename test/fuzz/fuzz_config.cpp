// Fuzzes the config parser with arbitrary text. It must never crash, every
// issue must carry a non-empty JSON path and reason, and the verdict must
// agree with the issues: OK iff no error (warnings alone do not fail).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "core/config.h"

namespace {
[[noreturn]] void Fail(const char* what, const std::string& detail) {
  fprintf(stderr, "fuzz_config: %s: %s\n", what, detail.c_str());
  abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  lampyr::Config config;
  std::vector<lampyr::ConfigIssue> issues;
  lampyr::Status st = lampyr::ParseConfig(text, "/lampyr-fuzz", &config, &issues, /*apply_env=*/false,
                                          /*check_files=*/false);
  size_t errors = 0;
  for (const auto& issue : issues) {
    if (issue.path.empty()) Fail("issue without a path", issue.ToString());
    if (issue.reason.empty()) Fail("issue without a reason", issue.ToString());
    if (!issue.warning) ++errors;
  }
  if (st.ok() && errors > 0) Fail("OK status with errors", issues.front().ToString());
  if (!st.ok() && errors == 0) Fail("error status without an error issue", st.message());
  if (st.ok()) {
    // The secret rules name a path and a reason.
    for (const auto& issue : lampyr::CheckSecrets(config))
      if (issue.path.rfind("master.", 0) != 0 || issue.reason.empty()) Fail("bad secret issue", issue.ToString());
    // An accepted config is internally consistent.
    for (const auto& [name, server] : config.servers) {
      if (server.name != name) Fail("server name mismatch", name);
      for (const auto& p : server.plugins)
        if (!config.plugins.count(p)) Fail("server uses an unknown plugin", p);
      for (const auto& link : server.remoteport) {
        const lampyr::ServerConfig* root = config.FindServer(link.rootname);
        if (!root || link.rootport != root->rootport) Fail("link to an unknown root", link.rootname);
      }
    }
  }
  return 0;
}
