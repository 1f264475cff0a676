// Process-wide structured logging: one line per event,
// "2026-11-24T15:00:00.123Z INFO  [game1] net: message", to stderr and to the
// server's log file. Thread-safe (workers log too). Never pass secrets here.
#pragma once

#include <cstdarg>
#include <string>

namespace lampyr::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Sets the process tag (server name) and opens `file` for appending when it is
// non-empty (its directory is created). Returns false with `error` set when the
// file cannot be opened; logging then goes to stderr only.
bool Init(const std::string& process_name, const std::string& file, Level level, std::string* error);
void SetLevel(Level level);
Level GetLevel();
bool ParseLevel(const std::string& name, Level* out);
// Stop writing to stderr (used by tools and benchmarks that own the terminal).
void SetConsole(bool enabled);

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
