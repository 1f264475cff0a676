#include "data/flusher.h"

#include <chrono>
#include <future>
#include <map>

#include "core/event_loop.h"
#include "core/log.h"
#include "data/table_sql.h"

namespace lampyr::data {
namespace {

// Bound data per statement well under MariaDB's default 16 MiB packet.
constexpr size_t kMaxStatementBytes = 4u << 20;
// A placeholder without data may belong to a write still in flight; only
// resolve it once that write surely finished.
constexpr int64_t kPlaceholderGraceUs = 10 * 1000 * 1000;
// How often an idle flusher looks for a new cache epoch to sync to: the
// other writers' operations wait for it (docs/data.md, cache epochs).
constexpr auto kSyncPoll = std::chrono::milliseconds(200);

}  // namespace

struct Flusher::Item {
  std::string key;
  DirtyEntry entry;
  const TableSchema* t = nullptr;
  enum Source { kNothing, kCache, kQueue, kUnresolved } source = kUnresolved;
  CacheSlot slot;       // kCache, or the clean copy to overwrite
  bool overwrite_cache = false;
  bool deleted = false;
  Row row;
  uint64_t version = 0;  // of `row`
  bool stale = false;    // MySQL already holds this version or a newer one
  bool written = false;
};

struct Flusher::Batch {
  std::vector<Item> items;
  bool mc_ok = true;  // memcached answered the read stage
};

Flusher::Flusher(EngineCore* core, std::unique_ptr<WorkerCtx> ctx, uint32_t interval_ms, uint32_t batch)
    : core_(core),
      w_(std::move(ctx)),
      reader_mc_(w_->mc->Clone()),
      quiet_(w_->mc->CloneQuiet()),
      interval_ms_(interval_ms),
      batch_(batch ? batch : 500),
      lock_name_("lampyr.flush." + core->db().db) {}

Flusher::~Flusher() { Stop(0); }

Status Flusher::Start() {
  thread_ = std::thread([this] { Run(); });
  Status s;
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return registered_; });
    s = register_status_;
  }
  if (!s.ok()) Stop(0);
  return s;
}

void Flusher::RequestSync() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    sync_requested_ = true;
  }
  cv_.notify_all();
}

bool Flusher::SyncDue() {
  uint64_t fence = 0;
  Status s = core_->Register(w_->mysql, &fence);
  return s.ok() && fence > core_->synced();
}

Status Flusher::FlushNow() {
  std::unique_lock<std::mutex> lk(mu_);
  if (!thread_.joinable() || stopping_) return Status::Error("data: flusher not running");
  const uint64_t gen = ++requested_;
  cv_.notify_all();
  cv_.wait(lk, [&] { return completed_ >= gen || stopping_; });
  if (completed_ < gen) return Status::Error("data: flusher stopped");
  return last_;
}

size_t Flusher::Stop(double timeout_s) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!thread_.joinable()) return left_;
    stopping_ = true;
    stop_timeout_s_ = timeout_s;
  }
  cv_.notify_all();
  thread_.join();
  return left_;
}

void Flusher::Run() {
  MysqlThreadInit();
  uint64_t fence = 0;
  Status s = core_->Register(w_->mysql, &fence);
  if (!s.ok()) s = Status::Error("data: registering writer " + core_->writer_id() + " in MySQL: " + s.message());
  {
    std::lock_guard<std::mutex> lk(mu_);
    registered_ = true;
    register_status_ = s;
  }
  cv_.notify_all();
  if (s.ok()) RunLoop();
  w_->mysql.Disconnect();
  MysqlThreadEnd();
}

