// The admin API of one server process (servers.<name>.webport):
//   GET  /status   {"servers":[ServerStatusJson(server)]}
//   POST /reload   {"plugin"?: P, "server"?: S} -> {"ok","results":[ServerReload result]}, 200 or 409
//   GET  /metrics  Prometheus text of this process
// The pieces are exposed so the master (and the control channel methods
// "lampyr.status" / "lampyr.reload") build the same shapes.
#pragma once

#include <json/value.h>

#include <functional>
#include <string>

#include "core/status.h"

namespace lampyr {

class AdminHttp;
class Server;

void InstallServerAdmin(AdminHttp* http, Server* server);

// One element of /status "servers": {"name","pid","state","restarts",
// "uptime_s","sessions","plugins","links"} for this process.
Json::Value ServerStatusJson(Server* server);

// Reloads `plugin` ("" = all of the server's plugins) and reports one
// element of /reload "results": {"server","ok","error","plugins":[...]}.
void ServerReload(Server* server, const std::string& plugin, std::function<void(Json::Value result)> done);

// Checks a /reload body ({"plugin"?: string, "server"?: string}, nothing
// else). On success fills `plugin`/`server` ("" when absent).
Status ParseReloadBody(const Json::Value& body, std::string* plugin, std::string* server);

}  // namespace lampyr
