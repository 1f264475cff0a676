// Data layer against the real memcached and MariaDB of scripts/services.sh:
// read-through, write-behind, delete, fk lists, hostile values, name checks.
#include <gtest/gtest.h>

#include "data/cache_store.h"
#include "data/data_engine.h"
#include "data/memcache_client.h"
#include "data/write_queue.h"
#include "data_test_support.h"

namespace lampyr::data {
namespace {

using namespace testing;

class DataEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kWarn);
    table_ = std::make_unique<TestTable>(&sql_, kPlayerColumns);
    config_ = TestConfig({{table_->name(), PlayerTable()}});
    engine_ = std::make_unique<DataEngine>(&loop_, config_, DataOptions{.writer_id = "test-" + RandomTag()});
    Status s = engine_->Start();
    ASSERT_TRUE(s.ok()) << s.message();
  }
  void TearDown() override {
    if (engine_) engine_->Stop();
    engine_.reset();
    table_.reset();
  }
  const std::string& T() const { return table_->name(); }
  std::string Mysql(const std::string& col, const std::string& id) {
    return sql_.One("SELECT " + col + " FROM " + T() + " WHERE id = ?", {id});
  }

  Sql sql_;
  std::unique_ptr<TestTable> table_;
  Config config_;
  EventLoop loop_;
  std::unique_ptr<DataEngine> engine_;
};

TEST_F(DataEngineTest, ReadThroughLoadsFromMysqlThenServesTheCachedCopy) {
  sql_.Exec("INSERT INTO " + T() + " (id, name, n) VALUES (7, 'seven', 70)");
  GetResult r = SyncGet(loop_, *engine_, T(), "7");
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(Field(r.row, "name"), "seven");
  EXPECT_EQ(Field(r.row, "n"), "70");
  EXPECT_EQ(Field(r.row, "account_id"), "<null>");

  // Behind the cache's back: the cached copy keeps answering.
  sql_.Exec("UPDATE " + T() + " SET name = 'changed' WHERE id = 7");
  r = SyncGet(loop_, *engine_, T(), "7");
  EXPECT_EQ(Field(r.row, "name"), "seven");

  r = SyncGet(loop_, *engine_, T(), "8");
  ASSERT_TRUE(r.status.ok());
  EXPECT_FALSE(r.row.has_value());
}

TEST_F(DataEngineTest, UpdateIsWriteBehindAndFlushReachesMysql) {
  sql_.Exec("INSERT INTO " + T() + " (id, name, n) VALUES (1, 'a', 1)");
  ASSERT_TRUE(SyncUpdate(loop_, *engine_, T(), "1", {{"name", "b"}, {"n", "2"}}).ok());
  // Acknowledged and visible through the engine, not yet in MySQL (the
  // test's flush interval is an hour).
  EXPECT_EQ(Field(SyncGet(loop_, *engine_, T(), "1").row, "name"), "b");
  EXPECT_EQ(Mysql("name", "1"), "a");
  EXPECT_EQ(engine_->dirty_count(), 1u);

  ASSERT_TRUE(engine_->FlushNow().ok());
  EXPECT_EQ(Mysql("name", "1"), "b");
  EXPECT_EQ(Mysql("n", "1"), "2");
  EXPECT_EQ(engine_->dirty_count(), 0u);

  // A second engine (another process's view, fresh cache prefix) reads MySQL.
  EventLoop loop2;
  DataEngine other(&loop2, TestConfig(config_.tables), DataOptions{.writer_id = "other-" + RandomTag()});
  ASSERT_TRUE(other.Start().ok());
  EXPECT_EQ(Field(SyncGet(loop2, other, T(), "1").row, "name"), "b");
  other.Stop();
}

TEST_F(DataEngineTest, UpdatesFlushOnTheirOwnEveryInterval) {
  engine_->Stop();
  Config c = config_;
  c.db.flush_interval_ms = 50;
  engine_ = std::make_unique<DataEngine>(&loop_, c, DataOptions{.writer_id = "test-" + RandomTag()});
  ASSERT_TRUE(engine_->Start().ok());
  sql_.Exec("INSERT INTO " + T() + " (id, n) VALUES (1, 0)");
  ASSERT_TRUE(SyncUpdate(loop_, *engine_, T(), "1", {{"n", "5"}}).ok());
  // No explicit flush: wait (bounded) for the periodic one.
  for (int i = 0; i < 600 && Mysql("n", "1") != "5"; ++i) usleep(50 * 1000);
  EXPECT_EQ(Mysql("n", "1"), "5");
}

