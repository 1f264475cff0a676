// test_kv: named "test_kv"; shared key/value ("kv_*") and preload for
// test/integration/plugin_kv_test.cpp. Arguments are tab-separated in the
// body. Replies, or "err <message>" (memcached unreachable) / "refused".
//   61 get    "key"                  -> "found <value> cas=<n>" | "missing"
//   62 set    "key\tvalue\texptime"  -> "done=<0|1>"
//   63 add    "key\tvalue\texptime"  -> "done=<0|1>"
//   64 cas    "key\tvalue\tcas"      -> "done=<0|1>"
//   65 incr   "key\tdelta\tinitial"  -> "value=<n>"
//   66 delete "key"                  -> "done=<0|1>"
//   67 lock   "key\tttl_s"           -> "token=<t>" | "held"
//   68 unlock "key\ttoken"           -> "done=<0|1>"
//   69 preload "table"               -> "rows=<n>"
#include <lampyr/plugin.hpp>

namespace {

using lampyr::sdk::DataStatus;
using lampyr::sdk::Request;

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t tab = s.find('\t', start);
    out.push_back(s.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return out;
    start = tab + 1;
  }
}
std::string Arg(const std::vector<std::string>& a, size_t i) { return i < a.size() ? a[i] : std::string(); }
uint64_t Num(const std::vector<std::string>& a, size_t i) { return std::strtoull(Arg(a, i).c_str(), nullptr, 10); }

class Kv : public lampyr::sdk::Plugin {
  void init() override {
    auto done = [](Request kept) {
      return [kept](DataStatus st, bool ok) { kept.reply(st.ok() ? std::string("done=") + (ok ? "1" : "0") : "err " + st.message); };
    };
    on(61, [this](Request& r) {
      Request kept = r;
      Started(r, kv_get(r.body(), [kept](DataStatus st, std::optional<lampyr::sdk::KvValue> v) {
                if (!st.ok()) return void(kept.reply("err " + st.message));
                kept.reply(v ? "found " + v->value + " cas=" + std::to_string(v->cas) : "missing");
              }));
    });
    on(62, [this, done](Request& r) {
      auto a = Split(r.body());
      Started(r, kv_set(Arg(a, 0), Arg(a, 1), uint32_t(Num(a, 2)), done(r)));
    });
    on(63, [this, done](Request& r) {
      auto a = Split(r.body());
      Started(r, kv_add(Arg(a, 0), Arg(a, 1), uint32_t(Num(a, 2)), done(r)));
    });
    on(64, [this, done](Request& r) {
      auto a = Split(r.body());
      Started(r, kv_cas(Arg(a, 0), Arg(a, 1), 0, Num(a, 2), done(r)));
    });
    on(65, [this](Request& r) {
      auto a = Split(r.body());
      Request kept = r;
      Started(r, kv_incr(Arg(a, 0), std::strtoll(Arg(a, 1).c_str(), nullptr, 10),
                         [kept](DataStatus st, uint64_t v) {
                           kept.reply(st.ok() ? "value=" + std::to_string(v) : "err " + st.message);
                         },
                         Num(a, 2)));
    });
    on(66, [this, done](Request& r) { Started(r, kv_delete(r.body(), done(r))); });
    on(67, [this](Request& r) {
      auto a = Split(r.body());
      Request kept = r;
      Started(r, kv_lock(Arg(a, 0), uint32_t(Num(a, 1)), [kept](DataStatus st, std::optional<std::string> token) {
                if (!st.ok()) return void(kept.reply("err " + st.message));
                kept.reply(token ? "token=" + *token : "held");
              }));
    });
    on(68, [this, done](Request& r) {
      auto a = Split(r.body());
      Started(r, kv_unlock(Arg(a, 0), Arg(a, 1), done(r)));
    });
    on(69, [this](Request& r) {
      Request kept = r;
      Started(r, db_preload(r.body(), [kept](DataStatus st, uint64_t rows) {
                kept.reply(st.ok() ? "rows=" + std::to_string(rows) : "err " + st.message);
              }));
    });
  }
  static void Started(const Request& r, bool ok) {
    if (!ok) r.reply("refused");
  }
};

}  // namespace

LAMPYR_PLUGIN(Kv, "test_kv", "1.0", 1)
