// One loaded copy of a plugin .so (one generation), through Boost.DLL.
//
// Nothing is loaded by a path anyone else can write. The build is read once
// into memory, the ELF gate checks those bytes, and they are copied into a
// sealed memfd (no write, grow or shrink, ever) that is dlopen-ed through
// /proc/self/fd/N: the bytes the gate checked are exactly the bytes mapped,
// whatever happens to any file meanwhile, and there is no staged copy on
// disk to race.
//
// dlopen caches by path string (FACTS.md): /proc/self/fd/N must not name
// another library while this one is mapped, so the memfd stays open as long
// as the library may be mapped — for ever, if an unload leaves it pinned.
// Each generation's memfd is named "lampyr:<plugin>.gen<N>", which is what
// /proc/PID/maps shows. RTLD_NOW | RTLD_LOCAL, never DEEPBIND. No
// boost::dll::import: an import keeps the library mapped after unload().
#pragma once

#include <lampyr/plugin.h>

#include <boost/dll/shared_library.hpp>
#include <string>
#include <string_view>

#include "core/status.h"

namespace lampyr::plugin {

// A plugin file is read whole into memory: larger ones are refused.
inline constexpr size_t kMaxPluginBytes = 256u << 20;

class PluginLibrary : NonCopyable {
 public:
  PluginLibrary() = default;
  ~PluginLibrary();  // Unload()

  // Gates `image` (a whole .so), seals it into a memfd and loads it; reads
  // the descriptor. `plugin` and `generation` name the memfd and the crash
  // handler's entry for its code. On error nothing stays loaded.
  Status Load(std::string_view image, const std::string& plugin, uint64_t generation);
  const lampyr_plugin_desc* desc() const { return desc_; }
  // Hex SHA-256 of the image: identifies the build in /status and records.
  const std::string& sha256() const { return sha256_; }
  // The image again (from the memfd).
  Status ReadImage(std::string* out) const;

  // Unloads. Returns false when the library is still mapped afterwards
  // (something pinned it): reported as "pinned".
  bool Unload();

 private:
  void RegisterCode(const std::string& plugin, uint64_t generation);

  boost::dll::shared_library lib_;
  const lampyr_plugin_desc* desc_ = nullptr;
  int memfd_ = -1;
  int code_slot_ = -1;  // crash handler table
  std::string sha256_;
};

// Checks a descriptor against this host's ABI; `expected_name` is the
// plugin's name in the config.
Status CheckDescriptor(const lampyr_plugin_desc* d, const std::string& expected_name);

// Hex SHA-256 of `bytes`.
std::string Sha256Hex(std::string_view bytes);

}  // namespace lampyr::plugin
