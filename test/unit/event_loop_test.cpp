// EventLoop: timers (one-shot, repeating, cancelled from callbacks), Post()
// from other threads, signals. Assertions are about order and counts, never
// about how fast the machine is; a watchdog turns a hang into a failure.
#include "core/event_loop.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "core/metrics.h"

#include <atomic>
#include <csignal>
#include <thread>
#include <vector>

namespace lampyr {
namespace {

class EventLoopTest : public ::testing::Test {
 protected:
  // Runs the loop until something calls Quit(); fails after 20 s instead of hanging.
  void RunWithWatchdog() {
    bool timed_out = false;
    TimerId dog = loop_.RunAfter(20, [&] {
      timed_out = true;
      loop_.Quit();
    });
    loop_.Run();
    loop_.Cancel(dog);
    ASSERT_FALSE(timed_out) << "loop did not quit within the watchdog";
  }

  EventLoop loop_;
};

TEST_F(EventLoopTest, OneShotTimerFiresOnceAndIsForgotten) {
  int fired = 0;
  loop_.RunAfter(0.001, [&] { ++fired; });
  EXPECT_EQ(loop_.timer_count(), 1u);
  loop_.RunAfter(0.05, [&] { loop_.Quit(); });
  RunWithWatchdog();
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(loop_.timer_count(), 0u);
}

TEST_F(EventLoopTest, TimersFireInDeadlineOrder) {
  std::vector<int> order;
  loop_.RunAfter(0.03, [&] {
    order.push_back(3);
    loop_.Quit();
  });
  loop_.RunAfter(0.001, [&] { order.push_back(1); });
  loop_.RunAfter(0.015, [&] { order.push_back(2); });
  RunWithWatchdog();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST_F(EventLoopTest, RepeatingTimerCancelledInsideItsCallback) {
  int fired = 0;
  TimerId id = 0;
  id = loop_.RunEvery(0.001, [&] {
    if (++fired == 5) {
      loop_.Cancel(id);
      // Give a (wrongly) surviving timer plenty of chances to fire again.
      loop_.RunAfter(0.05, [&] { loop_.Quit(); });
    }
  });
  RunWithWatchdog();
  EXPECT_EQ(fired, 5);
  EXPECT_EQ(loop_.timer_count(), 0u);
}

TEST_F(EventLoopTest, CancelBeforeFiringAndFromAnotherTimer) {
  bool a_fired = false, b_fired = false;
  TimerId a = loop_.RunAfter(0.001, [&] { a_fired = true; });
  loop_.Cancel(a);
  TimerId b = loop_.RunAfter(0.02, [&] { b_fired = true; });
  TimerId rep = loop_.RunEvery(0.001, [] {});
  loop_.RunAfter(0.005, [&] {
    loop_.Cancel(b);
    loop_.Cancel(rep);
  });
  loop_.RunAfter(0.05, [&] { loop_.Quit(); });
  RunWithWatchdog();
  EXPECT_FALSE(a_fired);
  EXPECT_FALSE(b_fired);
  EXPECT_EQ(loop_.timer_count(), 0u);
}

TEST_F(EventLoopTest, OneShotMayCancelItselfAndRearm) {
  int fired = 0;
  TimerId id = 0;
  std::function<void()> cb = [&] {
    loop_.Cancel(id);  // already forgotten: a no-op
    if (++fired < 3) id = loop_.RunAfter(0.001, cb);
    else loop_.Quit();
  };
  id = loop_.RunAfter(0.001, cb);
  RunWithWatchdog();
  EXPECT_EQ(fired, 3);
}

TEST_F(EventLoopTest, CancelOfUnknownOrFiredIdIsANoOp) {
  TimerId id = loop_.RunAfter(0.001, [&] { loop_.Quit(); });
  loop_.Cancel(987654321);
  RunWithWatchdog();
  loop_.Cancel(id);
  loop_.Cancel(id);
  EXPECT_EQ(loop_.timer_count(), 0u);
}

TEST_F(EventLoopTest, TimerIdsAreUnique) {
  TimerId a = loop_.RunAfter(1, [] {});
  TimerId b = loop_.RunEvery(1, [] {});
  loop_.Cancel(a);
  TimerId c = loop_.RunAfter(1, [] {});
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(b, c);
  EXPECT_EQ(loop_.timer_count(), 2u);
  // Pending timers are released by the destructor (checked by ASan).
}

TEST_F(EventLoopTest, PostFromOtherThreadsRunsEverythingOnTheLoopInOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::vector<std::vector<int>> seen(kThreads);
  int total = 0;
  bool wrong_thread = false;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        loop_.Post([&, t, i] {
          if (std::this_thread::get_id() != loop_thread) wrong_thread = true;
          seen[t].push_back(i);
          if (++total == kThreads * kPerThread) loop_.Quit();
        });
      }
    });
  }
  RunWithWatchdog();
  for (auto& th : threads) th.join();
  EXPECT_FALSE(wrong_thread);
  EXPECT_EQ(total, kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), static_cast<size_t>(kPerThread));
    for (int i = 0; i < kPerThread; ++i) ASSERT_EQ(seen[t][i], i) << "thread " << t << " out of order";
  }
}

