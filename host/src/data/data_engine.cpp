#include "data/data_engine.h"

#include "core/log.h"
#include "data/engine_core.h"
#include "data/flusher.h"
#include "data/worker_pool.h"

namespace lampyr::data {

DataEngine::DataEngine(EventLoop* loop, const Config& config, DataOptions options)
    : loop_(loop), config_(config), options_(std::move(options)) {}

DataEngine::~DataEngine() { Stop(); }

Status DataEngine::Start() {
  if (started_) return Status::Error("data: already started");
  if (!config_.db.present) return Status::Error("data: the config has no \"db\" section");
  if (!config_.memcached.present) return Status::Error("data: the config has no \"memcached\" section");
  MysqlDriverInit();
  core_ = std::make_unique<EngineCore>(config_, options_.writer_id);

  Status s;
  std::unique_ptr<McClient> master = McClient::Create(config_.memcached, &s);
  if (!master) return s;
  {
    MysqlSession boot(config_.db);
    if (s = boot.Ensure(); !s.ok()) return s;
    if (s = core_->mutable_schema()->Load(&boot, config_.db.db, config_.tables); !s.ok()) return s;
    if (s = core_->EnsureMetaTables(boot); !s.ok()) return s;
  }

  // What a previous run of this writer left dirty (it may have crashed).
  std::vector<std::string> keys;
  if (core_->queue().ReadIndex(master.get(), &keys) == McResult::kOk) {
    size_t n = 0;
    for (const auto& key : keys) {
      std::string table, pk;
      if (!core_->keys().ParseRecord(key, &table, &pk)) continue;
      core_->queue().AddPlaceholder(key, table, pk);
      ++n;
    }
    if (n) LOG_INFO("data", "writer %s: %zu records listed dirty by a previous run, flushing them",
                    options_.writer_id.c_str(), n);
    core_->metrics().recovered->Inc(n);
  } else {
    core_->mc_health().Failed(master->last_error());
  }

  const size_t workers = options_.workers ? options_.workers : std::max<uint32_t>(1, config_.db.pool);
  std::vector<std::unique_ptr<McClient>> clones;
  for (size_t i = 0; i < workers + 1; ++i) {
    clones.push_back(master->Clone());
    if (!clones.back()) return Status::Error("data: memcached handle clone failed");
  }
  auto shared = std::make_shared<std::vector<std::unique_ptr<McClient>>>(std::move(clones));
  flusher_ = std::make_unique<Flusher>(core_.get(), std::make_unique<WorkerCtx>(config_.db, std::move(shared->back())),
                                       config_.db.flush_interval_ms, config_.db.flush_batch);
  shared->pop_back();
  // Registered before any worker runs: nothing is acknowledged by a writer
  // the others cannot see (cache epochs, docs/data.md).
  if (s = flusher_->Start(); !s.ok()) return s;
  core_->set_sync_poke([f = flusher_.get()] { f->RequestSync(); });
  pool_ = std::make_unique<WorkerPool<WorkerCtx>>();
  const DbConfig db = config_.db;
  pool_->Start(
      workers,
      [shared, db](size_t i) {
        MysqlThreadInit();
        return std::make_unique<WorkerCtx>(db, std::move((*shared)[i]));
      },
      [] { MysqlThreadEnd(); });
  started_ = true;
  LOG_INFO("data", "data layer up: %zu tables, %zu workers, flush every %u ms, writer %s",
           core_->schema().tables().size(), workers, config_.db.flush_interval_ms, options_.writer_id.c_str());
  return Status::OK();
}

void DataEngine::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  pool_->Stop();
  const size_t left = flusher_->Stop(options_.stop_flush_timeout_s);
  if (!left) LOG_INFO("data", "data layer stopped, everything flushed");
}

Status DataEngine::FlushNow() {
  if (!started_ || stopped_) return Status::Error("data: not running");
  return flusher_->FlushNow();
}

