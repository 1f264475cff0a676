// Fuzzes the plugin gate's ELF reader (plugin/elf_gate.h): it reads files an
// operator deploys, so a truncated or hostile file must yield an error
// Status, never a crash or an out-of-bounds read (ASan checks that).
// Checks: the verdict is deterministic and an accepted image names the
// entry symbol somewhere in its bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "plugin/elf_gate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string entry = "lampyr_plugin_entry";
  lampyr::Status a = lampyr::plugin::CheckPluginImage(data, size, entry);
  lampyr::Status b = lampyr::plugin::CheckPluginImage(data, size, entry);
  if (a.ok() != b.ok() || a.message() != b.message()) {
    fprintf(stderr, "fuzz_elf: verdict not deterministic\n");
    abort();
  }
  if (a.ok() && !memmem(data, size, entry.data(), entry.size())) {
    fprintf(stderr, "fuzz_elf: accepted an image without the entry name\n");
    abort();
  }
  return 0;
}
