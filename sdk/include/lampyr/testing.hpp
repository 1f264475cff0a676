// lampyr/testing.hpp: GoogleTest helpers that run a plugin inside the real
// Lampyr host, the way it runs in production, instead of mocking the host.
//
//   lampyr_add_plugin_test(game_test PLUGIN game SOURCES test/game_test.cpp)   # CMake
//
//   #include <lampyr/testing.hpp>
//   class GameTest : public lampyr::testing::PluginTest {};
//   TEST_F(GameTest, Hello) {
//     lampyr::testing::Client c = host().Connect();
//     EXPECT_EQ(c.Call(1, "hi"), "hello hi");
//     auto r = host().Reload();                  // save_state -> new generation -> restore_state
//     ASSERT_TRUE(r.ok) << r.body;
//   }
//
// Host starts `lampyr --conf <temp> --server game` with the plugin on free
// loopback ports (client port and admin API), waits until both accept, and
// stops it gracefully when destroyed. The admin token is random and reaches
// the host through its environment, never a command line. Header-only, test
// code only (it is not part of a plugin).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

extern char** environ;

namespace lampyr::testing {

// The host's error reply carries this command id (docs/protocol.md).
constexpr uint32_t kErrorCommand = 0xFFFFFFFFu;

namespace detail {

inline void PutU32(std::string* s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s->push_back(static_cast<char>((v >> shift) & 0xFF));
}
inline uint32_t GetU32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

inline int ConnectLoopback(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

inline uint16_t FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  uint16_t port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) close(fd);
  if (port == 0) throw std::runtime_error("lampyr::testing: no free port");
  return port;
}

inline std::string RandomHex(size_t bytes) {
  std::random_device rd;
  std::string out;
  const char* hex = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    const unsigned v = rd() & 0xFF;
    out.push_back(hex[v >> 4]);
    out.push_back(hex[v & 15]);
  }
  return out;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Whole-buffer send/receive with an absolute deadline.
inline bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

inline bool RecvSome(int fd, std::string* buf, std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd p{fd, POLLIN, 0};
  const int r = poll(&p, 1, static_cast<int>(left.count()));
  if (r <= 0) return false;
  char tmp[65536];
  const ssize_t n = recv(fd, tmp, sizeof tmp, 0);
  if (n <= 0) return false;
  buf->append(tmp, static_cast<size_t>(n));
  return true;
}

}  // namespace detail

// One frame as the host sends it.
struct Frame {
  uint32_t command = 0;
  std::string body;
};

// A blocking client of the Firefly protocol (17-byte header; head bytes,
// proto_version and server_version 0, the host's defaults).
class Client {
 public:
  Client() = default;
  explicit Client(uint16_t port) : fd_(detail::ConnectLoopback(port)) {
    if (fd_ < 0) throw std::runtime_error("lampyr::testing: cannot connect to port " + std::to_string(port));
  }
  ~Client() { Close(); }
  Client(Client&& o) noexcept : fd_(std::exchange(o.fd_, -1)), in_(std::move(o.in_)), pushes_(std::move(o.pushes_)) {}
  Client& operator=(Client&& o) noexcept {
    if (this != &o) {
      Close();
      fd_ = std::exchange(o.fd_, -1);
      in_ = std::move(o.in_);
      pushes_ = std::move(o.pushes_);
    }
    return *this;
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  bool connected() const { return fd_ >= 0; }

  void Send(uint32_t command, const std::string& body) {
    std::string f(4, '\0');
    f.push_back('\0');                       // proto_version
    detail::PutU32(&f, 0);                   // server_version
    detail::PutU32(&f, static_cast<uint32_t>(body.size() + 4));
    detail::PutU32(&f, command);
    f += body;
    if (fd_ < 0 || !detail::SendAll(fd_, f)) throw std::runtime_error("lampyr::testing: send failed");
  }

  // The next frame, or throws after timeout_ms (a guard against a hang).
  Frame Receive(int timeout_ms = 30000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (in_.size() >= 17) {
        const auto* p = reinterpret_cast<const unsigned char*>(in_.data());
        const uint32_t length = detail::GetU32(p + 9);
        if (length < 4) throw std::runtime_error("lampyr::testing: bad frame length");
        if (in_.size() >= 13 + size_t{length}) {
          Frame f{detail::GetU32(p + 13), in_.substr(17, length - 4)};
          in_.erase(0, 13 + size_t{length});
          return f;
        }
      }
      if (fd_ < 0 || !detail::RecvSome(fd_, &in_, deadline))
        throw std::runtime_error("lampyr::testing: no answer (connection closed or timed out)");
    }
  }

