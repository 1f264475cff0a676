// The memcached-restart drill (issue 8 item 13), as an operator would run it:
// two writer processes apply `+1` (DataEngine::Modify, what the plugins'
// data_add runs) to records both of them update and to records only one of
// them updates; every acknowledged reply goes to an independent ledger; the
// test's own memcached is killed with SIGKILL and started again, empty, at
// several points of the load. After both writers stopped (graceful stop
// flushes everything), MySQL must hold exactly what the ledger acknowledged:
// nothing lost, nothing applied twice, and no total handed out twice.
//
// The memcached here belongs to the test (a free port, fork + exec), so the
// drill does not disturb the shared one of scripts/services.sh and can run
// beside the other data tests.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "data/data_engine.h"
#include "data_test_support.h"
#include "harness.h"

namespace lampyr::data {
namespace {

using namespace testing;
using Clock = std::chrono::steady_clock;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
}


// True when memcached on `port` answers `version`.
bool McAnswers(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  bool ok = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char cmd[] = "version\r\n";
    char buf[64] = {};
    if (write(fd, cmd, sizeof cmd - 1) == static_cast<ssize_t>(sizeof cmd - 1) && read(fd, buf, sizeof buf - 1) > 0)
      ok = std::string(buf).rfind("VERSION", 0) == 0;
  }
  close(fd);
  return ok;
}

// A memcached owned by this test: started, killed -9, started again (empty)
// on the same port.
class OwnMemcached {
 public:
  explicit OwnMemcached(uint16_t port) : port_(port) {}
  ~OwnMemcached() { Kill(); }

  bool Start() {
    fflush(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      int devnull = open("/dev/null", O_RDWR);
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
      const std::string port = std::to_string(port_);
      if (geteuid() == 0)
        execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", port.c_str(), "-U", "0", "-m", "64", "-t", "2",
               "-u", "root", static_cast<char*>(nullptr));
      else
        execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", port.c_str(), "-U", "0", "-m", "64", "-t", "2",
               static_cast<char*>(nullptr));
      _exit(127);
    }
    if (pid_ < 0) return false;
    for (int i = 0; i < 200; ++i) {
      if (McAnswers(port_)) return true;
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;  // exited: not installed, or the port is taken
      }
      usleep(50 * 1000);
    }
    return false;
  }

  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
};

struct Ack {
  int record;
  long long total;
  int64_t at_us;
  int writer = 0;
};

// One writer process: keeps `window` adds in flight over its records until
// `stop_path` exists, then stops gracefully and writes its ledger.
// Each acknowledgement is also reported as one byte (the writer's number) on
// `progress`, so the test can place the kills by load, not by the clock.
int WriterMain(const Config& config, const std::string& table, const std::string& writer,
               const std::vector<int>& records, const std::string& stop_path, const std::string& ledger_path,
               unsigned seed, int progress, char tag) {
  EventLoop loop;
  Config c = config;
  c.db.flush_interval_ms = 200;  // some adds flushed, the newest only in memcached and the queue
  DataEngine e(&loop, c, DataOptions{.writer_id = writer});
  if (!e.Start().ok()) return 2;
  std::vector<Ack> acks;
  std::mt19937 rng(seed);
  int inflight = 0;
  bool stopping = false;
  long long failures = 0;
  std::string last_error;
  std::function<void()> issue = [&] {
    if (stopping) return;
    const int r = records[rng() % records.size()];
    ++inflight;
    e.Modify(
        table, std::to_string(r),
        [](Row& row) {
          row["n"] = std::to_string(std::stoll(row["n"].value_or("0")) + 1);
          return Status::OK();
        },
        [&, r](Status s, Row row) {
          --inflight;
          if (s.ok()) {
            acks.push_back({r, std::stoll(row["n"].value_or("-1")), NowUs()});
            if (write(progress, &tag, 1) != 1) _exit(4);
            issue();
          } else {
            // Refused, not acknowledged: the "player" tries again a bit later.
            ++failures;
            last_error = s.message();
            loop.RunAfter(0.02, [&] { issue(); });
          }
        });
  };
  for (int i = 0; i < 8; ++i) issue();
  TimerId poll = loop.RunEvery(0.05, [&] {
    if (!stopping && access(stop_path.c_str(), F_OK) == 0) stopping = true;
    if (stopping && inflight == 0) loop.Quit();
  });
  loop.Run();
  loop.Cancel(poll);
  e.Stop();
  std::ofstream out(ledger_path);
  out << failures << " " << last_error.size() << "\n" << last_error << "\n";
  for (const auto& a : acks) out << a.record << " " << a.total << " " << a.at_us << "\n";
  return out.good() ? 0 : 5;
}

