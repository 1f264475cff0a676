#include "core/private_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace lampyr {

namespace {

std::string Mode(mode_t m) {
  char buf[8];
  snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

Status CheckOwned(const struct stat& st, const std::string& path, bool dir) {
  if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
    return Status::Error(path + ": not a " + (dir ? "directory" : "regular file") + ": refusing it");
  if (st.st_uid != geteuid())
    return Status::Error(path + ": owned by uid " + std::to_string(st.st_uid) + ", not by uid " +
                         std::to_string(geteuid()) +
                         " that runs the server: refusing it (another user could plant what the server loads); "
                         "remove it or give it to that user");
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return Status::Error(path + ": writable by group or others (mode " + Mode(st.st_mode) +
                         "): refusing it; chmod go-w it");
  return Status::OK();
}

// Why open(..., O_NOFOLLOW) of `name` under `dirfd` failed with `err`.
Status OpenError(int dirfd, const std::string& name, const std::string& path, int err) {
  struct stat st;
  if (err == ELOOP || (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)))
    return Status::Error(path + ": is a symbolic link: refusing it (give the real path)");
  if (err == ENOENT) return Status::Error(path + ": does not exist");
  return Status::Error(path + ": " + strerror(err));
}

Status OpenDirAt(int dirfd, const std::string& name, const std::string& path, int* out) {
  int fd = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return OpenError(dirfd, name, path, errno);
  struct stat st;
  Status s = fstat(fd, &st) == 0 ? CheckOwned(st, path, true) : Status::Error(path + ": " + strerror(errno));
  if (!s.ok()) {
    close(fd);
    return s;
  }
  *out = fd;
  return Status::OK();
}

}  // namespace

bool ValidEntryName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos && name.size() <= 200;
}

PrivateDir::~PrivateDir() { close(fd_); }

Status PrivateDir::Open(const std::string& path, std::unique_ptr<PrivateDir>* out) {
  if (path.empty() || path[0] != '/') return Status::Error("state directory '" + path + "': not an absolute path");
  std::filesystem::path p(path);
  p = p.lexically_normal();
  if (!p.has_filename()) p = p.parent_path();  // "/a/b/" -> "/a/b"
  const std::string clean = p.string();
  if (clean == "/") return Status::Error("state directory '/': refusing the root directory");
  // Only the last component is created private; missing parents get the
  // usual mode (they hold nothing of ours).
  struct stat st;
  if (lstat(clean.c_str(), &st) != 0 && errno == ENOENT) {
    std::error_code ec;
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec) return Status::Error(clean + ": cannot create its parent: " + ec.message());
    if (mkdir(clean.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::Error(clean + ": cannot create it: " + strerror(errno));
  }
  int fd = -1;
  Status s = OpenDirAt(AT_FDCWD, clean, clean, &fd);
  if (!s.ok()) return s;
  out->reset(new PrivateDir(fd, clean));
  return Status::OK();
}

Status PrivateDir::OpenChild(const std::string& name, std::unique_ptr<PrivateDir>* out) const {
  const std::string path = PathOf(name);
  if (!ValidEntryName(name)) return Status::Error(path + ": not usable as a directory name");
  if (mkdirat(fd_, name.c_str(), 0700) != 0 && errno != EEXIST)
    return Status::Error(path + ": cannot create it: " + strerror(errno));
  int fd = -1;
  Status s = OpenDirAt(fd_, name, path, &fd);
  if (!s.ok()) return s;
  out->reset(new PrivateDir(fd, path));
  return Status::OK();
}

Status PrivateDir::WriteFile(const std::string& name, const void* data, size_t len) const {
  if (!ValidEntryName(name)) return Status::Error(PathOf(name) + ": not usable as a file name");
  const std::string tmp = name + ".tmp";
  unlinkat(fd_, tmp.c_str(), 0);  // a leftover, or a planted link: removed, never followed
  int fd = openat(fd_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error(PathOf(tmp) + ": cannot create it: " + strerror(errno));
  const char* p = static_cast<const char*>(data);
  size_t left = len;
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      close(fd);
      unlinkat(fd_, tmp.c_str(), 0);
      return Status::Error(PathOf(tmp) + ": write failed: " + strerror(err));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  close(fd);
  if (renameat(fd_, tmp.c_str(), fd_, name.c_str()) != 0) {
    int err = errno;
    unlinkat(fd_, tmp.c_str(), 0);
    return Status::Error(PathOf(name) + ": cannot replace it: " + strerror(err));
  }
  return Status::OK();
}

Status PrivateDir::ReadFile(const std::string& name, size_t max_bytes, std::string* out) const {
  const std::string path = PathOf(name);
  if (!ValidEntryName(name)) return Status::Error(path + ": not usable as a file name");
  // O_NONBLOCK: a FIFO planted under the name must not hang the reader.
  int fd = openat(fd_, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return OpenError(fd_, name, path, errno);
  struct stat st;
  Status s = fstat(fd, &st) == 0 ? CheckOwned(st, path, false) : Status::Error(path + ": " + strerror(errno));
  if (s.ok() && static_cast<uint64_t>(st.st_size) > max_bytes)
    s = Status::Error(path + ": " + std::to_string(st.st_size) + " bytes, more than the " +
                      std::to_string(max_bytes) + " allowed");
  if (s.ok() && !ReadExactly(fd, static_cast<size_t>(st.st_size), out))
    s = Status::Error(path + ": changed size while being read");
  close(fd);
  return s;
}

bool PrivateDir::Exists(const std::string& name) const {
  struct stat st;
  return ValidEntryName(name) && fstatat(fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

void PrivateDir::Remove(const std::string& name) const {
  if (ValidEntryName(name)) unlinkat(fd_, name.c_str(), 0);
}

std::vector<std::string> PrivateDir::List() const {
  std::vector<std::string> names;
  int fd = dup(fd_);
  if (fd < 0) return names;
  DIR* d = fdopendir(fd);
  if (!d) {
    close(fd);
    return names;
  }
  rewinddir(d);
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  closedir(d);
  return names;
}

bool ReadExactly(int fd, size_t size, std::string* out) {
  out->assign(size, '\0');
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, out->data() + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  return got == size;
}

}  // namespace lampyr
