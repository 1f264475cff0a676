// The last words of a process that dies of SIGSEGV, SIGBUS, SIGFPE, SIGILL
// or SIGABRT: without them a plugin handler that segfaults kills the server
// with nothing in the log.
//
// The handler runs on an alternate stack (a stack overflow still reports)
// and uses only async-signal-safe calls: it writes to the log file and
// stderr with write(2)
//   ... ERROR [game1] crash: SIGSEGV (signal 11, fault address 0x0) in plugin room generation 3
//       while running plugin room: command 1001
//   ... ERROR [game1] crash: backtrace (most recent call first):
//     #4 0x7f0c2a1b3139 in plugin room generation 3 +0x1139
//   <backtrace_symbols_fd lines>
// names the plugin by looking the faulting instruction, then each return
// address, up in a table of the loaded generations' address ranges (filled
// at load time, read lock-free: dladdr is not async-signal-safe), writes a
// crash record crash-<pid>.json into the state directory for the master
//   {"pid":…,"signal":11,"signal_name":"SIGSEGV","plugin":"room","generation":3,
//    "what":"plugin room: command 1001","at":<unix seconds>}
// (O_CREAT|O_EXCL|O_NOFOLLOW, 0600), then re-raises the signal with the
// default action, so the exit status stays "killed by signal N".
#pragma once

#include <cstdint>
#include <string>

namespace lampyr::crash {

// Installs the handlers; `process` tags the log lines (server name).
void Install(const std::string& process);
// The directory (a PrivateDir's descriptor) crash records go to; -1: none.
void SetRecordDir(int dirfd);

// Registers the code of a loaded plugin generation: [start, end) in memory,
// `base` its load address (offsets are printed relative to it, as
// addr2line wants them). Returns a slot, or -1 when the table is full (its
// addresses are then not attributed). Any thread.
int AddCode(const char* plugin, uint64_t generation, uintptr_t base, uintptr_t start, uintptr_t end);
// After the library is unmapped.
void RemoveCode(int slot);

}  // namespace lampyr::crash
