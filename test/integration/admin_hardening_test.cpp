// The admin API and the listeners of real `lampyr` processes under hostile
// input (issue 8): nested JSON bodies, connection floods, trickling clients,
// token guessing, descriptor exhaustion, where the admin API binds, and
// config files that are not files. Every test asserts what an operator or a
// player would see: answers, refusals, a process that keeps serving.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <json/reader.h>
#include <json/writer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "admin/http_client.h"
#include "harness.h"
#include "lampyr_client.h"

namespace lampyr {
namespace {

using test::Process;
using test::TempDir;
using Clock = std::chrono::steady_clock;

constexpr const char* kToken = "hardening-admin-token-0123456789";
constexpr const char* kSecret = "hardening-cluster-secret-0123456789";

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

Json::Value Parse(const std::string& text) {
  Json::Value v;
  Json::CharReaderBuilder b;
  std::unique_ptr<Json::CharReader> r(b.newCharReader());
  std::string errs;
  EXPECT_TRUE(r->parse(text.data(), text.data() + text.size(), &v, &errs)) << text;
  return v;
}

std::string Nested(size_t depth) { return std::string(depth, '['); }

// A TCP connection from `source` (empty: any) to host:port; -1 if refused.
int Dial(const std::string& host, uint16_t port, const std::string& source = "", bool nonblocking = false) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return -1;
  if (!source.empty()) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    inet_pton(AF_INET, source.c_str(), &s.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&s), sizeof s) != 0) {
      close(fd);
      return -1;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && !(nonblocking && errno == EINPROGRESS)) {
    close(fd);
    return -1;
  }
  return fd;
}

bool Reachable(const std::string& host, uint16_t port) {
  int fd = Dial(host, port);
  if (fd < 0) return false;
  close(fd);
  return true;
}

// Sends `request` on a fresh connection and reads until the server closes or
// the answer is complete; returns the HTTP status, or -1 without an answer.
int RawStatus(const std::string& host, uint16_t port, const std::string& request, std::string* body = nullptr,
              const std::string& source = "", std::string* head_out = nullptr) {
  int fd = Dial(host, port, source);
  if (fd < 0) return -1;
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer early (413) and close
    sent += static_cast<size_t>(n);
  }
  std::string in;
  const auto start = Clock::now();
  while (SecondsSince(start) < 10) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    char buf[8192];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
    size_t head_end = in.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      size_t cl = in.find("Content-Length: ");
      if (cl != std::string::npos && cl < head_end &&
          in.size() >= head_end + 4 + std::stoul(in.substr(cl + 16)))
        break;
    }
  }
  close(fd);
  if (in.compare(0, 9, "HTTP/1.1 ") != 0 && in.compare(0, 9, "HTTP/1.0 ") != 0) return -1;
  size_t head_end = in.find("\r\n\r\n");
  if (head_end != std::string::npos) {
    if (body) *body = in.substr(head_end + 4);
    if (head_out) *head_out = in.substr(0, head_end);
  }
  return std::atoi(in.c_str() + 9);
}

std::string Request(const std::string& method, const std::string& path, const std::string& body,
                    const std::string& token = "") {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
  if (!token.empty()) r += "Authorization: Bearer " + token + "\r\n";
  if (!body.empty() || method == "POST") r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

std::string HeaderValue(const std::string& head, const std::string& name) {
  std::istringstream in(head);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (strncasecmp(line.c_str(), (name + ":").c_str(), name.size() + 1) == 0) {
      std::string v = line.substr(name.size() + 1);
      return v.substr(v.find_first_not_of(' '));
    }
  }
  return "";
}

// CPU time (user + system) the process has used, in seconds.
double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

size_t OpenFds(pid_t pid) {
  size_t n = 0;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = opendir(dir.c_str())) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n >= 2 ? n - 2 : 0;  // "." and ".."
}

size_t CountLines(const std::string& text, const std::string& needle) {
  size_t n = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.find(needle) != std::string::npos) ++n;
  return n;
}

// Lifts this test's own descriptor limit: floods need a thousand sockets.
void RaiseOwnFdLimit() {
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

// A non-loopback IPv4 address of this machine ("" if it has none).
std::string ExternalAddress() {
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) != 0) return "";
  std::string found;
  for (ifaddrs* i = ifs; i && found.empty(); i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN] = "";
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    if (std::string(buf).rfind("127.", 0) != 0) found = buf;
  }
  freeifaddrs(ifs);
  return found;
}

