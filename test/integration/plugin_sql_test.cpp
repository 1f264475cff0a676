// Plain SQL for plugins ("sql_*", docs/plugins.md "SQL") against the real
// binary and the MariaDB of scripts/services.sh: a server with "db": true,
// "mem": false and no memcached section at all; prepared statements with
// bound values (NULL, quotes, binary), rows with column names, affected
// counts, MySQL's errors verbatim; transactions that commit, roll back on a
// failing statement or on request, and are rolled back by the host past
// db.tx_timeout_ms; a killed connection is reported and replaced; an
// unreachable database fails calls at once while the loop keeps serving.
#include <gtest/gtest.h>

#include "../unit/data_test_support.h"
#include "plugin_server.h"

namespace lampyr::test {
namespace {

using data::testing::Sql;

constexpr uint32_t kOne = 51, kTx = 52, kOpen = 53, kCommit = 54, kRollback = 55, kPing = 56;

class PluginSqlTest : public PluginServerTest {
 protected:
  void SetUp() override {
    table_ = "sqlt_" + data::testing::RandomTag();
    sql_.Exec("CREATE TABLE " + table_ +
              " (id INT PRIMARY KEY, name VARCHAR(32) NULL, data VARBINARY(64) NULL) ENGINE=InnoDB");
  }
  void TearDown() override {
    server_.reset();
    sql_.Exec("DROP TABLE IF EXISTS " + table_);
  }

  // One server, "db": true and "mem": false, no memcached section.
  void StartSql(const std::string& db_extra = "", uint16_t db_port = 0) {
    netport_ = FreePort();
    webport_ = FreePort();
    Deploy("test_sql", "test_sql");
    auto db = data::testing::TestDb();
    conf_ = dir_.path() + "/lampyr.json";
    WriteFile(conf_, "{\"master\": {\"admin_token\": \"tok\", \"insecure_dev\": true},\n"
                     "\"servers\": {\"game\": {\"netport\": " + std::to_string(netport_) +
                         ", \"webport\": " + std::to_string(webport_) +
                         ", \"log\": \"game.log\", \"db\": true, \"mem\": false, \"plugins\": [\"test_sql\"]}},\n"
                         "\"plugins\": {\"test_sql\": {\"path\": \"deploy/libtest_sql.so\"}},\n"
                         "\"db\": {\"host\": \"" + db.host + "\", \"port\": " +
                         std::to_string(db_port ? db_port : db.port) + ", \"user\": \"" + db.user +
                         "\", \"passwd\": \"" + db.passwd + "\", \"db\": \"" + db.db + "\"" + db_extra + "}}\n");
    ASSERT_TRUE(Launch()) << Output();
  }
  std::string Ask(client::Client& c, uint32_t command, const std::string& body) { return CallBody(c, command, body); }

  Sql sql_;
  std::string table_;
};

TEST_F(PluginSqlTest, PreparedStatementsRowsAndErrorsWithoutTheCache) {
  StartSql();
  auto c = Connect();
  const std::string t = table_;
  EXPECT_EQ(Ask(*c, kOne, "INSERT INTO " + t + " (id, name, data) VALUES (?, ?, ?)\t1\talice\t\\N"),
            "cols= rows= affected=1");
  // A value is a bound parameter, never SQL: quotes and bytes arrive as they are.
  EXPECT_EQ(Ask(*c, kOne, "INSERT INTO " + t + " (id, name, data) VALUES (?, ?, ?)\t2\to'brien; DROP TABLE x\t\x01\x02\xff"),
            "cols= rows= affected=1");
  EXPECT_EQ(Ask(*c, kOne, "SELECT id, name, data FROM " + t + " ORDER BY id"),
            "cols=id,name,data rows=[1|alice|NULL][2|o'brien; DROP TABLE x|\x01\x02\xff] affected=0");
  EXPECT_EQ(Ask(*c, kOne, "SELECT COUNT(*) AS n FROM " + t + " WHERE id > ?\t1"), "cols=n rows=[1] affected=0");
  EXPECT_EQ(Ask(*c, kOne, "UPDATE " + t + " SET name = ? WHERE id >= ?\tbob\t1"), "cols= rows= affected=2");
  // MySQL's own errors, verbatim, as LAMPYR_DONE_ERROR.
  std::string dup = Ask(*c, kOne, "INSERT INTO " + t + " (id) VALUES (?)\t1");
  EXPECT_EQ(dup.rfind("err error sql statement: Duplicate entry '1'", 0), 0u) << dup;
  EXPECT_NE(dup.find("(error 1062, state 23000)"), std::string::npos) << dup;
  std::string missing = Ask(*c, kOne, "SELECT * FROM no_such_table_here");
  EXPECT_NE(missing.find("error 1146"), std::string::npos) << missing;
  // Each statement gets its own cached prepared statement; a bad one does not
  // poison the connection.
  EXPECT_EQ(Ask(*c, kOne, "SELECT name FROM " + t + " WHERE id = ?\t2"), "cols=name rows=[bob] affected=0");
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + t), "2");
}

