// Shared key/value ("kv_*") and preload ("data_preload") against the real
// binary, the memcached and the MariaDB of scripts/services.sh: values land
// under memcached.kv_prefix (checked with a client of our own, behind the
// server's back), apart from the record keys; get/set/add/cas/incr/delete
// with expiry; the lock is exclusive between two processes and only its
// token unlocks it; a declared table is preloaded at start and on demand;
// memcached unreachable fails the call, the server keeps serving.
#include <gtest/gtest.h>

#include "../unit/data_test_support.h"
#include "data/memcache_client.h"
#include "plugin_server.h"

namespace lampyr::test {
namespace {

using data::testing::Sql;

constexpr uint32_t kGet = 61, kSet = 62, kAdd = 63, kCas = 64, kIncr = 65, kDel = 66, kLock = 67, kUnlock = 68,
                   kPreload = 69;

class PluginKvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tag_ = data::testing::RandomTag();
    table_ = "kvt_" + tag_;
    sql_.Exec("CREATE TABLE " + table_ + " (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL) ENGINE=InnoDB");
    for (int i = 1; i <= 3; ++i)
      sql_.Exec("INSERT INTO " + table_ + " (id, name) VALUES (?, ?)", {std::to_string(i), "n" + std::to_string(i)});
    MemcachedConfig mc;
    mc.urls = {data::testing::EnvOr("LAMPYR_TEST_MEMCACHED", "127.0.0.1:21211")};
    Status st;
    mc_ = data::McClient::Create(mc, &st);
    ASSERT_TRUE(mc_) << st.message();
  }
  void TearDown() override {
    servers_.clear();
    sql_.Exec("DROP TABLE IF EXISTS " + table_);
  }

  // Servers a and b (both "mem": true; a also "db": true with the record
  // layer) sharing memcached; `mc_url` overrides memcached.urls.
  void WriteConf(const std::string& mc_url = "") {
    for (auto& p : ports_) p = FreePort();
    auto db = data::testing::TestDb();
    conf_ = dir_.path() + "/lampyr.json";
    std::string url = mc_url.empty() ? data::testing::EnvOr("LAMPYR_TEST_MEMCACHED", "127.0.0.1:21211") : mc_url;
    WriteFile(conf_,
              "{\"master\": {\"admin_token\": \"tok\"},\n"
              "\"servers\": {\"a\": {\"netport\": " + std::to_string(ports_[0]) +
                  ", \"db\": true, \"mem\": true, \"log\": \"a.log\", \"plugins\": [\"test_kv\"]},"
                  " \"b\": {\"netport\": " + std::to_string(ports_[1]) +
                  ", \"mem\": true, \"plugins\": [\"test_kv\"]}},\n"
              "\"plugins\": {\"test_kv\": {\"path\": \"" + PluginPath("test_kv") + "\"}},\n"
              "\"db\": {\"host\": \"" + db.host + "\", \"port\": " + std::to_string(db.port) + ", \"user\": \"" +
                  db.user + "\", \"passwd\": \"" + db.passwd + "\", \"db\": \"" + db.db + "\"},\n"
              "\"memcached\": {\"urls\": [\"" + url + "\"], \"hostname\": \"lp" + tag_ + "\", \"kv_prefix\": \"kv" +
                  tag_ + ":\"},\n"
              "\"tables\": {\"" + table_ + "\": {\"pk\": \"id\", \"preload\": true}}}\n");
  }
  bool Start(int i) {
    static const char* names[] = {"a", "b"};
    auto p = StartServer(conf_, names[i], ports_[i]);
    if (!p) return false;
    servers_.push_back(std::move(p));
    return true;
  }
  std::unique_ptr<client::Client> Connect(int i) {
    auto c = std::make_unique<client::Client>();
    EXPECT_TRUE(c->Connect("127.0.0.1", ports_[i]).ok());
    return c;
  }
  static std::string Ask(client::Client& c, uint32_t command, const std::string& body) {
    client::Frame f;
    Status st = c.Call(command, body, &f, 15000);
    return st.ok() ? f.body : "<call failed: " + st.message() + ">";
  }
  static bool WaitFor(const std::function<bool()>& pred, int timeout_ms = 15000) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pred();
  }
  std::string Raw(const std::string& key) {
    data::McItem item;
    return mc_->Get(key, &item) == data::McResult::kOk ? item.value : "<none>";
  }

  Sql sql_;
  TempDir dir_;
  std::string tag_, table_, conf_;
  uint16_t ports_[2] = {};
  std::vector<std::unique_ptr<Process>> servers_;
  std::unique_ptr<data::McClient> mc_;
};

