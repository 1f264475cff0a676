// Runs an EventLoop until a condition holds, for tests that drive the host's
// classes in-process. The guard only stops a hang; it is not a timing
// assertion (every test asserts what happened, not how fast).
#pragma once

#include <functional>

#include "core/event_loop.h"

namespace lampyr {

inline bool RunUntil(EventLoop& loop, const std::function<bool()>& pred, double guard_s = 20) {
  if (pred()) return true;
  TimerId poll = loop.RunEvery(0.002, [&] {
    if (pred()) loop.Quit();
  });
  TimerId guard = loop.RunAfter(guard_s, [&] { loop.Quit(); });
  loop.Run();
  loop.Cancel(poll);
  loop.Cancel(guard);
  return pred();
}

}  // namespace lampyr