TEST_F(PluginSqlTest, TransactionsCommitAndRollBack) {
  StartSql();
  auto c = Connect();
  const std::string t = table_;
  const std::string ins = "INSERT INTO " + t + " (id, name) VALUES (?, ?)";
  EXPECT_EQ(Ask(*c, kTx, ins + "\t1\ta\n" + ins + "\t2\tb\nSELECT COUNT(*) FROM " + t),
            "ok cols= rows= affected=1;cols= rows= affected=1;cols=COUNT(*) rows=[2] affected=0");
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + t), "2");

  // The second statement fails: the first one is rolled back with it.
  std::string r = Ask(*c, kTx, ins + "\t3\tc\n" + ins + "\t1\tduplicate\n" + ins + "\t4\td");
  EXPECT_EQ(r.rfind("err error statement 1: sql statement: Duplicate entry '1'", 0), 0u) << r;
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + t), "2");
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + t + " WHERE id = 3"), "0");

  // Begun, written, then rolled back on request; nobody else saw it meanwhile.
  std::string open = Ask(*c, kOpen, ins + "\t5\te");
  ASSERT_EQ(open.rfind("open ", 0), 0u) << open;
  std::string tx = open.substr(5);
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + t + " WHERE id = 5"), "0");
  EXPECT_EQ(Ask(*c, kRollback, tx), "rolled back");
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + t + " WHERE id = 5"), "0");
  // Ended: it cannot be committed any more (the host refuses the id).
  EXPECT_EQ(Ask(*c, kCommit, tx), "err refused");

  // Begun, written, committed by a later request.
  open = Ask(*c, kOpen, ins + "\t6\tf");
  ASSERT_EQ(open.rfind("open ", 0), 0u) << open;
  EXPECT_EQ(Ask(*c, kCommit, open.substr(5)), "committed");
  EXPECT_EQ(sql_.One("SELECT name FROM " + t + " WHERE id = 6"), "f");
}

TEST_F(PluginSqlTest, AnAbandonedTransactionIsRolledBackAtTheTimeout) {
  StartSql(", \"tx_timeout_ms\": 300, \"sql_pool\": 1");
  auto c = Connect();
  const std::string ins = "INSERT INTO " + table_ + " (id, name) VALUES (?, ?)";
  std::string open = Ask(*c, kOpen, ins + "\t7\tg");
  ASSERT_EQ(open.rfind("open ", 0), 0u) << open;
  ASSERT_TRUE(WaitFor([&] { return Log().find("longer than db.tx_timeout_ms (300 ms): rolled back") != std::string::npos; }))
      << Log();
  std::string late = Ask(*c, kCommit, open.substr(5));
  EXPECT_EQ(late.rfind("err error sql: transaction " + open.substr(5) + " is not open", 0), 0u) << late;
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + table_ + " WHERE id = 7"), "0");
  // The only connection was freed for others.
  EXPECT_EQ(Ask(*c, kOne, "SELECT COUNT(*) FROM " + table_), "cols=COUNT(*) rows=[0] affected=0");
}

TEST_F(PluginSqlTest, AKilledConnectionIsReportedAndReplaced) {
  StartSql(", \"sql_pool\": 1");
  auto c = Connect();
  std::string id = Ask(*c, kOne, "SELECT CONNECTION_ID()");
  ASSERT_EQ(id.rfind("cols=CONNECTION_ID() rows=[", 0), 0u) << id;
  id = id.substr(id.find('[') + 1, id.find(']') - id.find('[') - 1);
  // A transaction is open on that connection when the database kills it.
  const std::string ins = "INSERT INTO " + table_ + " (id, name) VALUES (?, ?)";
  std::string open = Ask(*c, kOpen, ins + "\t8\th");
  ASSERT_EQ(open.rfind("open ", 0), 0u) << open;
  sql_.Exec("KILL " + id);
  // KILL returns before the connection is gone: wait until it is.
  ASSERT_TRUE(WaitFor([&] { return sql_.One("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = " + id) == "0"; }));
  std::string r = Ask(*c, kCommit, open.substr(5));
  EXPECT_EQ(r.rfind("err unavailable ", 0), 0u) << r;
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + table_ + " WHERE id = 8"), "0");
  // The next statement gets a new connection.
  std::string again = Ask(*c, kOne, "SELECT CONNECTION_ID()");
  EXPECT_EQ(again.rfind("cols=CONNECTION_ID() rows=[", 0), 0u) << again;
  EXPECT_EQ(again.find("[" + id + "]"), std::string::npos) << again;
}

