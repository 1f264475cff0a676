// test_crash: named "test_crash"; a plugin that crashes or blocks on demand,
// for the crash-report, probation and loop-stall tests. One source, three
// builds that differ only in their version: libtest_crash.so (1.0),
// libtest_crash_v2.so (2.0), libtest_crash_v3.so (3.0).
//   1  replies "version=<v> gen=<generation>"
//   2  segfaults (a write through a null pointer the compiler cannot see)
//   3  blocks the loop for <body> ms (at most 10000), then replies "slept"
// Config: "init_sleep_ms" (default 0) makes init block that long.
#include <lampyr/plugin.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#ifndef TEST_CRASH_V
#define TEST_CRASH_V 1
#endif
#define TEST_CRASH_STR2(x) #x
#define TEST_CRASH_STR(x) TEST_CRASH_STR2(x)

namespace {

void Block(int64_t ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(std::clamp<int64_t>(ms, 0, 10000)));
}

class Crasher : public lampyr::sdk::Plugin {
  void init() override {
    Block(config_int("init_sleep_ms", 0));
    using lampyr::sdk::Request;
    on(1, [this](Request& r) {
      r.reply("version=" + std::string(version()) + " gen=" + std::to_string(generation()));
    });
    on(2, [this](Request&) { Segfault(); });
    on(3, [](Request& r) {
      Block(std::strtoll(std::string(r.body()).c_str(), nullptr, 10));
      r.reply("slept");
    });
  }
  // Not inlined, so the backtrace has a frame inside the plugin; not
  // instrumented, so a sanitizer build faults here too instead of reporting
  // the null store itself.
  __attribute__((noinline, no_sanitize("address", "undefined"))) void Segfault() { *target_ = 1; }
  volatile int* volatile target_ = nullptr;
};

}  // namespace

LAMPYR_PLUGIN(Crasher, "test_crash", TEST_CRASH_STR(TEST_CRASH_V) ".0", 1)
