// test_drain: named "test_drain"; starts async work that completes after a
// reload, so the OLD generation gets the completion while draining and
// answers the request it kept. Reload it onto itself (same file) or onto a
// renamed copy. Config: {"node": server (default: this server),
//                        "method": remote method (default "test_sleeper.sleep")}.
// Commands:
//   31 body = ms: calls <node>.<method>(ms) and, when it completes, replies
//      "gen=<G> status=<ok|...> reply=<bytes> draining=<0|1>"
//   32 replies "gen=<G> pending=<calls in flight>"
//   33 body = ms: keeps the request and answers it from a one-shot timer
//      after ms ("gen=<G> timer draining=<0|1>"). The host keeps a draining
//      generation's one-shot timers (promised work), so after a reload the
//      OLD generation answers; it unloads once that is done.
// (Ids 31-33 so it can run next to test_throw, which takes 1-5.)
// Command 31 needs channel links (a hub) on the server; 33 works anywhere.
#include <lampyr/plugin.hpp>

namespace {
class Drain : public lampyr::sdk::Plugin {
  void init() override {
    using lampyr::sdk::Request;
    std::string node = config_string("node", server_name());
    std::string method = config_string("method", "test_sleeper.sleep");
    on(31, [this, node, method](Request& r) {
      Request kept = r;
      bool ok = call(node, method, r.body(), [this, kept](lampyr::sdk::CallStatus st, std::string_view bytes) {
        kept.reply("gen=" + std::to_string(generation()) + " status=" + st.name() + " reply=" + std::string(bytes) +
                   " draining=" + (draining() ? "1" : "0"));
      });
      if (!ok) r.fail(LAMPYR_FAIL_UNAVAILABLE, "call refused");
    });
    on(32, [this](Request& r) {
      r.reply("gen=" + std::to_string(generation()) + " pending=" + std::to_string(pending_calls()));
    });
    on(33, [this](Request& r) {
      Request kept = r;
      uint64_t ms = std::strtoull(r.body().c_str(), nullptr, 10);
      auto answer = [this, kept] {
        kept.reply("gen=" + std::to_string(generation()) + " timer draining=" + (draining() ? "1" : "0"));
      };
      if (after(ms, answer) == 0)
        r.fail(LAMPYR_FAIL_UNAVAILABLE, "timer refused");
    });
  }
  void on_stop() override { infof("test_drain gen %llu draining with %zu calls pending",
                                  static_cast<unsigned long long>(generation()), pending_calls()); }
};
}  // namespace

LAMPYR_PLUGIN(Drain, "test_drain", "1.0", 1)
