// The small pieces that bound what hostile input can do to the admin API and
// the config reader: JSON limits, the token throttle, the log throttle, the
// config file reader and the admin_* config keys. Time is passed in, so
// nothing here depends on the machine's speed.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "admin/auth_throttle.h"
#include "core/config.h"
#include "core/json_text.h"
#include "core/log_throttle.h"

namespace lampyr {
namespace {

constexpr int64_t kSecond = 1000000;

TEST(JsonText, DepthCountsBracketsOutsideStrings) {
  EXPECT_EQ(JsonNestingDepth("", 100), 0u);
  EXPECT_EQ(JsonNestingDepth("{\"a\": [1, {\"b\": []}]}", 100), 4u);
  EXPECT_EQ(JsonNestingDepth("\"[[[[\"", 100), 0u);
  EXPECT_EQ(JsonNestingDepth("[\"\\\"[[[\"]", 100), 1u);  // an escaped quote does not end the string
  EXPECT_EQ(JsonNestingDepth("]]]][", 100), 1u);          // stray closers do not go negative
  EXPECT_EQ(JsonNestingDepth(std::string(100000, '['), 32), 33u);  // stops right past the limit
}

TEST(JsonText, RefusesDeepOrLargeTextWithAClearError) {
  Json::Value v;
  JsonLimits l;
  l.max_depth = 32;
  EXPECT_TRUE(ParseJsonText(std::string(32, '[') + std::string(32, ']'), &v, l).ok());
  Status st = ParseJsonText(std::string(33, '[') + std::string(33, ']'), &v, l);
  EXPECT_EQ(st.message(), "nested deeper than 32 levels");
  st = ParseJsonText(std::string(100000, '['), &v, l);
  EXPECT_EQ(st.message(), "nested deeper than 32 levels");
  l.max_bytes = 4;
  EXPECT_EQ(ParseJsonText("[1,2]", &v, l).message(), "larger than 4 bytes");
}

TEST(JsonText, NeverThrowsWhateverTheText) {
  Json::Value v;
  // A comment cannot hide nesting from the scan: comments are refused.
  EXPECT_FALSE(ParseJsonText("// \"\n" + std::string(5000, '['), &v).ok());
  EXPECT_FALSE(ParseJsonText("/* \" */" + std::string(5000, '{'), &v).ok());
  EXPECT_FALSE(ParseJsonText("{\"a\":", &v).ok());
  JsonLimits strict;
  strict.strict = true;
  EXPECT_FALSE(ParseJsonText("{\"a\":1,\"a\":2}", &v, strict).ok());
  EXPECT_FALSE(ParseJsonText("{} extra", &v, strict).ok());
  ASSERT_TRUE(ParseJsonText("{\"a\": [1]}", &v, strict).ok());
  EXPECT_EQ(v["a"][0].asInt(), 1);
}

TEST(AuthThrottle, LocksAfterTheFreeFailuresAndDoublesTheWindow) {
  AuthThrottle t(AuthThrottle::Options{});
  int64_t now = 100 * kSecond;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(t.Failed("10.0.0.1", now), 0) << i;
  EXPECT_EQ(t.LockedFor("10.0.0.1", now), 0);
  EXPECT_EQ(t.Failed("10.0.0.1", now), 1);  // the fifth
  EXPECT_EQ(t.LockedFor("10.0.0.1", now), 1);
  EXPECT_EQ(t.LockedFor("10.0.0.2", now), 0);  // per address
  now += kSecond;
  EXPECT_EQ(t.LockedFor("10.0.0.1", now), 0);
  EXPECT_EQ(t.Failed("10.0.0.1", now), 2);
  now += 2 * kSecond;
  EXPECT_EQ(t.Failed("10.0.0.1", now), 4);
  for (int i = 0; i < 20; ++i) t.Failed("10.0.0.1", now);
  EXPECT_EQ(t.LockedFor("10.0.0.1", now), 300);  // capped
  t.Succeeded("10.0.0.1");
  EXPECT_EQ(t.LockedFor("10.0.0.1", now), 0);
  EXPECT_EQ(t.failures("10.0.0.1"), 0u);
}

TEST(AuthThrottle, OldFailuresAreForgiven) {
  AuthThrottle t(AuthThrottle::Options{});
  for (int i = 0; i < 4; ++i) t.Failed("a", 0);
  EXPECT_EQ(t.Failed("a", 601 * kSecond), 0);  // a typo ten minutes later is free again
  EXPECT_EQ(t.failures("a"), 1u);
}

TEST(AuthThrottle, TheTableIsBounded) {
  AuthThrottle::Options o;
  o.max_addresses = 8;
  AuthThrottle t(o);
  for (int i = 0; i < 1000; ++i) t.Failed("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), i);
  EXPECT_LE(t.size(), 8u);
  // The newest addresses are the ones kept.
  EXPECT_EQ(t.failures("10.0.3.231"), 1u);
}

TEST(LogThrottle, OneLinePerKeyPerIntervalWithTheCountLeftOut) {
  LogThrottle t(10, 4);
  uint64_t left = 99;
  EXPECT_TRUE(t.Allow("a", 0, &left));
  EXPECT_EQ(left, 0u);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(t.Allow("a", i * kSecond, &left));
  EXPECT_TRUE(t.Allow("b", kSecond, &left));  // other keys are independent
  EXPECT_TRUE(t.Allow("a", 10 * kSecond, &left));
  EXPECT_EQ(left, 5u);
  EXPECT_FALSE(t.Allow("a", 11 * kSecond, &left));
}

TEST(LogThrottle, ManyKeysShareOneLine) {
  LogThrottle t(10, 4);
  int written = 0;
  for (int i = 0; i < 1000; ++i) written += t.Allow("k" + std::to_string(i), kSecond, nullptr) ? 1 : 0;
  EXPECT_LE(written, 5);  // four keys and the shared overflow slot
}

class ConfigFileRead : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lampyr_conf_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)!system(("rm -rf " + dir_).c_str()); }
  std::string dir_;
};

