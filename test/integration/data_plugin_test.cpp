// The data layer from a plugin (docs/data.md, "From a plugin"): real `lampyr`
// servers with "db": true running the account plugin against the MariaDB and
// memcached of scripts/services.sh. A missing service fails the test (the
// server refuses to start, or the direct SQL connection fails).
//
// Covered: register / login (salted PBKDF2 hash, a known-answer login from
// RFC 7914's vector, wrong password refused, nothing plaintext in MySQL), the
// player record created on first login, gold via data_add (bounds), read back
// after reconnect, write-behind reaching MySQL, the raw query (top), multi-get
// and removal (peek, delete; the DELETEs reach MySQL), hostile
// values through the JSON boundary both ways, a server without "db" refusing,
// and two processes adding to one player's gold 1,000 times each -> 2,000.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>
#include <sstream>
#include <thread>

#include <json/json.h>
#include <lampyr/plugin.hpp>

#include "../unit/data_test_support.h"
#include "admin/http_client.h"
#include "harness.h"
#include "lampyr_client.h"

namespace lampyr::test {
namespace {

using client::Client;
using client::Frame;
using data::Value;
using data::testing::EnvOr;
using data::testing::RandomTag;
using data::testing::Sql;

constexpr uint32_t kRegister = 200, kLogin = 201, kGold = 202, kShow = 203, kSet = 204, kGet = 205, kTop = 206,
                   kPeek = 207, kDelete = 208;
constexpr uint32_t kErrorCommand = 0xFFFFFFFF;

// The JSON codec rows cross the C boundary with (host and plugin.hpp share it).
TEST(DataJsonTest, RowsRoundTripEveryByteAndRefuseMalformedInput) {
  namespace dj = lampyr::sdk::datajson;
  std::string all;
  for (int i = 0; i < 256; ++i) all += char(i);
  lampyr::sdk::Row row{{"bytes", all}, {"null", std::nullopt}, {"", ""}, {"k\"\\\n", "v"}};
  std::string text = dj::row(row);
  EXPECT_EQ(text.find('\0'), std::string::npos) << "control bytes are escaped";
  lampyr::sdk::Row back;
  ASSERT_TRUE(dj::parse_row(text, &back)) << text;
  EXPECT_TRUE(back == row);

  // Standard JSON input: numbers, booleans, \u escapes and surrogate pairs.
  ASSERT_TRUE(dj::parse_row(R"( {"a": 42, "b": -7, "c": true, "d": "\u00e9\ud83d\ude00\u0000\/"} )", &back));
  EXPECT_EQ(back["a"], "42");
  EXPECT_EQ(back["b"], "-7");
  EXPECT_EQ(back["c"], "1");
  EXPECT_EQ(back["d"], std::string("\xc3\xa9\xf0\x9f\x98\x80\0/", 8));

  std::vector<std::optional<lampyr::sdk::Row>> rows;
  ASSERT_TRUE(dj::parse_rows(R"([{"x":"1"},null,{}])", &rows));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_FALSE(rows[1].has_value());
  std::vector<std::vector<Value>> qrows;
  uint64_t affected = 0;
  ASSERT_TRUE(dj::parse_query(R"({"rows":[["a",null],[]],"affected":12})", &qrows, &affected));
  EXPECT_EQ(qrows.size(), 2u);
  EXPECT_EQ(affected, 12u);

  for (const char* bad : {"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":\"x}", "{\"a\":\"\\q\"}", "{\"a\":\"\\u12\"}",
                          "{\"a\":\"\\ud83d\\u0041\"}", "{\"a\":1,}", "{\"a\":1} x", "[1,", "nul"}) {
    lampyr::sdk::Row r;
    EXPECT_FALSE(dj::parse_row(bad, &r)) << bad;
  }
  std::vector<Value> values;
  EXPECT_FALSE(dj::parse_values("[\"a\" \"b\"]", &values));
  EXPECT_TRUE(dj::parse_values(" [ ] ", &values));
  EXPECT_TRUE(values.empty());
}

class DataPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tag_ = RandomTag();
    accounts_ = "a_" + tag_;
    players_ = "p_" + tag_;
    // conf/schema.sql as shipped, under this test's table names.
    std::string schema = ReadFile(SourceDir() + "/conf/schema.sql");
    for (auto [from, to] : {std::pair{"`account`", accounts_}, std::pair{"`player`", players_}}) {
      for (size_t p; (p = schema.find(from)) != std::string::npos;) schema.replace(p, std::strlen(from), to);
    }
    std::string stmt, line;
    std::istringstream in(schema);
    int created = 0;
    while (std::getline(in, line)) {
      if (line.rfind("--", 0) == 0) continue;
      stmt += line + "\n";
      if (line.find(';') != std::string::npos) {
        sql_.Exec(stmt.substr(0, stmt.rfind(';')));
        ++created;
        stmt.clear();
      }
    }
    ASSERT_EQ(created, 2) << "conf/schema.sql should create the account and player tables";
  }

