// Which web route registrations the host refuses (plugin.h "http_route"):
// admin paths and what lies under them, "/", malformed prefixes, methods
// other than GET/POST, and any route on a server without a webport.
#include "plugin/plugin_web.h"

#include <gtest/gtest.h>

namespace lampyr::plugin {
namespace {

TEST(PluginWebRoutes, AdminPathsAndWhatLiesUnderThemAreRefused) {
  PluginWeb web(nullptr, true);
  for (const char* p : {"/status", "/reload", "/stop", "/restart", "/metrics", "/upgrade", "/status/x", "/metrics/a/b"}) {
    Status st = web.CheckRoute("GET", p);
    EXPECT_FALSE(st.ok()) << p;
    EXPECT_NE(st.message().find("belongs to the admin API"), std::string::npos) << p << ": " << st.message();
  }
  // Same first letters, another segment: allowed.
  EXPECT_TRUE(web.CheckRoute("GET", "/statusboard").ok());
  EXPECT_TRUE(web.CheckRoute("POST", "/gm").ok());
  EXPECT_TRUE(web.CheckRoute("GET", "/pay/notify").ok());
}

TEST(PluginWebRoutes, MalformedPrefixesAndMethodsAreRefused) {
  PluginWeb web(nullptr, true);
  for (const char* p : {"", "/", "gm", "/gm/", "//gm", "/g m", "/gm?x", "/gm#x", "/g%20m", "/a//b"})
    EXPECT_FALSE(web.CheckRoute("GET", p).ok()) << "'" << p << "'";
  EXPECT_FALSE(web.CheckRoute("GET", "/" + std::string(300, 'a')).ok());
  for (const char* m : {"PUT", "DELETE", "HEAD", "get", ""}) EXPECT_FALSE(web.CheckRoute(m, "/gm").ok()) << m;
}

TEST(PluginWebRoutes, NoWebportNoRoutes) {
  PluginWeb web(nullptr, false);
  Status st = web.CheckRoute("GET", "/gm");
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "this server has no webport");
}

}  // namespace
}  // namespace lampyr::plugin
