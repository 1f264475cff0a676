// The systemd service protocol (sd_notify(3), Type=notify units), through
// libsystemd. Every call is a no-op when the process was not started with
// NOTIFY_SOCKET, so a process run by hand or by tests behaves as before.
//
// Who speaks: the master for the whole cluster (lampyr.service), or a lone
// `lampyr --server NAME` (lampyr@.service). Servers the master starts must
// not: the master keeps NOTIFY_SOCKET and WATCHDOG_* out of their
// environment (IsServiceEnv), so the unit hears one voice.
//
//   READY=1    the master: once every server of this machine is linked to it
//              (a server links only after Start() bound every listener and
//              loaded every plugin); a lone server: after its Start().
//   STATUS=    one line for `systemctl status`: "3 of 4 servers running ...".
//   STOPPING=1 when a graceful stop begins.
//   WATCHDOG=1 from a timer on the event loop at half of WATCHDOG_USEC: a loop
//              that stops turning (a plugin stuck in a loop) stops the pings
//              and systemd restarts the unit (WatchdogSec=).
#pragma once

#include <string>

namespace lampyr {
class EventLoop;
}

namespace lampyr::systemd {

// True when NOTIFY_SOCKET is set: messages go somewhere.
bool Enabled();
void Ready(const std::string& status);
void SetStatus(const std::string& status);
void Stopping(const std::string& status);
// Pings WATCHDOG=1 from `loop` every WATCHDOG_USEC/2 when systemd asked for a
// watchdog for this process (WATCHDOG_PID, if set, is ours). Returns the
// interval in seconds, 0 when there is no watchdog.
double StartWatchdog(EventLoop* loop);
// "NAME=value" entries of the service protocol (NOTIFY_SOCKET, WATCHDOG_USEC,
// WATCHDOG_PID) that a child process must not inherit.
bool IsServiceEnv(const char* entry);

}  // namespace lampyr::systemd