class AdminHardeningTest : public ::testing::Test {
 protected:
  void SetUp() override { RaiseOwnFdLimit(); }

  // One server "game1" (echo on command 1) with netport, webport and
  // rootport; `master_extra` / `server_extra` are JSON members added to
  // those sections (each starting with ", ").
  void WriteConf(const std::string& master_extra = "", const std::string& server_extra = "") {
    netport_ = test::FreePort();
    webport_ = test::FreePort();
    rootport_ = test::FreePort();
    conf_ = dir_.path() + "/cluster.json";
    test::WriteFile(conf_, std::string("{\"master\": {\"admin_token\": \"") + kToken + "\", \"cluster_secret\": \"" +
                               kSecret + "\", \"insecure_dev\": true" + master_extra +
                               "}, \"servers\": {\"game1\": {\"netport\": " + std::to_string(netport_) +
                               ", \"webport\": " + std::to_string(webport_) +
                               ", \"rootport\": " + std::to_string(rootport_) +
                               ", \"builtins\": {\"echo\": 1}" + server_extra + "}}}");
  }

  void StartGame(const std::string& master_extra = "", const std::string& server_extra = "",
                 const std::string& admin_host = "127.0.0.1") {
    WriteConf(master_extra, server_extra);
    server_ = Process::Start({test::LampyrBinary(), "--conf", conf_, "--server", "game1"}, {"LAMPYR_ADMIN_TOKEN="},
                             Output());
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(test::WaitForPort(admin_host, webport_, 10000)) << Log();
    ASSERT_TRUE(test::WaitForPort("127.0.0.1", netport_, 10000)) << Log();
  }

  std::string Output() const { return dir_.path() + "/game1.out"; }
  std::string Log() const { return test::ReadFile(Output()); }

  HttpResponse Http(const std::string& method, const std::string& path, const std::string& body = "",
                    const std::string& token = "", uint16_t port = 0) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    HttpResponse r;
    Status st = HttpCall("127.0.0.1", port ? port : webport_, method, path, body, headers, &r, 10000);
    EXPECT_TRUE(st.ok()) << st.message();
    return r;
  }

  // A game client gets its echo within `timeout_ms` (retrying connects).
  bool GameClientServed(int timeout_ms = 5000) {
    const auto start = Clock::now();
    while (SecondsSince(start) * 1000 < timeout_ms) {
      client::Client c;
      if (c.Connect("127.0.0.1", netport_, 1000).ok()) {
        client::Frame f;
        if (c.Call(1, "still here", &f, 1000).ok() && f.body == "still here") return true;
      }
      SleepMs(100);
    }
    return false;
  }

  TempDir dir_;
  std::string conf_;
  uint16_t netport_ = 0, webport_ = 0, rootport_ = 0;
  std::unique_ptr<Process> server_;
};

// Item 1: a body of nested '[' used to make jsoncpp throw out of the HTTP
// callback and abort the process, even on GET /status (no token needed).
TEST_F(AdminHardeningTest, NestedBodiesOnAServerAreRefusedAndItKeepsServing) {
  StartGame();
  for (size_t depth : {size_t{1000}, size_t{100000}}) {
    std::string body;
    int st = RawStatus("127.0.0.1", webport_, Request("GET", "/status", Nested(depth)), &body);
    EXPECT_TRUE(st == 400 || st == 413) << depth << ": " << st << " " << body;
    st = RawStatus("127.0.0.1", webport_, Request("POST", "/reload", Nested(depth), kToken), &body);
    EXPECT_TRUE(st == 400 || st == 413) << depth << ": " << st << " " << body;
    st = RawStatus("127.0.0.1", webport_, Request("POST", "/reload", Nested(depth)), &body);
    EXPECT_TRUE(st == 401 || st == 413) << depth << ": " << st << " " << body;
    ASSERT_TRUE(server_->Running()) << Log();
  }
  // The 1,000-deep body is within the size limit: refused for its depth, by name.
  std::string body;
  ASSERT_EQ(RawStatus("127.0.0.1", webport_, Request("POST", "/reload", Nested(1000), kToken), &body), 400);
  EXPECT_NE(body.find("nested deeper than"), std::string::npos) << body;
  HttpResponse r = Http("GET", "/status");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Parse(r.body)["servers"][0]["pid"].asInt64(), server_->pid());
  EXPECT_TRUE(GameClientServed());
}