  // Sends a request and returns the body of its reply; pushes that arrive in
  // between are kept (pushes()). The host's error reply throws with its text.
  std::string Call(uint32_t command, const std::string& body = "", int timeout_ms = 30000) {
    Send(command, body);
    for (;;) {
      Frame f = Receive(timeout_ms);
      if (f.command == command) return f.body;
      if (f.command == kErrorCommand) throw std::runtime_error("lampyr error reply: " + f.body);
      pushes_.push_back(std::move(f));
    }
  }

  std::vector<Frame>& pushes() { return pushes_; }

 private:
  int fd_ = -1;
  std::string in_;
  std::vector<Frame> pushes_;
};

struct HttpResult {
  bool ok = false;  // HTTP 200
  int status = 0;
  std::string body;
};

struct HostOptions {
  std::string host_binary;   // the lampyr executable
  std::string plugin_name;   // as the plugin declares it (LAMPYR_PLUGIN)
  std::string plugin_path;   // its .so
  std::string plugin_config = "{}";  // JSON object: plugins.<name>.config
  std::string server = "game";
};

// One lampyr server process running the plugin.
class Host {
 public:
  explicit Host(HostOptions o) : o_(std::move(o)) {
    const char* base = getenv("TMPDIR");
    std::string t = std::string(base && *base ? base : "/tmp") + "/lampyr-test-XXXXXX";
    std::vector<char> buf(t.begin(), t.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("lampyr::testing: mkdtemp " + t + " failed");
    dir_ = buf.data();
    token_ = detail::RandomHex(24);
    // A port taken between FreePort and the host's bind makes the start
    // fail: try again with new ports.
    std::string why;
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (Start(&why)) return;
    }
    const std::string out = Output();
    Cleanup();
    throw std::runtime_error("lampyr::testing: the host did not start: " + why + "\n" + out);
  }
  ~Host() { Cleanup(); }
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  uint16_t port() const { return port_; }
  uint16_t admin_port() const { return web_; }
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  // Everything the host printed (its log goes to stderr: "log": "-").
  std::string Output() const { return detail::ReadFile(dir_ + "/lampyr.out"); }

  Client Connect() const { return Client(port_); }

  // POST /reload of the plugin (the same .so path: rebuild it first to load
  // new code). ok is true when the host swapped to the new generation.
  HttpResult Reload() { return Post("/reload", "{\"plugin\": \"" + o_.plugin_name + "\"}"); }
  HttpResult Status() { return Http("GET", "/status", ""); }
  HttpResult Post(const std::string& path, const std::string& body) { return Http("POST", path, body); }

