// Two real processes (fork) sharing one memcached and one MariaDB: keys from
// create never collide, concurrent increments never get lost.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "data/data_engine.h"
#include "data_test_support.h"

namespace lampyr::data {
namespace {

using namespace testing;

TEST(DataProcesses, AutoincCreatesFromTwoProcessesGiveUniqueGaplessKeys) {
  log::SetLevel(log::Level::kWarn);
  Sql sql;
  TestTable table(&sql, kPlayerColumns);
  const Config config = TestConfig({{table.name(), PlayerTable()}});
  const int kPerProcess = 5000;
  const std::string out_base = "/tmp/lampyr_data_autoinc_" + RandomTag();

  auto child = [&](int which) {
    return ForkChild([&, which] {
      EventLoop loop;
      DataEngine e(&loop, config, DataOptions{.writer_id = "autoinc-" + std::to_string(which)});
      if (!e.Start().ok()) return 2;
      std::vector<std::string> pks(kPerProcess);
      int failures = 0;
      RunWindowed(
          loop, kPerProcess, 8,
          [&](int i, std::function<void(bool)> done) {
            e.Create(table.name(), {{"name", "p" + std::to_string(which)}, {"account_id", std::to_string(which)}},
                     [&pks, i, done](Status s, std::string pk) {
                       pks[i] = pk;
                       done(s.ok());
                     });
          },
          &failures);
      e.Stop();
      std::ofstream out(out_base + std::to_string(which));
      for (const auto& pk : pks) out << pk << "\n";
      return failures == 0 ? 0 : 1;
    });
  };
  pid_t a = child(1), b = child(2);
  EXPECT_EQ(WaitChild(a, 300), 0);
  EXPECT_EQ(WaitChild(b, 300), 0);

  std::set<long long> seen;
  size_t reported = 0;
  for (int which : {1, 2}) {
    std::ifstream in(out_base + std::to_string(which));
    std::string line;
    while (std::getline(in, line)) {
      ++reported;
      seen.insert(std::stoll(line));
    }
    unlink((out_base + std::to_string(which)).c_str());
  }
  EXPECT_EQ(reported, 2u * kPerProcess);
  EXPECT_EQ(seen.size(), 2u * kPerProcess) << "a key was handed out twice";
  EXPECT_EQ(sql.One("SELECT COUNT(*) FROM " + table.name()), std::to_string(2 * kPerProcess));
  EXPECT_EQ(sql.One("SELECT MAX(id) - MIN(id) + 1 FROM " + table.name()), std::to_string(2 * kPerProcess))
      << "gap in the keys";
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(std::to_string(*seen.begin()), sql.One("SELECT MIN(id) FROM " + table.name()));
  EXPECT_EQ(std::to_string(*seen.rbegin()), sql.One("SELECT MAX(id) FROM " + table.name()));
}

TEST(DataProcesses, TwoProcessesIncrementingOneFieldLoseNothing) {
  log::SetLevel(log::Level::kWarn);
  Sql sql;
  TestTable table(&sql, kPlayerColumns);
  sql.Exec("INSERT INTO " + table.name() + " (id, n) VALUES (1, 0)");
  const Config config = TestConfig({{table.name(), PlayerTable()}});
  const int kPerProcess = 10000;

  auto child = [&](int which) {
    return ForkChild([&, which] {
      Config c = config;
      c.db.flush_interval_ms = 200;  // both writers flush while the other updates
      EventLoop loop;
      DataEngine e(&loop, c, DataOptions{.writer_id = "inc-" + std::to_string(which)});
      if (!e.Start().ok()) return 2;
      int failures = 0;
      RunWindowed(
          loop, kPerProcess, 8,
          [&](int, std::function<void(bool)> done) {
            e.Modify(
                table.name(), "1",
                [](Row& row) {
                  row["n"] = std::to_string(std::stoll(*row["n"]) + 1);
                  return Status::OK();
                },
                [done](Status s, Row) { done(s.ok()); });
          },
          &failures);
      e.Stop();
      return failures == 0 ? 0 : 1;
    });
  };
  pid_t a = child(1), b = child(2);
  EXPECT_EQ(WaitChild(a, 300), 0);
  EXPECT_EQ(WaitChild(b, 300), 0);
  EXPECT_EQ(sql.One("SELECT n FROM " + table.name() + " WHERE id = 1"), std::to_string(2 * kPerProcess));

  // And the cached copy agrees.
  EventLoop loop;
  DataEngine e(&loop, config, DataOptions{.writer_id = "reader"});
  ASSERT_TRUE(e.Start().ok());
  EXPECT_EQ(Field(SyncGet(loop, e, table.name(), "1").row, "n"), std::to_string(2 * kPerProcess));
  e.Stop();
}

}  // namespace
}  // namespace lampyr::data
