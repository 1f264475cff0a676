#include "core/credentials.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace lampyr {

Status ReadCredential(const std::string& name, std::string* value, bool* found) {
  *found = false;
  const char* dir = getenv("CREDENTIALS_DIRECTORY");
  if (!dir || !*dir) return Status::OK();
  const std::string path = std::string(dir) + "/" + name;
  // O_NOFOLLOW: systemd writes plain files there; anything else is not ours.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT) return Status::OK();
    return Status::Error("credential " + name + ": cannot open: " + strerror(errno));
  }
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return Status::Error("credential " + name + ": not a regular file");
  constexpr size_t kMax = 64 * 1024;
  std::string text(kMax + 1, '\0');
  size_t have = 0;
  while (have < text.size()) {
    const ssize_t n = read(fd, text.data() + have, text.size() - have);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Error("credential " + name + ": cannot read: " + strerror(errno));
    }
    have += static_cast<size_t>(n);
  }
  if (have > kMax) return Status::Error("credential " + name + ": larger than 64 KiB");
  text.resize(have);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty()) return Status::Error("credential " + name + ": empty");
  *value = std::move(text);
  *found = true;
  return Status::OK();
}

}  // namespace lampyr
