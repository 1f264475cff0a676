// One real server ("game") from a throwaway config, for the plugin tests:
// deploys built plugins next to the config, starts `lampyr --server game`,
// and talks to it through its client port and admin API.
#pragma once

#include <gtest/gtest.h>
#include <json/json.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "admin/http_client.h"
#include "harness.h"
#include "lampyr_client.h"

namespace lampyr::test {

class PluginServerTest : public ::testing::Test {
 protected:
  struct Plugin {
    std::string name;   // plugins.<name>
    std::string built;  // lib<built>.so of the build tree
    std::string extra;  // more keys of plugins.<name> (", \"config\": {...}")
  };

  // Writes the config (state dir `state_dir`, relative to the config) and
  // deploys every plugin; does not start anything.
  void Configure(const std::vector<Plugin>& plugins, const std::string& master_extra = "",
                 const std::string& server_extra = "") {
    netport_ = FreePort();
    webport_ = FreePort();
    std::string names, entries;
    for (const auto& p : plugins) {
      Deploy(p.built, p.name);
      names += std::string(names.empty() ? "" : ", ") + "\"" + p.name + "\"";
      entries += std::string(entries.empty() ? "" : ",\n") + "\"" + p.name + "\": {\"path\": \"deploy/lib" + p.name +
                 ".so\", \"drain_timeout_s\": 10" + p.extra + "}";
    }
    conf_ = dir_.path() + "/lampyr.json";
    WriteFile(conf_, "{\"master\": {\"admin_token\": \"tok\", \"insecure_dev\": true" + master_extra +
                         "},\n\"servers\": {\"game\": {\"netport\": " + std::to_string(netport_) +
                         ", \"webport\": " + std::to_string(webport_) + ", \"log\": \"game.log\", \"plugins\": [" +
                         names + "]" + server_extra + "}},\n\"plugins\": {" + entries + "}}\n");
  }

  // Starts the configured server; true once both ports accept.
  bool Launch(const std::vector<std::string>& env = {}) {
    server_ = Process::Start({LampyrBinary(), "--conf", conf_, "--server", "game"}, env, dir_.path() + "/game.out");
    if (!server_) return false;
    return WaitForPort("127.0.0.1", netport_, 10000) && WaitForPort("127.0.0.1", webport_, 10000);
  }

  // Starts a server that must refuse to start; returns its output.
  std::string LaunchRefused(const std::vector<std::string>& env = {}) {
    server_ = Process::Start({LampyrBinary(), "--conf", conf_, "--server", "game"}, env, dir_.path() + "/game.out");
    EXPECT_TRUE(server_);
    int st = server_ ? server_->Wait(10000) : -1;
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << "status " << st << "\n" << Output();
    return Output();
  }

  std::string Output() { return ReadFile(dir_.path() + "/game.out"); }
  std::string Log() { return ReadFile(dir_.path() + "/game.log"); }

  // Installs a build at the configured path the way a deploy must: copy to
  // a temporary name, then rename over the path.
  void Deploy(const std::string& built, const std::string& name) {
    std::filesystem::create_directories(dir_.path() + "/deploy");
    std::string to = dir_.path() + "/deploy/lib" + name + ".so";
    std::filesystem::copy_file(PluginPath(built), to + ".tmp", std::filesystem::copy_options::overwrite_existing);
    std::filesystem::rename(to + ".tmp", to);
  }

  static Json::Value ParseJson(const std::string& text) {
    Json::Value v;
    Json::CharReaderBuilder b;
    std::string errs;
    std::istringstream in(text);
    Json::parseFromStream(b, in, &v, &errs);
    return v;
  }

  // POST /reload; returns the HTTP status and fills *answer.
  int Reload(const std::string& plugin, Json::Value* answer) {
    HttpResponse r;
    Status st = HttpCall("127.0.0.1", webport_, "POST", "/reload", "{\"plugin\": \"" + plugin + "\"}",
                         {{"Authorization", "Bearer tok"}}, &r, 30000);
    EXPECT_TRUE(st.ok()) << st.message();
    *answer = ParseJson(r.body);
    return st.ok() ? r.status : -1;
  }

  std::string Get(const std::string& path) {
    HttpResponse r;
    Status st = HttpCall("127.0.0.1", webport_, "GET", path, "", {}, &r, 10000);
    return st.ok() && r.status == 200 ? r.body : "";
  }

  Json::Value PluginStatus(const std::string& plugin) {
    Json::Value v = ParseJson(Get("/status"));
    for (const auto& p : v["servers"][0]["plugins"])
      if (p["name"].asString() == plugin) return p;
    return Json::Value();
  }

  std::unique_ptr<client::Client> Connect() {
    auto c = std::make_unique<client::Client>();
    EXPECT_TRUE(c->Connect("127.0.0.1", netport_).ok());
    return c;
  }

  std::string CallBody(client::Client& c, uint32_t command, const std::string& body) {
    client::Frame f;
    Status st = c.Call(command, body, &f, 15000);
    EXPECT_TRUE(st.ok()) << st.message();
    return f.body;
  }

  // Polls `pred` every 20 ms for up to `timeout_ms`.
  static bool WaitFor(const std::function<bool()>& pred, int timeout_ms = 15000) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pred();
  }

  TempDir dir_;
  std::string conf_;
  uint16_t netport_ = 0, webport_ = 0;
  std::unique_ptr<Process> server_;
};

}  // namespace lampyr::test
