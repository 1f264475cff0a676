#include "admin/auth_throttle.h"

#include <algorithm>
#include <cmath>

namespace lampyr {

double AuthThrottle::LockedFor(const std::string& address, int64_t now_us) const {
  auto it = entries_.find(address);
  if (it == entries_.end() || it->second.locked_until_us <= now_us) return 0;
  return static_cast<double>(it->second.locked_until_us - now_us) / 1e6;
}

uint32_t AuthThrottle::failures(const std::string& address) const {
  auto it = entries_.find(address);
  return it == entries_.end() ? 0 : it->second.failures;
}

void AuthThrottle::MakeRoom(int64_t now_us) {
  const auto forget_us = static_cast<int64_t>(o_.forget_after_s * 1e6);
  for (auto it = entries_.begin(); it != entries_.end();) {
    const Entry& e = it->second;
    if (e.locked_until_us <= now_us && now_us - e.last_failure_us >= forget_us) it = entries_.erase(it);
    else ++it;
  }
  if (entries_.size() < o_.max_addresses) return;
  auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
    return a.second.last_failure_us < b.second.last_failure_us;
  });
  if (oldest != entries_.end()) entries_.erase(oldest);
}

double AuthThrottle::Failed(const std::string& address, int64_t now_us) {
  auto it = entries_.find(address);
  if (it == entries_.end()) {
    if (entries_.size() >= std::max<size_t>(o_.max_addresses, 1)) MakeRoom(now_us);
    it = entries_.emplace(address, Entry{}).first;
  }
  Entry& e = it->second;
  if (e.failures > 0 && now_us - e.last_failure_us >= static_cast<int64_t>(o_.forget_after_s * 1e6) &&
      e.locked_until_us <= now_us)
    e.failures = 0;  // an old streak is not held against a new typo
  ++e.failures;
  e.last_failure_us = now_us;
  if (e.failures < o_.free_failures) return 0;
  // The free_failures-th failure locks for first_lock_s, each further one doubles it.
  const double lock =
      std::min(o_.max_lock_s, o_.first_lock_s * std::ldexp(1.0, static_cast<int>(std::min<uint32_t>(e.failures - o_.free_failures, 30))));
  e.locked_until_us = now_us + static_cast<int64_t>(lock * 1e6);
  return lock;
}

}  // namespace lampyr
