#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace lampyr::test {

namespace fs = std::filesystem;

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

bool TryConnect(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return false;
  bool ok = false;
  for (addrinfo* ai = res; ai && !ok; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    close(fd);
  }
  freeaddrinfo(res);
  return ok;
}

}  // namespace

std::string LampyrBinary() { return std::string(LAMPYR_BIN_DIR) + "/lampyr"; }

std::string PluginPath(const std::string& name) { return std::string(LAMPYR_PLUGIN_DIR) + "/lib" + name + ".so"; }

std::string SourceDir() { return LAMPYR_SOURCE_DIR; }

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/lampyr-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl + ": " + strerror(errno));
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

// Whether nothing holds 127.0.0.1:`port` now, TIME_WAIT included (no
// SO_REUSEADDR: stricter than the servers' own bind).
bool Bindable(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// The first port of the kernel's ephemeral range: client sockets get their
// local ports from there, so a test server's port is picked below it.
uint16_t EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  unsigned low = 0;
  return in >> low && low > 0 && low <= 65535 ? static_cast<uint16_t>(low) : 32768;
}

// Reservations shared by every test process of this user: one file per
// port, holding the owner's pid, created O_EXCL.
std::string ReservationDir() {
  std::string dir = "/tmp/lampyr-test-ports-" + std::to_string(getuid());
  mkdir(dir.c_str(), 0700);
  return dir;
}

std::vector<std::string>& OwnReservations() {
  static auto* files = new std::vector<std::string>;
  return *files;
}

pid_t reservations_owner = 0;  // the process that registered DropOwnReservations

void DropOwnReservations() {
  if (getpid() != reservations_owner) return;  // a forked child that never exec'ed
  for (const auto& f : OwnReservations()) unlink(f.c_str());
}

// Takes `port` for this process unless another live test process has it.
bool Reserve(const std::string& dir, uint16_t port) {
  const std::string file = dir + "/" + std::to_string(port);
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      const std::string pid = std::to_string(getpid());
      ssize_t n = write(fd, pid.data(), pid.size());
      close(fd);
      if (n != static_cast<ssize_t>(pid.size())) return false;
      OwnReservations().push_back(file);
      return true;
    }
    if (errno != EEXIST) return false;
    // Held: by a live process, or left by one that died (then it is free).
    std::ifstream in(file);
    long owner = 0;
    if (!(in >> owner) || owner <= 0 || (kill(static_cast<pid_t>(owner), 0) != 0 && errno == ESRCH)) {
      unlink(file.c_str());
      continue;
    }
    return false;
  }
  return false;
}

}  // namespace

