// test_init_throw: named "room"; init() registers a command, starts a timer,
// then throws. The SDK turns the exception into an init error carrying
// what(); the host must discard the generation (no handler, no timer left).
#include <lampyr/plugin.hpp>

#include <stdexcept>

namespace {
class InitThrow : public lampyr::sdk::Plugin {
  void init() override {
    on(104, [](lampyr::sdk::Request& r) { r.reply("init-throw must never serve"); });
    every(10, [] {});
    throw std::runtime_error("test_init_throw: exception thrown in init");
  }
};
}  // namespace

LAMPYR_PLUGIN(InitThrow, "room", "init-throw", 1)