  void TearDown() override {
    servers_.clear();  // SIGKILL what is still running before dropping its tables
    sql_.Exec("DROP TABLE IF EXISTS " + accounts_);
    sql_.Exec("DROP TABLE IF EXISTS " + players_);
  }

  // Writes the config: servers game1, game2 (db: true) and nodb (db: false),
  // all running the account plugin.
  void WriteConf() {
    for (auto& p : ports_) p = FreePort();
    webport_ = FreePort();
    auto db = data::testing::TestDb();
    auto server = [&](const char* name, uint16_t port, bool with_db) {
      std::string web = port == ports_[0] ? ", \"webport\": " + std::to_string(webport_) : "";
      return std::string("\"") + name + "\": {\"netport\": " + std::to_string(port) + web +
             ", \"db\": " + (with_db ? "true" : "false") + ", \"plugins\": [\"account\"]}";
    };
    conf_ = dir_.path() + "/lampyr.json";
    WriteFile(conf_,
              "{\"master\": {\"admin_token\": \"data-plugin-test-token-0123\"},\n"
              "\"servers\": {" + server("game1", ports_[0], true) + ", " + server("game2", ports_[1], true) + ", " +
                  server("nodb", ports_[2], false) + "},\n"
              "\"plugins\": {\"account\": {\"path\": \"" + PluginPath("account") +
                  "\", \"config\": {\"account_table\": \"" + accounts_ + "\", \"player_table\": \"" + players_ +
                  "\"}}},\n"
              "\"protocol\": {\"max_body\": 4194304},\n"
              "\"db\": {\"host\": \"" + db.host + "\", \"port\": " + std::to_string(db.port) + ", \"user\": \"" +
                  db.user + "\", \"passwd\": \"" + db.passwd + "\", \"db\": \"" + db.db +
                  "\", \"pool\": 2, \"flush_interval_ms\": 100},\n"
              "\"memcached\": {\"urls\": [\"" + EnvOr("LAMPYR_TEST_MEMCACHED", "127.0.0.1:21211") +
                  "\"], \"hostname\": \"lp" + tag_ + "\"},\n"
              "\"tables\": {\"" + accounts_ + "\": {\"pk\": \"id\", \"fk\": \"name\", \"autoinc\": true}, \"" +
                  players_ + "\": {\"pk\": \"id\", \"fk\": \"account_id\", \"autoinc\": true}}}\n");
  }

  // Starts server `i` (0 game1, 1 game2, 2 nodb) and connects a client.
  Process* Start(int i) {
    static const char* names[] = {"game1", "game2", "nodb"};
    if (conf_.empty()) WriteConf();
    auto p = StartServer(conf_, names[i], ports_[i]);
    EXPECT_TRUE(p) << "server " << names[i] << " did not start (is scripts/services.sh running?):\n"
                   << ReadFile(dir_.path() + "/" + names[i] + ".out");
    servers_.push_back(std::move(p));
    return servers_.back().get();
  }