TEST_F(DataEngineTest, GracefulStopFlushesEverything) {
  for (int i = 1; i <= 20; ++i) sql_.Exec("INSERT INTO " + T() + " (id, n) VALUES (?, 0)", {std::to_string(i)});
  for (int i = 1; i <= 20; ++i)
    ASSERT_TRUE(SyncUpdate(loop_, *engine_, T(), std::to_string(i), {{"n", std::to_string(i * 10)}}).ok());
  EXPECT_EQ(sql_.One("SELECT SUM(n) FROM " + T()), "0");
  engine_->Stop();
  EXPECT_EQ(sql_.One("SELECT SUM(n) FROM " + T()), std::to_string(10 * 210));
}

TEST_F(DataEngineTest, RemoveHidesTheRecordAndFlushesAsDelete) {
  sql_.Exec("INSERT INTO " + T() + " (id, name) VALUES (3, 'x'), (4, 'y')");
  ASSERT_TRUE(SyncRemove(loop_, *engine_, T(), "3").ok());
  GetResult r = SyncGet(loop_, *engine_, T(), "3");
  ASSERT_TRUE(r.status.ok());
  EXPECT_FALSE(r.row.has_value());
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + T() + " WHERE id = 3"), "1");  // not flushed yet

  Status s = SyncUpdate(loop_, *engine_, T(), "3", {{"name", "z"}});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not found"), std::string::npos) << s.message();
  EXPECT_FALSE(SyncRemove(loop_, *engine_, T(), "99").ok());

  ASSERT_TRUE(engine_->FlushNow().ok());
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + T() + " WHERE id = 3"), "0");
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + T() + " WHERE id = 4"), "1");
  EXPECT_FALSE(SyncGet(loop_, *engine_, T(), "3").row.has_value());
}

TEST_F(DataEngineTest, CreateAllocatesKeysFromMysqlAndIsDurableAtOnce) {
  CreateResult a = SyncCreate(loop_, *engine_, T(), {{"name", "first"}, {"account_id", "5"}});
  CreateResult b = SyncCreate(loop_, *engine_, T(), {{"name", "second"}});
  ASSERT_TRUE(a.status.ok()) << a.status.message();
  ASSERT_TRUE(b.status.ok()) << b.status.message();
  EXPECT_EQ(std::stoll(b.pk), std::stoll(a.pk) + 1);
  EXPECT_EQ(Mysql("name", a.pk), "first");
  EXPECT_EQ(Field(SyncGet(loop_, *engine_, T(), b.pk).row, "name"), "second");
  EXPECT_EQ(Field(SyncGet(loop_, *engine_, T(), b.pk).row, "n"), "0");  // column default
}

TEST_F(DataEngineTest, FkListsFollowCreatesMovesAndRemoves) {
  sql_.Exec("INSERT INTO " + T() + " (id, account_id, name) VALUES (1, 10, 'a'), (2, 10, 'b'), (3, 11, 'c')");
  auto ids = [&](const std::string& fk) {
    ListResult r = SyncByFk(loop_, *engine_, T(), fk);
    EXPECT_TRUE(r.status.ok()) << r.status.message();
    std::vector<std::string> out;
    for (auto& row : r.rows) out.push_back(Field(row, "id"));
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(ids("10"), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(ids("11"), (std::vector<std::string>{"3"}));
  EXPECT_TRUE(ids("12").empty());

  CreateResult c = SyncCreate(loop_, *engine_, T(), {{"account_id", "10"}, {"name", "d"}});
  ASSERT_TRUE(c.status.ok());
  EXPECT_EQ(ids("10"), (std::vector<std::string>{"1", "2", c.pk}));

  // Move row 2 to account 12 (cached list for 12 was loaded empty above).
  ASSERT_TRUE(SyncUpdate(loop_, *engine_, T(), "2", {{"account_id", "12"}}).ok());
  EXPECT_EQ(ids("10"), (std::vector<std::string>{"1", c.pk}));
  EXPECT_EQ(ids("12"), (std::vector<std::string>{"2"}));
  // Move row 3 to account 13, whose list was never cached: the list must
  // not be rebuilt from MySQL alone (the move is not flushed yet).
  ASSERT_TRUE(SyncUpdate(loop_, *engine_, T(), "3", {{"account_id", "13"}}).ok());
  EXPECT_EQ(ids("13"), (std::vector<std::string>{"3"}));
  EXPECT_TRUE(ids("11").empty());

  ASSERT_TRUE(SyncRemove(loop_, *engine_, T(), "1").ok());
  EXPECT_EQ(ids("10"), (std::vector<std::string>{c.pk}));

  ASSERT_TRUE(engine_->FlushNow().ok());
  EXPECT_EQ(sql_.One("SELECT GROUP_CONCAT(id ORDER BY id) FROM " + T() + " WHERE account_id = 12"), "2");
  EXPECT_EQ(sql_.One("SELECT GROUP_CONCAT(id ORDER BY id) FROM " + T() + " WHERE account_id = 13"), "3");
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + T() + " WHERE id = 1"), "0");
}