uint16_t FreePort() {
  // ctest -j runs several test binaries at once. Ports the kernel hands out
  // for port 0 come from the ephemeral range, where two processes could get
  // the same one in turn (CI: one test's server failed with "Address already
  // in use" while the other test's clients filled its connection slots),
  // and where client sockets take their local ports too. So a port is picked
  // below that range, reserved across processes with an O_EXCL file, and
  // checked free. Reservations end with the process.
  static std::set<uint16_t> given;
  static std::mt19937 rng(static_cast<unsigned>(getpid()) ^ static_cast<unsigned>(time(nullptr)));
  static const std::string dir = ReservationDir();
  static const bool cleanup = [] {
    reservations_owner = getpid();
    return atexit(DropOwnReservations) == 0;
  }();
  (void)cleanup;
  constexpr uint16_t kLowest = 10000;
  const uint16_t high = EphemeralLow();
  if (high <= kLowest + 1000) throw std::runtime_error("FreePort: the ephemeral port range starts too low");
  for (int attempt = 0; attempt < 5000; ++attempt) {
    const uint16_t port = static_cast<uint16_t>(kLowest + rng() % (high - kLowest));
    if (given.count(port) || !Reserve(dir, port)) continue;
    given.insert(port);  // kept even when busy: never tried again by this process
    if (Bindable(port)) return port;
  }
  throw std::runtime_error("FreePort: no free port after 5000 attempts");
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";  // not there (yet): callers poll log files
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<Process> Process::Start(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
                                        const std::string& output_file) {
  if (argv.empty()) return nullptr;
  // Everything the child needs is prepared before fork: between fork and
  // exec only async-signal-safe calls are allowed (tests may run threads).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& x : extra_env) replaced |= x.substr(0, x.find('=')) == name;
    if (!replaced) env_strings.emplace_back(entry);
  }
  for (const auto& x : extra_env) env_strings.push_back(x);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  int out_fd = -1;
  if (!output_file.empty()) {
    out_fd = open(output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0) return nullptr;
  }
  // The child reports a failed exec through this pipe (closed by a good exec).
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    if (out_fd >= 0) close(out_fd);
    return nullptr;
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    if (out_fd >= 0) close(out_fd);
    close(err_pipe[0]);
    close(err_pipe[1]);
    return nullptr;
  }
  if (pid == 0) {
    // Dies with the test binary, so a crashed test leaves no server behind.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (out_fd >= 0) {
      dup2(out_fd, 1);
      dup2(out_fd, 2);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(args[0], args.data(), envp.data());
    int err = errno;
    ssize_t ignored = write(err_pipe[1], &err, sizeof err);
    (void)ignored;
    _exit(127);
  }
  close(err_pipe[1]);
  if (out_fd >= 0) close(out_fd);
  int child_err = 0;
  ssize_t n;
  do n = read(err_pipe[0], &child_err, sizeof child_err);
  while (n < 0 && errno == EINTR);
  close(err_pipe[0]);
  auto p = std::unique_ptr<Process>(new Process(pid));
  if (n == static_cast<ssize_t>(sizeof child_err)) {
    fprintf(stderr, "harness: cannot exec %s: %s\n", argv[0].c_str(), strerror(child_err));
    p->Wait(5000);
    return nullptr;
  }
  return p;
}

Process::~Process() {
  if (!Reap(false)) {
    kill(pid_, SIGKILL);
    Reap(true);
  }
}

bool Process::Reap(bool block) {
  if (exited_) return true;
  int st = 0;
  pid_t r;
  do r = waitpid(pid_, &st, block ? 0 : WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    exited_ = true;
    status_ = r == pid_ ? st : 0;
  }
  return exited_;
}

bool Process::Running() { return !Reap(false); }

void Process::Signal(int sig) {
  if (!exited_) kill(pid_, sig);
}

int Process::Wait(int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  int pause = 1;
  while (!Reap(false)) {
    if (NowMs() >= deadline) return -1;
    SleepMs(pause);
    if (pause < 20) pause *= 2;
  }
  return status_;
}

bool WaitForPort(const std::string& host, uint16_t port, int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    if (TryConnect(host, port)) return true;
    if (NowMs() >= deadline) return false;
    SleepMs(10);
  }
}

std::unique_ptr<Process> StartServer(const std::string& conf, const std::string& name, uint16_t wait_port) {
  std::string out = (fs::path(conf).parent_path() / (name + ".out")).string();
  auto p = Process::Start({LampyrBinary(), "--conf", conf, "--server", name}, {}, out);
  if (!p || wait_port == 0) return p;
  // Generous: sanitizer builds start slowly on a loaded 2-core machine.
  const int64_t deadline = NowMs() + 20000;
  while (!TryConnect("127.0.0.1", wait_port)) {
    if (!p->Running() || NowMs() >= deadline) {
      fprintf(stderr, "harness: server %s %s; its output (%s):\n%s\n", name.c_str(),
              p->Running() ? "did not open its port in time" : "exited", out.c_str(), ReadFile(out).c_str());
      return nullptr;
    }
    SleepMs(10);
  }
  return p;
}

}  // namespace lampyr::test
