#include "data/flusher.h"

#include <chrono>
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
  bool written = false;
};

Flusher::Flusher(EngineCore* core, std::unique_ptr<WorkerCtx> ctx, uint32_t interval_ms, uint32_t batch)
    : core_(core),
      w_(std::move(ctx)),
      interval_ms_(interval_ms),
      batch_(batch ? batch : 500),
      lock_name_("lampyr.flush." + core->db().db) {}

Flusher::~Flusher() { Stop(0); }

void Flusher::Start() {
  thread_ = std::thread([this] { Run(); });
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
  RunLoop();
  w_->mysql.Disconnect();
  MysqlThreadEnd();
}

void Flusher::RunLoop() {
  using Clock = std::chrono::steady_clock;
  auto next_due = Clock::now() + std::chrono::milliseconds(interval_ms_);
  uint32_t backoff_ms = 100;
  std::unique_lock<std::mutex> lk(mu_);
  while (!stopping_) {
    cv_.wait_until(lk, next_due, [&] { return stopping_ || requested_ > completed_; });
    if (stopping_) break;
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
  core.ForgetStaleCopies(mc);
  auto snapshot = core.queue().Snapshot();
  if (snapshot.empty()) {
    core.queue().CompactIndex(mc);
    return Status::OK();
  }
  std::vector<std::vector<Value>> rows;
  Status s = w_->mysql.Query("SELECT GET_LOCK(?, 10)", {lock_name_}, &rows);
  if (!s.ok()) {
    if (!w_->mysql.connected()) core.mysql_health().Failed(s.message());
    return s;
  }
  core.mysql_health().Ok();
  if (rows.empty() || rows[0][0].value_or("0") != "1") return Status::Error("data: flush lock busy");

  Status result;
  std::vector<Item> batch;
  for (size_t i = 0; i < snapshot.size(); ++i) {
    Item item;
    item.key = snapshot[i].first;
    item.entry = std::move(snapshot[i].second);
    Status ignored;
    item.t = core.schema().Find(item.entry.table, &ignored);
    batch.push_back(std::move(item));
    if (batch.size() == batch_ || i + 1 == snapshot.size()) {
      result = FlushBatch(batch);
      batch.clear();
      if (!result.ok()) break;
    }
  }
  if (w_->mysql.connected()) {
    std::vector<std::vector<Value>> ignored;
    w_->mysql.Query("SELECT RELEASE_LOCK(?)", {lock_name_}, &ignored);
  }
  core.queue().CompactIndex(mc);
  core.metrics().dirty->Set(static_cast<int64_t>(core.queue().size()));
  return result;
}

Status Flusher::FlushBatch(std::vector<Item>& items) {
  EngineCore& core = *core_;
  McClient* mc = w_->mc.get();
  std::vector<std::string> keys;
  for (const auto& it : items) keys.push_back(it.key);
  std::map<std::string, McItem> heads;
  bool mc_ok = mc->MultiGet(keys, &heads) == McResult::kOk;
  if (mc_ok) core.mc_health().Ok();
  else core.mc_health().Failed(mc->last_error());
  const int64_t now = EventLoop::NowMicros();

  for (auto& it : items) {
    if (!it.t) {  // table no longer declared: nothing we can write
      it.source = Item::kNothing;
      continue;
    }
    if (mc_ok) {
      auto h = heads.find(it.key);
      if (h != heads.end()) {
        McResult r = CacheStore::Decode(mc, it.key, h->second, &it.slot);
        if (r == McResult::kOk) {
          if (it.slot.rec.dirty) {
            it.source = Item::kCache;
            it.row = it.slot.rec.row;
            it.deleted = it.slot.rec.deleted;
          } else if (it.entry.has_data && it.entry.version > it.slot.rec.version) {
            // memcached lost our copy and someone reloaded an older one.
            it.source = Item::kQueue;
            it.overwrite_cache = true;
          } else {
            it.source = Item::kNothing;  // MySQL already has it
          }
          if (it.source != Item::kQueue) continue;
        } else if (r == McResult::kDown) {
          mc_ok = false;
        }
      }
    }
    if (it.entry.has_data) {
      it.source = Item::kQueue;
      it.row = it.entry.row;
      it.deleted = it.entry.deleted;
    } else if (mc_ok && (it.entry.recovered || now - it.entry.created_us > kPlaceholderGraceUs)) {
      it.source = Item::kNothing;  // nothing dirty anywhere
    } else {
      it.source = Item::kUnresolved;
    }
  }

  Status s = WriteRows(items);
  if (!s.ok()) {
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
        it.written = true;
      } else {
        LOG_ERROR("data", "record %s could not be written to MySQL, kept dirty: %s", it.key.c_str(),
                  rs.message().c_str());
        it.source = Item::kUnresolved;
        if (!w_->mysql.connected()) return rs;
      }
    }
  } else {
    for (auto& it : items)
      if (it.source == Item::kCache || it.source == Item::kQueue) it.written = true;
  }
  core.mysql_health().Ok();

  uint64_t written = 0;
  for (auto& it : items) {
    if (it.source == Item::kUnresolved) continue;
    if (it.written) ++written;
    if (it.written && mc_ok && (it.source == Item::kCache || it.overwrite_cache)) {
      CachedRecord clean = it.source == Item::kCache ? it.slot.rec : CachedRecord{};
      if (it.overwrite_cache) {
        clean.version = it.entry.version;
        clean.deleted = it.entry.deleted;
        clean.row = it.entry.row;
      }
      clean.dirty = false;
      // Fails with kExists when an update came in meanwhile: it stays dirty.
      CacheStore::Cas(mc, it.key, it.slot, clean, core.idle_exptime());
    }
    core.queue().Done(it.key, it.entry.seq);
  }
  core.metrics().flushed_rows->Inc(written);
  return Status::OK();
}

Status Flusher::WriteRows(std::vector<Item>& items) {
  // Group by table and column set; deletes per table.
  std::map<std::pair<const TableSchema*, std::vector<std::string>>, std::vector<const Item*>> upserts;
  std::map<const TableSchema*, std::vector<const Item*>> deletes;
  for (const auto& it : items) {
    if (it.source != Item::kCache && it.source != Item::kQueue) continue;
    if (it.deleted) {
      deletes[it.t].push_back(&it);
      continue;
    }
    std::vector<std::string> cols;
    for (const auto& c : it.t->columns)
      if (it.row.count(c.name)) cols.push_back(c.name);
    upserts[{it.t, cols}].push_back(&it);
  }
  if (upserts.empty() && deletes.empty()) return Status::OK();
  MysqlSession& db = w_->mysql;
  Status s = db.Begin();
  if (!s.ok()) return s;
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
  if (s.ok()) s = db.Commit();
  if (!s.ok()) db.Rollback();
  return s;
}

}  // namespace lampyr::data
