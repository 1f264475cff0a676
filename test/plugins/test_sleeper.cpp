// test_sleeper: named "test_sleeper"; a slow remote method for drain tests.
// Remote "test_sleeper.sleep" (args = ms, at most 60000) answers with its
// args after that many ms; client command (config "command", default 50)
// does the same for a client. Not reloaded by the drain test, so the answer
// reaches test_drain's OLD generation after test_drain was reloaded.
#include <lampyr/plugin.hpp>

#include <algorithm>
#include <cstdlib>

namespace {
uint64_t Ms(const std::string& s) { return std::min<uint64_t>(60000, std::strtoull(s.c_str(), nullptr, 10)); }

class Sleeper : public lampyr::sdk::Plugin {
  void init() override {
    remote("test_sleeper.sleep", [this](lampyr::sdk::RemoteCall& c) {
      lampyr::sdk::RemoteCall kept = c;
      after(Ms(c.args()), [kept] { kept.reply(kept.args()); });
    });
    on(uint32_t(config_int("command", 50)), [this](lampyr::sdk::Request& r) {
      lampyr::sdk::Request kept = r;
      after(Ms(r.body()), [kept] { kept.reply(kept.body()); });
    });
  }
};
}  // namespace

LAMPYR_PLUGIN(Sleeper, "test_sleeper", "1.0", 1)
