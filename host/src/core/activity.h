// What the loop thread is running right now, and the loop-stall watchdog.
//
// Every callback the loop runs for us opens an Activity on the stack: the
// EventLoop for timers, posted tasks and signals, the plugin host for each
// entry into a plugin ("plugin room: command 1001", "plugin room: init").
// Activities nest; the innermost names the code that runs.
//
// Watchdog: an activity that took longer than the threshold
// (master.loop_stall_ms / servers.<name>.loop_stall_ms) held every client of
// the process that long, so it is logged at WARN with its name
// ("loop stalled 3004 ms in plugin room: init") and counted in
// lampyr_loop_stalls_total{plugin="room"} (no label when no plugin ran). Time
// an inner activity already reported is not reported again by the outer one.
//
// Cost: two reads of CLOCK_MONOTONIC_COARSE (no syscall, resolution of one
// scheduler tick, plenty for a threshold of 100 ms) and a few stores.
//
// The crash handler reads the innermost activity from a signal handler:
// the fields are plain pointers to strings that outlive the activity.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lampyr {

class Activity {
 public:
  static constexpr uint64_t kNoNumber = UINT64_MAX;

  // `what`, `plugin` and `detail` must outlive the activity (literals, or
  // strings of the generation that runs). `plugin` null = host code.
  // "plugin <plugin>: <what> <number|detail>" or "<what>".
  explicit Activity(const char* what, const char* plugin = nullptr, uint64_t number = kNoNumber,
                    const char* detail = nullptr) noexcept;
  ~Activity();
  Activity(const Activity&) = delete;
  Activity& operator=(const Activity&) = delete;

  // The innermost activity of the calling thread (null outside any).
  static const Activity* Current() noexcept;
  // Writes the name, NUL-terminated, into buf; returns its length.
  // Async-signal-safe.
  size_t Format(char* buf, size_t size) const noexcept;
  const char* plugin() const { return plugin_; }

 private:
  const char* what_;
  const char* plugin_;
  uint64_t number_;
  const char* detail_;
  int64_t start_ms_;
  int64_t reported_ms_ = 0;  // of it, time inner activities reported
  Activity* parent_;
};

// 0 turns the watchdog off. Process-wide; the default is 100.
void SetLoopStallThresholdMs(uint32_t ms);

}  // namespace lampyr
