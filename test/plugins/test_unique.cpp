// test_unique: named "room"; has STB_GNU_UNIQUE symbols because it is built
// WITHOUT -fno-gnu-unique, with default visibility and without the version
// script (see CMakeLists.txt). glibc would mark it NODELETE and bind a later
// generation to this one's counter; the host's gate must refuse it.
#include <lampyr/plugin.hpp>

namespace {
struct Counter {
  static inline int hits = 0;  // inline static data member: UNIQUE
};
}  // namespace

// An inline function with a local static, at namespace scope with external
// linkage: also UNIQUE.
inline int& lampyr_test_unique_counter() {
  static int n = 0;
  return n;
}

struct LampyrTestUniqueShared {
  static inline int value = 42;  // external linkage: UNIQUE, exported
};

class UniquePlugin : public lampyr::sdk::Plugin {
  void init() override {
    on(104, [](lampyr::sdk::Request& r) {
      ++Counter::hits;
      r.reply(std::to_string(++lampyr_test_unique_counter() + LampyrTestUniqueShared::value));
    });
  }
};

LAMPYR_PLUGIN(UniquePlugin, "room", "unique", 1)