TEST_F(PluginSqlTest, AnUnreachableDatabaseFailsCallsAtOnceAndTheLoopServes) {
  StartSql("", FreePort());  // nothing listens there
  auto c = Connect();
  std::string r = Ask(*c, kOne, "SELECT 1");
  EXPECT_EQ(r.rfind("err unavailable sql: cannot connect to ", 0), 0u) << r;
  // While it is known to be down, calls fail without waiting for a connect.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(c->Send(kOne, "SELECT 1").ok());
  ASSERT_TRUE(c->Send(kPing, "").ok());
  for (int i = 0; i < 20; ++i) {
    client::Frame f;
    ASSERT_TRUE(c->Receive(&f, 10000).ok());
    EXPECT_EQ(f.body.rfind("err unavailable sql: cannot connect to ", 0), 0u) << f.body;
  }
  client::Frame pong;
  ASSERT_TRUE(c->Receive(&pong, 10000).ok());
  EXPECT_EQ(pong.body, "pong");
  std::string tx = Ask(*c, kTx, "SELECT 1");
  EXPECT_EQ(tx.rfind("err unavailable sql: cannot connect to ", 0), 0u) << tx;
  EXPECT_TRUE(server_->Running());
}

// The gm example's grant (plugins/gm): an item granted in one transaction of
// two statements over the admin-token web route; a grant whose reference was
// used before fails as a whole and adds nothing.
TEST_F(PluginSqlTest, GmGrantsAnItemInOneTransaction) {
  const std::string items = table_ + "_items", grants = table_ + "_grants";
  sql_.Exec("CREATE TABLE " + items + " (player BIGINT, item VARCHAR(32), count BIGINT, PRIMARY KEY (player, item))");
  sql_.Exec("CREATE TABLE " + grants + " (ref VARCHAR(32) PRIMARY KEY, player BIGINT, item VARCHAR(32), count BIGINT)");
  netport_ = FreePort();
  webport_ = FreePort();
  Deploy("gm", "gm");
  auto db = data::testing::TestDb();
  conf_ = dir_.path() + "/lampyr.json";
  WriteFile(conf_, "{\"master\": {\"admin_token\": \"tok\", \"insecure_dev\": true},\n"
                   "\"servers\": {\"game\": {\"netport\": " + std::to_string(netport_) +
                       ", \"webport\": " + std::to_string(webport_) +
                       ", \"log\": \"game.log\", \"db\": true, \"mem\": false, \"plugins\": [\"gm\"]}},\n"
                       "\"plugins\": {\"gm\": {\"path\": \"deploy/libgm.so\", \"config\": {\"items_table\": \"" +
                       items + "\", \"grants_table\": \"" + grants + "\"}}},\n"
                       "\"db\": {\"host\": \"" + db.host + "\", \"port\": " + std::to_string(db.port) +
                       ", \"user\": \"" + db.user + "\", \"passwd\": \"" + db.passwd + "\", \"db\": \"" + db.db + "\"}}\n");
  ASSERT_TRUE(Launch()) << Output();
  auto grant = [&](const std::string& query, const char* token = "tok") {
    HttpResponse r;
    std::vector<std::pair<std::string, std::string>> headers;
    if (token) headers.push_back({"Authorization", std::string("Bearer ") + token});
    Status st = HttpCall("127.0.0.1", webport_, "POST", "/gm/grant?" + query, "", headers, &r, 10000);
    EXPECT_TRUE(st.ok()) << st.message();
    return r;
  };
  EXPECT_EQ(grant("player=7&item=sword&count=2&ref=a", nullptr).status, 401);
  HttpResponse r = grant("player=7&item=sword&count=2&ref=a");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(grant("player=7&item=sword&count=3&ref=b").status, 200);
  EXPECT_EQ(sql_.One("SELECT count FROM " + items + " WHERE player = 7 AND item = 'sword'"), "5");
  // Reference "a" again: the item insert ran, the log insert failed, both rolled back.
  r = grant("player=7&item=sword&count=100&ref=a");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(sql_.One("SELECT count FROM " + items + " WHERE player = 7 AND item = 'sword'"), "5");
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + grants), "2");
  EXPECT_EQ(grant("player=7&item=sword&count=0&ref=c").status, 400);
  sql_.Exec("DROP TABLE IF EXISTS " + items);
  sql_.Exec("DROP TABLE IF EXISTS " + grants);
}

}  // namespace
}  // namespace lampyr::test