TEST_F(DataEngineTest, UnknownTableOrColumnIsAClearErrorAndChangesNothing) {
  sql_.Exec("INSERT INTO " + T() + " (id, name) VALUES (1, 'a')");
  GetResult g = SyncGet(loop_, *engine_, "no_such_table", "1");
  EXPECT_FALSE(g.status.ok());
  EXPECT_NE(g.status.message().find("unknown table \"no_such_table\""), std::string::npos) << g.status.message();

  Status s = SyncUpdate(loop_, *engine_, T(), "1", {{"name", "b"}, {"nope`; DROP TABLE x; --", "1"}});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("unknown column"), std::string::npos) << s.message();
  EXPECT_EQ(Field(SyncGet(loop_, *engine_, T(), "1").row, "name"), "a");  // nothing applied

  CreateResult c = SyncCreate(loop_, *engine_, T(), {{"name", "x"}, {"bogus", "1"}});
  EXPECT_FALSE(c.status.ok());
  EXPECT_NE(c.status.message().find("unknown column \"bogus\""), std::string::npos);
  c = SyncCreate(loop_, *engine_, "`evil`", {{"name", "x"}});
  EXPECT_FALSE(c.status.ok());
  EXPECT_NE(c.status.message().find("unknown table"), std::string::npos);

  // A mutator that invents a column is refused the same way.
  Status m = Await<Status>(loop_, [&](std::function<void(Status)> done) {
    engine_->Modify(
        T(), "1",
        [](Row& row) {
          row["ghost"] = "1";
          return Status::OK();
        },
        [done](Status st, Row) { done(st); });
  });
  EXPECT_FALSE(m.ok());
  EXPECT_NE(m.message().find("unknown column \"ghost\""), std::string::npos);
  EXPECT_EQ(sql_.One("SELECT COUNT(*) FROM " + T()), "1");
  EXPECT_EQ(engine_->dirty_count(), 0u);
}

TEST_F(DataEngineTest, ValuesMysqlWouldRefuseAreRefusedBeforeTheyAreAcknowledged) {
  sql_.Exec("INSERT INTO " + T() + " (id, n, name) VALUES (1, 5, 'ok')");
  const std::vector<std::pair<Row, std::string>> bad = {
      {{{"n", "12abc"}}, "expects an integer"},
      {{{"n", "99999999999999999999"}}, "expects an integer"},
      {{{"n", std::nullopt}}, "cannot be NULL"},
      {{{"name", std::string(201, 'x')}}, "at most 200 characters"},
      {{{"name", "bad \xC3\x28 utf8"}}, "valid UTF-8"},
  };
  for (const auto& [fields, why] : bad) {
    Status s = SyncUpdate(loop_, *engine_, T(), "1", fields);
    EXPECT_FALSE(s.ok()) << why;
    EXPECT_NE(s.message().find(why), std::string::npos) << s.message();
  }
  // 200 four-byte characters are 200 characters, not 800.
  std::string emoji;
  for (int i = 0; i < 200; ++i) emoji += "\xF0\x9F\x94\xA5";
  ASSERT_TRUE(SyncUpdate(loop_, *engine_, T(), "1", {{"name", emoji}, {"n", "-9223372036854775808"}}).ok());
  ASSERT_TRUE(engine_->FlushNow().ok());
  EXPECT_EQ(Mysql("name", "1"), emoji);
  EXPECT_EQ(Mysql("n", "1"), "-9223372036854775808");
  EXPECT_EQ(engine_->dirty_count(), 0u);
}