  std::unique_ptr<Client> Connect(int i) {
    auto c = std::make_unique<Client>();
    Status s = c->Connect("127.0.0.1", ports_[i]);
    EXPECT_TRUE(s.ok()) << s.message();
    return c;
  }

  // The reply body ("<error>" + the error reply's body for an error reply).
  static std::string Ask(Client& c, uint32_t command, std::string_view body, int timeout_ms = 10000) {
    Frame f;
    Status s = c.Call(command, body, &f, timeout_ms);
    if (!s.ok()) return "<call failed: " + s.message() + ">";
    return f.command == kErrorCommand ? "<error>" + f.body : f.body;
  }

  // Polls MySQL until `query` yields `want` (write-behind flushes every 100 ms).
  std::string WaitForSql(const std::string& query, const std::vector<Value>& params, const std::string& want) {
    std::string got;
    for (int i = 0; i < 600; ++i) {
      got = sql_.One(query, params);
      if (got == want) break;
      usleep(50 * 1000);
    }
    return got;
  }

  // SIGTERM (graceful stop: the data layer flushes everything) and wait.
  static void Stop(Process* p) {
    p->Signal(SIGTERM);
    int status = p->Wait(60000);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit status " << status;
  }

  // game1's admin API: POST /reload, GET /status -> JSON.
  Json::Value Admin(const std::string& method, const std::string& path, const std::string& body) {
    HttpResponse r;
    Status st = HttpCall("127.0.0.1", webport_, method, path, body, {{"Authorization", "Bearer data-plugin-test-token-0123"}}, &r, 30000);
    EXPECT_TRUE(st.ok()) << st.message();
    Json::Value v;
    Json::CharReaderBuilder b;
    std::string errs;
    std::istringstream in(r.body);
    EXPECT_TRUE(Json::parseFromStream(b, in, &v, &errs)) << r.body;
    return v;
  }

  Sql sql_;
  TempDir dir_;
  std::string tag_, accounts_, players_, conf_;
  uint16_t ports_[3] = {}, webport_ = 0;
  std::vector<std::unique_ptr<Process>> servers_;
};

