// test_work: named "test_work"; off-loop work for the work tests
// (test/integration/plugin_work_test.cpp). Commands (ids 41-47):
//   41 body = "<n>": runs a job that returns n*2 (as text) on a worker;
//      replies "gen=<G> result=<n*2> loop=<0|1>" (loop=1: the job saw the
//      loop thread's id, which must never happen)
//   42: a job that throws; replies "gen=<G> error=<what>"
//   43: replies "gen=<G> pending=<jobs in flight> draining=<0|1>" at once
//   44 body = path: a job that waits until the file `path` exists (polls
//      every 2 ms, gives up after 60 s); replies, when it is done,
//      "gen=<G> released=<0|1> draining=<0|1>". Deterministic blocking
//      across reloads: the test creates the file when it wants the job done.
//   45 body = "<n>": starts n jobs of 0 work at once; replies
//      "started=<k> refused=<n-k>" (refused: the host's queue was full)
//   46: a job that burns CPU for about 100 ms (for the loop latency bench)
#include <lampyr/plugin.hpp>

#include <sys/stat.h>
#include <time.h>

#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace {

void SleepMs(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

class Work : public lampyr::sdk::Plugin {
  void init() override {
    using lampyr::sdk::Request;
    using lampyr::sdk::WorkStatus;
    loop_thread_ = std::this_thread::get_id();
    on(41, [this](Request& r) {
      long n = std::strtol(r.body().c_str(), nullptr, 10);
      auto loop = loop_thread_;
      Request kept = r;
      bool ok = work([n, loop] { return std::to_string(n * 2) + (std::this_thread::get_id() == loop ? " loop=1" : " loop=0"); },
                     [this, kept](WorkStatus st, std::string out) {
                       kept.reply("gen=" + std::to_string(generation()) + " result=" + (st.ok() ? out : st.error));
                     });
      if (!ok) r.fail(LAMPYR_FAIL_OVERLOADED, "work refused");
    });
    on(42, [this](Request& r) {
      Request kept = r;
      bool ok = work([]() -> int { throw std::runtime_error("boom in a job"); },
                     [this, kept](WorkStatus st, int) {
                       kept.reply("gen=" + std::to_string(generation()) + " error=" + st.error);
                     });
      if (!ok) r.fail(LAMPYR_FAIL_OVERLOADED, "work refused");
    });
    on(43, [this](Request& r) {
      r.reply("gen=" + std::to_string(generation()) + " pending=" + std::to_string(pending_work()) +
              " draining=" + (draining() ? "1" : "0"));
    });
    on(44, [this](Request& r) {
      std::string path = r.body();
      Request kept = r;
      bool ok = work(
          [path] {
            struct stat st;
            for (int i = 0; i < 30000; ++i) {
              if (stat(path.c_str(), &st) == 0) return true;
              SleepMs(2);
            }
            return false;
          },
          [this, kept](WorkStatus, bool released) {
            kept.reply("gen=" + std::to_string(generation()) + " released=" + (released ? "1" : "0") +
                       " draining=" + (draining() ? "1" : "0"));
          });
      if (!ok) r.fail(LAMPYR_FAIL_OVERLOADED, "work refused");
    });
    on(45, [this](Request& r) {
      long n = std::strtol(r.body().c_str(), nullptr, 10);
      long started = 0;
      for (long i = 0; i < n; ++i)
        if (work([] {}, [](WorkStatus) {})) ++started;
      r.reply("started=" + std::to_string(started) + " refused=" + std::to_string(n - started));
    });
    on(46, [this](Request& r) {
      Request kept = r;
      bool ok = work(
          [] {
            timespec start, now;
            clock_gettime(CLOCK_MONOTONIC, &start);
            volatile uint64_t x = 0;
            do {
              for (int i = 0; i < 10000; ++i) x = x + uint64_t(i);
              clock_gettime(CLOCK_MONOTONIC, &now);
            } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < 100);
          },
          [kept](WorkStatus) { kept.reply("done"); });
      if (!ok) r.fail(LAMPYR_FAIL_OVERLOADED, "work refused");
    });
  }
  std::thread::id loop_thread_;
};

}  // namespace

LAMPYR_PLUGIN(Work, "test_work", "1.0", 1)