TEST_F(PluginKvTest, ValuesAreSharedUnderTheirOwnPrefix) {
  WriteConf();
  ASSERT_TRUE(Start(0)) << ReadFile(dir_.path() + "/a.log");
  ASSERT_TRUE(Start(1));
  auto a = Connect(0), b = Connect(1);
  EXPECT_EQ(Ask(*a, kGet, "score"), "missing");
  EXPECT_EQ(Ask(*a, kSet, "score\t10\t0"), "done=1");
  EXPECT_EQ(Raw("kv" + tag_ + ":score"), "10");  // under kv_prefix, nowhere near "<hostname>:r:"
  // Another process sees it.
  std::string got = Ask(*b, kGet, "score");
  ASSERT_EQ(got.rfind("found 10 cas=", 0), 0u) << got;
  std::string cas = got.substr(got.find("cas=") + 4);
  // add only on a free key.
  EXPECT_EQ(Ask(*b, kAdd, "score\t99\t0"), "done=0");
  EXPECT_EQ(Ask(*b, kAdd, "fresh\tx\t0"), "done=1");
  // cas: the first writer with the read CAS wins, the second loses.
  EXPECT_EQ(Ask(*a, kCas, "score\t11\t" + cas), "done=1");
  EXPECT_EQ(Ask(*b, kCas, "score\t12\t" + cas), "done=0");
  EXPECT_EQ(Ask(*b, kGet, "score").rfind("found 11 ", 0), 0u);
  // incr from both processes, a missing key starting at its initial value.
  EXPECT_EQ(Ask(*a, kIncr, "hits\t5\t100"), "value=100");
  EXPECT_EQ(Ask(*b, kIncr, "hits\t5\t100"), "value=105");
  EXPECT_EQ(Ask(*a, kIncr, "hits\t-200\t0"), "value=0");  // memcached stops at 0
  // incr of a value that is not a number is the caller's error, not a dead memcached.
  EXPECT_EQ(Ask(*a, kIncr, "fresh\t1\t0"), "err kv: the value of \"fresh\" is not a decimal number");
  EXPECT_EQ(Ask(*a, kIncr, "hits\t1\t0"), "value=1");  // the handle still works
  // delete.
  EXPECT_EQ(Ask(*a, kDel, "score"), "done=1");
  EXPECT_EQ(Ask(*a, kDel, "score"), "done=0");
  EXPECT_EQ(Ask(*b, kGet, "score"), "missing");
  // Bad keys are refused at once, never sent.
  EXPECT_EQ(Ask(*a, kSet, "with space\tv\t0"), "refused");
  EXPECT_EQ(Ask(*a, kSet, "\tv\t0"), "refused");
  EXPECT_EQ(Ask(*a, kSet, std::string(300, 'k') + "\tv\t0"), "refused");
}

TEST_F(PluginKvTest, ExpiryIsMemcachedsOwn) {
  WriteConf();
  ASSERT_TRUE(Start(0)) << ReadFile(dir_.path() + "/a.log");
  auto a = Connect(0);
  EXPECT_EQ(Ask(*a, kSet, "short\tv\t1"), "done=1");
  EXPECT_EQ(Ask(*a, kSet, "long\tv\t0"), "done=1");
  // memcached's clock ticks in whole seconds: the 1 s item is gone within ~2 s.
  ASSERT_TRUE(WaitFor([&] { return Ask(*a, kGet, "short") == "missing"; }, 15000));
  EXPECT_EQ(Ask(*a, kGet, "long").rfind("found v ", 0), 0u);
}

