#include "data/engine_core.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>

#include "core/event_loop.h"
#include "core/log.h"
#include "data/table_sql.h"

namespace lampyr::data {
namespace {

constexpr int kMaxCasAttempts = 1000;
// How long an operation waits for a closed cache epoch to open before it is
// refused: rounds of at most kOpenWaitMs each.
constexpr int kOpenRounds = 100;
constexpr int kOpenWaitMs = 50;
// The lampyr_sync row that counts epochs; writers' rows are "w:<id>".
const char* kEpochRow = "#";

Status Refused(const std::string& why) {
  return Status::Error("data: update refused, nothing applied: " + why + " (retry)");
}

const char* kClosedText =
    "memcached lost its data; the cache reopens once every writer has written its unflushed changes to MySQL";

Status NotFound(const TableSchema& t, const std::string& pk) {
  return Status::Error("data: " + t.name + " record " + EscapeKeyPart(pk) + " not found");
}

std::string PrefixOf(const Config& c) {
  return c.memcached.hostname.empty() ? std::string("lampyr") : c.memcached.hostname;
}

}  // namespace

DataMetrics::DataMetrics() {
  auto& m = Metrics();
  hits = m.GetCounter("lampyr_data_cache_hits_total", "Record reads answered by memcached");
  misses = m.GetCounter("lampyr_data_cache_misses_total", "Record reads that missed memcached");
  mysql_reads = m.GetCounter("lampyr_data_mysql_loads_total", "Records loaded from MySQL into the cache");
  fallback_reads =
      m.GetCounter("lampyr_data_degraded_reads_total", "Reads served without memcached (memcached unreachable)");
  cas_conflicts = m.GetCounter("lampyr_data_cas_conflicts_total", "Updates retried after a CAS conflict");
  refused = m.GetCounter("lampyr_data_refused_updates_total",
                         "Updates refused unapplied: memcached unreachable or its cache epoch not open");
  fences = m.GetCounter("lampyr_data_epochs_started_total",
                        "New cache epochs started because a memcached server had lost its data");
  memcached_errors = m.GetCounter("lampyr_data_memcached_errors_total", "memcached calls that failed");
  mysql_errors = m.GetCounter("lampyr_data_mysql_errors_total", "MySQL calls that failed");
  flushed_rows = m.GetCounter("lampyr_data_flushed_rows_total", "Dirty records written to MySQL by write-behind");
  flush_failures = m.GetCounter("lampyr_data_flush_failures_total", "Write-behind flush attempts that failed");
  index_errors = m.GetCounter("lampyr_data_dirty_index_errors_total", "Dirty-index writes to memcached that failed");
  recovered = m.GetCounter("lampyr_data_recovered_records_total", "Dirty records found in the index at start");
  dirty = m.GetGauge("lampyr_data_dirty_records", "Records this process changed that MySQL has not seen yet");
  memcached_up = m.GetGauge("lampyr_data_memcached_up", "1 when memcached answers, 0 when degraded");
  mysql_up = m.GetGauge("lampyr_data_mysql_up", "1 when MySQL answers, 0 while writes wait for it");
}

void Health::Ok() {
  if (!up_.exchange(true)) {
    up_gauge_->Set(1);
    LOG_INFO("data", "%s is back", service_);
  }
}

void Health::Failed(const std::string& detail) {
  errors_->Inc();
  if (up_.exchange(false)) {
    up_gauge_->Set(0);
    LOG_WARN("data", "%s unavailable, degraded mode: %s", service_, detail.c_str());
  }
}

EngineCore::EngineCore(const Config& config, std::string writer_id)
    : db_(config.db),
      writer_id_(std::move(writer_id)),
      keys_(PrefixOf(config)),
      queue_(keys_.IndexPrefix(writer_id_)),
      mc_health_("memcached", metrics_.memcached_up, metrics_.memcached_errors),
      mysql_health_("mysql", metrics_.mysql_up, metrics_.mysql_errors),
      idle_exptime_(config.db.idle_evict_s),
      prefix_(PrefixOf(config)),
      marker_key_(prefix_ + ":epoch") {
  char hex[17];
  snprintf(hex, sizeof hex, "%016" PRIx64, Fnv1a(prefix_ + "\n" + writer_id_));
  // MySQL named locks are at most 64 characters: a hash of prefix + writer.
  lock_name_ = std::string("lampyr.w.") + hex;
}

uint64_t OpGate::Enter() {
  std::lock_guard<std::mutex> lk(mu_);
  ++inflight_[gen_ & 1];
  return gen_;
}

void OpGate::Leave(uint64_t gen) {
  std::lock_guard<std::mutex> lk(mu_);
  if (--inflight_[gen & 1] == 0) cv_.notify_all();
}

void OpGate::Barrier() {
  std::unique_lock<std::mutex> lk(mu_);
  const uint64_t old = gen_++;
  cv_.wait(lk, [&] { return inflight_[old & 1] == 0; });
}

namespace {
class OpGuard {
 public:
  explicit OpGuard(OpGate* g) : g_(g), gen_(g->Enter()) {}
  ~OpGuard() { Leave(); }
  void Leave() {
    if (g_) g_->Leave(gen_);
    g_ = nullptr;
  }

