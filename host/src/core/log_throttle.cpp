#include "core/log_throttle.h"

namespace lampyr {

namespace {
const std::string kOverflowKey = "\x01(other keys)";
}

LogThrottle::LogThrottle(double interval_s, size_t max_keys)
    : interval_us_(static_cast<int64_t>(interval_s * 1e6)), max_keys_(max_keys < 1 ? 1 : max_keys) {}

void LogThrottle::Prune(int64_t now_us) {
  // Keys quiet for a whole interval have nothing to report and would be
  // allowed anyway: forgetting them changes no output.
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (now_us - it->second.last_us >= interval_us_ && it->second.suppressed == 0) it = entries_.erase(it);
    else ++it;
  }
}

bool LogThrottle::Allow(const std::string& key, int64_t now_us, uint64_t* suppressed) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= max_keys_) Prune(now_us);
    const std::string& k = entries_.size() >= max_keys_ ? kOverflowKey : key;
    it = entries_.find(k);
    if (it == entries_.end()) {
      entries_[k] = Entry{now_us, 0};
      if (suppressed) *suppressed = 0;
      return true;
    }
  }
  Entry& e = it->second;
  if (now_us - e.last_us < interval_us_) {
    ++e.suppressed;
    return false;
  }
  if (suppressed) *suppressed = e.suppressed;
  e.last_us = now_us;
  e.suppressed = 0;
  return true;
}

}  // namespace lampyr