TEST_F(DataEngineTest, CleanRecordsLeaveTheCacheWhenIdleDirtyOnesStay) {
  engine_->Stop();
  Config c = config_;
  c.db.idle_evict_s = 1;
  engine_ = std::make_unique<DataEngine>(&loop_, c, DataOptions{.writer_id = "test-" + RandomTag()});
  ASSERT_TRUE(engine_->Start().ok());
  sql_.Exec("INSERT INTO " + T() + " (id, name) VALUES (1, 'a'), (2, 'b')");
  EXPECT_EQ(Field(SyncGet(loop_, *engine_, T(), "1").row, "name"), "a");  // cached, clean
  ASSERT_TRUE(SyncUpdate(loop_, *engine_, T(), "2", {{"name", "dirty"}}).ok());
  sql_.Exec("UPDATE " + T() + " SET name = CONCAT(name, '+') ");
  // memcached expires with one-second granularity: 3 s is past any rounding.
  usleep(3000 * 1000);
  EXPECT_EQ(Field(SyncGet(loop_, *engine_, T(), "1").row, "name"), "a+") << "clean record was not evicted";
  EXPECT_EQ(Field(SyncGet(loop_, *engine_, T(), "2").row, "name"), "dirty") << "dirty record was evicted";
  ASSERT_TRUE(engine_->FlushNow().ok());
  EXPECT_EQ(Mysql("name", "2"), "dirty");
}

struct QueryResult {
  Status status;
  std::vector<std::vector<Value>> rows;
  uint64_t affected = 0;
};

TEST_F(DataEngineTest, RawPreparedQueriesBindValuesAndReportErrors) {
  auto query = [&](const std::string& q, std::vector<Value> params) {
    return Await<QueryResult>(loop_, [&](std::function<void(QueryResult)> done) {
      engine_->Query(q, params, [done](Status s, std::vector<std::vector<Value>> rows, uint64_t n) {
        done({s, std::move(rows), n});
      });
    });
  };
  QueryResult r = query("INSERT INTO " + T() + " (name, n) VALUES (?, ?), (?, ?)", {"x'); DROP TABLE y; --", "3",
                                                                                  std::nullopt, "4"});
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(r.affected, 2u);
  r = query("  select name, n from " + T() + " where n >= ? order by n", {"3"});
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0][0], Value("x'); DROP TABLE y; --"));
  EXPECT_EQ(r.rows[1][0], std::nullopt);
  EXPECT_EQ(r.rows[1][1], Value("4"));
  r = query("SELECT nope FROM " + T(), {});
  EXPECT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find("nope"), std::string::npos) << r.status.message();
  // The connection survives a refused statement.
  EXPECT_TRUE(query("SELECT 1", {}).status.ok());
}

// Connector/C++ 1.1's commit() ignores the server's answer: a COMMIT on a
// connection killed after the last write looked like success, and the flusher
// would have marked rows clean that MySQL never kept.
TEST(MysqlSessionTest, CommitOnAKilledConnectionIsAnErrorAndNothingWasWritten) {
  Sql admin;
  TestTable t(&admin, "id INT PRIMARY KEY");
  MysqlSession s(TestDb());
  ASSERT_TRUE(s.Ensure().ok());
  std::vector<std::vector<Value>> rows;
  ASSERT_TRUE(s.Query("SELECT CONNECTION_ID()", {}, &rows).ok());
  ASSERT_EQ(rows.size(), 1u);
  ASSERT_TRUE(s.Begin().ok());
  ASSERT_TRUE(s.Exec("INSERT INTO " + t.name() + " (id) VALUES (1)", {}).ok());
  admin.Exec("KILL CONNECTION " + *rows[0][0]);
  Status c = s.Commit();
  EXPECT_FALSE(c.ok()) << "a COMMIT that never reached MySQL was reported as done";
  EXPECT_EQ(admin.One("SELECT COUNT(*) FROM " + t.name()), "0");
  // The session reconnects by itself and works again.
  ASSERT_TRUE(s.Exec("INSERT INTO " + t.name() + " (id) VALUES (2)", {}).ok());
  EXPECT_EQ(admin.One("SELECT COUNT(*) FROM " + t.name()), "1");
}

