// The SDK as a user outside this tree gets it: `cmake --install` the sdk
// component into a temporary prefix, configure and build a plugin project
// with find_package(LampyrSDK) + lampyr_add_plugin, then check what came out:
// one exported symbol, no STB_GNU_UNIQUE, a descriptor this host accepts, and
// the SDK's error path across the real C boundary.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"
#include "lampyr_client.h"
#include "lampyr/plugin.h"

namespace lampyr {
namespace {

using test::Process;
using test::TempDir;

std::string BuildDir() {
  std::string bin = LAMPYR_BIN_DIR;
  return bin.substr(0, bin.rfind('/'));
}

// A value from the build's CMakeCache.txt ("NAME:TYPE=value").
std::string CacheValue(const std::string& name) {
  std::istringstream in(test::ReadFile(BuildDir() + "/CMakeCache.txt"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + ":", 0) == 0) return line.substr(line.find('=') + 1);
  }
  return "";
}

// Runs argv to completion; output (stdout+stderr) in *out. Returns the exit code or -1.
int RunTool(const std::vector<std::string>& argv, const std::string& log, std::string* out) {
  auto p = Process::Start(argv, {}, log);
  if (!p) return -1;
  int st = p->Wait(240000);
  *out = test::ReadFile(log);
  return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char* kPluginSource = R"(
#include <lampyr/plugin.hpp>

// Would be STB_GNU_UNIQUE without -fno-gnu-unique, and exported without the
// version script: lampyr_add_plugin must neutralise both.
struct Shared { static inline int hits = 0; };
__attribute__((visibility("default"))) int hello_exported_by_mistake(int x) { return x + ++Shared::hits; }

std::string Prefix(const lampyr::sdk::Plugin& p);  // extra.cpp: a plugin may have many sources

class Hello : public lampyr::sdk::Plugin {
  void init() override {
    on(uint32_t(config_int("command", 9)), [this](lampyr::sdk::Request& r) { r.reply(Prefix(*this) + r.body()); });
  }
};
LAMPYR_PLUGIN(Hello, "hello", "0.1-outoftree", 3)
)";

const char* kExtraSource = R"(
#include <lampyr/plugin.hpp>
std::string Prefix(const lampyr::sdk::Plugin& p) { return p.config_string("greeting", "hello") + " "; }
)";

const char* kProject = R"(
cmake_minimum_required(VERSION 3.20)
project(hello_plugin LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 20)
find_package(LampyrSDK ${WANT} REQUIRED)
lampyr_add_plugin(hello SOURCES hello.cpp extra.cpp)
)";

class SdkPackageTest : public ::testing::Test {
 protected:
  // Installs the SDK once per test (a few files: cheap) and writes the project.
  void SetUp() override {
    cmake_ = CacheValue("CMAKE_COMMAND");
    ASSERT_FALSE(cmake_.empty()) << "no CMAKE_COMMAND in " << BuildDir() << "/CMakeCache.txt";
    prefix_ = dir_.path() + "/prefix";
    std::string out;
    ASSERT_EQ(RunTool({cmake_, "--install", BuildDir(), "--component", "sdk", "--prefix", prefix_}, dir_.path() + "/install.log",
                  &out),
              0)
        << out;
    src_ = dir_.path() + "/src";
    ASSERT_EQ(RunTool({"/bin/mkdir", "-p", src_}, dir_.path() + "/mkdir.log", &out), 0);
    test::WriteFile(src_ + "/CMakeLists.txt", kProject);
    test::WriteFile(src_ + "/hello.cpp", kPluginSource);
    test::WriteFile(src_ + "/extra.cpp", kExtraSource);
  }

  // Configures (asking for SDK version `want`) and builds; returns the exit code.
  int Build(const std::string& want, std::string* out) {
    std::string build = dir_.path() + "/build-" + want;
    std::vector<std::string> conf = {cmake_, "-S", src_, "-B", build, "-DCMAKE_PREFIX_PATH=" + prefix_,
                                     "-DWANT=" + want, "-DCMAKE_BUILD_TYPE=Release"};
    std::string cxx = CacheValue("CMAKE_CXX_COMPILER");
    if (!cxx.empty()) conf.push_back("-DCMAKE_CXX_COMPILER=" + cxx);
    int rc = RunTool(conf, dir_.path() + "/configure-" + want + ".log", out);
    if (rc != 0) return rc;
    std::string more;
    rc = RunTool({cmake_, "--build", build}, dir_.path() + "/build-" + want + ".log", &more);
    *out += more;
    library_ = build + "/libhello.so";
    return rc;
  }

  TempDir dir_;
  std::string cmake_, prefix_, src_, library_;
};

TEST_F(SdkPackageTest, InstallsHeadersAndPackageFiles) {
  for (const char* f : {"include/lampyr/plugin.h", "include/lampyr/plugin.hpp", "lib/cmake/LampyrSDK/LampyrSDKConfig.cmake",
                        "lib/cmake/LampyrSDK/LampyrSDKConfigVersion.cmake", "lib/cmake/LampyrSDK/LampyrPlugin.cmake",
                        "lib/cmake/LampyrSDK/lampyr_plugin.map", "lib/cmake/LampyrSDK/lampyr_check_plugin.cmake"}) {
    std::ifstream in(prefix_ + "/" + f);
    EXPECT_TRUE(in.good()) << f << " not installed under " << prefix_;
  }
}

