// test_throw: named "test_throw"; handlers that throw. The SDK catches
// everything before the C boundary; the client gets the error reply (code 2,
// handler_error) unless the handler had answered already, and the process
// lives on. Commands:
//   1  throws std::runtime_error              -> error reply
//   2  replies "alive gen=<generation>"        (proves the plugin still serves)
//   3  throws a non-std exception (an int)     -> error reply
//   4  replies "answered", then throws         -> the reply, no second answer
//   5  a timer that throws in 1 ms, replies "scheduled"; the timer's exception is logged
// Remote method "test_throw.boom" throws -> the caller gets an error.
#include <lampyr/plugin.hpp>

#include <stdexcept>

namespace {
class Thrower : public lampyr::sdk::Plugin {
  void init() override {
    using lampyr::sdk::Request;
    on(1, [](Request&) { throw std::runtime_error("test_throw: handler exception on purpose"); });
    on(2, [this](Request& r) { r.reply("alive gen=" + std::to_string(generation())); });
    on(3, [](Request&) { throw 42; });
    on(4, [](Request& r) {
      r.reply("answered");
      throw std::runtime_error("test_throw: thrown after answering");
    });
    on(5, [this](Request& r) {
      after(1, [] { throw std::runtime_error("test_throw: timer exception on purpose"); });
      r.reply("scheduled");
    });
    remote("test_throw.boom", [](lampyr::sdk::RemoteCall&) { throw std::runtime_error("remote boom"); });
  }
};
}  // namespace

LAMPYR_PLUGIN(Thrower, "test_throw", "1.0", 1)
