#include "core/systemd.h"

#include <cstdlib>
#include <cstring>

#include "core/event_loop.h"
#include "core/log.h"

#if LAMPYR_WITH_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace lampyr::systemd {
namespace {

bool g_warned = false;

void Send(const std::string& state) {
#if LAMPYR_WITH_SYSTEMD
  const int rc = sd_notify(0, state.c_str());
  // A socket that went away (systemd restarted, a test ended) is worth one
  // line, not one per watchdog ping.
  if (rc < 0 && !g_warned) {
    g_warned = true;
    LOG_WARN("systemd", "sd_notify failed: %s (further failures are not logged)", strerror(-rc));
  }
#else
  (void)state;
  (void)g_warned;
#endif
}

// STATUS= ends at a newline: a status text must stay one line.
std::string OneLine(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

bool Enabled() {
  const char* s = getenv("NOTIFY_SOCKET");
  return s && *s;
}

void Ready(const std::string& status) {
  if (Enabled()) Send("READY=1\nSTATUS=" + OneLine(status));
}

void SetStatus(const std::string& status) {
  if (Enabled()) Send("STATUS=" + OneLine(status));
}

void Stopping(const std::string& status) {
  if (Enabled()) Send("STOPPING=1\nSTATUS=" + OneLine(status));
}

double StartWatchdog(EventLoop* loop) {
#if LAMPYR_WITH_SYSTEMD
  uint64_t usec = 0;
  if (!Enabled() || sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return 0;
  // Half the interval, as sd_watchdog_enabled(3) advises: one late turn of
  // the loop must not cost a restart.
  const double every = static_cast<double>(usec) / 2e6;
  loop->RunEvery(every, [] { Send("WATCHDOG=1"); });
  LOG_INFO("systemd", "watchdog: pinging every %.3f s (WatchdogSec=%.3f s)", every, static_cast<double>(usec) / 1e6);
  return every;
#else
  (void)loop;
  return 0;
#endif
}

bool IsServiceEnv(const char* entry) {
  for (const char* name : {"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="})
    if (strncmp(entry, name, strlen(name)) == 0) return true;
  return false;
}

}  // namespace lampyr::systemd
