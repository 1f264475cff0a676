// test_restore_fail: named "room"; init succeeds (and registers room's stats
// command), restore_state refuses. The host must roll back: the old
// generation keeps serving with its state.
#include <lampyr/plugin.hpp>

namespace {
class RestoreFail : public lampyr::sdk::Plugin {
  void init() override {
    on(104, [](lampyr::sdk::Request& r) { r.reply("restore-fail must never serve"); });
  }
  bool restore_state(std::string_view, uint32_t from_schema) override {
    errorf("test_restore_fail: refusing state of schema %u on purpose", from_schema);
    return false;
  }
};
}  // namespace

LAMPYR_PLUGIN(RestoreFail, "room", "restore-fail", 1)
