// Process-wide structured logging: one line per event,
// "2026-11-24T15:00:00.123Z INFO  [game1] net: message", to stderr and to the
// server's log file. Thread-safe (workers log too). Never pass secrets here.
#pragma once

#include <cstdarg>
#include <string>

namespace lampyr::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// `"log": "-"`: stderr only, said explicitly (under systemd, the journal).
inline constexpr const char* kStderrOnly = "-";

// Sets the process tag (server name) and opens `file` for appending when it is
// neither empty nor "-" (its directory is created 0750; the file 0640 if new,
// never through a symlink, only a regular file). Returns false with `error`
// set when the file cannot be opened; logging then goes to stderr only.
// With a file open and stderr connected to the journal (JOURNAL_STREAM),
// stderr gets WARN and above only.
bool Init(const std::string& process_name, const std::string& file, Level level, std::string* error);
// Opens the log file again by its path (after logrotate renamed it), on
// SIGHUP or POST /reopen-logs. On failure the old file stays in use.
bool Reopen(std::string* error);
// The log file's path, "" when logging to stderr only.
std::string FilePath();
void SetLevel(Level level);
Level GetLevel();
bool ParseLevel(const std::string& name, Level* out);
// Stop writing to stderr (used by tools and benchmarks that own the terminal).
void SetConsole(bool enabled);
bool ConsoleEnabled();
// The log file's descriptor (-1: none), for the crash handler, which may
// only write(2). Async-signal-safe.
int FileDescriptor();

void Write(Level level, const char* component, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void WriteV(Level level, const char* component, const char* fmt, va_list ap);

}  // namespace lampyr::log

#define LAMPYR_LOG(level, component, ...)                                   \
  do {                                                                      \
    if (static_cast<int>(level) >= static_cast<int>(::lampyr::log::GetLevel())) \
      ::lampyr::log::Write(level, component, __VA_ARGS__);                  \
  } while (0)
#define LOG_DEBUG(component, ...) LAMPYR_LOG(::lampyr::log::Level::kDebug, component, __VA_ARGS__)
#define LOG_INFO(component, ...) LAMPYR_LOG(::lampyr::log::Level::kInfo, component, __VA_ARGS__)
#define LOG_WARN(component, ...) LAMPYR_LOG(::lampyr::log::Level::kWarn, component, __VA_ARGS__)
#define LOG_ERROR(component, ...) LAMPYR_LOG(::lampyr::log::Level::kError, component, __VA_ARGS__)
