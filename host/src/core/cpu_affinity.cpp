#include "core/cpu_affinity.h"

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace lampyr {
namespace {

// Dynamically sized: the config accepts CPU numbers up to 4095, beyond the
// fixed cpu_set_t's 1024.
constexpr int kMaxCpus = 4096;

struct CpuSet {
  cpu_set_t* set = CPU_ALLOC(kMaxCpus);
  size_t size = CPU_ALLOC_SIZE(kMaxCpus);
  CpuSet() {
    if (set) CPU_ZERO_S(size, set);
  }
  ~CpuSet() { CPU_FREE(set); }
  CpuSet(const CpuSet&) = delete;
  CpuSet& operator=(const CpuSet&) = delete;
};

bool ReadAllowed(CpuSet* s) { return s->set && sched_getaffinity(0, s->size, s->set) == 0; }

}  // namespace

std::string AllowedCpuList() {
  CpuSet s;
  if (!ReadAllowed(&s)) return "unknown";
  std::string out;
  for (int c = 0; c < kMaxCpus; ++c) {
    if (!CPU_ISSET_S(c, s.size, s.set)) continue;
    int end = c;
    while (end + 1 < kMaxCpus && CPU_ISSET_S(end + 1, s.size, s.set)) ++end;
    if (!out.empty()) out += ',';
    out += std::to_string(c);
    if (end > c) out += "-" + std::to_string(end);
    c = end;
  }
  return out.empty() ? "none" : out;
}

bool CpuAllowed(int cpu) {
  if (cpu < 0 || cpu >= kMaxCpus) return false;
  CpuSet s;
  return ReadAllowed(&s) && CPU_ISSET_S(cpu, s.size, s.set);
}

Status PinToCpu(int cpu) {
  if (cpu < 0) return Status::OK();
  if (cpu >= kMaxCpus) return Status::Error("CPU " + std::to_string(cpu) + " is out of range");
  if (!CpuAllowed(cpu))
    return Status::Error("CPU " + std::to_string(cpu) + " is not available to this process (allowed: " +
                         AllowedCpuList() + ")");
  CpuSet s;
  if (!s.set) return Status::Error("cannot allocate a CPU set");
  CPU_SET_S(cpu, s.size, s.set);
  if (sched_setaffinity(0, s.size, s.set) != 0)
    return Status::Error("sched_setaffinity to CPU " + std::to_string(cpu) + " failed: " + strerror(errno));
  return Status::OK();
}

}  // namespace lampyr