size_t DataEngine::dirty_count() const { return core_ ? core_->queue().size() : 0; }

Json::Value DataEngine::StatusJson() const {
  Json::Value v(Json::objectValue);
  v["writer"] = options_.writer_id;
  v["running"] = started_ && !stopped_;
  if (!core_) return v;
  v["dirty"] = static_cast<Json::UInt64>(core_->queue().size());
  v["memcached_up"] = core_->mc_health().up();
  v["mysql_up"] = core_->mysql_health().up();
  Json::Value tables(Json::arrayValue);
  for (const auto& [name, t] : core_->schema().tables()) tables.append(name);
  v["tables"] = tables;
  return v;
}

bool DataEngine::Submit(std::function<void(WorkerCtx&)> task) {
  return started_ && !stopped_ && pool_->Submit(std::move(task));
}

namespace {
// Post a result to the loop so callbacks never run inside the caller.
template <typename F>
void PostTo(EventLoop* loop, F&& f) {
  loop->Post(std::forward<F>(f));
}
}  // namespace

void DataEngine::Get(const std::string& table, const std::string& pk, RowCallback cb) {
  Status s = started_ ? Status() : Status::Error("data: not running");
  const TableSchema* t = s.ok() ? core_->schema().Find(table, &s) : nullptr;
  if (!t || !Submit([this, t, pk, cb](WorkerCtx& w) {
        std::optional<Row> row;
        Status st = core_->Get(w, *t, pk, &row);
        PostTo(loop_, [cb, st, row = std::move(row)]() mutable { cb(st, std::move(row)); });
      })) {
    if (s.ok()) s = Status::Error("data: stopped");
    PostTo(loop_, [cb, s] { cb(s, std::nullopt); });
  }
}

void DataEngine::GetMany(const std::string& table, std::vector<std::string> pks, RowsCallback cb) {
  Status s = started_ ? Status() : Status::Error("data: not running");
  const TableSchema* t = s.ok() ? core_->schema().Find(table, &s) : nullptr;
  if (!t || !Submit([this, t, pks, cb](WorkerCtx& w) {
        std::vector<std::optional<Row>> rows;
        Status st = core_->GetMany(w, *t, pks, &rows);
        PostTo(loop_, [cb, st, rows = std::move(rows)]() mutable { cb(st, std::move(rows)); });
      })) {
    if (s.ok()) s = Status::Error("data: stopped");
    PostTo(loop_, [cb, s] { cb(s, {}); });
  }
}

void DataEngine::GetByFk(const std::string& table, const std::string& fk, ListCallback cb) {
  Status s = started_ ? Status() : Status::Error("data: not running");
  const TableSchema* t = s.ok() ? core_->schema().Find(table, &s) : nullptr;
  if (t && t->fk.empty()) {
    s = Status::Error("data: table " + table + " declares no fk");
    t = nullptr;
  }
  if (!t || !Submit([this, t, fk, cb](WorkerCtx& w) {
        std::vector<Row> rows;
        Status st = core_->GetByFk(w, *t, fk, &rows);
        PostTo(loop_, [cb, st, rows = std::move(rows)]() mutable { cb(st, std::move(rows)); });
      })) {
    if (s.ok()) s = Status::Error("data: stopped");
    PostTo(loop_, [cb, s] { cb(s, {}); });
  }
}

void DataEngine::Create(const std::string& table, Row row, PkCallback cb) {
  Status s = started_ ? Status() : Status::Error("data: not running");
  const TableSchema* t = s.ok() ? core_->schema().Find(table, &s) : nullptr;
  if (t) {
    s = Schema::CheckColumns(*t, row);
    if (!s.ok()) t = nullptr;
  }
  if (!t || !Submit([this, t, row, cb](WorkerCtx& w) {
        std::string pk;
        Status st = core_->Create(w, *t, row, &pk);
        PostTo(loop_, [cb, st, pk] { cb(st, pk); });
      })) {
    if (s.ok()) s = Status::Error("data: stopped");
    PostTo(loop_, [cb, s] { cb(s, ""); });
  }
}