TEST(DataEngineStart, RefusesTablesThatDoNotMatchTheConfig) {
  log::SetLevel(log::Level::kError);
  Sql sql;
  TestTable t(&sql, "id INT NOT NULL PRIMARY KEY, v INT");
  EventLoop loop;
  std::map<std::string, TableConfig> tables;
  tables[t.name()] = TableConfig{.name = "", .pk = "id", .fk = "owner", .autoinc = true};
  tables["missing_" + RandomTag()] = TableConfig{.name = "", .pk = "id", .fk = "", .autoinc = false};
  DataEngine e(&loop, TestConfig(tables), DataOptions{.writer_id = "w"});
  Status s = e.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(".fk: table " + t.name() + " has no column \"owner\""), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("no such table"), std::string::npos) << s.message();
}

TEST(DataEngineStart, FailsClearlyWhenMysqlIsUnreachable) {
  log::SetLevel(log::Level::kError);
  EventLoop loop;
  Config c = TestConfig({});
  c.db.port = 1;  // nothing listens there
  DataEngine e(&loop, c, DataOptions{.writer_id = "w"});
  Status s = e.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("mysql connect"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find(c.db.passwd), std::string::npos) << "password leaked: " << s.message();
}

class DataHostileValues : public DataEngineTest {};

TEST_F(DataHostileValues, RoundTripExactlyThroughCacheAndMysql) {
  std::string nul("a\0b\0", 4);
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131 + 7) & 0xff);
  std::string bigger = big + big;  // 2 MiB: chunked in memcached
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"quotes", "it's \"quoted\" `back` ' OR '1'='1"},
      {"backslash", "C:\\path\\to\\\\file\\"},
      {"utf8", "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x94\xA5 e\xCC\x81"},
      {"sqlish", "'); DROP TABLE x; --"},
      {"empty", ""},
  };
  // Text column (utf8mb4) for the text cases; the blob column for bytes.
  std::map<std::string, std::string> ids;
  for (const auto& [label, text] : cases) {
    CreateResult c = SyncCreate(loop_, *engine_, T(), {{"name", text}, {"data", text}});
    ASSERT_TRUE(c.status.ok()) << label << ": " << c.status.message();
    ids[label] = c.pk;
  }
  CreateResult nulrow = SyncCreate(loop_, *engine_, T(), {{"data", nul}});
  CreateResult bigrow = SyncCreate(loop_, *engine_, T(), {{"data", big}});
  ASSERT_TRUE(nulrow.status.ok() && bigrow.status.ok()) << bigrow.status.message();

  // Read-through (MySQL -> cache) and a cache hit.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& [label, text] : cases) {
      auto row = SyncGet(loop_, *engine_, T(), ids[label]).row;
      EXPECT_EQ(Field(row, "name"), text) << label;
      EXPECT_EQ(Field(row, "data"), text) << label;
    }
    EXPECT_EQ(Field(SyncGet(loop_, *engine_, T(), nulrow.pk).row, "data"), nul);
    EXPECT_TRUE(Field(SyncGet(loop_, *engine_, T(), bigrow.pk).row, "data") == big);
  }

  // Updates (cache only), then flush to MySQL and read MySQL directly.
  ASSERT_TRUE(SyncUpdate(loop_, *engine_, T(), nulrow.pk, {{"data", nul + "\\'\""}, {"name", std::nullopt}}).ok());
  ASSERT_TRUE(SyncUpdate(loop_, *engine_, T(), bigrow.pk, {{"data", bigger}}).ok());
  EXPECT_TRUE(Field(SyncGet(loop_, *engine_, T(), bigrow.pk).row, "data") == bigger);
  EXPECT_EQ(Field(SyncGet(loop_, *engine_, T(), nulrow.pk).row, "name"), "<null>");
  ASSERT_TRUE(engine_->FlushNow().ok());
  EXPECT_EQ(Mysql("data", nulrow.pk), nul + "\\'\"");
  EXPECT_EQ(sql_.One("SELECT name IS NULL FROM " + T() + " WHERE id = ?", {nulrow.pk}), "1");
  EXPECT_TRUE(Mysql("data", bigrow.pk) == bigger);
  EXPECT_EQ(Mysql("LENGTH(data)", bigrow.pk), std::to_string(bigger.size()));
  for (const auto& [label, text] : cases) EXPECT_EQ(Mysql("name", ids[label]), text) << label;

  // Shrinking a chunked record back below one item works too.
  ASSERT_TRUE(SyncUpdate(loop_, *engine_, T(), bigrow.pk, {{"data", "small"}}).ok());
  EXPECT_EQ(Field(SyncGet(loop_, *engine_, T(), bigrow.pk).row, "data"), "small");

  // Hostile primary keys are values too: they never reach SQL text.
  sql_.Exec("CREATE TABLE " + T() + "_s (k VARBINARY(100) NOT NULL PRIMARY KEY, v TEXT) ENGINE=InnoDB");
  engine_->Stop();
  Config c = config_;
  c.tables[T() + "_s"] = TableConfig{.name = T() + "_s", .pk = "k", .fk = "", .autoinc = false};
  engine_ = std::make_unique<DataEngine>(&loop_, c, DataOptions{.writer_id = "test-" + RandomTag()});
  ASSERT_TRUE(engine_->Start().ok());
  const std::string key = std::string("k' \0:\n%", 8);
  CreateResult k = SyncCreate(loop_, *engine_, T() + "_s", {{"k", key}, {"v", "1"}});
  ASSERT_TRUE(k.status.ok()) << k.status.message();
  EXPECT_EQ(k.pk, key);
  ASSERT_TRUE(SyncUpdate(loop_, *engine_, T() + "_s", key, {{"v", "2"}}).ok());
  ASSERT_TRUE(engine_->FlushNow().ok());
  EXPECT_EQ(sql_.One("SELECT v FROM " + T() + "_s WHERE k = ?", {key}), "2");
  engine_->Stop();
  sql_.Exec("DROP TABLE " + T() + "_s");
}