 private:
  OpGate* g_;
  uint64_t gen_;
};

bool ParseMarker(const std::string& v, EpochMarker* m) {
  if (v.size() < 3 || (v[0] != 'O' && v[0] != 'P') || v[1] != ' ') return false;
  try {
    m->epoch = std::stoull(v.substr(2));
  } catch (...) {
    return false;
  }
  m->state = v[0] == 'O' ? EpochMarker::kOpen : EpochMarker::kPending;
  return m->epoch > 0 || m->state == EpochMarker::kPending;  // "P 0": claimed, not numbered yet
}
}  // namespace

Status EngineCore::EnsureMetaTables(MysqlSession& db) {
  // The engine's own bookkeeping, beside the game tables (docs/data.md):
  // the version of every row the engine wrote, and the writers of each cache
  // prefix with the epoch each has synced to.
  Status s = db.Exec(
      "CREATE TABLE IF NOT EXISTS lampyr_rowver (tbl VARBINARY(64) NOT NULL, pk VARBINARY(250) NOT NULL, "
      "ver BIGINT UNSIGNED NOT NULL, PRIMARY KEY (tbl, pk)) ENGINE=InnoDB",
      {});
  if (s.ok())
    s = db.Exec(
        "CREATE TABLE IF NOT EXISTS lampyr_sync (prefix VARBINARY(250) NOT NULL, writer VARBINARY(250) NOT NULL, "
        "lockname VARBINARY(64) NOT NULL, n BIGINT UNSIGNED NOT NULL, PRIMARY KEY (prefix, writer)) ENGINE=InnoDB",
        {});
  if (s.ok())
    s = db.Exec("INSERT IGNORE INTO lampyr_sync (prefix, writer, lockname, n) VALUES (?, ?, '', 0)",
                {prefix_, std::string(kEpochRow)});
  if (!s.ok()) return Status::Error("data: creating the engine's tables lampyr_rowver/lampyr_sync: " + s.message());
  return s;
}

Status EngineCore::Register(MysqlSession& db, uint64_t* fence) {
  std::vector<std::vector<Value>> rows;
  Status s = db.Query("SELECT IS_USED_LOCK(?) <=> CONNECTION_ID()", {lock_name_}, &rows);
  if (!s.ok()) return s;
  if (rows.empty() || rows[0][0].value_or("0") != "1") {
    // First call, or the connection was lost (MySQL released the lock: the
    // other writers stopped waiting for us meanwhile, docs/data.md).
    rows.clear();
    s = db.Query("SELECT GET_LOCK(?, 10)", {lock_name_}, &rows);
    if (!s.ok()) return s;
    if (rows.empty() || rows[0][0].value_or("0") != "1")
      return Status::Error("data: writer " + writer_id_ + " seems to run twice (MySQL lock " + lock_name_ + " held)");
    s = db.Exec(
        "INSERT INTO lampyr_sync (prefix, writer, lockname, n) VALUES (?, ?, ?, 0) "
        "ON DUPLICATE KEY UPDATE lockname = VALUES(lockname)",
        {prefix_, "w:" + writer_id_, lock_name_});
    if (!s.ok()) return s;
  }
  rows.clear();
  s = db.Query("SELECT n FROM lampyr_sync WHERE prefix = ? AND writer = ?", {prefix_, std::string(kEpochRow)}, &rows);
  if (!s.ok()) return s;
  *fence = rows.empty() || !rows[0][0] ? 0 : std::stoull(*rows[0][0]);
  return s;
}

Status EngineCore::MarkSynced(MysqlSession& db, uint64_t fence) {
  Status s = db.Exec("UPDATE lampyr_sync SET n = GREATEST(n, CAST(? AS UNSIGNED)) WHERE prefix = ? AND writer = ?",
                     {std::to_string(fence), prefix_, "w:" + writer_id_});
  if (!s.ok()) return s;
  {
    std::lock_guard<std::mutex> lk(sync_mu_);
    if (synced_.load() < fence) synced_ = fence;
  }
  sync_cv_.notify_all();
  return s;
}

Status EngineCore::RowVersions(MysqlSession& db, const TableSchema& t, const std::vector<std::string>& pks,
                               bool for_update, std::map<std::string, uint64_t>* out) {
  for (size_t i = 0; i < pks.size(); i += 500) {
    std::string q = "SELECT pk, ver FROM lampyr_rowver WHERE tbl = ? AND pk IN (";
    std::vector<Value> params{t.name};
    for (size_t j = i; j < pks.size() && j < i + 500; ++j) {
      q += j == i ? "?" : ",?";
      params.push_back(pks[j]);
    }
    q += for_update ? ") FOR UPDATE" : ")";
    std::vector<std::vector<Value>> rows;
    if (Status s = db.Query(q, params, &rows); !s.ok()) return s;
    for (auto& r : rows)
      if (r[0] && r[1]) (*out)[*r[0]] = std::stoull(*r[1]);
  }
  return Status::OK();
}

Status EngineCore::StoreRowVersions(MysqlSession& db,
                                    const std::vector<std::tuple<std::string, std::string, uint64_t>>& v) {
  for (size_t i = 0; i < v.size(); i += 500) {
    std::string q = "INSERT INTO lampyr_rowver (tbl, pk, ver) VALUES ";
    std::vector<Value> params;
    for (size_t j = i; j < v.size() && j < i + 500; ++j) {
      q += j == i ? "(?,?,?)" : ",(?,?,?)";
      params.push_back(std::get<0>(v[j]));
      params.push_back(std::get<1>(v[j]));
      params.push_back(std::to_string(std::get<2>(v[j])));
    }
    q += " ON DUPLICATE KEY UPDATE ver = GREATEST(ver, VALUES(ver))";
    if (Status s = db.Exec(q, params); !s.ok()) return s;
  }
  return Status::OK();
}

Status EngineCore::NewEpoch(WorkerCtx& w, uint64_t* epoch) {
  Status s = w.mysql.Exec("UPDATE lampyr_sync SET n = LAST_INSERT_ID(n + 1) WHERE prefix = ? AND writer = ?",
                          {prefix_, std::string(kEpochRow)});
  std::vector<std::vector<Value>> rows;
  if (s.ok()) s = w.mysql.Query("SELECT LAST_INSERT_ID()", {}, &rows);
  if (!s.ok()) {
    if (!w.mysql.connected()) mysql_health_.Failed(s.message());
    return s;
  }
  *epoch = rows.empty() || !rows[0][0] ? 0 : std::stoull(*rows[0][0]);
  if (*epoch == 0) return Status::Error("data: no epoch counter for cache prefix " + prefix_);
  return s;
}

Status EngineCore::AllSynced(WorkerCtx& w, uint64_t epoch, bool* all) {
  // A writer whose named lock is free is gone: what it had not flushed went
  // with it and with memcached's data (two failures, docs/data.md).
  std::vector<std::vector<Value>> rows;
  Status s = w.mysql.Query(
      "SELECT COUNT(*) FROM lampyr_sync WHERE prefix = ? AND writer <> ? AND n < CAST(? AS UNSIGNED) "
      "AND IS_USED_LOCK(lockname) IS NOT NULL",
      {prefix_, std::string(kEpochRow), std::to_string(epoch)}, &rows);
  if (!s.ok()) {
    if (!w.mysql.connected()) mysql_health_.Failed(s.message());
    return s;
  }
  *all = !rows.empty() && rows[0][0].value_or("1") == "0";
  return s;
}

McResult EngineCore::ReadMarker(McClient* mc, const std::string& key, EpochMarker* m) {
  std::map<std::string, McItem> items;
  McResult r = mc->MultiGetByKey(key, {marker_key_}, &items);
  *m = EpochMarker{};
  if (r != McResult::kOk) return r;
  auto it = items.find(marker_key_);
  if (it != items.end() && ParseMarker(it->second.value, m)) m->cas = it->second.cas;
  else *m = EpochMarker{};
  return r;
}

McResult EngineCore::ReadRecord(McClient* mc, const std::string& key, CacheSlot* slot, EpochMarker* m) {
  std::map<std::string, McItem> items;
  McResult r = mc->MultiGetByKey(key, {marker_key_, key}, &items);
  *m = EpochMarker{};
  slot->cas = 0;
  if (r != McResult::kOk) return r;
  if (auto it = items.find(marker_key_); it != items.end() && ParseMarker(it->second.value, m))
    m->cas = it->second.cas;
  else
    *m = EpochMarker{};
  auto it = items.find(key);
  if (it == items.end()) return McResult::kNotFound;
  r = CacheStore::Decode(mc, key, it->second, slot);
  if (r == McResult::kExists) r = CacheStore::Read(mc, key, slot);  // a torn chunked read: read it again
  if (r == McResult::kNotFound) slot->cas = 0;
  if (r != McResult::kOk) return r;
  // A copy stored under another epoch (before memcached lost its data, or by
  // an operation that straddled the restart) may be older than MySQL.
  if (m->state != EpochMarker::kOpen || slot->rec.epoch != m->epoch) return McResult::kNotFound;
  return r;
}

Status EngineCore::AwaitOpen(WorkerCtx& w, const std::string& key, EpochMarker* m) {
  for (int round = 0;; ++round) {
    if (m->state == EpochMarker::kOpen) return Status::OK();
    if (round == kOpenRounds) break;
    if (m->state == EpochMarker::kMissing) {
      // This server lost its data (restart, or it is new): nothing cached on
      // it may be used until every writer has flushed what it holds. First
      // claim the marker ("P 0"), then number the epoch: the number is then
      // taken after this incarnation of the server started, so a writer that
      // synced to it flushed after the old incarnation died. (Numbering first
      // could let a delayed add put an old number on a newer incarnation.)
      McResult a = w.mc->AddByKey(key, marker_key_, "P 0", 0);
      if (a == McResult::kDown) return Refused("memcached unreachable");
    } else if (m->state == EpochMarker::kPending && m->epoch == 0) {
      uint64_t epoch = 0;
      if (Status s = NewEpoch(w, &epoch); !s.ok()) return Refused(std::string(kClosedText) + ": " + s.message());
      McResult c = w.mc->CasByKey(key, marker_key_, "P " + std::to_string(epoch), 0, m->cas);
      if (c == McResult::kDown) return Refused("memcached unreachable");
      if (c == McResult::kOk) {
        metrics_.fences->Inc();
        LOG_WARN("data", "memcached server of %s has no cache-epoch marker (restarted, or first use of this key "
                 "prefix): cache epoch %" PRIu64 " closed until every writer has flushed", key.c_str(), epoch);
      }
    } else {
      const uint64_t epoch = m->epoch;
      if (synced_.load() < epoch) {
        if (poke_) poke_();
        std::unique_lock<std::mutex> lk(sync_mu_);
        sync_cv_.wait_for(lk, std::chrono::milliseconds(kOpenWaitMs), [&] { return synced_.load() >= epoch; });
      }
      if (synced_.load() >= epoch) {
        bool all = false;
        if (Status s = AllSynced(w, epoch, &all); !s.ok()) return Refused(std::string(kClosedText) + ": " + s.message());
        if (all) {
          if (w.mc->CasByKey(key, marker_key_, "O " + std::to_string(epoch), 0, m->cas) == McResult::kOk)
            LOG_INFO("data", "cache epoch %" PRIu64 " open: every writer has flushed", epoch);
        } else {
          std::unique_lock<std::mutex> lk(sync_mu_);
          sync_cv_.wait_for(lk, std::chrono::milliseconds(kOpenWaitMs / 2));
        }
      }
    }
    McResult r = ReadMarker(w.mc.get(), key, m);
    if (r == McResult::kDown) return Refused("memcached unreachable");
  }
  return Refused(kClosedText);
}

McResult EngineCore::Note(McResult r, McClient* mc) {
  if (r == McResult::kDown) mc_health_.Failed(mc->last_error());
  else mc_health_.Ok();
  return r;
}

void EngineCore::Touched(McClient* mc, const std::string& key, bool refresh) {
  const int64_t now = EventLoop::NowMicros();
  const int64_t every = static_cast<int64_t>(idle_exptime_) * 1000000 / 4;
  {
    std::lock_guard<std::mutex> lk(touch_mu_);
    if (touched_.size() > 100000) touched_.clear();
    int64_t& last = touched_[key];
    const bool due = now - last >= every;
    last = now;
    if (!refresh || !due) return;
  }
  mc->Touch(key, idle_exptime_);
}

Status EngineCore::CheckKey(const std::string& key) const {
  if (key.size() > KeySpace::kMaxKey) return Status::Error("data: primary key too long for a cache key");
  return Status::OK();
}

Status EngineCore::SelectRow(WorkerCtx& w, const TableSchema& t, const std::string& pk, bool for_update,
                             std::optional<Row>* out) {
  std::vector<std::vector<Value>> rows;
  Status s = w.mysql.Query(sqltext::SelectByPk(t, for_update), {pk}, &rows);
  if (!s.ok()) {
    if (!w.mysql.connected()) mysql_health_.Failed(s.message());
    return s;
  }
  mysql_health_.Ok();
  if (rows.empty()) out->reset();
  else *out = sqltext::ToRow(t, std::move(rows[0]));
  return Status::OK();
}

Status EngineCore::LoadForCache(WorkerCtx& w, const TableSchema& t, const std::string& pk, const std::string& key,
                                CachedRecord* rec, bool* found) {
  // MySQL's row and the version it was written at; our own unflushed copy
  // only when it is newer (another writer may have flushed a newer one since).
  std::optional<Row> row;
  Status s = SelectRow(w, t, pk, false, &row);
  std::map<std::string, uint64_t> versions;
  if (s.ok()) s = RowVersions(w.mysql, t, {pk}, false, &versions);
  if (!s.ok()) {
    if (!w.mysql.connected()) mysql_health_.Failed(s.message());
    return s;
  }
  const uint64_t stored = versions.count(pk) ? versions[pk] : 0;
  if (auto q = queue_.Find(key); q && q->has_data && q->version > stored) {
    rec->version = q->version;
    rec->dirty = true;
    rec->deleted = q->deleted;
    rec->row = q->row;
    *found = true;
    return Status::OK();
  }
  metrics_.mysql_reads->Inc();
  *found = row.has_value();
  if (row) {
    rec->version = stored;
    rec->dirty = false;
    rec->deleted = false;
    rec->row = std::move(*row);
  }
  return Status::OK();
}

Status EngineCore::Get(WorkerCtx& w, const TableSchema& t, const std::string& pk, std::optional<Row>* out) {
  const std::string key = keys_.Record(t.name, pk);
  if (Status s = CheckKey(key); !s.ok()) return s;
  for (int attempt = 0; attempt < 4; ++attempt) {
    CacheSlot slot;
    EpochMarker m;
    McResult r = Note(ReadRecord(w.mc.get(), key, &slot, &m), w.mc.get());
    if (r == McResult::kDown) break;
    if (m.state != EpochMarker::kOpen) {
      // A read from MySQL now could miss what other writers still hold.
      if (Status s = AwaitOpen(w, key, &m); !s.ok()) return s;
      continue;
    }
    if (r == McResult::kOk) {
      metrics_.hits->Inc();
      if (!slot.rec.dirty) Touched(w.mc.get(), key, true);
      if (slot.rec.deleted) out->reset();
      else *out = std::move(slot.rec.row);
      return Status::OK();
    }
    metrics_.misses->Inc();
    CachedRecord rec;
    bool found = false;
    if (Status s = LoadForCache(w, t, pk, key, &rec, &found); !s.ok()) return s;
    if (!found) {
      out->reset();
      return Status::OK();
    }
    rec.epoch = m.epoch;
    if (rec.dirty) queue_.EnsureListed(w.mc.get(), key, t.name, pk, /*force=*/true);
    const uint32_t exp = rec.dirty ? 0 : idle_exptime_;
    McResult a = Note(slot.cas ? CacheStore::Cas(w.mc.get(), key, slot, rec, exp)
                               : CacheStore::Add(w.mc.get(), key, rec, exp),
                      w.mc.get());
    if (a == McResult::kNotStored || a == McResult::kExists || a == McResult::kNotFound) continue;  // raced: re-read
    if (a == McResult::kOk) Touched(w.mc.get(), key, false);
    if (rec.deleted) out->reset();
    else *out = std::move(rec.row);
    return Status::OK();
  }
  // memcached unreachable: our queue, else MySQL.
  metrics_.fallback_reads->Inc();
  if (auto q = queue_.Find(key); q && q->has_data) {
    if (q->deleted) out->reset();
    else *out = q->row;
    return Status::OK();
  }
  return SelectRow(w, t, pk, false, out);
}

Status EngineCore::GetMany(WorkerCtx& w, const TableSchema& t, const std::vector<std::string>& pks,
                           std::vector<std::optional<Row>>* out) {
  out->assign(pks.size(), std::nullopt);
  std::vector<std::string> keys;
  for (const auto& pk : pks) {
    keys.push_back(keys_.Record(t.name, pk));
    if (Status s = CheckKey(keys.back()); !s.ok()) return s;
  }
  std::map<std::string, McItem> items;
  McResult r = Note(w.mc->MultiGet(keys, &items), w.mc.get());
  // A hit counts only if stored under the open epoch of its server.
  std::map<uint32_t, EpochMarker> markers;
  auto current = [&](const std::string& key, uint64_t epoch) {
    const uint32_t server = w.mc->ServerOf(key);
    auto m = markers.find(server);
    if (m == markers.end()) {
      EpochMarker marker;
      if (ReadMarker(w.mc.get(), key, &marker) != McResult::kOk) return false;
      m = markers.emplace(server, marker).first;
    }
    return m->second.state == EpochMarker::kOpen && m->second.epoch == epoch;
  };
  for (size_t i = 0; i < pks.size(); ++i) {
    if (r == McResult::kOk) {
      auto it = items.find(keys[i]);
      if (it != items.end()) {
        CacheSlot slot;
        if (CacheStore::Decode(w.mc.get(), keys[i], it->second, &slot) == McResult::kOk &&
            current(keys[i], slot.rec.epoch)) {
          metrics_.hits->Inc();
          if (!slot.rec.deleted) (*out)[i] = std::move(slot.rec.row);
          continue;
        }
      }
    }
    // Misses (and torn chunked reads) take the single-record path.
    if (Status s = Get(w, t, pks[i], &(*out)[i]); !s.ok()) return s;
  }
  return Status::OK();
}

Status EngineCore::SelectFkList(WorkerCtx& w, const TableSchema& t, const std::string& fk,
                                std::vector<std::string>* pks) {
  std::vector<std::vector<Value>> rows;
  Status s = w.mysql.Query(sqltext::SelectPksByFk(t), {fk}, &rows);
  if (!s.ok()) {
    if (!w.mysql.connected()) mysql_health_.Failed(s.message());
    return s;
  }
  pks->clear();
  for (auto& r : rows)
    if (r[0]) pks->push_back(std::move(*r[0]));
  return Status::OK();
}

Status EngineCore::GetByFk(WorkerCtx& w, const TableSchema& t, const std::string& fk, std::vector<Row>* out) {
  if (t.fk.empty()) return Status::Error("data: table " + t.name + " declares no fk");
  const std::string key = keys_.FkList(t.name, fk);
  if (Status s = CheckKey(key); !s.ok()) return s;
  std::vector<std::string> pks;
  McItem item;
  McResult r = Note(w.mc->Get(key, &item), w.mc.get());
  if (r != McResult::kOk || !DecodePkList(item.value, &pks)) {
    if (Status s = SelectFkList(w, t, fk, &pks); !s.ok()) return s;
    if (r != McResult::kDown) w.mc->Add(key, EncodePkList(pks), idle_exptime_);
  }
  std::vector<std::optional<Row>> rows;
  if (Status s = GetMany(w, t, pks, &rows); !s.ok()) return s;
  out->clear();
  // The list may trail unflushed changes; the records themselves are current.
  for (auto& row : rows) {
    if (!row) continue;
    auto it = row->find(t.fk);
    if (it == row->end() || !it->second || *it->second != fk) continue;
    out->push_back(std::move(*row));
  }
  return Status::OK();
}

void EngineCore::FkListEdit(WorkerCtx& w, const TableSchema& t, const std::string& fk, const std::string& pk, bool add,
                            bool load_if_absent) {
  const std::string key = keys_.FkList(t.name, fk);
  if (key.size() > KeySpace::kMaxKey) return;
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    McItem item;
    McResult r = Note(w.mc->Get(key, &item), w.mc.get());
    std::vector<std::string> pks;
    if (r == McResult::kDown) return;
    if (r == McResult::kNotFound || !DecodePkList(item.value, &pks)) {
      if (r == McResult::kOk) w.mc->Delete(key);  // undecodable
      if (!load_if_absent) return;
      if (!SelectFkList(w, t, fk, &pks).ok()) return;
      if (add && std::find(pks.begin(), pks.end(), pk) == pks.end()) pks.push_back(pk);
      if (!add) pks.erase(std::remove(pks.begin(), pks.end(), pk), pks.end());
      McResult a = w.mc->Add(key, EncodePkList(pks), idle_exptime_);
      if (a == McResult::kNotStored || a == McResult::kExists) continue;
      return;
    }
    const bool present = std::find(pks.begin(), pks.end(), pk) != pks.end();
    if (add == present) return;
    if (add) pks.push_back(pk);
    else pks.erase(std::remove(pks.begin(), pks.end(), pk), pks.end());
    McResult c = w.mc->Cas(key, EncodePkList(pks), idle_exptime_, item.cas);
    if (c == McResult::kExists || c == McResult::kNotFound) continue;
    return;
  }
}

