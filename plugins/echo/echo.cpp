// echo: replies with the request body. The smallest useful plugin, and the
// one the benchmarks compare against the host's built-in echo handler.
// Config: {"command": N} (default 1).
#include <lampyr/plugin.hpp>

namespace {

class Echo : public lampyr::sdk::Plugin {
  void init() override {
    int64_t command = config_int("command", 1);
    if (command < 0 || command > int64_t(UINT32_MAX)) throw lampyr::sdk::Error("echo: config.command out of range");
    on(uint32_t(command), [](lampyr::sdk::Request& r) { r.reply(r.body()); });
  }
};

}  // namespace

LAMPYR_PLUGIN(Echo, "echo", "1.0", 1)
