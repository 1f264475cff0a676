#include "core/accept_backoff.h"

#include <event2/listener.h>
#include <event2/util.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "core/event_loop.h"
#include "core/log.h"
#include "core/log_throttle.h"
#include "core/metrics.h"

namespace lampyr {

namespace {

struct Backoff {
  double delay_s = AcceptBackoffTimes::kMinS;
  int64_t last_error_us = 0;
};

// Per kind of listener, process-wide: a process has one listener of each
// kind (tests may run several; they then share the pace, which is harmless).
// Listeners run on loop threads; tests run several loops, hence the lock.
std::mutex mu;
std::map<std::string, Backoff>& States() {
  static std::map<std::string, Backoff> states;
  return states;
}
LogThrottle& Lines() {
  static LogThrottle lines(AcceptBackoffTimes::kLogIntervalS, 16);
  return lines;
}

}  // namespace

void PauseAcceptsAfterError(EventLoop* loop, evconnlistener* l, const char* what, std::function<void()> resume) {
  const int err = EVUTIL_SOCKET_ERROR();
  evconnlistener_disable(l);
  const int64_t now = EventLoop::NowMicros();
  double delay = 0;
  bool log = false;
  uint64_t left_out = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    Backoff& b = States()[what];
    // Accepts worked for a while since the last error: start over quickly.
    if (now - b.last_error_us > static_cast<int64_t>((AcceptBackoffTimes::kMaxS + 1) * 1e6))
      b.delay_s = AcceptBackoffTimes::kMinS;
    else
      b.delay_s = std::min(b.delay_s * 2, AcceptBackoffTimes::kMaxS);
    b.last_error_us = now;
    delay = b.delay_s;
    log = Lines().Allow(what, now, &left_out);
  }
  Metrics()
      .GetCounter("lampyr_accept_errors_total", "accept() failures on a listener (accepts then pause briefly)",
                  std::string("listener=\"") + what + "\"")
      ->Inc();
  if (log) {
    LOG_ERROR(what, "accept failed: %s; pausing accepts for %.0f ms (growing to %.0f ms while it lasts)%s",
              evutil_socket_error_to_string(err), delay * 1000, AcceptBackoffTimes::kMaxS * 1000,
              left_out ? (", " + std::to_string(left_out) + " more accept errors since the last line").c_str() : "");
  }
  loop->RunAfter(delay, std::move(resume));
}

}  // namespace lampyr
