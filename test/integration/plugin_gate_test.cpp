// The plugin gate (plugin/elf_gate.h) on real files: the SDK's builds pass,
// each deliberately bad build is refused for its own reason, and damaged
// files are refused without reading out of bounds.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "harness.h"
#include "plugin/elf_gate.h"

namespace lampyr::test {
namespace {

const std::string kEntry = "lampyr_plugin_entry";

std::vector<unsigned char> Bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(PluginGate, SdkBuildsPass) {
  for (const char* name : {"echo", "room", "room_v2", "gate_router", "test_drain", "account", "test_work"}) {
    Status s = plugin::CheckPluginFile(PluginPath(name), kEntry);
    EXPECT_TRUE(s.ok()) << name << ": " << s.message();
  }
}

TEST(PluginGate, EachBadBuildIsRefusedForItsReason) {
  struct Case {
    const char* plugin;
    const char* reason;
  };
  for (const Case& c : {Case{"test_unique", "STB_GNU_UNIQUE"}, Case{"test_tls", "__cxa_thread_atexit"},
                        Case{"test_no_entry", "does not export the entry symbol"},
                        Case{"test_thread", "plugins may not start threads"}}) {
    Status s = plugin::CheckPluginFile(PluginPath(c.plugin), kEntry);
    ASSERT_FALSE(s.ok()) << c.plugin;
    EXPECT_NE(s.message().find(c.reason), std::string::npos) << c.plugin << ": " << s.message();
  }
}

TEST(PluginGate, LibraryWithAPublicInterfaceIsRefused) {
  // Any ordinary shared library exports its API: not a plugin.
  Status s = plugin::CheckPluginFile("/usr/lib/x86_64-linux-gnu/libjsoncpp.so", kEntry);
  ASSERT_FALSE(s.ok());
}

TEST(PluginGate, DamagedFilesAreRefused) {
  EXPECT_FALSE(plugin::CheckPluginFile("/nonexistent/lib.so", kEntry).ok());
  EXPECT_EQ(plugin::CheckPluginImage(reinterpret_cast<const unsigned char*>("hello"), 5, kEntry).message(),
            "not an ELF file");
  std::vector<unsigned char> good = Bytes(PluginPath("echo"));
  ASSERT_GT(good.size(), 4096u);
  // Cut anywhere: never accepted (section headers sit at the end), never a crash.
  for (size_t cut : {size_t{64}, size_t{1000}, good.size() / 2, good.size() - 1}) {
    EXPECT_FALSE(plugin::CheckPluginImage(good.data(), cut, kEntry).ok()) << cut;
  }
  // Section header offset pointing past the end.
  std::vector<unsigned char> bad = good;
  for (int i = 0; i < 8; ++i) bad[0x28 + i] = 0xff;  // e_shoff
  EXPECT_FALSE(plugin::CheckPluginImage(bad.data(), bad.size(), kEntry).ok());
}

}  // namespace
}  // namespace lampyr::test
