// EventLoop: one libevent event_base driven by one thread. Everything that
// touches sockets, sessions or plugins runs on it. Other threads (the worker
// pool) hand results back with Post(), which is the only thread-safe call.
// Each timer, posted task and signal handler runs as an Activity (the
// loop-stall watchdog, core/activity.h) inside Guarded() (core/guard.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/status.h"

struct event_base;
struct event;

namespace lampyr {

using TimerId = uint64_t;

class EventLoop : NonCopyable {
 public:
  EventLoop();
  ~EventLoop();

  event_base* base() const { return base_; }

  // Runs until Quit(). Returns when the loop has stopped.
  void Run();
  // Asks the loop to return after the current turn. Loop thread or signal
  // callback only; other threads use Post([&]{ loop.Quit(); }).
  void Quit();

  // Thread-safe: `fn` runs on the loop thread in a later turn, in post order.
  void Post(std::function<void()> fn);

  // Timers, loop thread only. A repeating timer keeps firing until cancelled;
  // a one-shot timer is forgotten after it fires. Cancel of an unknown or
  // already fired id is a no-op. Callbacks may cancel any timer, themselves too.
  TimerId RunAfter(double seconds, std::function<void()> cb);
  TimerId RunEvery(double seconds, std::function<void()> cb);
  void Cancel(TimerId id);
  size_t timer_count() const { return timers_.size(); }

  // Handles `signo` on the loop (SIGTERM, SIGINT, SIGCHLD, ...).
  void OnSignal(int signo, std::function<void()> cb);

  // Monotonic clock in microseconds (steady_clock).
  static int64_t NowMicros();

 private:
  struct Timer;
  struct Signal;
  static void OnTimer(int, short, void* arg);
  static void OnWakeup(int, short, void* arg);
  TimerId AddTimer(double seconds, bool repeat, std::function<void()> cb);
  void DrainPosted();

  event_base* base_;
  int wakeup_fd_ = -1;
  event* wakeup_ev_ = nullptr;
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  TimerId next_timer_id_ = 1;
  std::unordered_map<TimerId, std::unique_ptr<Timer>> timers_;
  std::vector<std::unique_ptr<Signal>> signals_;
};

}  // namespace lampyr