void EngineCore::FkChanged(WorkerCtx& w, const TableSchema& t, const std::string& pk, const Row& before,
                           const Row& after, bool removed) {
  if (t.fk.empty()) return;
  auto fk_of = [&](const Row& r) -> Value {
    auto it = r.find(t.fk);
    return it == r.end() ? std::nullopt : it->second;
  };
  const Value old_fk = fk_of(before);
  const Value new_fk = removed ? std::nullopt : fk_of(after);
  if (old_fk == new_fk) return;
  if (old_fk) FkListEdit(w, t, *old_fk, pk, false, false);
  // A list loaded from MySQL now would miss this unflushed move: make sure
  // the list exists and holds the row.
  if (new_fk) FkListEdit(w, t, *new_fk, pk, true, true);
}

Status EngineCore::CheckMutation(const TableSchema& t, const std::string& pk, const Row& row) const {
  if (Status s = Schema::CheckColumns(t, row); !s.ok()) return s;
  auto it = row.find(t.pk);
  if (it == row.end() || !it->second || *it->second != pk)
    return Status::Error("data: the primary key " + t.name + "." + t.pk + " cannot be changed");
  return Status::OK();
}

Status EngineCore::Modify(WorkerCtx& w, const TableSchema& t, const std::string& pk, const Mutator& mutate,
                          bool remove, Row* out) {
  const std::string key = keys_.Record(t.name, pk);
  if (Status s = CheckKey(key); !s.ok()) return s;
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    // From the read to the queue entry: the flusher's sync barrier waits for
    // this, so a change acknowledged against a server that then lost its data
    // is in the queue before the flush that lets the new epoch open.
    OpGuard guard(&gate_);
    CacheSlot slot;
    EpochMarker m;
    McResult r = Note(ReadRecord(w.mc.get(), key, &slot, &m), w.mc.get());
    // No write-through: MySQL may be older than what other writers hold in
    // their queues, so an update applied there could be lost (docs/data.md).
    if (r == McResult::kDown) {
      metrics_.refused->Inc();
      return Refused("memcached unreachable");
    }
    if (m.state != EpochMarker::kOpen) {
      guard.Leave();
      if (Status s = AwaitOpen(w, key, &m); !s.ok()) {
        metrics_.refused->Inc();
        return s;
      }
      continue;
    }
    if (r == McResult::kNotFound) {
      CachedRecord rec;
      bool found = false;
      if (Status s = LoadForCache(w, t, pk, key, &rec, &found); !s.ok()) return s;
      if (!found) return NotFound(t, pk);
      rec.epoch = m.epoch;
      if (rec.dirty) queue_.EnsureListed(w.mc.get(), key, t.name, pk, /*force=*/true);
      const uint32_t exp = rec.dirty ? 0 : idle_exptime_;
      McResult a = Note(slot.cas ? CacheStore::Cas(w.mc.get(), key, slot, rec, exp)
                                 : CacheStore::Add(w.mc.get(), key, rec, exp),
                        w.mc.get());
      if (a == McResult::kDown) {
        metrics_.refused->Inc();
        return Refused("memcached unreachable");
      }
      if (a == McResult::kTooBig) return Status::Error("data: record too large for memcached");
      continue;  // read it back with its CAS
    }
    if (slot.rec.deleted) return NotFound(t, pk);
    Row row = slot.rec.row;
    if (!remove) {
      if (Status s = mutate(row); !s.ok()) return s;
      if (Status s = CheckMutation(t, pk, row); !s.ok()) return s;
    }
    CachedRecord next;
    next.version = slot.rec.version + 1;
    next.epoch = m.epoch;
    next.dirty = true;
    next.deleted = remove;
    next.row = row;
    // Listed before the write: a crash right after the CAS still finds it.
    McResult idx = queue_.EnsureListed(w.mc.get(), key, t.name, pk, false);
    if (idx != McResult::kOk) metrics_.index_errors->Inc();
    McResult c = Note(CacheStore::Cas(w.mc.get(), key, slot, next, 0), w.mc.get());
    if (c == McResult::kOk) {
      if (queue_.Record(w.mc.get(), key, t.name, pk, row, remove, next.version) != McResult::kOk)
        metrics_.index_errors->Inc();
      guard.Leave();
      metrics_.dirty->Set(static_cast<int64_t>(queue_.size()));
      FkChanged(w, t, pk, slot.rec.row, row, remove);
      *out = std::move(row);
      return Status::OK();
    }
    if (c == McResult::kExists || c == McResult::kNotFound) {
      metrics_.cas_conflicts->Inc();
      continue;
    }
    if (c == McResult::kDown) {
      // Not acknowledged. If memcached died, the change (if it got there)
      // died with its data; if it only timed out, it may have applied it: the
      // record is then dirty in the cache and our placeholder gets it flushed.
      metrics_.refused->Inc();
      return Status::Error("data: memcached stopped answering during the update: not acknowledged, and it may or "
                           "may not have been applied");
    }
    return Status::Error(std::string("data: cache write failed: ") + McResultName(c));
  }
  return Status::Error("data: " + t.name + " record " + EscapeKeyPart(pk) + ": too many concurrent updates");
}

