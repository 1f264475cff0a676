#include "plugin/plugin_library.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

#include "plugin/elf_gate.h"

namespace lampyr::plugin {

namespace fs = std::filesystem;

Status CopyFileAtomically(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::string tmp = to + ".tmp" + std::to_string(::getpid());
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
  if (ec) return Status::Error("cannot copy " + from + ": " + ec.message());
  fs::rename(tmp, to, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return Status::Error("cannot stage " + to + ": " + ec.message());
  }
  return Status::OK();
}

namespace {
// "lampyr-sdk/1;itanium;cxx11abi=1;ptr=8" -> its ';' parts.
std::vector<std::string> Parts(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  while (true) {
    size_t e = s.find(';', b);
    out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) return out;
    b = e + 1;
  }
}
}  // namespace

Status CheckDescriptor(const lampyr_plugin_desc* d, const std::string& expected_name) {
  if (!d) return Status::Error("the entry returned no descriptor");
  // Fields up to `destroy` are the ABI 1.0 minimum.
  constexpr size_t kMinSize = offsetof(lampyr_plugin_desc, destroy) + sizeof(d->destroy);
  if (d->size < kMinSize)
    return Status::Error("descriptor too small (" + std::to_string(d->size) + " bytes, need " +
                         std::to_string(kMinSize) + ")");
  if (d->abi_major != LAMPYR_ABI_MAJOR)
    return Status::Error("ABI mismatch: plugin built for ABI " + std::to_string(d->abi_major) + "." +
                         std::to_string(d->abi_minor) + ", host speaks " + std::to_string(LAMPYR_ABI_MAJOR) + "." +
                         std::to_string(LAMPYR_ABI_MINOR));
  if (d->abi_minor > LAMPYR_ABI_MINOR)
    return Status::Error("ABI mismatch: plugin needs ABI minor " + std::to_string(d->abi_minor) +
                         ", host has " + std::to_string(LAMPYR_ABI_MINOR) + " (upgrade the host)");
  std::string sig = d->sdk_signature ? d->sdk_signature : "";
  auto mine = Parts(LAMPYR_SDK_SIGNATURE), theirs = Parts(sig);
  bool sig_ok = theirs.size() == mine.size();
  for (size_t i = 0; sig_ok && i < mine.size(); ++i)
    sig_ok = theirs[i] == mine[i] || theirs[i] == "cxx11abi=none";
  if (!sig_ok)
    return Status::Error("SDK signature mismatch: plugin '" + sig + "', host '" + LAMPYR_SDK_SIGNATURE + "'");
  std::string name = d->name ? d->name : "";
  if (name != expected_name)
    return Status::Error("plugin calls itself '" + name + "' but is configured as '" + expected_name + "'");
  if (!d->init || !d->destroy) return Status::Error("descriptor lacks init or destroy");
  return Status::OK();
}

PluginLibrary::~PluginLibrary() { Unload(); }

// The file is read once: the gate checks exactly the bytes that are staged
// and loaded, whatever happens to the source meanwhile.
Status PluginLibrary::Load(const std::string& source, const std::string& staged_path) {
  std::vector<unsigned char> bytes;
  Status s = ReadWholeFile(source, &bytes);
  if (!s.ok()) return s;
  s = CheckPluginImage(bytes.data(), bytes.size(), LAMPYR_PLUGIN_ENTRY_SYMBOL);
  if (!s.ok()) return Status::Error("refused by the plugin gate: " + s.message());
  {
    std::string tmp = staged_path + ".tmp";
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.close();
    std::error_code ec;
    if (!out) {
      fs::remove(tmp, ec);
      return Status::Error("cannot stage " + staged_path);
    }
    fs::rename(tmp, staged_path, ec);
    if (ec) return Status::Error("cannot stage " + staged_path + ": " + ec.message());
  }
  staged_ = staged_path;
  boost::dll::fs::error_code ec;
  lib_.load(boost::dll::fs::path(staged_),
            boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec) {
    const char* why = ::dlerror();
    Unload();
    return Status::Error(std::string("cannot load: ") + (why ? why : ec.message()));
  }
  if (!lib_.has(LAMPYR_PLUGIN_ENTRY_SYMBOL)) {
    Unload();
    return Status::Error(std::string("missing entry symbol ") + LAMPYR_PLUGIN_ENTRY_SYMBOL);
  }
  auto& entry = lib_.get<const lampyr_plugin_desc*()>(LAMPYR_PLUGIN_ENTRY_SYMBOL);
  desc_ = entry();
  return Status::OK();
}

bool PluginLibrary::Unload() {
  bool gone = true;
  desc_ = nullptr;
  if (lib_.is_loaded()) {
    lib_.unload();
    // RTLD_NOLOAD only finds it if something kept it mapped.
    if (void* h = ::dlopen(staged_.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
      gone = false;
      ::dlclose(h);
    }
  }
  if (!staged_.empty()) {
    std::error_code ec;
    fs::remove(staged_, ec);
    staged_.clear();
  }
  return gone;
}

}  // namespace lampyr::plugin
