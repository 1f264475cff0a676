#include "plugin/elf_gate.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/private_dir.h"

namespace lampyr::plugin {
namespace {

// Bounds-checked view of the file: every table offset and size comes from
// the file and is checked before use.
class Image {
 public:
  Image(const unsigned char* d, size_t n) : d_(d), n_(n) {}
  bool Has(uint64_t off, uint64_t len) const { return off <= n_ && len <= n_ - off; }
  template <typename T>
  bool Read(uint64_t off, T* out) const {
    if (!Has(off, sizeof(T))) return false;
    std::memcpy(out, d_ + off, sizeof(T));
    return true;
  }
  // NUL-terminated string inside [table, table+table_size).
  bool Str(uint64_t table, uint64_t table_size, uint64_t idx, std::string* out) const {
    if (!Has(table, table_size) || idx >= table_size) return false;
    const char* s = reinterpret_cast<const char*>(d_ + table + idx);
    const void* nul = std::memchr(s, 0, table_size - idx);
    if (!nul) return false;
    out->assign(s, static_cast<const char*>(nul) - s);
    return true;
  }

 private:
  const unsigned char* d_;
  size_t n_;
};

// Linker-defined markers that may be global in .dynsym without being part
// of the plugin's interface.
bool IsLinkerMarker(const std::string& n) {
  return n == "_init" || n == "_fini" || n == "_edata" || n == "_end" || n == "__bss_start";
}

// Imports that create threads. A thread the plugin starts runs its code
// outside every lease: a reload unloads the library under it (tried: the
// reload reported "ok", then SIGSEGV). std::thread, std::jthread and
// std::async all start threads through std::thread::_M_start_thread.
bool CreatesThreads(const std::string& n) {
  return n == "pthread_create" || n == "thrd_create" || n.rfind("_ZNSt6thread15_M_start_thread", 0) == 0;
}

std::string ThreadSymbolName(const std::string& n) {
  return n.rfind("_ZNSt6thread", 0) == 0 ? n + " (std::thread)" : n;
}

}  // namespace

Status CheckPluginImage(const unsigned char* data, size_t size, const std::string& entry) {
  Image img(data, size);
  Elf64_Ehdr eh;
  if (!img.Read(0, &eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    return Status::Error("not an ELF file");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return Status::Error("not a 64-bit little-endian ELF file");
  if (eh.e_type != ET_DYN) return Status::Error("not a shared object (ELF type " + std::to_string(eh.e_type) + ")");
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0)
    return Status::Error("no section headers (stripped with --strip-section-headers?)");

  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  for (size_t i = 0; i < sh.size(); ++i)
    if (!img.Read(eh.e_shoff + i * sizeof(Elf64_Shdr), &sh[i])) return Status::Error("truncated section headers");

  bool found_dynsym = false, found_entry = false;
  std::vector<std::string> extra_exports;
  for (const auto& s : sh) {
    if (s.sh_type == SHT_DYNSYM) {
      found_dynsym = true;
      if (s.sh_link >= sh.size() || s.sh_entsize != sizeof(Elf64_Sym)) return Status::Error("malformed .dynsym");
      const Elf64_Shdr& strtab = sh[s.sh_link];
      if (!img.Has(s.sh_offset, s.sh_size)) return Status::Error("truncated .dynsym");
      for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= s.sh_size; off += sizeof(Elf64_Sym)) {
        Elf64_Sym sym;
        if (!img.Read(s.sh_offset + off, &sym)) return Status::Error("truncated .dynsym");
        if (sym.st_name == 0) continue;
        std::string name;
        if (!img.Str(strtab.sh_offset, strtab.sh_size, sym.st_name, &name))
          return Status::Error("malformed dynamic string table");
        unsigned bind = ELF64_ST_BIND(sym.st_info);
        bool defined = sym.st_shndx != SHN_UNDEF;
        if (bind == STB_GNU_UNIQUE)
          return Status::Error("symbol '" + name +
                               "' is STB_GNU_UNIQUE (inline/template static data): the library could never be "
                               "unloaded; build with -fno-gnu-unique and hidden visibility (lampyr_add_plugin does)");
        if (!defined && (name == "__cxa_thread_atexit" || name == "__cxa_thread_atexit_impl"))
          return Status::Error("imports " + name +
                               " (a thread_local with a destructor): it would pin the library in memory; use a "
                               "thread_local without destructor or plain member data");
        if (!defined && CreatesThreads(name))
          return Status::Error("imports " + ThreadSymbolName(name) +
                               ": plugins may not start threads (a reload would unload the code a thread still "
                               "runs); run blocking or CPU-heavy code with the host's \"work\" (Plugin::work) instead");
        if (defined && (bind == STB_GLOBAL || bind == STB_WEAK) &&
            ELF64_ST_VISIBILITY(sym.st_other) == STV_DEFAULT) {
          if (name == entry) found_entry = true;
          else if (!IsLinkerMarker(name)) extra_exports.push_back(name);
        }
      }
    }
    if (s.sh_type == SHT_DYNAMIC) {
      if (!img.Has(s.sh_offset, s.sh_size)) return Status::Error("truncated .dynamic");
      for (uint64_t off = 0; off + sizeof(Elf64_Dyn) <= s.sh_size; off += sizeof(Elf64_Dyn)) {
        Elf64_Dyn dyn;
        img.Read(s.sh_offset + off, &dyn);
        if (dyn.d_tag == DT_NULL) break;
        if (dyn.d_tag == DT_FLAGS_1 && (dyn.d_un.d_val & DF_1_NODELETE))
          return Status::Error("linked with -z nodelete: the library could never be unloaded");
      }
    }
  }
  if (!found_dynsym) return Status::Error("no dynamic symbol table");
  if (!found_entry) return Status::Error("does not export the entry symbol " + entry);
  if (!extra_exports.empty()) {
    std::string list;
    for (size_t i = 0; i < extra_exports.size() && i < 5; ++i) list += (i ? ", " : "") + extra_exports[i];
    if (extra_exports.size() > 5) list += ", ...";
    return Status::Error("exports " + std::to_string(extra_exports.size()) + " symbol(s) besides " + entry + " (" +
                         list + "): build with -fvisibility=hidden and the SDK's version script");
  }
  return Status::OK();
}

Status ReadWholeFile(const std::string& path, size_t max_bytes, std::string* out) {
  // O_NONBLOCK: a FIFO at the path must not hang the loader.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Status::Error("cannot read " + path + ": " + strerror(errno));
  struct stat st;
  Status s;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) s = Status::Error("cannot read " + path + ": not a regular file");
  else if (static_cast<uint64_t>(st.st_size) > max_bytes)
    s = Status::Error("cannot read " + path + ": " + std::to_string(st.st_size) + " bytes, more than the " +
                      std::to_string(max_bytes) + " allowed");
  if (s.ok() && !ReadExactly(fd, static_cast<size_t>(st.st_size), out))
    s = Status::Error("cannot read " + path + ": it changed size while being read");
  close(fd);
  return s;
}

Status CheckPluginFile(const std::string& path, const std::string& entry) {
  std::string bytes;
  Status s = ReadWholeFile(path, 256u << 20, &bytes);
  return s.ok() ? CheckPluginImage(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), entry) : s;
}

}  // namespace lampyr::plugin
