#include "core/activity.h"

#include <time.h>

#include <atomic>
#include <string>

#include "core/log.h"
#include "core/metrics.h"

namespace lampyr {

namespace {

std::atomic<int64_t> g_threshold_ms{100};
// Trivially destructible: no TLS destructor registration.
thread_local Activity* t_current = nullptr;

int64_t CoarseMs() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Appends to a fixed buffer; never writes past it (async-signal-safe).
struct Out {
  char* buf;
  size_t size;
  size_t len = 0;
  void Add(const char* s) {
    while (s && *s && len + 1 < size) buf[len++] = *s++;
  }
  void Add(uint64_t v) {
    char digits[21];
    int n = 0;
    do digits[n++] = static_cast<char>('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0 && len + 1 < size) buf[len++] = digits[--n];
  }
};

void ReportStall(const Activity& a, int64_t ms) {
  char name[256];
  a.Format(name, sizeof name);
  LOG_WARN("loop", "loop stalled %lld ms in %s", static_cast<long long>(ms), name);
  Metrics()
      .GetCounter("lampyr_loop_stalls_total", "Loop callbacks that ran longer than loop_stall_ms, by plugin",
                  a.plugin() ? "plugin=\"" + std::string(a.plugin()) + "\"" : std::string())
      ->Inc();
}

}  // namespace

void SetLoopStallThresholdMs(uint32_t ms) { g_threshold_ms.store(ms, std::memory_order_relaxed); }

Activity::Activity(const char* what, const char* plugin, uint64_t number, const char* detail) noexcept
    : what_(what), plugin_(plugin), number_(number), detail_(detail), parent_(t_current) {
  start_ms_ = g_threshold_ms.load(std::memory_order_relaxed) > 0 ? CoarseMs() : 0;
  t_current = this;
}

Activity::~Activity() {
  t_current = parent_;
  const int64_t threshold = g_threshold_ms.load(std::memory_order_relaxed);
  if (threshold <= 0 || start_ms_ == 0) return;
  const int64_t took = CoarseMs() - start_ms_;
  int64_t reported = reported_ms_;
  if (took - reported >= threshold) {
    // Logging allocates; a failure there must not escape a destructor.
    try {
      ReportStall(*this, took - reported);
    } catch (...) {
    }
    reported = took;
  }
  if (parent_) parent_->reported_ms_ += reported;
}

const Activity* Activity::Current() noexcept { return t_current; }

size_t Activity::Format(char* buf, size_t size) const noexcept {
  if (size == 0) return 0;
  Out o{buf, size};
  if (plugin_) {
    o.Add("plugin ");
    o.Add(plugin_);
    o.Add(": ");
  }
  o.Add(what_);
  if (number_ != kNoNumber) {
    o.Add(" ");
    o.Add(number_);
  } else if (detail_) {
    o.Add(" ");
    o.Add(detail_);
  }
  buf[o.len] = '\0';
  return o.len;
}

}  // namespace lampyr
