#include "core/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

namespace lampyr::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_console{true};
// With a log file open and stderr going to the journal, stderr gets WARN and
// above only: the file has everything, the journal what needs a look, and
// nothing is stored twice in full.
std::atomic<int> g_console_min{static_cast<int>(Level::kDebug)};
std::mutex g_mu;
std::string g_name = "lampyr";
std::string g_path;       // the log file ("" = none)
std::atomic<int> g_fd{-1};  // its descriptor, readable from a signal handler

const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO ";
    case Level::kWarn: return "WARN ";
    case Level::kError: return "ERROR";
  }
  return "?";
}

// mkdir -p with 0750: a log directory is not for everyone to read.
void MakeDirs(const std::string& dir) {
  if (dir.empty()) return;
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      const std::string part = dir.substr(0, i);
      if (mkdir(part.c_str(), 0750) != 0 && errno != EEXIST) return;  // open() then says why
    }
  }
}

// Opens the log file for appending. O_NOFOLLOW: a symlink planted where the
// log goes (the directory may be writable by others on a careless setup)
// must not make the server append to a file of the attacker's choice.
// O_NONBLOCK only for the open: a FIFO must not hang it (refused below).
// New files are 0640 (group adm or the service's group may read them).
int OpenLogFile(const std::string& path, std::string* error) {
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640);
  if (fd < 0) {
    if (error)
      *error = "cannot open log file " + path + ": " +
               (errno == ELOOP ? std::string("it is a symbolic link (refused)") : std::string(strerror(errno)));
    return -1;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (error) *error = "cannot open log file " + path + ": not a regular file";
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, O_WRONLY | O_APPEND);
  return fd;
}

// True when stderr is the journal's stream (systemd sets JOURNAL_STREAM to
// "device:inode" of the stream it connected).
bool StderrIsJournal() {
  const char* js = getenv("JOURNAL_STREAM");
  if (!js || !*js) return false;
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  unsigned long long dev = 0, ino = 0;
  if (sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  return dev == static_cast<unsigned long long>(st.st_dev) && ino == static_cast<unsigned long long>(st.st_ino);
}

void WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;  // a full disk must not stop the server
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

bool Init(const std::string& process_name, const std::string& file, Level level, std::string* error) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_name = process_name;
  g_level = static_cast<int>(level);
  if (const int old = g_fd.exchange(-1); old >= 0) close(old);
  g_path.clear();
  g_console_min = static_cast<int>(Level::kDebug);
  if (file.empty() || file == kStderrOnly) return true;
  const size_t slash = file.rfind('/');
  if (slash != std::string::npos && slash > 0) MakeDirs(file.substr(0, slash));
  const int fd = OpenLogFile(file, error);
  if (fd < 0) return false;
  g_path = file;
  g_fd = fd;
  if (StderrIsJournal()) g_console_min = static_cast<int>(Level::kWarn);
  return true;
}

bool Reopen(std::string* error) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_path.empty()) return true;  // stderr only: nothing to reopen
  const int fd = OpenLogFile(g_path, error);
  if (fd < 0) return false;  // keep writing to the old file rather than nowhere
  const int old = g_fd.load();
  if (old >= 0) {
    // dup3 onto the old number: the crash handler, which reads the number
    // without the lock, never sees a closed or reused descriptor.
    if (dup3(fd, old, O_CLOEXEC) < 0) {
      if (error) *error = std::string("cannot reopen log file: dup3: ") + strerror(errno);
      close(fd);
      return false;
    }
    close(fd);
  } else {
    g_fd = fd;
  }
  return true;
}

std::string FilePath() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_path;
}

void SetLevel(Level level) { g_level = static_cast<int>(level); }
Level GetLevel() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }
void SetConsole(bool enabled) { g_console = enabled; }
bool ConsoleEnabled() { return g_console.load(std::memory_order_relaxed); }
int FileDescriptor() { return g_fd.load(std::memory_order_relaxed); }

bool ParseLevel(const std::string& name, Level* out) {
  if (name == "debug") *out = Level::kDebug;
  else if (name == "info") *out = Level::kInfo;
  else if (name == "warn" || name == "warning") *out = Level::kWarn;
  else if (name == "error") *out = Level::kError;
  else return false;
  return true;
}

void WriteV(Level level, const char* component, const char* fmt, va_list ap) {
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[32];
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(g_mu);
  char line[2300];
  int n = snprintf(line, sizeof line, "%s.%03dZ %s [%s] %s: %s\n", ts, static_cast<int>(tv.tv_usec / 1000),
                   LevelName(level), g_name.c_str(), component, msg);
  if (n < 0) return;
  size_t len = static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1;
  if (g_console && static_cast<int>(level) >= g_console_min.load(std::memory_order_relaxed))
    WriteAll(STDERR_FILENO, line, len);
  if (const int fd = g_fd.load(); fd >= 0) WriteAll(fd, line, len);
}

void Write(Level level, const char* component, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  WriteV(level, component, fmt, ap);
  va_end(ap);
}

}  // namespace lampyr::log
