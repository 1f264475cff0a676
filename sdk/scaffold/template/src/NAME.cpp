// @NAME@: the gameplay plugin. The host does networking, sessions, reloads
// and persistence; this file is only gameplay.
//   command 1  "greet": replies "<greeting> <body>" (greeting from the config)
//   command 2  "score": adds the body (a number) to the score, replies the total
// The score survives a hot reload: save_state() hands it to the next
// generation, restore_state() takes it back.
#include <lampyr/plugin.hpp>

#include <cstdlib>
#include <string>

namespace {

constexpr uint32_t kGreet = 1;
constexpr uint32_t kScore = 2;

class Game : public lampyr::sdk::Plugin {
  void init() override {
    greeting_ = config_string("greeting", "hello");
    on(kGreet, [this](lampyr::sdk::Request& r) { r.reply(greeting_ + " " + std::string(r.body())); });
    on(kScore, [this](lampyr::sdk::Request& r) {
      score_ += std::strtoll(std::string(r.body()).c_str(), nullptr, 10);
      r.reply(std::to_string(score_));
    });
  }

  // The state format is schema 1 (LAMPYR_PLUGIN below): bump it when the
  // format changes, and keep reading the old one in restore_state.
  std::string save_state() override { return std::to_string(score_); }
  bool restore_state(std::string_view bytes, uint32_t from_schema) override {
    if (from_schema != 1) return false;  // unknown format: refuse, the old generation keeps serving
    score_ = std::strtoll(std::string(bytes).c_str(), nullptr, 10);
    return true;
  }

  std::string greeting_;
  long long score_ = 0;
};

}  // namespace

LAMPYR_PLUGIN(Game, "@NAME@", "0.1.0", 1)