void Flusher::RunLoop() {
  using Clock = std::chrono::steady_clock;
  auto next_due = Clock::now() + std::chrono::milliseconds(interval_ms_);
  uint32_t backoff_ms = 100;
  std::unique_lock<std::mutex> lk(mu_);
  while (!stopping_) {
    cv_.wait_until(lk, std::min(next_due, Clock::now() + kSyncPoll),
                   [&] { return stopping_ || requested_ > completed_ || sync_requested_; });
    if (stopping_) break;
    sync_requested_ = false;
    if (requested_ <= completed_ && Clock::now() < next_due) {
      lk.unlock();
      const bool due = SyncDue();
      lk.lock();
      if (!due) continue;
    }
    const uint64_t gen = requested_;
    lk.unlock();
    Status s = FlushAll();
    lk.lock();
    if (gen > completed_) {
      completed_ = gen;
      last_ = s;
      cv_.notify_all();
    }
    if (s.ok()) {
      backoff_ms = 100;
      next_due = Clock::now() + std::chrono::milliseconds(interval_ms_);
    } else {
      core_->metrics().flush_failures->Inc();
      LOG_DEBUG("data", "flush failed, retry in %u ms: %s", backoff_ms, s.message().c_str());
      next_due = Clock::now() + std::chrono::milliseconds(backoff_ms);
      backoff_ms = std::min<uint32_t>(backoff_ms * 2, 5000);
    }
  }
  const double timeout_s = stop_timeout_s_;
  lk.unlock();

  // Graceful stop: everything queued goes to MySQL, retrying while it is down.
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  backoff_ms = 100;
  while (core_->queue().size() > 0) {
    Status s = FlushAll();
    if (s.ok()) {
      // Only unresolvable placeholders can remain after a good pass.
      bool any_data = false;
      for (const auto& [k, e] : core_->queue().Snapshot()) any_data |= e.has_data;
      if (!any_data) break;
      continue;
    }
    core_->metrics().flush_failures->Inc();
    if (Clock::now() + std::chrono::milliseconds(backoff_ms) >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min<uint32_t>(backoff_ms * 2, 2000);
  }
  lk.lock();
  left_ = 0;
  for (const auto& [k, e] : core_->queue().Snapshot()) left_ += e.has_data ? 1 : 0;
  if (left_)
    LOG_ERROR("data", "stopping with %zu records not written to MySQL; they stay dirty in memcached and in the "
              "dirty index of writer %s for the next start", left_, core_->writer_id().c_str());
  completed_ = requested_;
  cv_.notify_all();
}

Status Flusher::FlushAll() {
  EngineCore& core = *core_;
  McClient* mc = w_->mc.get();
  const int64_t t0 = EventLoop::NowMicros();
  // Sync: when a new cache epoch was started (a memcached server lost its
  // data) since our last complete flush, this flush must write everything
  // we acknowledged before that, then say so in lampyr_sync.
  uint64_t fence = 0;
  Status s = core.Register(w_->mysql, &fence);
  if (!s.ok()) {
    if (!w_->mysql.connected()) core.mysql_health().Failed(s.message());
    return s;
  }
  const bool syncing = fence > core.synced();
  // Operations that read the cache before now have queued what they
  // acknowledged once this returns; later ones see the new epoch's marker.
  if (syncing) core.gate().Barrier();
  incomplete_ = false;
  auto snapshot = core.queue().Snapshot(/*with_rows=*/false);
  if (snapshot.empty()) {
    core.queue().CompactIndex(mc);
    return syncing ? core.MarkSynced(w_->mysql, fence) : Status::OK();
  }
  std::vector<std::vector<Value>> rows;
  s = w_->mysql.Query("SELECT GET_LOCK(?, 10)", {lock_name_}, &rows);
  if (!s.ok()) {
    if (!w_->mysql.connected()) core.mysql_health().Failed(s.message());
    return s;
  }
  core.mysql_health().Ok();
  if (rows.empty() || rows[0][0].value_or("0") != "1") return Status::Error("data: flush lock busy");

  std::vector<Batch> batches;
  for (size_t i = 0; i < snapshot.size(); ++i) {
    if (i % batch_ == 0) batches.emplace_back();
    Item item;
    item.key = std::move(snapshot[i].first);
    item.entry = std::move(snapshot[i].second);
    Status ignored;
    item.t = core.schema().Find(item.entry.table, &ignored);
    batches.back().items.push_back(std::move(item));
  }

  // A three-stage pipeline: while MySQL writes batch i, another thread reads
  // batch i+1 from memcached and a third clears batch i-1's dirty flags. The
  // stages use different memcached handles; a batch's flags are cleared
  // only after its commit.
  auto read = [this](Batch* b) { ReadBatch(reader_mc_.get(), b); };
  std::future<void> reading = std::async(std::launch::async, read, &batches[0]);
  std::future<void> finishing;
  Status result;
  for (size_t i = 0; i < batches.size(); ++i) {
    reading.get();
    if (i + 1 < batches.size()) reading = std::async(std::launch::async, read, &batches[i + 1]);
    result = WriteBatch(&batches[i]);
    if (!result.ok()) break;
    if (finishing.valid()) finishing.get();
    finishing = std::async(std::launch::async, [this, b = &batches[i]] { FinishBatch(b); });
  }
  if (reading.valid()) reading.get();
  if (finishing.valid()) finishing.get();

  if (w_->mysql.connected()) {
    std::vector<std::vector<Value>> ignored;
    w_->mysql.Query("SELECT RELEASE_LOCK(?)", {lock_name_}, &ignored);
  }
  core.queue().CompactIndex(mc);
  core.metrics().dirty->Set(static_cast<int64_t>(core.queue().size()));
  if (syncing && result.ok() && !incomplete_) result = core.MarkSynced(w_->mysql, fence);
  LOG_DEBUG("data", "flush of %zu records took %lld us: %s", snapshot.size(),
            static_cast<long long>(EventLoop::NowMicros() - t0), result.ok() ? "ok" : result.message().c_str());
  return result;
}

void Flusher::ReadBatch(McClient* mc, Batch* batch) {
  EngineCore& core = *core_;
  std::vector<std::string> keys;
  for (const auto& it : batch->items) keys.push_back(it.key);
  std::map<std::string, McItem> heads;
  bool mc_ok = mc->MultiGet(keys, &heads) == McResult::kOk;
  if (mc_ok) core.mc_health().Ok();
  else core.mc_health().Failed(mc->last_error());
  const int64_t now = EventLoop::NowMicros();

  for (auto& it : batch->items) {
    if (!it.t) {  // table no longer declared: nothing we can write
      it.source = Item::kNothing;
      continue;
    }
    if (mc_ok) {
      auto h = heads.find(it.key);
      if (h != heads.end()) {
        McResult r = CacheStore::Decode(mc, it.key, h->second, &it.slot);
        // Our queued copy is newer only when memcached lost the record and a
        // copy from before was stored again; write the newest.
        const bool queue_newer = it.entry.has_data && it.entry.version > it.slot.rec.version;
        if (r == McResult::kOk && !(it.slot.rec.dirty && queue_newer)) {
          if (it.slot.rec.dirty) {
            it.source = Item::kCache;
            it.row = it.slot.rec.row;
            it.version = it.slot.rec.version;
            it.deleted = it.slot.rec.deleted;
            continue;
          }
          if (!(it.entry.has_data && it.entry.version > it.slot.rec.version)) {
            it.source = Item::kNothing;  // clean: MySQL already has it
            continue;
          }
          // memcached lost our copy and someone reloaded an older one.
          it.overwrite_cache = true;
        } else if (r == McResult::kDown) {
          mc_ok = false;
        }
      }
    }
    if (it.entry.has_data) {
      // The snapshot carries no row data: fetch the entry now (it may have
      // been replaced by a newer one, which is then what gets written).
      auto fresh = core.queue().Find(it.key);
      if (!fresh || !fresh->has_data) {
        it.source = Item::kUnresolved;  // superseded meanwhile: next round
        continue;
      }
      it.entry = std::move(*fresh);
      it.source = Item::kQueue;
      it.row = it.entry.row;
      it.version = it.entry.version;
      it.deleted = it.entry.deleted;
    } else if (mc_ok && (it.entry.recovered || now - it.entry.created_us > kPlaceholderGraceUs)) {
      it.source = Item::kNothing;  // nothing dirty anywhere
    } else {
      it.source = Item::kUnresolved;
    }
  }
  batch->mc_ok = mc_ok;
}

Status Flusher::WriteBatch(Batch* batch) {
  EngineCore& core = *core_;
  auto& items = batch->items;
  Status s = WriteRows(items);
  if (s.ok()) {
    for (auto& it : items) {
      if (it.source != Item::kCache && it.source != Item::kQueue) continue;
      if (it.stale) it.source = Item::kNothing;  // MySQL has it or newer: nothing left to do
      else it.written = true;
    }
    core.mysql_health().Ok();
    return s;
  }
  if (!w_->mysql.connected()) {
    core.mysql_health().Failed(s.message());
    return s;
  }
  // A server-side error (a value MySQL refuses): write row by row so one
  // bad record does not hold back the others. Failing rows stay queued.
  LOG_WARN("data", "batch flush refused (%s); retrying row by row", s.message().c_str());
  for (auto& it : items) {
    if (it.source != Item::kCache && it.source != Item::kQueue) continue;
    std::vector<Item> one;
    one.push_back(it);
    Status rs = WriteRows(one);
    if (rs.ok()) {
      if (one[0].stale) it.source = Item::kNothing;
      else it.written = true;
    } else {
      incomplete_ = true;
      LOG_ERROR("data", "record %s could not be written to MySQL, kept dirty: %s", it.key.c_str(),
                rs.message().c_str());
      it.source = Item::kUnresolved;
      if (!w_->mysql.connected()) return rs;
    }
  }
  core.mysql_health().Ok();
  return Status::OK();
}

void Flusher::FinishBatch(Batch* batch) {
  EngineCore& core = *core_;
  uint64_t written = 0;
  std::vector<std::pair<const std::string*, uint64_t>> done;
  done.reserve(batch->items.size());
  for (auto& it : batch->items) {
    if (it.source == Item::kUnresolved) continue;
    if (it.written) ++written;
    if (it.written && batch->mc_ok && (it.source == Item::kCache || it.overwrite_cache)) {
      CachedRecord clean = it.source == Item::kCache ? it.slot.rec : CachedRecord{};
      if (it.overwrite_cache) {
        clean.version = it.entry.version;
        clean.deleted = it.entry.deleted;
        clean.row = it.entry.row;
      }
      clean.dirty = false;
      // Fails (silently: pipelined) when an update came in meanwhile: the
      // record then stays dirty. A chunked record's new chunks are orphaned
      // in that case and expire after idle_evict_s.
      CacheStore::Cas(quiet_.get(), it.key, it.slot, clean, core.idle_exptime());
    }
    done.emplace_back(&it.key, it.entry.seq);
  }
  quiet_->Flush();
  core.queue().DoneMany(done);
  core.metrics().flushed_rows->Inc(written);
}

Status Flusher::WriteRows(std::vector<Item>& items) {
  std::map<const TableSchema*, std::vector<std::string>> pks;
  for (auto& it : items) {
    it.stale = false;
    if (it.source == Item::kCache || it.source == Item::kQueue) pks[it.t].push_back(it.entry.pk);
  }
  if (pks.empty()) return Status::OK();
  MysqlSession& db = w_->mysql;
  Status s = db.Begin();
  if (!s.ok()) return s;
  // Version guard: a row is written only if it is newer than what MySQL
  // holds. Two writers may hold copies of one record in their queues (when
  // memcached lost it); whatever order they flush in, the newest stays.
  std::map<const TableSchema*, std::map<std::string, uint64_t>> stored;
  for (const auto& [t, list] : pks) {
    s = EngineCore::RowVersions(db, *t, list, /*for_update=*/true, &stored[t]);
    if (!s.ok()) {
      db.Rollback();
      return s;
    }
  }
  std::vector<std::tuple<std::string, std::string, uint64_t>> versions;
  // Group by table and column set; deletes per table.
  std::map<std::pair<const TableSchema*, std::vector<std::string>>, std::vector<const Item*>> upserts;
  std::map<const TableSchema*, std::vector<const Item*>> deletes;
  for (auto& it : items) {
    if (it.source != Item::kCache && it.source != Item::kQueue) continue;
    const auto& have = stored[it.t];
    if (auto v = have.find(it.entry.pk); v != have.end() && it.version <= v->second) {
      it.stale = true;
      if (it.version < v->second && it.source == Item::kCache && it.slot.rec.dirty)
        LOG_ERROR("data", "cached %s is dirty at version %llu but MySQL holds version %llu: not written",
                  it.key.c_str(), static_cast<unsigned long long>(it.version),
                  static_cast<unsigned long long>(v->second));
      continue;
    }
    versions.emplace_back(it.t->name, it.entry.pk, it.version);
    if (it.deleted) {
      deletes[it.t].push_back(&it);
      continue;
    }
    std::vector<std::string> cols;
    for (const auto& c : it.t->columns)
      if (it.row.count(c.name)) cols.push_back(c.name);
    upserts[{it.t, cols}].push_back(&it);
  }
  for (const auto& [shape, rows] : upserts) {
    const auto& [t, cols] = shape;
    size_t i = 0;
    while (i < rows.size() && s.ok()) {
      std::vector<Value> params;
      size_t bytes = 0, n = 0;
      while (i < rows.size() && n < batch_ && (n == 0 || bytes < kMaxStatementBytes)) {
        for (const auto& c : cols) {
          const Value& v = rows[i]->row.at(c);
          bytes += v ? v->size() : 0;
          params.push_back(v);
        }
        ++i;
        ++n;
      }
      s = db.Exec(sqltext::Upsert(*t, cols, n), params);
    }
    if (!s.ok()) break;
  }
  for (const auto& [t, rows] : deletes) {
    if (!s.ok()) break;
    for (size_t i = 0; i < rows.size() && s.ok(); i += batch_) {
      std::vector<Value> params;
      for (size_t j = i; j < rows.size() && j < i + batch_; ++j) params.push_back(rows[j]->entry.pk);
      s = db.Exec(sqltext::DeleteMany(*t, params.size()), params);
    }
  }
  if (s.ok()) s = EngineCore::StoreRowVersions(db, versions);
  if (s.ok()) s = db.Commit();
  if (!s.ok()) db.Rollback();
  return s;
}

}  // namespace lampyr::data
