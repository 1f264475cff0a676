#include "core/log.h"

#include <sys/time.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>

namespace lampyr::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_console{true};
std::mutex g_mu;
std::string g_name = "lampyr";
FILE* g_file = nullptr;

const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO ";
    case Level::kWarn: return "WARN ";
    case Level::kError: return "ERROR";
  }
  return "?";
}

}  // namespace

bool Init(const std::string& process_name, const std::string& file, Level level, std::string* error) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_name = process_name;
  g_level = static_cast<int>(level);
  if (g_file) {
    fclose(g_file);
    g_file = nullptr;
  }
  if (file.empty()) return true;
  std::error_code ec;
  auto dir = std::filesystem::path(file).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  g_file = fopen(file.c_str(), "ae");
  if (!g_file) {
    if (error) *error = "cannot open log file " + file;
    return false;
  }
  setvbuf(g_file, nullptr, _IOLBF, 0);
  return true;
}

void SetLevel(Level level) { g_level = static_cast<int>(level); }
Level GetLevel() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }
void SetConsole(bool enabled) { g_console = enabled; }

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
  if (g_console) fwrite(line, 1, len, stderr);
  if (g_file) fwrite(line, 1, len, g_file);
}

void Write(Level level, const char* component, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  WriteV(level, component, fmt, ap);
  va_end(ap);
}

}  // namespace lampyr::log