Status EngineCore::Create(WorkerCtx& w, const TableSchema& t, const Row& row, std::string* pk) {
  if (Status s = Schema::CheckColumns(t, row); !s.ok()) return s;
  std::vector<std::string> cols;
  std::vector<Value> params;
  bool has_pk = false;
  for (const auto& c : t.columns) {
    auto it = row.find(c.name);
    if (it == row.end()) continue;
    if (c.name == t.pk) {
      if (!it->second && t.autoinc) continue;  // NULL pk: let MySQL allocate
      has_pk = true;
    }
    cols.push_back(c.name);
    params.push_back(it->second);
  }
  if (!has_pk && !t.autoinc) return Status::Error("data: create in " + t.name + " needs its primary key " + t.pk);
  if (cols.empty()) return Status::Error("data: create in " + t.name + " needs at least one column");
  // Creation goes straight to MySQL: its counter hands out the key, so keys
  // are unique across processes and only a failed INSERT leaves a gap.
  Status s = w.mysql.Exec(sqltext::Insert(t, cols), params);
  if (!s.ok()) {
    if (!w.mysql.connected()) mysql_health_.Failed(s.message());
    return s;
  }
  mysql_health_.Ok();
  if (has_pk) {
    *pk = *row.at(t.pk);
  } else {
    std::vector<std::vector<Value>> rows;
    if (s = w.mysql.Query("SELECT LAST_INSERT_ID()", {}, &rows); !s.ok()) return s;
    if (rows.empty() || !rows[0][0]) return Status::Error("data: no LAST_INSERT_ID after create");
    *pk = *rows[0][0];
  }
  const std::string key = keys_.Record(t.name, *pk);
  if (has_pk && key.size() <= KeySpace::kMaxKey) {
    // A flushed remove of the same key may have left a clean tombstone.
    CacheSlot slot;
    if (CacheStore::Read(w.mc.get(), key, &slot) == McResult::kOk && slot.rec.deleted && !slot.rec.dirty)
      w.mc->Delete(key);
  }
  if (!t.fk.empty()) {
    auto it = row.find(t.fk);
    if (it != row.end() && it->second) FkListEdit(w, t, *it->second, *pk, true, false);
  }
  return Status::OK();
}

}  // namespace lampyr::data
