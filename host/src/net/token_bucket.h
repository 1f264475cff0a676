// TokenBucket: the per-session request rate (protocol.rate). A request takes
// one token; tokens come back at per_s a second up to `burst`. Integer
// arithmetic in millionths of a token, so a refill over any interval is exact
// and never drifts.
#pragma once

#include <algorithm>
#include <cstdint>

namespace lampyr::net {

class TokenBucket {
 public:
  // per_s == 0: unlimited (Take always succeeds, nothing is computed).
  TokenBucket(uint32_t per_s, uint32_t burst, int64_t now_us)
      : per_s_(per_s), cap_(int64_t{std::max<uint32_t>(burst, 1)} * kUnit), tokens_(cap_), last_us_(now_us) {}

  bool enabled() const { return per_s_ != 0; }

  // Takes a token at time now_us (monotonic microseconds); false when empty.
  bool Take(int64_t now_us) {
    if (!enabled()) return true;
    // Cap the interval so that the product cannot overflow: a bucket that was
    // idle for a long time is simply full.
    const int64_t elapsed = std::clamp<int64_t>(now_us - last_us_, 0, kMaxElapsedUs);
    last_us_ = now_us;
    tokens_ = std::min(cap_, tokens_ + elapsed * per_s_);
    if (tokens_ == cap_) refused_streak_ = 0;  // the client has backed off
    if (tokens_ >= kUnit) {
      tokens_ -= kUnit;
      return true;
    }
    ++refused_streak_;
    return false;
  }

  // Requests refused since the bucket was last full: a client that keeps
  // sending while it is told it is over the rate never lets it refill.
  uint32_t refused_streak() const { return refused_streak_; }

 private:
  static constexpr int64_t kUnit = 1000000;                 // one token
  static constexpr int64_t kMaxElapsedUs = int64_t{1} << 40;  // ~12 days; x per_s <= 2^60

  uint32_t per_s_;
  int64_t cap_;
  int64_t tokens_;
  int64_t last_us_;
  uint32_t refused_streak_ = 0;
};

}  // namespace lampyr::net