TEST_F(AdminHardeningTest, NestedBodiesOnTheMasterAreRefusedAndTheClusterKeepsRunning) {
  const uint16_t rootport = test::FreePort(), master_web = test::FreePort(), netport = test::FreePort();
  conf_ = dir_.path() + "/cluster.json";
  test::WriteFile(conf_, std::string("{\"master\": {\"rootport\": ") + std::to_string(rootport) +
                             ", \"webport\": " + std::to_string(master_web) + ", \"admin_token\": \"" + kToken +
                             "\", \"cluster_secret\": \"" + kSecret + "\", \"insecure_dev\": true" +
                             "}, \"servers\": {\"game1\": {\"netport\": " + std::to_string(netport) +
                             ", \"builtins\": {\"echo\": 1}}}}");
  auto master = Process::Start({test::LampyrBinary(), "--conf", conf_}, {"LAMPYR_ADMIN_TOKEN="},
                               dir_.path() + "/master.out");
  ASSERT_NE(master, nullptr);
  ASSERT_TRUE(test::WaitForPort("127.0.0.1", master_web, 10000)) << test::ReadFile(dir_.path() + "/master.out");
  ASSERT_TRUE(test::WaitForPort("127.0.0.1", netport, 10000));
  for (size_t depth : {size_t{1000}, size_t{100000}}) {
    for (const char* path : {"/reload", "/restart", "/stop"}) {
      std::string body;
      int st = RawStatus("127.0.0.1", master_web, Request("POST", path, Nested(depth), kToken), &body);
      EXPECT_TRUE(st == 400 || st == 413) << path << " " << depth << ": " << st << " " << body;
    }
    std::string body;
    int st = RawStatus("127.0.0.1", master_web, Request("GET", "/status", Nested(depth)), &body);
    EXPECT_TRUE(st == 400 || st == 413) << depth << ": " << st << " " << body;
    ASSERT_TRUE(master->Running()) << test::ReadFile(dir_.path() + "/master.out");
  }
  HttpResponse r = Http("GET", "/status", "", "", master_web);
  ASSERT_EQ(r.status, 200);
  Json::Value v = Parse(r.body);
  EXPECT_EQ(v["master"]["state"].asString(), "running") << v.toStyledString();  // POST /stop with a bad body stopped nothing
  client::Client c;
  ASSERT_TRUE(c.Connect("127.0.0.1", netport).ok());
  client::Frame f;
  ASSERT_TRUE(c.Call(1, "cluster up", &f).ok());
  EXPECT_EQ(f.body, "cluster up");
}

// Item 3: evhttp's timeout restarted on every byte, so one byte per second
// held a connection forever. The deadline is absolute.
TEST_F(AdminHardeningTest, TricklingClientIsCutAtTheRequestDeadline) {
  StartGame(", \"admin_request_timeout_s\": 2");
  int fd = Dial("127.0.0.1", webport_);
  ASSERT_GE(fd, 0);
  const std::string trickle = "GET /status HTTP/1.1\r\nX-Slow: " + std::string(64, 'a');
  const auto start = Clock::now();
  bool cut = false;
  for (size_t i = 0; SecondsSince(start) < 15; ++i) {
    if (send(fd, &trickle[i % trickle.size()], 1, MSG_NOSIGNAL) != 1) {
      cut = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 1000) > 0) {
      char c;
      if (recv(fd, &c, 1, 0) <= 0) {
        cut = true;
        break;
      }
    }
  }
  const double after = SecondsSince(start);
  close(fd);
  EXPECT_TRUE(cut) << "a client trickling one byte per second was never cut";
  EXPECT_GT(after, 1.0);  // not before the deadline (2 s) ...
  EXPECT_LT(after, 8.0);  // ... and not long after it
  EXPECT_EQ(Http("GET", "/status").status, 200);
}