TEST_F(DataPluginTest, RegisterLoginGoldReconnectAndFlush) {
  ASSERT_TRUE(Start(0));
  auto c = Connect(0);
  EXPECT_EQ(Ask(*c, kRegister, "alice s3cret-pw"), "ok 1");
  EXPECT_EQ(Ask(*c, kRegister, "alice other-pw"), "err name taken");
  EXPECT_EQ(Ask(*c, kRegister, "al'ice pw12"), "err bad name");
  EXPECT_EQ(Ask(*c, kRegister, "bob pw"), "err bad password");
  EXPECT_EQ(Ask(*c, kGold, "+5"), "err not logged in");
  EXPECT_EQ(Ask(*c, kLogin, "alice wrong-pw"), "err wrong name or password");
  EXPECT_EQ(Ask(*c, kLogin, "nobody s3cret-pw"), "err wrong name or password");
  EXPECT_EQ(Ask(*c, kGold, "+5"), "err not logged in") << "a refused login must not log the session in";

  // First login creates the player record.
  EXPECT_EQ(Ask(*c, kLogin, "alice s3cret-pw"), "ok player=1 nickname=alice gold=0 logins=1");
  EXPECT_EQ(Ask(*c, kGold, "+5"), "gold 5");
  EXPECT_EQ(Ask(*c, kGold, "-10"), "err not enough gold");
  EXPECT_EQ(Ask(*c, kGold, "-2"), "gold 3");
  EXPECT_EQ(Ask(*c, kGold, "+x"), "err bad amount");
  EXPECT_EQ(Ask(*c, kShow, ""), "player=1 nickname=alice gold=3 logins=1");

  // Reconnect: a new session must log in again and reads the same record.
  c = Connect(0);
  EXPECT_EQ(Ask(*c, kShow, ""), "err not logged in");
  EXPECT_EQ(Ask(*c, kLogin, "alice s3cret-pw"), "ok player=1 nickname=alice gold=3 logins=2");
  EXPECT_EQ(Ask(*c, kGold, "+40"), "gold 43");

  // Write-behind reaches MySQL (queried directly, behind the server's back).
  EXPECT_EQ(WaitForSql("SELECT CONCAT(gold, '/', logins) FROM " + players_ + " WHERE id = 1", {}, "43/2"), "43/2");
  // The raw query sees MySQL.
  EXPECT_EQ(Ask(*c, kTop, ""), "alice=43");
  EXPECT_EQ(Ask(*c, kTop, "44"), "");

  // No plaintext: only a salted Argon2id hash (libsodium's interactive limits) is stored.
  auto rows = sql_.Query("SELECT id, name, pwhash, created_ms FROM " + accounts_);
  ASSERT_EQ(rows.size(), 1u);
  for (const auto& v : rows[0]) EXPECT_EQ(v.value_or("").find("s3cret"), std::string::npos);
  EXPECT_EQ(rows[0][2].value_or("").rfind("$argon2id$v=19$m=65536,t=2,p=1$", 0), 0u) << rows[0][2].value_or("");
  EXPECT_GT(std::stoll(rows[0][3].value_or("0")), 1600000000000LL) << "created_ms is wall-clock ms";
  // Same password, another account: another salt, another hash.
  EXPECT_EQ(Ask(*c, kRegister, "carol s3cret-pw"), "ok 2");
  EXPECT_NE(sql_.One("SELECT pwhash FROM " + accounts_ + " WHERE name = 'carol'"), rows[0][2].value_or(""));

  // Known answer (RFC 7914 §11: PBKDF2-HMAC-SHA256("passwd", "salt", 1)),
  // inserted into MySQL directly: also a read-through of an uncached record.
  sql_.Exec("INSERT INTO " + accounts_ + " (name, pwhash) VALUES ('kat', ?)",
            {std::string("pbkdf2-sha256$1$73616c74$55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")});
  auto k = Connect(0);
  EXPECT_EQ(Ask(*k, kLogin, "kat passwc"), "err wrong name or password");
  EXPECT_EQ(Ask(*k, kLogin, "kat passwd"), "ok player=2 nickname=kat gold=0 logins=1");
  // The old PBKDF2 hash was replaced by an Argon2id one at that login
  // (write-behind: it reaches MySQL at the next flush), and it verifies.
  EXPECT_EQ(WaitForSql("SELECT LEFT(pwhash, 10) FROM " + accounts_ + " WHERE name = 'kat'", {}, "$argon2id$"),
            "$argon2id$");
  EXPECT_EQ(Ask(*k, kLogin, "kat passwc"), "err wrong name or password");
  EXPECT_EQ(Ask(*k, kLogin, "kat passwd"), "ok player=2 nickname=kat gold=0 logins=2");

  // Multi-get, and removal of both records.
  EXPECT_EQ(Ask(*c, kPeek, "2 99 1"), "2=kat:0 99=- 1=alice:43");
  EXPECT_EQ(Ask(*k, kDelete, "passwc"), "err wrong name or password");
  EXPECT_EQ(Ask(*k, kDelete, "passwd"), "ok deleted");
  EXPECT_EQ(Ask(*k, kShow, ""), "err not logged in");
  EXPECT_EQ(Ask(*k, kLogin, "kat passwd"), "err wrong name or password");
  EXPECT_EQ(Ask(*c, kPeek, "2 1"), "2=- 1=alice:43");
  EXPECT_EQ(WaitForSql("SELECT COUNT(*) FROM " + accounts_ + " WHERE name = 'kat'", {}, "0"), "0");
  EXPECT_EQ(WaitForSql("SELECT COUNT(*) FROM " + players_ + " WHERE id = 2", {}, "0"), "0");
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + players_), "1");
}

