// test_thread: named "test_work"; starts a std::thread of its own. The gate
// must refuse it (it imports std::thread::_M_start_thread), naming the
// symbol and pointing to "work", while the serving test_work keeps serving.
// Built with NO_CHECK: the SDK's own build check would refuse it first.
#include <lampyr/plugin.hpp>

#include <thread>

namespace {
class Threads : public lampyr::sdk::Plugin {
  void init() override {
    on(43, [](lampyr::sdk::Request& r) {
      std::string out;
      std::thread t([&out] { out = "from a thread"; });
      t.join();
      r.reply(out);
    });
  }
};
}  // namespace

LAMPYR_PLUGIN(Threads, "test_work", "thread", 1)