// Item 3: 1,100 trickling admin connections took every descriptor of the
// process; game clients were refused for the whole time.
TEST_F(AdminHardeningTest, AdminConnectionFloodLeavesGameClientsServed) {
  StartGame(", \"admin_request_timeout_s\": 3");
  // A small descriptor budget, as a production box with many players has:
  // without a cap the flood alone takes all of it.
  rlimit rl{};
  ASSERT_EQ(prlimit(server_->pid(), RLIMIT_NOFILE, nullptr, &rl), 0);
  rl.rlim_cur = 256;
  ASSERT_EQ(prlimit(server_->pid(), RLIMIT_NOFILE, &rl, nullptr), 0);
  std::vector<int> flood;
  for (int i = 0; i < 1100; ++i) {
    int fd = Dial("127.0.0.1", webport_, "", /*nonblocking=*/true);
    if (fd >= 0) flood.push_back(fd);
  }
  const std::string trickle = "GET /status HTTP/1.1\r\nX-Slow: ";
  const auto start = Clock::now();
  bool served = true;
  size_t max_fds = 0;
  for (int round = 0; round < 4; ++round) {
    for (int fd : flood) send(fd, &trickle[round % trickle.size()], 1, MSG_NOSIGNAL);
    SleepMs(500);
    max_fds = std::max(max_fds, OpenFds(server_->pid()));
    served = served && GameClientServed(3000);
  }
  printf("admin flood: 1100 connections, at most %zu descriptors open in the server\n", max_fds);
  EXPECT_TRUE(served) << "a game client was refused during the admin flood";
  EXPECT_LT(max_fds, 200u) << "the admin flood took the process's descriptors";
  EXPECT_LT(SecondsSince(start), 60.0);
  for (int fd : flood) close(fd);
  // Once the flood is gone the operator gets in again.
  bool admin_back = false;
  for (int i = 0; i < 100 && !admin_back; ++i) {
    HttpResponse r;
    admin_back = HttpCall("127.0.0.1", webport_, "GET", "/status", "", {}, &r, 2000).ok() && r.status == 200;
    if (!admin_back) SleepMs(100);
  }
  EXPECT_TRUE(admin_back) << Log();
  EXPECT_TRUE(server_->Running());
}

// Item 3: with every descriptor taken, the listeners without an accept-error
// callback (admin, channel) spun on accept() and wrote an error per try.
TEST_F(AdminHardeningTest, DescriptorExhaustionIsBackedOffAndLoggedBounded) {
  StartGame();
  const size_t in_use = OpenFds(server_->pid());
  // Only the soft limit: lowering the hard one could not be undone here.
  rlimit before{};
  ASSERT_EQ(prlimit(server_->pid(), RLIMIT_NOFILE, nullptr, &before), 0);
  rlimit rl{in_use + 6, before.rlim_max};
  ASSERT_EQ(prlimit(server_->pid(), RLIMIT_NOFILE, &rl, nullptr), 0);
  std::vector<int> flood;
  for (int i = 0; i < 20; ++i) flood.push_back(Dial("127.0.0.1", netport_));
  for (int i = 0; i < 3; ++i) flood.push_back(Dial("127.0.0.1", webport_));
  for (int i = 0; i < 3; ++i) flood.push_back(Dial("127.0.0.1", rootport_));
  SleepMs(500);
  const size_t lines_before = Log().size();
  const double cpu0 = CpuSeconds(server_->pid());
  const auto t0 = Clock::now();
  SleepMs(3000);
  const double cpu = CpuSeconds(server_->pid()) - cpu0;
  const double wall = SecondsSince(t0);
  const std::string during = Log().substr(lines_before);
  // Loose on purpose (shared, noisy machine): a spinning listener uses a
  // whole core; backing off uses next to nothing.
  printf("descriptor exhaustion: %.2f s CPU in %.2f s, %zu accept log lines\n", cpu, wall,
         CountLines(during, "ccept"));
  EXPECT_LT(cpu, 0.3 * wall) << "cpu " << cpu << " s in " << wall << " s";
  EXPECT_LE(CountLines(during, "ccept"), 6u) << during.substr(0, 2000);
  // Bounded, not silent: the operator learns why accepts stopped.
  EXPECT_GE(CountLines(Log(), "accept failed: Too many open files"), 1u) << Log();
  for (int fd : flood)
    if (fd >= 0) close(fd);
  ASSERT_EQ(prlimit(server_->pid(), RLIMIT_NOFILE, &before, nullptr), 0);
  EXPECT_TRUE(GameClientServed(10000)) << Log().substr(0, 4000);
  HttpResponse r;
  bool admin_back = false;
  for (int i = 0; i < 50 && !admin_back; ++i) {
    admin_back = HttpCall("127.0.0.1", webport_, "GET", "/status", "", {}, &r, 2000).ok() && r.status == 200;
    if (!admin_back) SleepMs(100);
  }
  EXPECT_TRUE(admin_back);
  EXPECT_TRUE(server_->Running());
}

