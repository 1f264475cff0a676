// Firefly's per-server "cpu" key (servers.<name>.cpu): the server process is
// pinned to that one CPU with sched_setaffinity, or it refuses to start. A
// pin that silently does nothing would leave an operator believing two hot
// servers are kept apart when they are not.
#pragma once

#include <string>

#include "core/status.h"

namespace lampyr {

// The CPUs this process may run on now (its affinity mask, which already
// reflects cgroup cpusets and taskset), as a list like "0-3,6".
std::string AllowedCpuList();

// True when `cpu` is in this process's affinity mask.
bool CpuAllowed(int cpu);

// Pins the calling process (every thread created after this) to `cpu`.
// cpu < 0: nothing to do. The error says which CPUs are allowed.
Status PinToCpu(int cpu);

}  // namespace lampyr