TEST_F(ConfigFileRead, ReadsARegularFile) {
  const std::string f = dir_ + "/c.json";
  std::ofstream(f) << "{\"servers\": {}}";
  std::string text;
  ASSERT_TRUE(ReadConfigFile(f, &text).ok());
  EXPECT_EQ(text, "{\"servers\": {}}");
  // Through a symlink too.
  ASSERT_EQ(symlink(f.c_str(), (dir_ + "/link.json").c_str()), 0);
  ASSERT_TRUE(ReadConfigFile(dir_ + "/link.json", &text).ok());
}

TEST_F(ConfigFileRead, RefusesWhatIsNotAFile) {
  std::string text;
  EXPECT_EQ(ReadConfigFile("/dev/zero", &text).message().rfind("not a regular file", 0), 0u);
  ASSERT_EQ(mkfifo((dir_ + "/fifo").c_str(), 0600), 0);
  EXPECT_EQ(ReadConfigFile(dir_ + "/fifo", &text).message().rfind("not a regular file", 0), 0u);
  EXPECT_EQ(ReadConfigFile(dir_, &text).message(), "is a directory, not a regular file");
  EXPECT_EQ(ReadConfigFile(dir_ + "/missing", &text).message(), "cannot open: No such file or directory");
}

TEST_F(ConfigFileRead, RefusesAFileOverTheLimit) {
  const std::string f = dir_ + "/big.json";
  std::ofstream(f).close();
  ASSERT_EQ(truncate(f.c_str(), kMaxConfigBytes + 1), 0);
  std::string text;
  EXPECT_EQ(ReadConfigFile(f, &text).message().rfind("larger than 4 MiB", 0), 0u);
  ASSERT_EQ(truncate(f.c_str(), kMaxConfigBytes), 0);
  EXPECT_TRUE(ReadConfigFile(f, &text).ok());
  EXPECT_EQ(text.size(), kMaxConfigBytes);
}

TEST_F(ConfigFileRead, LoadConfigNamesTheFile) {
  Config c;
  std::vector<ConfigIssue> issues;
  Status st = LoadConfig("/dev/zero", &c, &issues, false);
  EXPECT_EQ(st.message().rfind("cannot read config /dev/zero: not a regular file", 0), 0u) << st.message();
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].path, "/dev/zero");
}

Config ParseOk(const std::string& text) {
  Config c;
  std::vector<ConfigIssue> issues;
  Status st = ParseConfig(text, "/", &c, &issues, false, false);
  EXPECT_TRUE(st.ok()) << st.message() << (issues.empty() ? "" : issues[0].ToString());
  for (const auto& i : issues) EXPECT_TRUE(i.warning) << i.ToString();
  return c;
}

TEST(AdminConfig, AdminHostDefaultsToLoopbackNotToTheServersHost) {
  Config c = ParseOk(R"({"servers": {"net": {"host": "0.0.0.0", "netport": 1, "webport": 2}}})");
  EXPECT_EQ(c.master.admin_host, "127.0.0.1");
  EXPECT_EQ(c.servers["net"].admin_host, "127.0.0.1");
  EXPECT_EQ(c.master.admin_max_connections, 64u);
  EXPECT_EQ(c.master.admin_request_timeout_s, 10u);
  c = ParseOk(R"({"master": {"admin_host": "10.0.0.5", "admin_max_connections": 8, "admin_request_timeout_s": 3},
                  "servers": {"a": {"webport": 2}, "b": {"admin_host": "127.0.0.2", "webport": 3}}})");
  EXPECT_EQ(c.servers["a"].admin_host, "10.0.0.5");
  EXPECT_EQ(c.servers["b"].admin_host, "127.0.0.2");
  EXPECT_EQ(c.master.admin_max_connections, 8u);
  EXPECT_EQ(c.master.admin_request_timeout_s, 3u);
}

TEST(AdminConfig, BadValuesNameTheirPath) {
  Config c;
  std::vector<ConfigIssue> issues;
  EXPECT_FALSE(ParseConfig(R"({"master": {"admin_max_connections": 0, "admin_request_timeout_s": 0,
                                          "admin_host": ""}, "servers": {"a": {"admin_host": 5}}})",
                           "/", &c, &issues, false, false)
                   .ok());
  std::string all;
  for (const auto& i : issues) all += i.ToString() + "\n";
  EXPECT_NE(all.find("master.admin_max_connections: expected integer 1..100000"), std::string::npos) << all;
  EXPECT_NE(all.find("master.admin_request_timeout_s: expected integer 1..3600"), std::string::npos) << all;
  EXPECT_NE(all.find("master.admin_host: must not be empty"), std::string::npos) << all;
  EXPECT_NE(all.find("servers.a.admin_host: expected string"), std::string::npos) << all;
}

TEST(AdminConfig, WebportClashesAreCheckedOnTheAdminHost) {
  // Client port on every address and admin on loopback, same number: a clash.
  Config c;
  std::vector<ConfigIssue> issues;
  EXPECT_FALSE(ParseConfig(R"({"servers": {"a": {"host": "0.0.0.0", "netport": 9, "webport": 9}}})", "/", &c,
                           &issues, false, false)
                   .ok());
  // Two servers on one machine, each with its own admin address: no clash.
  ParseOk(R"({"servers": {"a": {"admin_host": "127.0.0.2", "webport": 9},
                          "b": {"admin_host": "127.0.0.3", "webport": 9}}})");
}

}  // namespace
}  // namespace lampyr
