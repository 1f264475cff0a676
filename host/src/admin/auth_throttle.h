// AuthThrottle: slows down admin token guessing, per client address. The
// first few failures are free (typos); after that every failure locks the
// address out for a window that doubles each time, during which its requests
// get 429 without their token being looked at, so guessing runs at a
// shrinking rate no matter how fast the guesser sends. A success forgets the
// address. The table is bounded: when full, the address quiet the longest
// is forgotten (a guesser with many addresses gets the free tries of each,
// which is why the admin API belongs on loopback or a private network).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "core/status.h"

namespace lampyr {

class AuthThrottle : NonCopyable {
 public:
  struct Options {
    uint32_t free_failures = 5;   // failures before the first lock-out
    double first_lock_s = 1;      // then 2, 4, ... per further failure
    double max_lock_s = 300;
    double forget_after_s = 600;  // failures older than this (and no lock) are forgotten
    size_t max_addresses = 4096;
  };

  explicit AuthThrottle(Options o) : o_(o) {}

  // Seconds `address` must still wait before its token is checked; 0: now.
  double LockedFor(const std::string& address, int64_t now_us) const;
  // Records a wrong token; returns the lock-out it starts (0: still free).
  double Failed(const std::string& address, int64_t now_us);
  void Succeeded(const std::string& address) { entries_.erase(address); }
  // Failures recorded for `address` (0 when unknown).
  uint32_t failures(const std::string& address) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    uint32_t failures = 0;
    int64_t last_failure_us = 0;
    int64_t locked_until_us = 0;
  };
  void MakeRoom(int64_t now_us);

  Options o_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace lampyr