// Two workers can finish CAS v4 and v5 and record them in the opposite order;
// the queue is what MySQL gets if memcached loses the record, so it must keep
// v5 (the drill of issue 8 lost adds this way).
TEST(DataWriteQueue, KeepsTheNewestVersionWhateverOrderItIsRecordedIn) {
  Config config = TestConfig({});
  Status s;
  auto mc = McClient::Create(config.memcached, &s);
  ASSERT_TRUE(mc) << s.message();
  KeySpace keys(config.memcached.hostname);
  WriteQueue q(keys.IndexPrefix("wq-" + RandomTag()));
  const std::string key = keys.Record("t", "1");
  EXPECT_EQ(q.Record(mc.get(), key, "t", "1", {{"n", "5"}}, false, 5), McResult::kOk);
  q.Record(mc.get(), key, "t", "1", {{"n", "4"}}, false, 4);
  auto e = q.Find(key);
  ASSERT_TRUE(e && e->has_data);
  EXPECT_EQ(e->version, 5u);
  EXPECT_EQ(*e->row.at("n"), "5");
  q.Record(mc.get(), key, "t", "1", {{"n", "6"}}, false, 6);
  EXPECT_EQ(q.Find(key)->version, 6u);
}

// Writer A still queues an old copy of a record that writer B changed and
// flushed since; memcached then loses the record. A's flush must not take
// MySQL back to its older copy (the version guard, lampyr_rowver).
TEST_F(DataEngineTest, AnOlderQueuedCopyNeverOverwritesANewerRowInMysql) {
  sql_.Exec("INSERT INTO " + T() + " (id, n) VALUES (1, 0)");
  DataEngine b(&loop_, config_, DataOptions{.writer_id = "b-" + RandomTag()});
  ASSERT_TRUE(b.Start().ok());
  ASSERT_TRUE(SyncUpdate(loop_, *engine_, T(), "1", {{"n", "1"}}).ok());  // A: v1, queued
  ASSERT_TRUE(SyncUpdate(loop_, b, T(), "1", {{"n", "2"}}).ok());  // B: v2
  ASSERT_TRUE(b.FlushNow().ok());
  EXPECT_EQ(Mysql("n", "1"), "2");
  // memcached loses the record (not its epoch marker: the cache stays open).
  Status s;
  auto mc = McClient::Create(config_.memcached, &s);
  ASSERT_TRUE(mc) << s.message();
  ASSERT_EQ(mc->Delete(KeySpace(config_.memcached.hostname).Record(T(), "1")), McResult::kOk);
  ASSERT_TRUE(engine_->FlushNow().ok());  // A writes only what is newer than MySQL: nothing
  EXPECT_EQ(Mysql("n", "1"), "2");
  EXPECT_EQ(Field(SyncGet(loop_, *engine_, T(), "1").row, "n"), "2");
  EXPECT_EQ(engine_->dirty_count(), 0u);
  b.Stop();
}

}  // namespace
}  // namespace lampyr::data
