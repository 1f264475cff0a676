// WorkPool: the threads that run plugin code off the event loop ("work" in
// plugin.h, docs/plugins.md "Off-loop work"). A job belongs to an owner (a
// plugin generation); the pool tracks, per owner, how many of its jobs are
// executing on a worker right now, because the owner's library must not be
// unloaded while its code is on a worker's stack.
//
// Bounded: at most `queue_limit` jobs wait; Submit() says no beyond that,
// and the plugin hears it at once (LAMPYR_ERR_BUSY) instead of the server
// growing a backlog it can never work off.
//
// Threads: Submit/Cancel/Running/Stop are called on the loop thread; `run`
// executes on a worker; `done` is posted back to the loop with whether `run`
// executed (false: cancelled before it started).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/event_loop.h"
#include "core/status.h"

namespace lampyr::plugin {

class WorkPool : NonCopyable {
 public:
  WorkPool(EventLoop* loop, size_t threads, size_t queue_limit);
  ~WorkPool();  // Stop()

  // False when the queue is full or the pool stopped; nothing runs then.
  bool Submit(const void* owner, std::function<void()> run, std::function<void(bool ran)> done);
  // Queued jobs of `owner` leave the queue and will not run (their
  // `done(false)` is posted), `owner` can submit nothing more; returns how
  // many of its jobs are executing right now.
  size_t Cancel(const void* owner);
  // Jobs of `owner` executing right now.
  size_t Running(const void* owner) const;
  // Forgets a cancelled `owner` once none of its jobs is running.
  void Forget(const void* owner);
  // Drops every queued job and joins the workers (waits for running jobs).
  void Stop();

  size_t threads() const { return threads_.size(); }
  size_t queued() const;

 private:
  struct Job {
    const void* owner;
    std::function<void()> run;
    std::function<void(bool)> done;
  };
  struct Owner {
    size_t running = 0;
    bool cancelled = false;
  };
  void Loop();

  EventLoop* loop_;
  const size_t queue_limit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::unordered_map<const void*, Owner> owners_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace lampyr::plugin
