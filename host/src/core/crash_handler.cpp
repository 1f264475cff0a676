#include "core/crash_handler.h"

#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/activity.h"
#include "core/log.h"

namespace lampyr::crash {

namespace {

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
constexpr size_t kSlots = 256;
constexpr int kMaxFrames = 64;

// One loaded generation's code. state: 0 free, 1 being written, 2 live.
struct Code {
  std::atomic<int> state{0};
  uintptr_t base = 0, start = 0, end = 0;
  uint64_t generation = 0;
  char plugin[72] = {};
};

Code g_code[kSlots];
std::atomic<int> g_record_dir{-1};
char g_process[80] = "lampyr";
alignas(16) char g_alt_stack[1 << 16];
std::atomic<bool> g_installed{false};

// --- async-signal-safe formatting into a fixed buffer ---
struct Line {
  char buf[1024];
  size_t len = 0;
  Line& Add(const char* s) {
    while (s && *s && len < sizeof buf) buf[len++] = *s++;
    return *this;
  }
  Line& Dec(uint64_t v) {
    char d[21];
    int n = 0;
    do d[n++] = static_cast<char>('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0 && len < sizeof buf) buf[len++] = d[--n];
    return *this;
  }
  Line& Dec2(unsigned v, int width) {  // zero-padded
    char d[8];
    for (int i = width - 1; i >= 0; --i, v /= 10) d[i] = static_cast<char>('0' + v % 10);
    for (int i = 0; i < width && len < sizeof buf; ++i) buf[len++] = d[i];
    return *this;
  }
  Line& Hex(uintptr_t v) {
    Add("0x");
    char d[2 * sizeof v];
    int n = 0;
    do d[n++] = "0123456789abcdef"[v & 15];
    while ((v >>= 4) != 0);
    while (n > 0 && len < sizeof buf) buf[len++] = d[--n];
    return *this;
  }
  // For JSON strings: only characters that need no escaping.
  Line& Safe(const char* s) {
    for (; s && *s && len < sizeof buf; ++s) {
      char c = *s;
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' || c == '_' ||
                c == '.' || c == ':' || c == '-';
      buf[len++] = ok ? c : '?';
    }
    return *this;
  }
  void WriteTo(int fd) const {
    size_t off = 0;
    while (off < len) {
      ssize_t n = write(fd, buf + off, len - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
};

// "2026-11-24T15:00:00.123Z ERROR [game1] crash: " without gmtime (it may lock).
void Prefix(Line& l, const timespec& now) {
  int64_t days = now.tv_sec / 86400, secs = now.tv_sec % 86400;
  // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
  days += 719468;
  int64_t era = days / 146097;
  unsigned doe = static_cast<unsigned>(days - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  unsigned d = doy - (153 * mp + 2) / 5 + 1;
  unsigned m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  l.Dec(static_cast<uint64_t>(y)).Add("-").Dec2(m, 2).Add("-").Dec2(d, 2).Add("T");
  l.Dec2(static_cast<unsigned>(secs / 3600), 2).Add(":").Dec2(static_cast<unsigned>(secs / 60 % 60), 2).Add(":");
  l.Dec2(static_cast<unsigned>(secs % 60), 2).Add(".").Dec2(static_cast<unsigned>(now.tv_nsec / 1000000), 3);
  l.Add("Z ERROR [").Add(g_process).Add("] crash: ");
}

const char* SignalName(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
  }
  return "signal";
}

const Code* Find(uintptr_t addr) {
  for (const Code& c : g_code)
    if (c.state.load(std::memory_order_acquire) == 2 && addr >= c.start && addr < c.end) return &c;
  return nullptr;
}

uintptr_t FaultingPc(void* context) {
  auto* uc = static_cast<ucontext_t*>(context);
  if (!uc) return 0;
#if defined(__x86_64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.pc);
#else
  return 0;
#endif
}

void WriteAll(const Line& l, int log_fd) {
  if (log_fd >= 0) l.WriteTo(log_fd);
  if (log::ConsoleEnabled() && log_fd != STDERR_FILENO) l.WriteTo(STDERR_FILENO);
}

// `generation` 0: unknown (the plugin was named by what ran, not by an address).
void WriteRecord(int sig, const char* plugin, uint64_t generation, const char* what, const timespec& wall) {
  const int dir = g_record_dir.load(std::memory_order_acquire);
  if (dir < 0) return;
  Line name;
  name.Add("crash-").Dec(static_cast<uint64_t>(getpid())).Add(".json");
  name.buf[name.len < sizeof name.buf ? name.len : sizeof name.buf - 1] = '\0';
  unlinkat(dir, name.buf, 0);  // a planted link is removed, never followed
  int fd = openat(dir, name.buf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return;
  Line r;
  r.Add("{\"pid\":").Dec(static_cast<uint64_t>(getpid())).Add(",\"signal\":").Dec(static_cast<uint64_t>(sig));
  r.Add(",\"signal_name\":\"").Add(SignalName(sig)).Add("\",\"plugin\":");
  if (plugin) r.Add("\"").Safe(plugin).Add("\"");
  else r.Add("null");
  r.Add(",\"generation\":");
  if (generation) r.Dec(generation);
  else r.Add("null");
  r.Add(",\"what\":\"").Safe(what).Add("\",\"at\":").Dec(static_cast<uint64_t>(wall.tv_sec)).Add("}\n");
  r.WriteTo(fd);
  close(fd);
}

void OnFatalSignal(int sig, siginfo_t* info, void* context) {
  static std::atomic<bool> busy{false};
  if (!busy.exchange(true)) {
    const int log_fd = log::FileDescriptor();
    timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    void* frames[kMaxFrames];
    const int n = backtrace(frames, kMaxFrames);

    // The plugin whose code faulted; else the first plugin frame on the stack.
    const Code* code = Find(FaultingPc(context));
    bool from_pc = code != nullptr;
    for (int i = 0; i < n && !code; ++i) code = Find(reinterpret_cast<uintptr_t>(frames[i]));
    char what[256] = "";
    const Activity* running = Activity::Current();
    if (running) running->Format(what, sizeof what);

    Line l;
    Prefix(l, wall);
    l.Add(SignalName(sig)).Add(" (signal ").Dec(static_cast<uint64_t>(sig));
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL)
      l.Add(", fault address ").Hex(reinterpret_cast<uintptr_t>(info ? info->si_addr : nullptr));
    l.Add(")");
    if (code) {
      l.Add(" in plugin ").Add(code->plugin).Add(" generation ").Dec(code->generation);
      if (!from_pc) l.Add(" (a frame of its code is on the stack)");
    } else {
      l.Add(" in host code");
    }
    if (what[0]) l.Add(" while running ").Add(what);
    l.Add("\n");
    WriteAll(l, log_fd);

    Line h;
    Prefix(h, wall);
    h.Add("backtrace (most recent call first):\n");
    WriteAll(h, log_fd);
    for (int i = 0; i < n; ++i) {
      const uintptr_t ip = reinterpret_cast<uintptr_t>(frames[i]);
      if (const Code* c = Find(ip)) {
        Line f;
        f.Add("  #").Dec(static_cast<uint64_t>(i)).Add(" ").Hex(ip).Add(" in plugin ").Add(c->plugin);
        f.Add(" generation ").Dec(c->generation).Add(" +").Hex(ip - c->base).Add("\n");
        WriteAll(f, log_fd);
      }
    }
    if (log_fd >= 0) backtrace_symbols_fd(frames, n, log_fd);
    if (log::ConsoleEnabled() && log_fd != STDERR_FILENO) backtrace_symbols_fd(frames, n, STDERR_FILENO);

    const char* plugin = code ? code->plugin : running ? running->plugin() : nullptr;
    WriteRecord(sig, plugin, code ? code->generation : 0, what, wall);
  }
  // SA_RESETHAND restored the default action; SA_NODEFER lets it act now.
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

void Install(const std::string& process) {
  size_t n = std::min(process.size(), sizeof g_process - 1);
  std::memcpy(g_process, process.data(), n);
  g_process[n] = '\0';
  if (g_installed.exchange(true)) return;
  // backtrace() loads libgcc's unwinder on first use (dlopen, malloc): do
  // it now, not in the handler.
  void* warm[2];
  backtrace(warm, 2);
  // Keep an alternate stack someone else (ASan) set up; else use ours.
  stack_t cur{};
  if (sigaltstack(nullptr, &cur) == 0 && (cur.ss_flags & SS_DISABLE)) {
    stack_t ss{};
    ss.ss_sp = g_alt_stack;
    ss.ss_size = sizeof g_alt_stack;
    sigaltstack(&ss, nullptr);
  }
  struct sigaction sa {};
  sa.sa_sigaction = &OnFatalSignal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  for (int sig : kSignals) sigaction(sig, &sa, nullptr);
}

void SetRecordDir(int dirfd) { g_record_dir.store(dirfd, std::memory_order_release); }

int AddCode(const char* plugin, uint64_t generation, uintptr_t base, uintptr_t start, uintptr_t end) {
  for (size_t i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (!g_code[i].state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) continue;
    Code& c = g_code[i];
    c.base = base;
    c.start = start;
    c.end = end;
    c.generation = generation;
    size_t len = plugin ? std::min(std::strlen(plugin), sizeof c.plugin - 1) : 0;
    std::memcpy(c.plugin, plugin ? plugin : "", len);
    c.plugin[len] = '\0';
    c.state.store(2, std::memory_order_release);
    return static_cast<int>(i);
  }
  return -1;
}

void RemoveCode(int slot) {
  if (slot >= 0 && static_cast<size_t>(slot) < kSlots) g_code[slot].state.store(0, std::memory_order_release);
}

}  // namespace lampyr::crash
