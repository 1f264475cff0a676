#include "server/control.h"

#include <json/reader.h>

#include <memory>
#include <string>

#include "admin/admin_http.h"
#include "admin/server_admin.h"
#include "channel/channel_hub.h"
#include "core/log.h"
#include "core/metrics.h"
#include "server/server.h"

namespace lampyr {

namespace {

using Respond = ChannelHub::Respond;

// Wraps `h` so that only the master may call it.
ChannelHub::MethodHandler MasterOnly(const char* method,
                                     std::function<void(std::string_view args, Respond respond)> h) {
  return [method, h = std::move(h)](const std::string& from, std::string_view args, Respond respond) {
    if (from != kControlNode) {
      LOG_WARN("control", "%s from node %s refused: control methods are for the master only", method, from.c_str());
      respond(Status::Error(std::string(method) + ": only the master may call control methods"), "");
      return;
    }
    h(args, std::move(respond));
  };
}

}  // namespace

void InstallControl(Server* server) {
  ChannelHub* hub = server->channels();
  if (!hub) return;

  hub->RegisterMethod("lampyr.status", MasterOnly("lampyr.status", [server](std::string_view, Respond respond) {
                        respond(Status::OK(), AdminJsonText(ServerStatusJson(server)));
                      }));

  hub->RegisterMethod("lampyr.reload", MasterOnly("lampyr.reload", [server](std::string_view args, Respond respond) {
                        Json::Value body;
                        if (!args.empty()) {
                          Json::CharReaderBuilder b;
                          std::unique_ptr<Json::CharReader> reader(b.newCharReader());
                          std::string errs;
                          if (!reader->parse(args.data(), args.data() + args.size(), &body, &errs)) {
                            respond(Status::Error("lampyr.reload: arguments are not JSON"), "");
                            return;
                          }
                        }
                        std::string plugin, target;
                        Status st = ParseReloadBody(body, &plugin, &target);
                        if (!st.ok()) {
                          respond(Status::Error("lampyr.reload: " + st.message()), "");
                          return;
                        }
                        LOG_INFO("control", "reload of %s requested by the master",
                                 plugin.empty() ? "all plugins" : plugin.c_str());
                        ServerReload(server, plugin, [respond](Json::Value result) {
                          respond(Status::OK(), AdminJsonText(result));
                        });
                      }));

  hub->RegisterMethod("lampyr.metrics", MasterOnly("lampyr.metrics", [](std::string_view, Respond respond) {
                        respond(Status::OK(), Metrics().RenderPrometheus());
                      }));

  // Answer first, stop on a later turn: the reply is on its way before the
  // loop quits. The master treats the process exit as the real confirmation.
  hub->RegisterMethod("lampyr.stop", MasterOnly("lampyr.stop", [server](std::string_view, Respond respond) {
                        LOG_INFO("control", "stop requested by the master");
                        respond(Status::OK(), "stopping");
                        server->loop()->RunAfter(0.01, [server] { server->Stop(); });
                      }));
}

}  // namespace lampyr