void DataEngine::Modify(const std::string& table, const std::string& pk, Mutator mutate, ModifyCallback cb) {
  Status s = started_ ? Status() : Status::Error("data: not running");
  const TableSchema* t = s.ok() ? core_->schema().Find(table, &s) : nullptr;
  if (!t || !Submit([this, t, pk, mutate, cb](WorkerCtx& w) {
        Row row;
        Status st = core_->Modify(w, *t, pk, mutate, false, &row);
        PostTo(loop_, [cb, st, row = std::move(row)]() mutable { cb(st, std::move(row)); });
      })) {
    if (s.ok()) s = Status::Error("data: stopped");
    PostTo(loop_, [cb, s] { cb(s, Row{}); });
  }
}

void DataEngine::Update(const std::string& table, const std::string& pk, Row fields, DoneCallback cb) {
  // Unknown columns fail here, before any work is queued.
  Status s = started_ ? Status() : Status::Error("data: not running");
  const TableSchema* t = s.ok() ? core_->schema().Find(table, &s) : nullptr;
  if (t) s = Schema::CheckColumns(*t, fields);
  if (!s.ok()) {
    PostTo(loop_, [cb, s] { cb(s); });
    return;
  }
  Modify(
      table, pk,
      [fields](Row& row) {
        for (const auto& [k, v] : fields) row[k] = v;
        return Status::OK();
      },
      [cb](Status st, Row) { cb(st); });
}

void DataEngine::Remove(const std::string& table, const std::string& pk, DoneCallback cb) {
  Status s = started_ ? Status() : Status::Error("data: not running");
  const TableSchema* t = s.ok() ? core_->schema().Find(table, &s) : nullptr;
  if (!t || !Submit([this, t, pk, cb](WorkerCtx& w) {
        Row row;
        Status st = core_->Modify(w, *t, pk, nullptr, true, &row);
        PostTo(loop_, [cb, st] { cb(st); });
      })) {
    if (s.ok()) s = Status::Error("data: stopped");
    PostTo(loop_, [cb, s] { cb(s); });
  }
}

}  // namespace lampyr::data

namespace lampyr::data {

namespace {
// Statements that produce a result set go through executeQuery.
bool ReturnsRows(const std::string& sql) {
  size_t i = 0;
  while (i < sql.size() && (isspace(static_cast<unsigned char>(sql[i])) || sql[i] == '(')) ++i;
  std::string word;
  while (i < sql.size() && isalpha(static_cast<unsigned char>(sql[i])))
    word += static_cast<char>(toupper(static_cast<unsigned char>(sql[i++])));
  return word == "SELECT" || word == "SHOW" || word == "WITH" || word == "DESCRIBE" || word == "EXPLAIN" ||
         word == "VALUES";
}
}  // namespace

void DataEngine::Query(std::string sql, std::vector<Value> params, QueryCallback cb) {
  Status s = started_ ? Status() : Status::Error("data: not running");
  if (!s.ok() || !Submit([this, sql, params, cb](WorkerCtx& w) {
        std::vector<std::vector<Value>> rows;
        uint64_t affected = 0;
        Status st = ReturnsRows(sql) ? w.mysql.Query(sql, params, &rows) : w.mysql.Exec(sql, params, &affected);
        if (!st.ok() && !w.mysql.connected()) core_->mysql_health().Failed(st.message());
        PostTo(loop_, [cb, st, rows = std::move(rows), affected]() mutable { cb(st, std::move(rows), affected); });
      })) {
    if (s.ok()) s = Status::Error("data: stopped");
    PostTo(loop_, [cb, s] { cb(s, {}, 0); });
  }
}

}  // namespace lampyr::data