TEST_F(PluginKvTest, TheLockIsExclusiveAndOnlyItsTokenUnlocks) {
  WriteConf();
  ASSERT_TRUE(Start(0)) << ReadFile(dir_.path() + "/a.log");
  ASSERT_TRUE(Start(1));
  auto a = Connect(0), b = Connect(1);
  std::string held = Ask(*a, kLock, "boss\t30");
  ASSERT_EQ(held.rfind("token=", 0), 0u) << held;
  std::string token = held.substr(6);
  EXPECT_EQ(Ask(*b, kLock, "boss\t30"), "held");
  EXPECT_EQ(Ask(*a, kLock, "boss\t30"), "held");  // not re-entrant
  EXPECT_EQ(Ask(*b, kUnlock, "boss\tnot-the-token"), "done=0");
  EXPECT_EQ(Ask(*b, kLock, "boss\t30"), "held");
  EXPECT_EQ(Ask(*a, kUnlock, "boss\t" + token), "done=1");
  std::string next = Ask(*b, kLock, "boss\t30");
  EXPECT_EQ(next.rfind("token=", 0), 0u) << next;
  EXPECT_NE(next.substr(6), token);
  EXPECT_EQ(Ask(*a, kUnlock, "boss\t" + token), "done=0");  // a stale token does nothing
  // A lock whose holder vanished ends with its TTL.
  EXPECT_EQ(Ask(*a, kLock, "short\t1").rfind("token=", 0), 0u);
  EXPECT_TRUE(WaitFor([&] { return Ask(*b, kLock, "short\t1").rfind("token=", 0) == 0; }, 15000));
}

TEST_F(PluginKvTest, ADeclaredTableIsPreloadedAtStartAndOnDemand) {
  WriteConf();
  ASSERT_TRUE(Start(0)) << ReadFile(dir_.path() + "/a.log");
  const std::string rec = "lp" + tag_ + ":r:" + table_ + ":";
  ASSERT_TRUE(WaitFor([&] {
    return ReadFile(dir_.path() + "/a.log").find("table " + table_ + " preloaded: 3 rows") != std::string::npos;
  })) << ReadFile(dir_.path() + "/a.log");
  for (int i = 1; i <= 3; ++i) EXPECT_NE(Raw(rec + std::to_string(i)), "<none>") << i;
  // A row MySQL got behind the cache's back is cached on demand.
  sql_.Exec("INSERT INTO " + table_ + " (id, name) VALUES (4, 'n4')");
  EXPECT_EQ(Raw(rec + "4"), "<none>");
  auto a = Connect(0);
  EXPECT_EQ(Ask(*a, kPreload, table_), "rows=4");
  EXPECT_NE(Raw(rec + "4"), "<none>");
  EXPECT_EQ(Ask(*a, kPreload, "not_declared"), "refused");
  // Server b has no record layer.
  ASSERT_TRUE(Start(1));
  auto b = Connect(1);
  EXPECT_EQ(Ask(*b, kPreload, table_), "refused");
}

TEST_F(PluginKvTest, MemcachedUnreachableFailsTheCallAndTheServerServes) {
  WriteConf("127.0.0.1:" + std::to_string(FreePort()));
  ASSERT_TRUE(Start(1));  // b: no database needed
  auto b = Connect(1);
  std::string r = Ask(*b, kSet, "k\tv\t0");
  EXPECT_EQ(r.rfind("err memcached: ", 0), 0u) << r;
  r = Ask(*b, kGet, "k");
  EXPECT_EQ(r.rfind("err memcached: ", 0), 0u) << r;
  EXPECT_TRUE(servers_[0]->Running());
}

}  // namespace
}  // namespace lampyr::test