TEST_F(SdkPackageTest, OutOfTreePluginExportsOnlyTheEntryAndLoads) {
  std::string out;
  ASSERT_EQ(Build("1.0", &out), 0) << out;

  // Exactly one defined dynamic symbol, and it is the entry; nothing UNIQUE.
  std::string syms;
  ASSERT_EQ(RunTool({"/usr/bin/readelf", "--dyn-syms", "-W", library_}, dir_.path() + "/readelf.log", &syms), 0) << syms;
  std::vector<std::string> defined;
  std::istringstream in(syms);
  std::string line;
  // "   Num:    Value          Size Type    Bind   Vis      Ndx Name"
  // (no std::regex: g++ 12 warns inside it under -fsanitize, and -Werror)
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string num, value, size, type, bind, vis, ndx, name;
    if (!(f >> num >> value >> size >> type >> bind >> vis >> ndx) || num.empty() || num.back() != ':') continue;
    f >> name;
    EXPECT_NE(bind, "UNIQUE") << line;
    if (ndx != "UND" && (bind == "GLOBAL" || bind == "WEAK") && !name.empty()) defined.push_back(name);
  }
  EXPECT_EQ(defined, std::vector<std::string>{"lampyr_plugin_entry"}) << syms;

  // The host's side of the contract: entry, descriptor, signature.
  void* h = dlopen(library_.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  auto entry = reinterpret_cast<lampyr_plugin_entry_fn>(dlsym(h, LAMPYR_PLUGIN_ENTRY_SYMBOL));
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(dlsym(h, "hello_exported_by_mistake"), nullptr);
  const lampyr_plugin_desc* d = entry();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->size, sizeof(lampyr_plugin_desc));
  EXPECT_EQ(d->abi_major, LAMPYR_ABI_MAJOR);
  EXPECT_EQ(d->abi_minor, LAMPYR_ABI_MINOR);
  EXPECT_STREQ(d->sdk_signature, LAMPYR_SDK_SIGNATURE);
  EXPECT_STREQ(d->name, "hello");
  EXPECT_STREQ(d->version, "0.1-outoftree");
  EXPECT_EQ(d->state_schema, 3u);
  ASSERT_NE(d->init, nullptr);
  ASSERT_NE(d->destroy, nullptr);

  // A host that offers no functions at all: the plugin's on() throws inside
  // the plugin, and init reports it as an error with the text, across C.
  lampyr_init_args args{};
  args.size = sizeof args;
  args.get_api = [](const char*) -> void* { return nullptr; };
  args.server_name = "test";
  args.config_json = "{\"command\": 12}";
  args.config_len = std::strlen(args.config_json);
  args.generation = 1;
  void* ctx = reinterpret_cast<void*>(0x1);
  char err[256] = "";
  EXPECT_EQ(d->init(&args, &ctx, err, sizeof err), LAMPYR_ERR);
  EXPECT_EQ(ctx, nullptr);
  EXPECT_STREQ(err, "this host has no 'register_command' function");
  EXPECT_EQ(dlclose(h), 0);
  // Unloadable: nothing pins it (no UNIQUE symbol, no thread_local).
  EXPECT_EQ(dlopen(library_.c_str(), RTLD_NOW | RTLD_NOLOAD), nullptr);
}

TEST_F(SdkPackageTest, OutOfTreePluginServesClientsInTheHost) {
  std::string out;
  ASSERT_EQ(Build("1.0", &out), 0) << out;
  uint16_t port = test::FreePort();
  std::string conf = dir_.path() + "/hello.json";
  test::WriteFile(conf, "{\"servers\": {\"game\": {\"netport\": " + std::to_string(port) +
                            ", \"plugins\": [\"hello\"]}},\n \"plugins\": {\"hello\": {\"path\": \"" + library_ +
                            "\", \"config\": {\"command\": 12}}}}");
  auto server = test::StartServer(conf, "game", port);
  ASSERT_NE(server, nullptr) << test::ReadFile(dir_.path() + "/game.out");
  client::Client c;
  ASSERT_TRUE(c.Connect("127.0.0.1", port).ok());
  client::Frame f;
  ASSERT_TRUE(c.Call(12, "world", &f, 10000).ok());
  EXPECT_EQ(f.command, 12u);
  EXPECT_EQ(f.body, "hello world");
}

// lampyr_add_plugin's post-build check: a plugin the host's gate would
// refuse fails the build instead, and leaves no library behind.
TEST_F(SdkPackageTest, PluginWithThreadLocalDestructorFailsTheBuild) {
  test::WriteFile(src_ + "/extra.cpp", std::string(kExtraSource) + R"(
std::string& Scratch() { thread_local std::string s; return s; }
int UseScratch() { Scratch() = "x"; return int(Scratch().size()); }
)");
  std::string out;
  EXPECT_NE(Build("1.0", &out), 0) << out;
  EXPECT_NE(out.find("would be refused by the"), std::string::npos) << out;
  EXPECT_NE(out.find("__cxa_thread_atexit"), std::string::npos) << out;
  std::ifstream lib(library_);
  EXPECT_FALSE(lib.good()) << library_ << " left behind";
}

TEST_F(SdkPackageTest, AnotherAbiMajorIsNotFound) {
  std::string out;
  EXPECT_NE(Build("2.0", &out), 0) << out;
  EXPECT_NE(out.find("LampyrSDK"), std::string::npos) << out;
}

}  // namespace
}  // namespace lampyr
