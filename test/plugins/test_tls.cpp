// test_tls: named "room"; a thread_local with a non-trivial destructor,
// touched in a handler. Registering its destructor imports
// __cxa_thread_atexit (nm -D), which pins the library while the thread
// lives: the host's gate must refuse it. Built with the normal flags.
#include <lampyr/plugin.hpp>

#include <string>

namespace {
std::string& LastBody() {
  thread_local std::string last;
  return last;
}

class TlsPlugin : public lampyr::sdk::Plugin {
  void init() override {
    on(104, [](lampyr::sdk::Request& r) {
      LastBody() = r.body();
      r.reply(LastBody());
    });
  }
};
}  // namespace

LAMPYR_PLUGIN(TlsPlugin, "room", "tls", 1)
