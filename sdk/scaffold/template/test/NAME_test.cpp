// @NAME@ in a real Lampyr host: each test gets its own lampyr process with
// the plugin loaded (lampyr/testing.hpp) and talks to it over TCP.
#include <lampyr/testing.hpp>

namespace {

class GameTest : public lampyr::testing::PluginTest {};

TEST_F(GameTest, Greets) {
  lampyr::testing::Client player = host().Connect();
  EXPECT_EQ(player.Call(1, "player1"), "hello player1");
}

TEST_F(GameTest, ScoreSurvivesHotReload) {
  lampyr::testing::Client player = host().Connect();
  EXPECT_EQ(player.Call(2, "5"), "5");
  EXPECT_EQ(player.Call(2, "7"), "12");
  const lampyr::testing::HttpResult reload = host().Reload();
  ASSERT_TRUE(reload.ok) << reload.body;
  // The same connection, served by the new generation, with the old state.
  EXPECT_EQ(player.Call(2, "1"), "13");
}

}  // namespace
