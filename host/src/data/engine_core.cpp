#include "data/engine_core.h"

#include <algorithm>

#include "core/event_loop.h"
#include "core/log.h"
#include "data/table_sql.h"

namespace lampyr::data {
namespace {

constexpr int kMaxCasAttempts = 1000;

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
  write_through =
      m.GetCounter("lampyr_data_write_through_total", "Updates written straight to MySQL (memcached unreachable)");
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
      idle_exptime_(config.db.idle_evict_s) {}

McResult EngineCore::Note(McResult r, McClient* mc) {
  if (r == McResult::kDown) mc_health_.Failed(mc->last_error());
  else mc_health_.Ok();
  return r;
}

void EngineCore::MarkStale(const std::string& key) {
  std::lock_guard<std::mutex> lk(stale_mu_);
  stale_.insert(key);
  have_stale_ = true;
}

void EngineCore::ForgetStaleCopies(McClient* mc) {
  if (!have_stale_.load()) return;
  std::set<std::string> keys;
  {
    std::lock_guard<std::mutex> lk(stale_mu_);
    keys.swap(stale_);
    have_stale_ = false;
  }
  for (auto it = keys.begin(); it != keys.end();) {
    McResult r = mc->Delete(*it);
    if (r == McResult::kDown) break;
    it = keys.erase(it);
  }
  if (!keys.empty()) {
    std::lock_guard<std::mutex> lk(stale_mu_);
    stale_.insert(keys.begin(), keys.end());
    have_stale_ = true;
  }
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
  if (auto q = queue_.Find(key); q && q->has_data) {
    // Unflushed changes of ours that memcached lost: they are newer than MySQL.
    rec->version = q->version;
    rec->dirty = true;
    rec->deleted = q->deleted;
    rec->row = q->row;
    *found = true;
    return Status::OK();
  }
  std::optional<Row> row;
  Status s = SelectRow(w, t, pk, false, &row);
  if (!s.ok()) return s;
  metrics_.mysql_reads->Inc();
  *found = row.has_value();
  if (row) {
    rec->version = 0;
    rec->dirty = false;
    rec->deleted = false;
    rec->row = std::move(*row);
  }
  return Status::OK();
}

Status EngineCore::Get(WorkerCtx& w, const TableSchema& t, const std::string& pk, std::optional<Row>* out) {
  const std::string key = keys_.Record(t.name, pk);
  if (Status s = CheckKey(key); !s.ok()) return s;
  ForgetStaleCopies(w.mc.get());
  for (int attempt = 0; attempt < 3; ++attempt) {
    CacheSlot slot;
    McResult r = Note(CacheStore::Read(w.mc.get(), key, &slot), w.mc.get());
    if (r == McResult::kOk) {
      metrics_.hits->Inc();
      if (!slot.rec.dirty) Touched(w.mc.get(), key, true);
      if (slot.rec.deleted) out->reset();
      else *out = std::move(slot.rec.row);
      return Status::OK();
    }
    if (r == McResult::kDown) break;
    metrics_.misses->Inc();
    CachedRecord rec;
    bool found = false;
    if (Status s = LoadForCache(w, t, pk, key, &rec, &found); !s.ok()) return s;
    if (!found) {
      out->reset();
      return Status::OK();
    }
    if (rec.dirty) queue_.EnsureListed(w.mc.get(), key, t.name, pk, /*force=*/true);
    McResult a = Note(CacheStore::Add(w.mc.get(), key, rec, rec.dirty ? 0 : idle_exptime_), w.mc.get());
    if (a == McResult::kNotStored || a == McResult::kExists) continue;  // someone cached it first: read theirs
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
  ForgetStaleCopies(w.mc.get());
  std::map<std::string, McItem> items;
  McResult r = Note(w.mc->MultiGet(keys, &items), w.mc.get());
  for (size_t i = 0; i < pks.size(); ++i) {
    if (r == McResult::kOk) {
      auto it = items.find(keys[i]);
      if (it != items.end()) {
        CacheSlot slot;
        if (CacheStore::Decode(w.mc.get(), keys[i], it->second, &slot) == McResult::kOk) {
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
  ForgetStaleCopies(w.mc.get());
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    CacheSlot slot;
    McResult r = Note(CacheStore::Read(w.mc.get(), key, &slot), w.mc.get());
    if (r == McResult::kDown) return WriteThrough(w, t, pk, mutate, remove, out);
    if (r == McResult::kNotFound) {
      CachedRecord rec;
      bool found = false;
      if (Status s = LoadForCache(w, t, pk, key, &rec, &found); !s.ok()) return s;
      if (!found) return NotFound(t, pk);
      if (rec.dirty) queue_.EnsureListed(w.mc.get(), key, t.name, pk, /*force=*/true);
      McResult a = Note(CacheStore::Add(w.mc.get(), key, rec, rec.dirty ? 0 : idle_exptime_), w.mc.get());
      if (a == McResult::kDown) return WriteThrough(w, t, pk, mutate, remove, out);
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
      metrics_.dirty->Set(static_cast<int64_t>(queue_.size()));
      FkChanged(w, t, pk, slot.rec.row, row, remove);
      *out = std::move(row);
      return Status::OK();
    }
    if (c == McResult::kExists || c == McResult::kNotFound) {
      metrics_.cas_conflicts->Inc();
      continue;
    }
    if (c == McResult::kDown) return WriteThrough(w, t, pk, mutate, remove, out);
    return Status::Error(std::string("data: cache write failed: ") + McResultName(c));
  }
  return Status::Error("data: " + t.name + " record " + EscapeKeyPart(pk) + ": too many concurrent updates");
}

Status EngineCore::WriteThrough(WorkerCtx& w, const TableSchema& t, const std::string& pk, const Mutator& mutate,
                                bool remove, Row* out) {
  const std::string key = keys_.Record(t.name, pk);
  metrics_.write_through->Inc();
  if (Status s = w.mysql.Begin(); !s.ok()) {
    mysql_health_.Failed(s.message());
    return s;
  }
  std::optional<Row> base;
  Status s = SelectRow(w, t, pk, true, &base);
  if (!s.ok()) {
    w.mysql.Rollback();
    return s;
  }
  if (auto q = queue_.Find(key); q && q->has_data) {
    if (q->deleted) base.reset();
    else base = q->row;
  }
  if (!base) {
    w.mysql.Rollback();
    return NotFound(t, pk);
  }
  Row row = *base;
  if (!remove) {
    if (s = mutate(row); !s.ok() || !(s = CheckMutation(t, pk, row)).ok()) {
      w.mysql.Rollback();
      return s;
    }
    std::vector<std::string> cols;
    std::vector<Value> params;
    for (const auto& c : t.columns) {
      auto it = row.find(c.name);
      if (it == row.end()) continue;
      cols.push_back(c.name);
      params.push_back(it->second);
    }
    s = w.mysql.Exec(sqltext::Upsert(t, cols, 1), params);
  } else {
    s = w.mysql.Exec(sqltext::DeleteMany(t, 1), {pk});
  }
  if (s.ok()) s = w.mysql.Commit();
  if (!s.ok()) {
    w.mysql.Rollback();
    if (!w.mysql.connected()) mysql_health_.Failed(s.message());
    return s;
  }
  // MySQL now holds this change; queued older data must not overwrite it,
  // and the cached copy (if memcached kept one) is stale.
  queue_.RecordIfQueued(key, row, remove);
  MarkStale(key);
  if (!t.fk.empty()) {
    for (const Row* r : {&*base, &row}) {
      auto it = r->find(t.fk);
      if (it != r->end() && it->second) MarkStale(keys_.FkList(t.name, *it->second));
    }
  }
  *out = std::move(row);
  return Status::OK();
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