// Item 11: after a few wrong tokens an address is answered 429 for a growing
// window, without the token being looked at; success resets it.
TEST_F(AdminHardeningTest, TokenGuessingIsBackedOffPerAddress) {
  StartGame();
  const std::string wrong = "not-the-token-at-all-000000000000";
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(RawStatus("127.0.0.1", webport_, Request("POST", "/reload", "{}", wrong)), 401) << i;
  std::string head, body;
  // Even the right token is not looked at now.
  EXPECT_EQ(RawStatus("127.0.0.1", webport_, Request("POST", "/reload", "{}", kToken), &body, "", &head), 429)
      << body;
  const int retry_after = std::atoi(HeaderValue(head, "Retry-After").c_str());
  EXPECT_GE(retry_after, 1) << head;
  // Another address is not affected.
  EXPECT_EQ(RawStatus("127.0.0.1", webport_, Request("POST", "/reload", "{}", kToken), &body, "127.0.0.2"), 200)
      << body;
  // Reading needs no token and is never throttled.
  EXPECT_EQ(RawStatus("127.0.0.1", webport_, Request("GET", "/status", "")), 200);
  // A burst while locked out: all 429, none logged one by one.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(RawStatus("127.0.0.1", webport_, Request("POST", "/reload", "{}", wrong)), 429);

  SleepMs(retry_after * 1000 + 200);
  // One more wrong token: locked out again, for longer.
  EXPECT_EQ(RawStatus("127.0.0.1", webport_, Request("POST", "/reload", "{}", wrong)), 401);
  EXPECT_EQ(RawStatus("127.0.0.1", webport_, Request("POST", "/reload", "{}", kToken), &body, "", &head), 429);
  const int second = std::atoi(HeaderValue(head, "Retry-After").c_str());
  EXPECT_GT(second, retry_after) << head;
  SleepMs(second * 1000 + 200);
  EXPECT_EQ(RawStatus("127.0.0.1", webport_, Request("POST", "/reload", "{}", kToken), &body), 200) << body;
  // Success forgot the failures: one wrong token is a plain 401 again.
  EXPECT_EQ(RawStatus("127.0.0.1", webport_, Request("POST", "/reload", "{}", wrong)), 401);
  EXPECT_EQ(RawStatus("127.0.0.1", webport_, Request("POST", "/reload", "{}", kToken)), 200);
  // 16 refusals, a bounded number of log lines about them.
  const std::string log = Log();
  EXPECT_LE(CountLines(log, "wrong token") + CountLines(log, "backing off"), 6u) << log;
}

// Item 5: the admin API binds admin_host (loopback by default), not the
// client port's host.
TEST_F(AdminHardeningTest, AdminStaysOnLoopbackWhenClientsListenOnEveryAddress) {
  StartGame("", ", \"host\": \"0.0.0.0\"");
  EXPECT_TRUE(Reachable("127.0.0.1", webport_));
  EXPECT_FALSE(Reachable("127.0.0.2", webport_)) << "the admin API answers beyond 127.0.0.1";
  const std::string ext = ExternalAddress();
  if (!ext.empty()) {
    EXPECT_FALSE(Reachable(ext, webport_)) << "the admin API answers on " << ext;
    EXPECT_TRUE(Reachable(ext, netport_));
  }
  EXPECT_TRUE(Reachable("127.0.0.2", netport_));  // clients do reach every address
  EXPECT_EQ(Http("GET", "/status").status, 200);
  EXPECT_EQ(Log().find("beyond loopback"), std::string::npos);
}

TEST_F(AdminHardeningTest, ServerAdminHostIsWhereItsAdminListens) {
  StartGame("", ", \"admin_host\": \"127.0.0.2\"", "127.0.0.2");
  EXPECT_TRUE(Reachable("127.0.0.2", webport_));
  EXPECT_FALSE(Reachable("127.0.0.1", webport_));
  EXPECT_TRUE(Reachable("127.0.0.1", netport_));
}

TEST_F(AdminHardeningTest, AdminBeyondLoopbackIsWarnedAbout) {
  StartGame(", \"admin_host\": \"0.0.0.0\"");
  const std::string log = Log();
  EXPECT_NE(log.find("beyond loopback"), std::string::npos) << log;
  EXPECT_TRUE(Reachable("127.0.0.2", webport_));
}

