// One loaded copy of a plugin .so (one generation), through Boost.DLL.
//
// dlopen caches by path and a build may replace the file at any moment, so
// every generation loads its own staged copy at a unique path (FACTS.md).
// RTLD_NOW | RTLD_LOCAL, never DEEPBIND. No boost::dll::import: an import
// keeps the library mapped after unload().
#pragma once

#include <lampyr/plugin.h>

#include <boost/dll/shared_library.hpp>
#include <string>

#include "core/status.h"

namespace lampyr::plugin {

class PluginLibrary : NonCopyable {
 public:
  PluginLibrary() = default;
  ~PluginLibrary();  // Unload()

  // Copies `source` to `staged_path`, gates the copy (elf_gate.h), loads it
  // and reads the descriptor. On error nothing stays loaded or staged.
  Status Load(const std::string& source, const std::string& staged_path);
  const lampyr_plugin_desc* desc() const { return desc_; }
  const std::string& staged_path() const { return staged_; }

  // Unloads and deletes the staged copy. Returns false when the library is
  // still mapped afterwards (something pinned it): reported as "pinned".
  bool Unload();

 private:
  boost::dll::shared_library lib_;
  const lampyr_plugin_desc* desc_ = nullptr;
  std::string staged_;
};

// Checks a descriptor against this host's ABI; `expected_name` is the
// plugin's name in the config.
Status CheckDescriptor(const lampyr_plugin_desc* d, const std::string& expected_name);

// Copies a file via a temporary + rename (never rewrites a mapped inode).
Status CopyFileAtomically(const std::string& from, const std::string& to);

}  // namespace lampyr::plugin