  // Stops the host gracefully (SIGTERM) and returns its exit status
  // (waitpid format), -1 if it had to be killed.
  int Stop() {
    if (pid_ <= 0) return status_;
    kill(pid_, SIGTERM);
    int st = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      const pid_t r = waitpid(pid_, &st, WNOHANG);
      if (r == pid_) break;
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &st, 0);
        st = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = 0;
    status_ = st;
    return st;
  }

 private:
  bool Start(std::string* why) {
    port_ = detail::FreePort();
    web_ = detail::FreePort();
    const std::string conf = dir_ + "/lampyr.json";
    {
      std::ofstream f(conf);
      f << "{\"master\": {\"state_dir\": \"" << dir_ << "/state\"},\n"
        << " \"protocol\": {\"idle_timeout_s\": 0},\n"
        << " \"plugins\": {\"" << o_.plugin_name << "\": {\"path\": \"" << o_.plugin_path
        << "\", \"config\": " << o_.plugin_config << "}},\n"
        << " \"servers\": {\"" << o_.server << "\": {\"netport\": " << port_ << ", \"webport\": " << web_
        << ", \"plugins\": [\"" << o_.plugin_name << "\"], \"log\": \"-\"}}}\n";
      if (!f) {
        *why = "cannot write " + conf;
        return false;
      }
    }
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
      if (strncmp(*e, "LAMPYR_ADMIN_TOKEN=", 19) == 0 || strncmp(*e, "NOTIFY_SOCKET=", 14) == 0 ||
          strncmp(*e, "CREDENTIALS_DIRECTORY=", 22) == 0)
        continue;
      env.emplace_back(*e);
    }
    env.push_back("LAMPYR_ADMIN_TOKEN=" + token_);
    std::vector<std::string> args = {o_.host_binary, "--conf", conf, "--server", o_.server};
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string out = dir_ + "/lampyr.out";
    const int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
      *why = "cannot open " + out;
      return false;
    }
    const pid_t pid = fork();
    if (pid == 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(fd);
    if (pid < 0) {
      *why = std::string("fork: ") + strerror(errno);
      return false;
    }
    pid_ = pid;
    // Up when both ports accept; gone if the process exited first.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = 0;
        *why = "it exited (status " + std::to_string(st) + ")";
        return false;
      }
      const int a = detail::ConnectLoopback(port_);
      const int b = a >= 0 ? detail::ConnectLoopback(web_) : -1;
      if (a >= 0) close(a);
      if (b >= 0) {
        close(b);
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    *why = "its ports did not open within 60 s";
    Stop();
    return false;
  }

  HttpResult Http(const std::string& method, const std::string& path, const std::string& body) {
    HttpResult r;
    const int fd = detail::ConnectLoopback(web_);
    if (fd < 0) {
      r.body = "cannot connect to the admin API";
      return r;
    }
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    if (method == "POST") {
      req += "Authorization: Bearer " + token_ + "\r\nContent-Type: application/json\r\n";
      req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    req += "\r\n" + body;
    std::string in;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    if (detail::SendAll(fd, req))
      while (detail::RecvSome(fd, &in, deadline)) {
      }
    close(fd);
    int status = 0;
    if (sscanf(in.c_str(), "HTTP/1.%*d %d", &status) == 1) r.status = status;
    const size_t split = in.find("\r\n\r\n");
    r.body = split == std::string::npos ? in : in.substr(split + 4);
    r.ok = r.status == 200;
    return r;
  }

  void Cleanup() {
    Stop();
    if (!dir_.empty() && getenv("LAMPYR_TEST_KEEP") == nullptr) {
      const std::string cmd = "rm -rf '" + dir_ + "'";
      if (dir_.find('\'') == std::string::npos && system(cmd.c_str()) != 0) {
      }
    }
    dir_.clear();
  }

  HostOptions o_;
  std::string dir_, token_;
  uint16_t port_ = 0, web_ = 0;
  pid_t pid_ = 0;
  int status_ = 0;
};

// A test fixture: one host with the plugin of lampyr_add_plugin_test() per
// test (a fresh process: tests do not share state).
class PluginTest : public ::testing::Test {
 protected:
  static HostOptions DefaultOptions() {
    HostOptions o;
#ifdef LAMPYR_TEST_HOST
    o.host_binary = LAMPYR_TEST_HOST;
    o.plugin_name = LAMPYR_TEST_PLUGIN_NAME;
    o.plugin_path = LAMPYR_TEST_PLUGIN_PATH;
    o.plugin_config = detail::ReadFile(LAMPYR_TEST_PLUGIN_CONFIG_FILE);
    if (o.plugin_config.find_first_not_of(" \t\r\n") == std::string::npos) o.plugin_config = "{}";
#endif
    if (const char* h = getenv("LAMPYR_TEST_HOST_BINARY"); h && *h) o.host_binary = h;
    return o;
  }
  // Override to change the options (config of the plugin, another binary).
  virtual HostOptions Options() { return DefaultOptions(); }
  void SetUp() override {
    try {
      host_ = std::make_unique<Host>(Options());
    } catch (const std::exception& e) {
      FAIL() << e.what();
    }
  }
  void TearDown() override { host_.reset(); }
  Host& host() { return *host_; }

 private:
  std::unique_ptr<Host> host_;
};

}  // namespace lampyr::testing
