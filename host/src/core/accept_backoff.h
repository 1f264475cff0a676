// What a listener does when accept() fails for a reason that retrying at
// once cannot fix: out of descriptors (EMFILE/ENFILE) or memory. The pending
// connection stays in the backlog, so the socket stays readable and, without
// a pause, the loop spins on accept() and logs every try (the review measured
// 95 % CPU and 969 MB of log in 100 s). Every listener of the process (admin,
// client, channel) routes its evconnlistener error callback here.
#pragma once

#include <functional>

struct evconnlistener;

namespace lampyr {

class EventLoop;

// Call from the listener's error callback, with errno still that of the
// failed accept(). Disables `l`, and after a delay that doubles while errors
// keep coming (kMin .. kMax, back to kMin after a quiet spell) runs `resume`,
// which re-enables the listener if it still exists and may accept (its owner
// knows: it may have freed it, or paused it for its own reasons).
// Logs at most one line per `what` ("net", "channel", "admin") per
// kLogIntervalS, with the number of errors left out, and counts every error
// in lampyr_accept_errors_total{listener="<what>"}.
void PauseAcceptsAfterError(EventLoop* loop, evconnlistener* l, const char* what, std::function<void()> resume);

struct AcceptBackoffTimes {
  static constexpr double kMinS = 0.05;
  static constexpr double kMaxS = 1.0;
  static constexpr double kLogIntervalS = 10.0;
};

}  // namespace lampyr