TEST_F(EventLoopTest, PostBeforeRunAndFromInsideAPostedFunction) {
  std::vector<int> order;
  loop_.Post([&] {
    order.push_back(1);
    // Runs in a later turn, after the callback that posted it returns.
    loop_.Post([&] {
      order.push_back(3);
      loop_.Quit();
    });
    order.push_back(2);
  });
  RunWithWatchdog();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST_F(EventLoopTest, QuitPostedFromAnotherThread) {
  std::atomic<bool> running{false};
  loop_.Post([&] { running = true; });
  std::thread t([&] {
    while (!running) std::this_thread::yield();
    loop_.Post([&] { loop_.Quit(); });
  });
  RunWithWatchdog();
  t.join();
  EXPECT_TRUE(running);
}

TEST_F(EventLoopTest, SignalIsHandledOnTheLoop) {
  int got = 0;
  loop_.OnSignal(SIGUSR2, [&] {
    ++got;
    loop_.Quit();
  });
  loop_.RunAfter(0.001, [] { raise(SIGUSR2); });
  RunWithWatchdog();
  EXPECT_EQ(got, 1);
}

// An exception escaping a callback is stopped at the loop's boundary: the
// loop keeps running the callbacks after it, and the escape is counted.
TEST_F(EventLoopTest, ExceptionsFromCallbacksDoNotEscapeTheLoop) {
  auto escaped = [](const char* where) {
    return Metrics().Value("lampyr_callback_exceptions_total", std::string("where=\"") + where + "\"");
  };
  const int64_t timers_before = escaped("timer"), posted_before = escaped("posted task");
  int after = 0;
  loop_.RunAfter(0.001, [] { throw std::runtime_error("one-shot"); });
  TimerId rep = loop_.RunEvery(0.001, [] { throw 42; });
  loop_.Post([] { throw std::runtime_error("posted"); });
  loop_.RunAfter(0.05, [&] {
    ++after;
    loop_.Cancel(rep);
    loop_.Quit();
  });
  RunWithWatchdog();
  EXPECT_EQ(after, 1);
  EXPECT_GE(escaped("timer") - timers_before, 2);
  EXPECT_EQ(escaped("posted task") - posted_before, 1);
}

TEST(EventLoopClock, NowMicrosIsMonotonic) {
  int64_t prev = EventLoop::NowMicros();
  for (int i = 0; i < 10000; ++i) {
    int64_t now = EventLoop::NowMicros();
    ASSERT_GE(now, prev);
    prev = now;
  }
  EXPECT_GT(prev, 0);
}

}  // namespace
}  // namespace lampyr