TEST_F(DataPluginTest, HostileValuesRoundTripThroughThePluginApi) {
  Process* game = Start(0);
  ASSERT_TRUE(game);
  auto c = Connect(0);
  ASSERT_EQ(Ask(*c, kRegister, "mallory pw-1234"), "ok 1");
  ASSERT_EQ(Ask(*c, kLogin, "mallory pw-1234"), "ok player=1 nickname=mallory gold=0 logins=1");

  const std::vector<std::string> texts = {
      "",
      "it's \"quoted\" and \\back\\slashed\\",
      std::string("nul\0inside\0", 11),
      "json-ish: {\"gold\": 99999, \"id\": null} \\u0000 \\\" ]}",
      "control \x01\x02\x1f\x7f tab\t nl\n cr\r",
      "UTF-8: héllo wörld 日本語 🐉 \xe2\x80\xa8",
      "'); DROP TABLE " + players_ + "; --",
      std::string(60000, '"'),
  };
  for (const auto& t : texts) {
    EXPECT_EQ(Ask(*c, kSet, "motto " + t), "ok");
    EXPECT_EQ(Ask(*c, kGet, "motto"), t) << "motto of " << t.size() << " bytes";
  }
  // Text columns take UTF-8 only: refused before acknowledgement, the old value stays.
  EXPECT_EQ(Ask(*c, kSet, "motto bad \xff\xfe utf8").rfind("<error>", 0), 0u);
  EXPECT_EQ(Ask(*c, kGet, "motto"), texts.back());

  // Binary: every byte value, and 1 MiB of them (larger than one memcached item).
  std::string all;
  for (int i = 0; i < 256; ++i) all += char(i);
  std::string big;
  for (size_t i = 0; big.size() < (1u << 20); ++i) big += all[(i * 7 + i / 256) % 256];
  for (const std::string* b : {&all, &big}) {
    EXPECT_EQ(Ask(*c, kSet, "bag " + *b), "ok");
    std::string got = Ask(*c, kGet, "bag");
    EXPECT_TRUE(got == *b) << "bag of " << b->size() << " bytes came back as " << got.size() << " bytes";
  }
  EXPECT_EQ(Ask(*c, kSet, "bag " + all), "ok");
  EXPECT_EQ(Ask(*c, kSet, "motto " + texts[3]), "ok");

  // After a reconnect, and in MySQL after the graceful stop's flush: exact bytes.
  c = Connect(0);
  ASSERT_EQ(Ask(*c, kLogin, "mallory pw-1234"), "ok player=1 nickname=mallory gold=0 logins=2");
  EXPECT_TRUE(Ask(*c, kGet, "bag") == all);
  EXPECT_EQ(Ask(*c, kGet, "motto"), texts[3]);
  c.reset();
  Stop(game);
  auto rows = sql_.Query("SELECT motto, bag FROM " + players_ + " WHERE id = 1");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0].value_or("<null>"), texts[3]);
  EXPECT_TRUE(rows[0][1].value_or("<null>") == all) << "bag in MySQL differs";
}

TEST_F(DataPluginTest, ServerWithoutDataLayerRefuses) {
  ASSERT_TRUE(Start(2));
  auto c = Connect(2);
  std::string r = Ask(*c, kRegister, "dave pw-1234");
  EXPECT_EQ(r.rfind("<error>", 0), 0u) << r;
  EXPECT_NE(r.find("\"code\":4"), std::string::npos) << r;  // unavailable
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + accounts_), "0");
}

