// servers.<name>.cpu (Firefly's key) is applied with sched_setaffinity or the
// server refuses to start: never accepted and ignored.
#include <sched.h>

#include <fstream>

#include "plugin_server.h"

namespace lampyr::test {
namespace {

class ServerCpuTest : public PluginServerTest {};

// The kernel's view of the process, not the server's own log line.
std::string CpusAllowed(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Cpus_allowed_list:", 0) == 0) return line.substr(line.find_first_not_of(" \t", 18));
  return "";
}

int LastAllowedCpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  int last = 0;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) last = c;
  return last;
}

TEST_F(ServerCpuTest, ServerIsPinnedToItsCpu) {
  const int cpu = LastAllowedCpu();
  Configure({{"echo", "echo", ""}}, "", ", \"cpu\": " + std::to_string(cpu));
  ASSERT_TRUE(Launch()) << Output();
  EXPECT_EQ(CpusAllowed(server_->pid()), std::to_string(cpu));
  EXPECT_NE(Log().find("pinned to CPU " + std::to_string(cpu)), std::string::npos) << Log();
}

TEST_F(ServerCpuTest, ACpuThisMachineLacksIsRefusedAtStart) {
  Configure({{"echo", "echo", ""}}, "", ", \"cpu\": 4095");
  std::string out = LaunchRefused();
  EXPECT_NE((out + Log()).find("servers.game.cpu: CPU 4095 is not available to this process (allowed: "),
            std::string::npos)
      << out << Log();
}

}  // namespace
}  // namespace lampyr::test
