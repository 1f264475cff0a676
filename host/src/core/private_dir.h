// PrivateDir: a directory only this process's user can write, held open as a
// descriptor (master.state_dir and the folders under it).
//
// Everything the server keeps on disk that it may later load or trust — the
// build that passed probation, crash records — lives in one. Another local
// user must not be able to plant or redirect anything there, so:
//  - a directory is refused unless it is a real directory (not a symlink),
//    owned by the effective uid and not writable by group or others; one
//    that is missing is created 0700;
//  - it is held as a descriptor and every operation is relative to it
//    (openat/renameat/unlinkat, O_NOFOLLOW), so renaming a parent cannot
//    redirect a write;
//  - files are written to a fresh temporary created O_CREAT|O_EXCL|O_NOFOLLOW
//    (0600) and renamed over the name: a link planted at either name is
//    replaced, never followed;
//  - a file is read only when it is a regular file (not a link) with the
//    same owner and mode rules.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace lampyr {

class PrivateDir : NonCopyable {
 public:
  ~PrivateDir();

  // Opens `path` (absolute), creating it 0700 — and missing parents — when
  // it does not exist. Errors name the path and what is wrong with it.
  static Status Open(const std::string& path, std::unique_ptr<PrivateDir>* out);
  // Opens (creating 0700) the child directory `name`, with the same checks.
  // `name` is one path component, never "." or "..".
  Status OpenChild(const std::string& name, std::unique_ptr<PrivateDir>* out) const;

  // Replaces `name` with `len` bytes (mode 0600) via `name`.tmp.
  Status WriteFile(const std::string& name, const void* data, size_t len) const;
  // Reads `name` whole; refuses a link, a non-regular file, another owner,
  // group/other write access, and more than `max_bytes`. A missing file is
  // an error whose message ends in "does not exist".
  Status ReadFile(const std::string& name, size_t max_bytes, std::string* out) const;
  bool Exists(const std::string& name) const;
  void Remove(const std::string& name) const;
  // Names of the entries (no "." and "..").
  std::vector<std::string> List() const;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  PrivateDir(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  std::string PathOf(const std::string& name) const { return path_ + "/" + name; }

  int fd_;
  std::string path_;  // for messages only: nothing is opened by it
};

// True for a name PrivateDir accepts as one component.
bool ValidEntryName(const std::string& name);

// Reads `size` bytes from the start of `fd` into `out` (retrying short reads
// and EINTR). False when the file ended first: it changed size after the
// caller's fstat.
bool ReadExactly(int fd, size_t size, std::string* out);

}  // namespace lampyr
