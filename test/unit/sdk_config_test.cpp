// The SDK's small JSON reader for a plugin's config (plugin.hpp,
// lampyr::sdk::json): what Plugin::config_int/config_string/config_strings
// return for the config text the host hands over (jsoncpp's compact output,
// but any valid JSON object must work), and that malformed text yields
// "absent" instead of a crash or a wrong value.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lampyr/plugin.hpp"

namespace lampyr::sdk {
namespace {

std::string Raw(std::string_view doc, std::string_view key) {
  auto v = json::find(doc, key);
  return v ? std::string(*v) : "<absent>";
}

TEST(SdkConfig, FindsTopLevelMembersAndSkipsNestedOnes) {
  const char* doc = R"( { "nested": {"command": 5, "list": [1, {"command": 6}], "s": "}\"]"},
                          "command" : 12 , "name": "lobby", "nodes": ["game1", "game2"], "on": true } )";
  EXPECT_EQ(Raw(doc, "command"), "12");
  EXPECT_EQ(Raw(doc, "name"), "\"lobby\"");
  EXPECT_EQ(Raw(doc, "nodes"), "[\"game1\", \"game2\"]");
  EXPECT_EQ(Raw(doc, "on"), "true");
  EXPECT_EQ(Raw(doc, "nested").substr(0, 12), "{\"command\": ");
  EXPECT_EQ(Raw(doc, "list"), "<absent>");  // only top level
  EXPECT_EQ(Raw(doc, "missing"), "<absent>");
}

TEST(SdkConfig, Integers) {
  EXPECT_EQ(json::to_int("0"), 0);
  EXPECT_EQ(json::to_int("-42"), -42);
  EXPECT_EQ(json::to_int("9223372036854775807"), INT64_MAX);
  EXPECT_EQ(json::to_int("9223372036854775808"), std::nullopt);  // overflow
  EXPECT_EQ(json::to_int("1.5"), std::nullopt);
  EXPECT_EQ(json::to_int("\"7\""), std::nullopt);
  EXPECT_EQ(json::to_int("-"), std::nullopt);
  EXPECT_EQ(json::to_int(""), std::nullopt);
}

TEST(SdkConfig, Strings) {
  EXPECT_EQ(json::decode_string(R"("plain")"), "plain");
  EXPECT_EQ(json::decode_string(R"("a\"b\\c\/d\n\t")"), "a\"b\\c/d\n\t");
  EXPECT_EQ(json::decode_string(R"("\u00e9\u20ac")"), "\xc3\xa9\xe2\x82\xac");  // é €
  EXPECT_EQ(json::decode_string(R"("\u00e")"), std::nullopt);                   // short escape
  EXPECT_EQ(json::decode_string(R"("trailing\")"), std::nullopt);
  EXPECT_EQ(json::decode_string("\"open"), std::nullopt);
  EXPECT_EQ(json::decode_string("42"), std::nullopt);
}

TEST(SdkConfig, StringLists) {
  EXPECT_EQ(json::to_string_list(R"([])"), std::vector<std::string>{});
  EXPECT_EQ(json::to_string_list(R"([ "a" , "b\"c" ])"), (std::vector<std::string>{"a", "b\"c"}));
  EXPECT_EQ(json::to_string_list(R"(["a", 1])"), std::nullopt);
  EXPECT_EQ(json::to_string_list(R"(["a")"), std::nullopt);
  EXPECT_EQ(json::to_string_list(R"("a")"), std::nullopt);
}

TEST(SdkConfig, MalformedDocumentsAreAbsentNotCrashes) {
  for (const char* doc : {"", "   ", "[]", "{", "{\"a\"", "{\"a\":", "{\"a\": [1, 2}", "{\"a\": \"x",
                          "{\"a\" 1}", "{1: 2}", "{\"a\": {\"b\": [}}"}) {
    EXPECT_EQ(Raw(doc, "a"), "<absent>") << doc;
    EXPECT_EQ(Raw(doc, "b"), "<absent>") << doc;
  }
  // The first member is found even when a later one is broken: values are
  // read lazily, left to right.
  EXPECT_EQ(Raw("{\"a\": 1, \"b\": [", "a"), "1");
  EXPECT_EQ(Raw("{\"a\": 1,", "a"), "1");
}

}  // namespace
}  // namespace lampyr::sdk
