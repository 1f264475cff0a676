// The room example plugin in a real host through lampyr/testing.hpp: players
// join and talk, the plugin is hot reloaded, and the room state (checksum of
// rooms, members, message counts) is the same before and after.
#include <lampyr/testing.hpp>

#include <string>

namespace {

class RoomTest : public lampyr::testing::PluginTest {};

std::string Field(const std::string& stats, const std::string& key) {
  const size_t at = stats.find(key + "=");
  if (at == std::string::npos) return "";
  const size_t start = at + key.size() + 1;
  return stats.substr(start, stats.find(' ', start) - start);
}

TEST_F(RoomTest, StateSurvivesHotReloadWithPlayersConnected) {
  lampyr::testing::Client alice = host().Connect();
  lampyr::testing::Client bob = host().Connect();
  alice.Call(100, "lobby");
  bob.Call(100, "lobby");
  EXPECT_EQ(alice.Call(102, "hi"), "ok 1");
  const std::string before = alice.Call(104);
  ASSERT_EQ(Field(before, "members"), "2") << before;

  const lampyr::testing::HttpResult r = host().Reload();
  ASSERT_TRUE(r.ok) << r.body << "\n" << host().Output();

  const std::string after = bob.Call(104);
  EXPECT_EQ(Field(after, "checksum"), Field(before, "checksum")) << before << "\n" << after;
  EXPECT_EQ(Field(after, "generation"), "2") << after;
  EXPECT_EQ(bob.Call(102, "still here"), "ok 2");
}

TEST_F(RoomTest, ErrorReplyThrows) {
  lampyr::testing::Client c = host().Connect();
  EXPECT_THROW(c.Call(102, "not in a room"), std::runtime_error);
  EXPECT_NE(c.Call(100, "lobby").find("lobby"), std::string::npos);  // the session stays usable
}

}  // namespace