bool ReadLedger(const std::string& path, std::vector<Ack>* acks, long long* failures, std::string* last_error) {
  std::ifstream in(path);
  size_t errlen = 0;
  if (!(in >> *failures >> errlen)) return false;
  in.get();
  last_error->resize(errlen);
  in.read(last_error->data(), static_cast<std::streamsize>(errlen));
  Ack a;
  while (in >> a.record >> a.total >> a.at_us) acks->push_back(a);
  return true;
}

// How many restarts: fewer under the sanitizers (everything runs several
// times slower there) or when CI says so through LAMPYR_SOAK_CYCLES.
int Restarts() {
#if defined(__SANITIZE_ADDRESS__)
  int n = 2;
#else
  int n = 4;
#endif
  if (const char* env = getenv("LAMPYR_SOAK_CYCLES"); env && *env) n = std::min(n, 2);
  if (const char* env = getenv("LAMPYR_DRILL_RESTARTS"); env && *env) n = std::max(1, atoi(env));
  return n;
}

// DISABLED until the fix: on the code of this commit it fails, e.g. "4 restarts, 53,576
// acknowledged adds: 1,204 lost, 0 applied but not acknowledged, 1,204 totals
// returned twice" (lost adds on shared records and on records only one writer
// updates). Run it with --gtest_also_run_disabled_tests.
TEST(DataDrill, MemcachedKilledAndRestartedEmptyUnderTwoWritersLosesAndDuplicatesNothing) {
  log::SetLevel(log::Level::kError);
  Sql sql;
  TestTable table(&sql, kPlayerColumns);
  // Shared records 1..8 (both writers), own records 101..108 and 201..208.
  std::vector<int> shared, own1, own2;
  for (int i = 1; i <= 8; ++i) {
    shared.push_back(i);
    own1.push_back(100 + i);
    own2.push_back(200 + i);
  }
  for (const auto& list : {shared, own1, own2})
    for (int r : list) sql.Exec("INSERT INTO " + table.name() + " (id, n) VALUES (?, 0)", {std::to_string(r)});

  const uint16_t port = test::FreePort();
  ASSERT_NE(port, 0);
  OwnMemcached mc(port);
  ASSERT_TRUE(mc.Start()) << "could not start memcached on port " << port << " (is memcached installed?)";
  Config config = TestConfig({{table.name(), PlayerTable()}});
  config.memcached.urls = {"127.0.0.1:" + std::to_string(port)};

  const std::string base = "/tmp/lampyr_drill_" + RandomTag();
  const std::string stop_path = base + ".stop";
  int progress[2];
  ASSERT_EQ(pipe(progress), 0);
  auto writer = [&](int which, std::vector<int> records) {
    return ForkChild([&, which, records] {
      close(progress[0]);
      return WriterMain(config, table.name(), "drill-" + std::to_string(which) + "-" + RandomTag(), records,
                        stop_path, base + ".ledger" + std::to_string(which), 1000u + which, progress[1],
                        static_cast<char>('0' + which));
    });
  };
  std::vector<int> records1 = shared, records2 = shared;
  records1.insert(records1.end(), own1.begin(), own1.end());
  records2.insert(records2.end(), own2.begin(), own2.end());
  pid_t w1 = writer(1, records1);
  pid_t w2 = writer(2, records2);
  close(progress[1]);
  // A failed assertion below returns early: never leave a writer running.
  struct Reaper {
    pid_t* pids[2];
    ~Reaper() {
      for (pid_t* p : pids)
        if (*p > 0) {
          kill(*p, SIGKILL);
          waitpid(*p, nullptr, 0);
        }
    }
  } reaper{{&w1, &w2}};

  // Waits until each writer acknowledged `n` more adds (the load runs again
  // after a restart); false if a writer stopped reporting for 60 s.
  long long seen[2] = {0, 0};
  auto await_acks = [&](long long n) {
    const long long want[2] = {seen[0] + n, seen[1] + n};
    char buf[4096];
    while (seen[0] < want[0] || seen[1] < want[1]) {
      pollfd p{progress[0], POLLIN, 0};
      if (poll(&p, 1, 60000) <= 0) return false;
      ssize_t got = read(progress[0], buf, sizeof buf);
      if (got <= 0) return false;
      for (ssize_t i = 0; i < got; ++i)
        if (buf[i] == '1' || buf[i] == '2') ++seen[buf[i] - '1'];
    }
    return true;
  };

  // Kill -9 and restart at several points of the load; memcached stays down
  // for different lengths (writers see connection errors, then an empty
  // cache). Each kill waits for both writers to have acknowledged adds since
  // the previous restart, so every phase of the drill carries load.
  const int restarts = Restarts();
  const double down_s[] = {0.3, 2.0, 0.1, 1.0};
  const long long kAcksPerPhase = 1500;
  std::vector<int64_t> restart_at, back_at;
  for (int k = 0; k < restarts; ++k) {
    ASSERT_TRUE(await_acks(kAcksPerPhase)) << "the load stalled before restart " << k << " (acks: " << seen[0]
                                           << ", " << seen[1] << ")";
    mc.Kill();
    restart_at.push_back(NowUs());
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(down_s[k % 4] * 1000)));
    ASSERT_TRUE(mc.Start()) << "memcached did not come back on port " << port;
    back_at.push_back(NowUs());
  }
  EXPECT_TRUE(await_acks(kAcksPerPhase)) << "the load did not resume after the last restart";
  std::ofstream(stop_path) << "stop\n";
  // Keep reading: a writer blocked on a full pipe could not stop.
  std::thread drain([&] {
    char buf[4096];
    while (read(progress[0], buf, sizeof buf) > 0) {
    }
  });
  EXPECT_EQ(WaitChild(w1, 120), 0);
  w1 = -1;
  EXPECT_EQ(WaitChild(w2, 120), 0);
  w2 = -1;
  drain.join();
  close(progress[0]);
  unlink(stop_path.c_str());

  std::vector<Ack> acks;
  for (int which : {1, 2}) {
    long long failures = 0;
    std::string last_error;
    const std::string path = base + ".ledger" + std::to_string(which);
    const size_t before = acks.size();
    EXPECT_TRUE(ReadLedger(path, &acks, &failures, &last_error)) << "no ledger from writer " << which;
    for (size_t i = before; i < acks.size(); ++i) acks[i].writer = which;
    unlink(path.c_str());
    printf("DRILL writer %d: %lld refused adds (last: %s)\n", which, failures, last_error.c_str());
  }

  // The ledger: acknowledged adds per record, and the totals they returned.
  std::map<int, long long> acked;
  std::map<int, std::map<long long, const Ack*>> totals;
  long long duplicated = 0;
  for (const auto& a : acks) {
    ++acked[a.record];
    auto [it, fresh] = totals[a.record].emplace(a.total, &a);
    if (fresh) continue;
    ++duplicated;
    // Where the two histories forked, relative to the kills (diagnosis).
    std::string when;
    for (size_t k = 0; k < restart_at.size(); ++k)
      when += " kill" + std::to_string(k) + "@" + std::to_string((restart_at[k] - restart_at[0]) / 1000) +
              "ms-up@" + std::to_string((back_at[k] - restart_at[0]) / 1000) + "ms";
    ADD_FAILURE() << "record " << a.record << ": total " << a.total << " returned to writer " << it->second->writer
                  << " at " << (it->second->at_us - restart_at[0]) / 1000 << " ms and to writer " << a.writer << " at "
                  << (a.at_us - restart_at[0]) / 1000 << " ms;" << when;
  }
  std::map<int, long long> mysql;
  for (auto& row : sql.Query("SELECT id, n FROM " + table.name())) mysql[std::stoi(*row[0])] = std::stoll(*row[1]);
  long long lost = 0, extra = 0;
  for (const auto& [r, n] : mysql) {
    const long long want = acked.count(r) ? acked[r] : 0;
    if (n < want) lost += want - n;
    if (n > want) extra += n - want;
    EXPECT_EQ(n, want) << "record " << r << ": " << want << " acknowledged adds, MySQL has " << n;
  }
  printf("DRILL %d restarts, %zu acknowledged adds: %lld lost, %lld applied but not acknowledged, "
         "%lld totals returned twice\n",
         restarts, acks.size(), lost, extra, duplicated);
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(extra, 0);
  EXPECT_EQ(duplicated, 0);

  // The drill means something only if the load ran through every restart:
  // adds acknowledged before the first kill, between kills and after the last.
  restart_at.push_back(std::numeric_limits<int64_t>::max());
  std::vector<long long> per_phase(restart_at.size(), 0);
  for (const auto& a : acks) {
    size_t phase = 0;
    while (a.at_us > restart_at[phase]) ++phase;
    ++per_phase[phase];
  }
  for (size_t p = 0; p < per_phase.size(); ++p) EXPECT_GT(per_phase[p], 0) << "no add acknowledged in phase " << p;
}

}  // namespace
}  // namespace lampyr::data