TEST_F(DataPluginTest, TwoProcessesAddToOnePlayersGold) {
  Process* g1 = Start(0);
  Process* g2 = Start(1);
  ASSERT_TRUE(g1 && g2);
  auto c1 = Connect(0);
  auto c2 = Connect(1);
  ASSERT_EQ(Ask(*c1, kRegister, "erin pw-1234"), "ok 1");
  ASSERT_EQ(Ask(*c1, kLogin, "erin pw-1234"), "ok player=1 nickname=erin gold=0 logins=1");
  // The other process finds the same account and player (shared cache).
  ASSERT_EQ(Ask(*c2, kLogin, "erin pw-1234"), "ok player=1 nickname=erin gold=0 logins=2");

  constexpr int kEach = 1000;
  std::vector<std::string> seen[2];
  auto run = [&](Client* c, std::vector<std::string>* out) {
    for (int i = 0; i < kEach; ++i) out->push_back(Ask(*c, kGold, "+1"));
  };
  const auto t0 = std::chrono::steady_clock::now();
  std::thread t1(run, c1.get(), &seen[0]);
  std::thread t2(run, c2.get(), &seen[1]);
  t1.join();
  t2.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("BENCH data_add from 2 processes, 1 client each, 1 in flight: %d adds in %.3f s = %.0f adds/s\n",
              2 * kEach, secs, 2 * kEach / secs);

  // Every add saw a distinct total: together exactly 1..2000.
  std::set<int> totals;
  int bad = 0;
  for (const auto& v : seen)
    for (const auto& r : v) {
      if (r.rfind("gold ", 0) != 0) {
        if (++bad <= 3) ADD_FAILURE() << "reply: " << r;
        continue;
      }
      totals.insert(std::stoi(r.substr(5)));
    }
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(totals.size(), size_t(2 * kEach));
  EXPECT_EQ(*totals.begin(), 1);
  EXPECT_EQ(*totals.rbegin(), 2 * kEach);
  EXPECT_EQ(Ask(*c1, kShow, ""), "player=1 nickname=erin gold=2000 logins=2");
  EXPECT_EQ(Ask(*c2, kShow, ""), "player=1 nickname=erin gold=2000 logins=2");

  c1.reset();
  c2.reset();
  Stop(g1);
  Stop(g2);
  EXPECT_EQ(sql_.One("SELECT gold FROM " + players_ + " WHERE id = 1"), "2000");
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + players_), "1");
}

// Hot reload while data operations are in flight: the old generation keeps
// its leases until their completions arrive (or they are answered by it), no
// request is lost, every add counts once, and the old generation is retired.
TEST_F(DataPluginTest, ReloadWhileDataOperationsAreInFlight) {
  ASSERT_TRUE(Start(0));
  auto c = Connect(0);
  ASSERT_EQ(Ask(*c, kRegister, "frank pw-1234"), "ok 1");
  ASSERT_EQ(Ask(*c, kLogin, "frank pw-1234"), "ok player=1 nickname=frank gold=0 logins=1");

  constexpr int kBurst = 300, kRounds = 3;
  std::set<int> totals;
  for (int round = 0; round < kRounds; ++round) {
    for (int i = 0; i < kBurst; ++i) ASSERT_TRUE(c->Send(kGold, "+1").ok());
    Json::Value answer = Admin("POST", "/reload", "{\"plugin\": \"account\"}");
    EXPECT_TRUE(answer["ok"].asBool()) << answer.toStyledString();
    for (int i = 0; i < kBurst; ++i) {
      Frame f;
      ASSERT_TRUE(c->Receive(&f, 10000).ok()) << "reply " << i << " of round " << round << " missing";
      ASSERT_EQ(f.command, kGold) << f.body;
      ASSERT_EQ(f.body.rfind("gold ", 0), 0u) << f.body;
      totals.insert(std::stoi(f.body.substr(5)));
    }
  }
  EXPECT_EQ(totals.size(), size_t(kBurst * kRounds));
  EXPECT_EQ(*totals.rbegin(), kBurst * kRounds);
  // The session stayed logged in across the reloads (session data is the host's).
  EXPECT_EQ(Ask(*c, kShow, ""), "player=1 nickname=frank gold=900 logins=1");

  // Every drained generation is gone once its operations completed.
  Json::Value plugin;
  for (int i = 0; i < 300; ++i) {
    Json::Value status = Admin("GET", "/status", "");
    for (const auto& p : status["servers"][0]["plugins"])
      if (p["name"].asString() == "account") plugin = p;
    if (plugin["draining"].empty()) break;
    usleep(100 * 1000);
  }
  EXPECT_EQ(plugin["generation"].asUInt64(), uint64_t(kRounds + 1)) << plugin.toStyledString();
  EXPECT_TRUE(plugin["draining"].empty()) << plugin.toStyledString();
}

}  // namespace
}  // namespace lampyr::test
