#include "data/preload.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "data/data_engine.h"
#include "data/mysql_session.h"

namespace lampyr::data {
namespace {

constexpr size_t kBatch = 500;

struct Run {
  DataEngine* engine;
  std::string table;
  std::vector<std::string> keys;
  std::function<void(Status, size_t)> done;
};

// Loads keys[from, from + kBatch), then the next batch: one multi-get in
// flight at a time, so a large table does not flood the engine's queue.
void Next(const std::shared_ptr<Run>& run, size_t from) {
  if (from >= run->keys.size()) return run->done(Status::OK(), run->keys.size());
  size_t to = std::min(run->keys.size(), from + kBatch);
  std::vector<std::string> batch(run->keys.begin() + static_cast<std::ptrdiff_t>(from),
                                 run->keys.begin() + static_cast<std::ptrdiff_t>(to));
  run->engine->GetMany(run->table, std::move(batch), [run, from, to](Status s, std::vector<std::optional<Row>>) {
    if (!s.ok()) return run->done(s, from);
    Next(run, to);
  });
}

}  // namespace

void Preload(DataEngine* engine, const TableConfig& table, std::function<void(Status, size_t)> done) {
  auto run = std::make_shared<Run>(Run{engine, table.name, {}, std::move(done)});
  // Names come from the config (checked against the schema at start).
  engine->Query("SELECT " + QuoteIdent(table.pk) + " FROM " + QuoteIdent(table.name) + " ORDER BY " +
                    QuoteIdent(table.pk),
                {}, [run](Status s, std::vector<std::vector<Value>> rows, uint64_t) {
                  if (!s.ok()) return run->done(s, 0);
                  for (auto& r : rows)
                    if (!r.empty() && r[0]) run->keys.push_back(std::move(*r[0]));
                  Next(run, 0);
                });
}

}  // namespace lampyr::data
