#include "core/event_loop.h"

#include <event2/event.h>
#include <sys/eventfd.h>
#include <csignal>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "core/activity.h"
#include "core/guard.h"
#include "core/log.h"

namespace lampyr {

struct EventLoop::Timer {
  EventLoop* loop;
  TimerId id;
  bool repeat;
  event* ev;
  std::function<void()> cb;
};

struct EventLoop::Signal {
  event* ev;
  std::function<void()> cb;
};

namespace {
timeval ToTimeval(double seconds) {
  if (seconds < 0) seconds = 0;
  timeval tv;
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>(std::llround((seconds - static_cast<double>(tv.tv_sec)) * 1e6));
  if (tv.tv_usec >= 1000000) {
    tv.tv_sec += 1;
    tv.tv_usec -= 1000000;
  }
  return tv;
}
}  // namespace

EventLoop::EventLoop() : base_(event_base_new()) {
  // libevent writes sockets with writev, which raises SIGPIPE when the peer
  // is gone: a process with a loop must ignore it, whoever owns main().
  static const bool sigpipe_ignored = [] {
    ::signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)sigpipe_ignored;
  if (!base_) throw std::runtime_error("event_base_new failed");
  wakeup_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeup_fd_ < 0) throw std::runtime_error("eventfd failed");
  wakeup_ev_ = event_new(base_, wakeup_fd_, EV_READ | EV_PERSIST, &EventLoop::OnWakeup, this);
  event_add(wakeup_ev_, nullptr);
}

EventLoop::~EventLoop() {
  for (auto& [id, t] : timers_) event_free(t->ev);
  timers_.clear();
  for (auto& s : signals_) event_free(s->ev);
  signals_.clear();
  event_free(wakeup_ev_);
  close(wakeup_fd_);
  event_base_free(base_);
}

void EventLoop::Run() { event_base_dispatch(base_); }

void EventLoop::Quit() { event_base_loopbreak(base_); }

void EventLoop::Post(std::function<void()> fn) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    was_empty = posted_.empty();
    posted_.push_back(std::move(fn));
  }
  if (was_empty) {
    uint64_t one = 1;
    ssize_t n = write(wakeup_fd_, &one, sizeof one);
    (void)n;  // EAGAIN means the counter is already non-zero: the loop will wake.
  }
}

void EventLoop::OnWakeup(int fd, short, void* arg) {
  uint64_t v;
  ssize_t n = read(fd, &v, sizeof v);
  (void)n;
  static_cast<EventLoop*>(arg)->DrainPosted();
}

void EventLoop::DrainPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) {
    Activity running("posted task");
    Guarded("posted task", fn);
  }
}

TimerId EventLoop::RunAfter(double seconds, std::function<void()> cb) { return AddTimer(seconds, false, std::move(cb)); }
TimerId EventLoop::RunEvery(double seconds, std::function<void()> cb) { return AddTimer(seconds, true, std::move(cb)); }

TimerId EventLoop::AddTimer(double seconds, bool repeat, std::function<void()> cb) {
  auto t = std::make_unique<Timer>();
  t->loop = this;
  t->id = next_timer_id_++;
  t->repeat = repeat;
  t->cb = std::move(cb);
  t->ev = event_new(base_, -1, repeat ? EV_PERSIST : 0, &EventLoop::OnTimer, t.get());
  timeval tv = ToTimeval(seconds);
  event_add(t->ev, &tv);
  TimerId id = t->id;
  timers_.emplace(id, std::move(t));
  return id;
}

void EventLoop::OnTimer(int, short, void* arg) {
  Timer* t = static_cast<Timer*>(arg);
  EventLoop* loop = t->loop;
  TimerId id = t->id;
  if (!t->repeat) {
    // Forget the timer before running it so the callback may re-arm freely;
    // keep the object alive until the callback returns.
    auto it = loop->timers_.find(id);
    std::unique_ptr<Timer> owned = std::move(it->second);
    loop->timers_.erase(it);
    {
      Activity running("timer");
      Guarded("timer", owned->cb);
    }
    event_free(owned->ev);
    return;
  }
  // Repeating: copy the callback so Cancel() from inside it is safe.
  auto cb = t->cb;
  Activity running("timer");
  Guarded("timer", cb);
}

void EventLoop::Cancel(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  event_free(it->second->ev);
  timers_.erase(it);
}

void EventLoop::OnSignal(int signo, std::function<void()> cb) {
  auto s = std::make_unique<Signal>();
  s->cb = std::move(cb);
  s->ev = evsignal_new(
      base_, signo,
      [](int, short, void* arg) {
        Activity running("signal");
        Guarded("signal", static_cast<Signal*>(arg)->cb);
      },
      s.get());
  evsignal_add(s->ev, nullptr);
  signals_.push_back(std::move(s));
}

int64_t EventLoop::NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace lampyr
