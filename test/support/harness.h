// Test harness for integration tests: real processes, real loopback ports,
// throwaway directories. Everything here blocks with bounded timeouts so a
// broken server fails a test instead of hanging it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lampyr::test {

std::string LampyrBinary();                        // <build>/bin/lampyr
std::string PluginPath(const std::string& name);   // <build>/plugins/lib<name>.so
std::string SourceDir();

// A fresh directory under $TMPDIR (or /tmp), removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A currently free loopback TCP port (bound then released: another process
// may take it in between, so callers wait for their server to come up).
uint16_t FreePort();

// Whole-file helpers; both abort the test run (throw) on I/O errors.
void WriteFile(const std::string& path, const std::string& text);
std::string ReadFile(const std::string& path);

// A child process (fork + exec). The destructor SIGKILLs and reaps it if it
// is still running, so a failing test leaves nothing behind.
class Process {
 public:
  // argv[0] is the program path. extra_env entries are "NAME=value" added to
  // (or replacing in) the current environment. With output_file, stdout and
  // stderr go there (appended); otherwise they are inherited. Returns null if
  // the fork or exec failed.
  static std::unique_ptr<Process> Start(const std::vector<std::string>& argv,
                                        const std::vector<std::string>& extra_env = {},
                                        const std::string& output_file = "");
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  void Signal(int sig);
  // Exit status as from waitpid, or -1 on timeout (the process keeps running).
  int Wait(int timeout_ms);

 private:
  explicit Process(pid_t pid) : pid_(pid) {}
  bool Reap(bool block);

  pid_t pid_;
  bool exited_ = false;
  int status_ = 0;
};

// True once host:port accepts a TCP connection.
bool WaitForPort(const std::string& host, uint16_t port, int timeout_ms);

// lampyr --conf <conf> --server <name>, output to <conf dir>/<name>.out;
// waits until `wait_port` accepts (if non-zero). Returns null if the server
// exited or the port never opened (its output file tells why).
std::unique_ptr<Process> StartServer(const std::string& conf, const std::string& name, uint16_t wait_port = 0);

}  // namespace lampyr::test
