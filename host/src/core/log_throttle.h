// LogThrottle: at most one log line per key per interval, so a flood of the
// same event (accept errors, wrong admin tokens from one address) costs a
// few lines instead of gigabytes, and the lines that are written say how
// many were left out. Loop thread only; the caller passes the time, so tests
// need no clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "core/status.h"

namespace lampyr {

class LogThrottle : NonCopyable {
 public:
  // At most `max_keys` keys are remembered; past that, new keys share one
  // overflow slot (so many addresses still cost one line per interval).
  LogThrottle(double interval_s, size_t max_keys);

  // True when a line for `key` may be written now; *suppressed is then the
  // number of lines refused for it since the last one written.
  bool Allow(const std::string& key, int64_t now_us, uint64_t* suppressed);

 private:
  struct Entry {
    int64_t last_us = 0;
    uint64_t suppressed = 0;
  };
  void Prune(int64_t now_us);

  int64_t interval_us_;
  size_t max_keys_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace lampyr
