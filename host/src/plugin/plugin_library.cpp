#include "plugin/plugin_library.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/crash_handler.h"
#include "plugin/elf_gate.h"

namespace lampyr::plugin {

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

std::string ProcPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// A sealed in-memory copy of `image`: nobody, not even this process, can
// change it after the seals.
Status SealedCopy(std::string_view image, const std::string& name, int* out) {
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return Status::Error(std::string("memfd_create: ") + strerror(errno));
  size_t off = 0;
  while (off < image.size()) {
    ssize_t n = write(fd, image.data() + off, image.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      close(fd);
      return Status::Error(std::string("cannot copy the build into memory: ") + strerror(err));
    }
    off += static_cast<size_t>(n);
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    int err = errno;
    close(fd);
    return Status::Error(std::string("cannot seal the in-memory build: ") + strerror(err));
  }
  *out = fd;
  return Status::OK();
}

struct Segments {
  const char* name;
  uintptr_t base = 0, start = UINTPTR_MAX, end = 0;
  bool found = false;
};

int FindSegments(dl_phdr_info* info, size_t, void* arg) {
  auto* s = static_cast<Segments*>(arg);
  if (!info->dlpi_name || std::strcmp(info->dlpi_name, s->name) != 0) return 0;
  s->found = true;
  s->base = info->dlpi_addr;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    s->start = std::min<uintptr_t>(s->start, info->dlpi_addr + ph.p_vaddr);
    s->end = std::max<uintptr_t>(s->end, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
  }
  return 1;
}

}  // namespace

std::string Sha256Hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1) return "";
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

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

Status PluginLibrary::Load(std::string_view image, const std::string& plugin, uint64_t generation) {
  Status s = CheckPluginImage(reinterpret_cast<const unsigned char*>(image.data()), image.size(),
                              LAMPYR_PLUGIN_ENTRY_SYMBOL);
  if (!s.ok()) return Status::Error("refused by the plugin gate: " + s.message());
  sha256_ = Sha256Hex(image);
  s = SealedCopy(image, "lampyr:" + plugin + ".gen" + std::to_string(generation), &memfd_);
  if (!s.ok()) return s;
  boost::dll::fs::error_code ec;
  lib_.load(boost::dll::fs::path(ProcPath(memfd_)),
            boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec) {
    const char* why = ::dlerror();
    std::string message = std::string("cannot load: ") + (why ? why : ec.message());
    Unload();
    return Status::Error(message);
  }
  RegisterCode(plugin, generation);
  if (!lib_.has(LAMPYR_PLUGIN_ENTRY_SYMBOL)) {
    Unload();
    return Status::Error(std::string("missing entry symbol ") + LAMPYR_PLUGIN_ENTRY_SYMBOL);
  }
  auto& entry = lib_.get<const lampyr_plugin_desc*()>(LAMPYR_PLUGIN_ENTRY_SYMBOL);
  desc_ = entry();
  return Status::OK();
}

// The crash handler names the plugin of a faulting address from this table.
void PluginLibrary::RegisterCode(const std::string& plugin, uint64_t generation) {
  link_map* lm = nullptr;
  if (dlinfo(lib_.native(), RTLD_DI_LINKMAP, &lm) != 0 || !lm || !lm->l_name) return;
  Segments seg;
  seg.name = lm->l_name;
  dl_iterate_phdr(&FindSegments, &seg);
  if (seg.found && seg.start < seg.end)
    code_slot_ = crash::AddCode(plugin.c_str(), generation, seg.base, seg.start, seg.end);
}

Status PluginLibrary::ReadImage(std::string* out) const {
  if (memfd_ < 0) return Status::Error("not loaded");
  struct stat st;
  if (fstat(memfd_, &st) != 0) return Status::Error(std::string("fstat: ") + strerror(errno));
  out->assign(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out->size()) {
    ssize_t n = pread(memfd_, out->data() + got, out->size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Error("cannot read the in-memory build back");
    got += static_cast<size_t>(n);
  }
  return Status::OK();
}

bool PluginLibrary::Unload() {
  bool gone = true;
  desc_ = nullptr;
  if (lib_.is_loaded()) {
    lib_.unload();
    // RTLD_NOLOAD only finds it if something kept it mapped. The memfd is
    // still open, so the path still names this library.
    if (void* h = ::dlopen(ProcPath(memfd_).c_str(), RTLD_NOW | RTLD_NOLOAD)) {
      gone = false;
      ::dlclose(h);
    }
  }
  if (memfd_ >= 0 && gone) {
    crash::RemoveCode(code_slot_);
    close(memfd_);
  }
  // Pinned: the memfd stays open for the life of the process (its number
  // must not name another library) and its code stays attributed.
  memfd_ = -1;
  code_slot_ = -1;
  return gone;
}

}  // namespace lampyr::plugin