TEST_F(AdminHardeningTest, MasterAdminBindsAdminHostAndLampyrctlFindsIt) {
  const uint16_t rootport = test::FreePort(), master_web = test::FreePort();
  conf_ = dir_.path() + "/cluster.json";
  test::WriteFile(conf_, std::string("{\"master\": {\"roothost\": \"127.0.0.1\", \"admin_host\": \"127.0.0.2\", "
                                     "\"rootport\": ") +
                             std::to_string(rootport) + ", \"webport\": " + std::to_string(master_web) +
                             ", \"admin_token\": \"" + kToken + "\", \"cluster_secret\": \"" + kSecret +
                             "\", \"insecure_dev\": true}, \"servers\": {\"game1\": {}}}");
  auto master = Process::Start({test::LampyrBinary(), "--conf", conf_}, {"LAMPYR_ADMIN_TOKEN="},
                               dir_.path() + "/master.out");
  ASSERT_NE(master, nullptr);
  ASSERT_TRUE(test::WaitForPort("127.0.0.2", master_web, 10000)) << test::ReadFile(dir_.path() + "/master.out");
  EXPECT_FALSE(Reachable("127.0.0.1", master_web));
  EXPECT_TRUE(Reachable("127.0.0.1", rootport));
  auto ctl = Process::Start({std::string(LAMPYR_BIN_DIR) + "/lampyrctl", "--conf", conf_, "status"},
                            {"LAMPYR_ADMIN_TOKEN=", "LAMPYR_ADMIN_URL="}, dir_.path() + "/ctl.out");
  ASSERT_NE(ctl, nullptr);
  int st = ctl->Wait(20000);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << test::ReadFile(dir_.path() + "/ctl.out");
  EXPECT_NE(test::ReadFile(dir_.path() + "/ctl.out").find("game1"), std::string::npos);
}

// Item 12: the config reader read /dev/zero until memory ran out and
// blocked forever on a FIFO.
class ConfigFileTest : public ::testing::Test {
 protected:
  // Runs `argv`, returns its exit status (-1 if it did not end in 10 s).
  int Run(const std::vector<std::string>& argv, std::string* out) {
    const std::string file = dir_.path() + "/run" + std::to_string(++runs_) + ".out";
    auto p = Process::Start(argv, {"LAMPYR_ADMIN_URL=", "LAMPYR_ADMIN_TOKEN="}, file);
    if (!p) return -1;
    int st = p->Wait(10000);
    *out = test::ReadFile(file);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  TempDir dir_;
  int runs_ = 0;
};

TEST_F(ConfigFileTest, DevZeroIsRefusedAtOnce) {
  std::string out;
  EXPECT_EQ(Run({test::LampyrBinary(), "--check", "--conf", "/dev/zero"}, &out), 1) << out;
  EXPECT_NE(out.find("/dev/zero"), std::string::npos) << out;
  EXPECT_NE(out.find("not a regular file"), std::string::npos) << out;
  EXPECT_EQ(Run({std::string(LAMPYR_BIN_DIR) + "/lampyrctl", "--conf", "/dev/zero", "status"}, &out), 2) << out;
  EXPECT_NE(out.find("not a regular file"), std::string::npos) << out;
}

TEST_F(ConfigFileTest, FifoIsRefusedWithoutBlocking) {
  const std::string fifo = dir_.path() + "/conf.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string out;
  EXPECT_EQ(Run({test::LampyrBinary(), "--check", "--conf", fifo}, &out), 1) << out;
  EXPECT_NE(out.find(fifo), std::string::npos) << out;
  EXPECT_NE(out.find("not a regular file"), std::string::npos) << out;
  EXPECT_EQ(Run({test::LampyrBinary(), "--conf", fifo, "--server", "game1"}, &out), 1) << out;
}

TEST_F(ConfigFileTest, OversizedFileIsRefusedNamingTheLimit) {
  const std::string big = dir_.path() + "/big.json";
  {
    std::ofstream f(big);
    f << "{\"servers\": {\"a\": {}}, \"pad\": \"" << std::string(5 << 20, 'x') << "\"}";
  }
  std::string out;
  EXPECT_EQ(Run({test::LampyrBinary(), "--check", "--conf", big}, &out), 1) << out;
  EXPECT_NE(out.find("larger than"), std::string::npos) << out;
  EXPECT_NE(out.find(big), std::string::npos) << out;
}

}  // namespace
}  // namespace lampyr
