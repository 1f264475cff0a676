// "sql_*" (plugin.h "Plain SQL", docs/plugins.md "SQL"): a plugin's
// statements and transactions on the server's SqlPool. Each call is an
// async operation holding a lease on the calling generation (pending_calls)
// until its completion, like "data_*"; completions whose generation is gone
// are dropped.
//
// A transaction belongs to the generation that began it: another one (say
// the next generation after a reload) cannot commit what it did not start.
// A draining generation may finish its transactions but begin none.
#include <lampyr/plugin.hpp>

#include <cstring>
#include <memory>
#include <type_traits>
#include <string>
#include <unordered_map>

#include "data/sql_pool.h"
#include "plugin/host_api.h"
#include "plugin/plugin_host.h"

namespace lampyr::plugin {
namespace {

using State = Generation::State;
namespace json = sdk::datajson;

int DoneStatus(data::SqlError e) {
  switch (e) {
    case data::SqlError::kNone: return LAMPYR_DONE_OK;
    case data::SqlError::kTimeout: return LAMPYR_DONE_TIMEOUT;
    case data::SqlError::kUnavailable: return LAMPYR_DONE_UNAVAILABLE;
    default: return LAMPYR_DONE_ERROR;
  }
}

// Takes the lease; Finish() hands the outcome over and ends it.
class SqlOp {
 public:
  SqlOp(Generation* g, uint64_t cookie) : gen_(g->weak_from_this()), cookie_(cookie) { ++g->pending_calls; }
  void Finish(data::SqlError e, const Status& s, const std::string& ok_json) const {
    auto gen = gen_.lock();
    if (!gen || gen->state == State::kRetired) return;
    if (gen->pending_calls) --gen->pending_calls;
    const std::string& data = e == data::SqlError::kNone ? ok_json : s.message();
    if (gen->desc()->on_complete) {
      Activity running = gen->Running("sql completion");
      gen->desc()->on_complete(gen->ctx, cookie_, DoneStatus(e), data.data(), data.size());
    }
    gen->host->LeaseEnded(gen.get());
  }
  // Undoes the lease when the pool refused to queue the operation.
  static void Refused(Generation* g) {
    if (g->pending_calls) --g->pending_calls;
  }

 private:
  std::weak_ptr<Generation> gen_;
  uint64_t cookie_;
};

// tx -> the generation that began it. Loop thread only. Entries go at
// commit/rollback; ones the plugin never ended (the host rolled them back at
// tx_timeout, or the generation went away) are pruned when the map grows.
std::unordered_map<uint64_t, std::weak_ptr<Generation>>& TxOwners() {
  static auto* owners = new std::unordered_map<uint64_t, std::weak_ptr<Generation>>();  // never destroyed: no exit-order issue
  return *owners;
}

void PruneOwners(data::SqlPool* pool) {
  auto& owners = TxOwners();
  if (owners.size() < 1024) return;
  for (auto it = owners.begin(); it != owners.end();) {
    if (it->second.expired() || !pool->TxOpen(it->first)) it = owners.erase(it);
    else ++it;
  }
}

std::string ResultJson(const data::SqlResult& r) {
  std::string out = "{\"columns\":[";
  for (size_t i = 0; i < r.columns.size(); ++i) {
    if (i) out += ',';
    json::put_string(out, r.columns[i]);
  }
  out += "],\"rows\":[";
  for (size_t i = 0; i < r.rows.size(); ++i) {
    if (i) out += ',';
    out += json::values(r.rows[i]);
  }
  return out + "],\"affected\":" + std::to_string(r.affected) + "}";
}

// The pool for a new operation of `h`, or the refusal code.
int Pool(lampyr_host* h, bool may_drain, data::SqlPool** out) {
  Generation* g = Generation::From(h);
  if (!(g->active() || (may_drain && g->state == State::kDraining))) return LAMPYR_ERR_STATE;
  *out = g->host->sql();
  return *out ? LAMPYR_OK : LAMPYR_ERR_UNAVAILABLE;
}

// Is `tx` one of `h`'s transactions?
bool Owns(lampyr_host* h, uint64_t tx) {
  auto it = TxOwners().find(tx);
  return it != TxOwners().end() && it->second.lock().get() == Generation::From(h);
}

int SqlQuery(lampyr_host* h, const char* sql, const char* params_json, size_t len, uint64_t cookie) {
  return Guard([&] {
    std::vector<data::Value> params;
    if (!sql || !*sql || !json::parse_values(View(params_json, len), &params)) return LAMPYR_ERR_ARG;
    data::SqlPool* pool = nullptr;
    if (int rc = Pool(h, false, &pool); rc != LAMPYR_OK) return rc;
    Generation* g = Generation::From(h);
    SqlOp op(g, cookie);
    bool queued = pool->Query(sql, std::move(params), [op](data::SqlError e, Status s, data::SqlResult r) {
      op.Finish(e, s, e == data::SqlError::kNone ? ResultJson(r) : std::string());
    });
    if (!queued) SqlOp::Refused(g);
    return queued ? LAMPYR_OK : LAMPYR_ERR_BUSY;
  });
}

int SqlBegin(lampyr_host* h, uint64_t cookie) {
  return Guard([&] {
    data::SqlPool* pool = nullptr;
    if (int rc = Pool(h, false, &pool); rc != LAMPYR_OK) return rc;
    Generation* g = Generation::From(h);
    PruneOwners(pool);
    SqlOp op(g, cookie);
    std::weak_ptr<Generation> w = g->weak_from_this();
    bool queued = pool->Begin([op, w](data::SqlError e, Status s, uint64_t tx) {
      if (e == data::SqlError::kNone) TxOwners()[tx] = w;
      op.Finish(e, s, "{\"tx\":\"" + std::to_string(tx) + "\"}");
    });
    if (!queued) SqlOp::Refused(g);
    return queued ? LAMPYR_OK : LAMPYR_ERR_BUSY;
  });
}

int SqlTxQuery(lampyr_host* h, uint64_t tx, const char* sql, const char* params_json, size_t len, uint64_t cookie) {
  return Guard([&] {
    std::vector<data::Value> params;
    if (!sql || !*sql || !json::parse_values(View(params_json, len), &params)) return LAMPYR_ERR_ARG;
    data::SqlPool* pool = nullptr;
    if (int rc = Pool(h, true, &pool); rc != LAMPYR_OK) return rc;
    if (!Owns(h, tx)) return LAMPYR_ERR_ARG;
    Generation* g = Generation::From(h);
    SqlOp op(g, cookie);
    bool queued = pool->TxQuery(tx, sql, std::move(params), [op](data::SqlError e, Status s, data::SqlResult r) {
      op.Finish(e, s, e == data::SqlError::kNone ? ResultJson(r) : std::string());
    });
    if (!queued) SqlOp::Refused(g);
    return queued ? LAMPYR_OK : LAMPYR_ERR_BUSY;
  });
}

int SqlEnd(lampyr_host* h, uint64_t tx, uint64_t cookie, bool commit) {
  return Guard([&] {
    data::SqlPool* pool = nullptr;
    if (int rc = Pool(h, true, &pool); rc != LAMPYR_OK) return rc;
    if (!Owns(h, tx)) return LAMPYR_ERR_ARG;
    TxOwners().erase(tx);
    Generation* g = Generation::From(h);
    SqlOp op(g, cookie);
    auto done = [op](data::SqlError e, Status s) { op.Finish(e, s, "{}"); };
    bool queued = commit ? pool->Commit(tx, done) : pool->Rollback(tx, done);
    if (!queued) SqlOp::Refused(g);
    return queued ? LAMPYR_OK : LAMPYR_ERR_BUSY;
  });
}

int SqlCommit(lampyr_host* h, uint64_t tx, uint64_t cookie) { return SqlEnd(h, tx, cookie, true); }
int SqlRollback(lampyr_host* h, uint64_t tx, uint64_t cookie) { return SqlEnd(h, tx, cookie, false); }

static_assert(std::is_same_v<decltype(&SqlQuery), lampyr_fn_sql_query>);
static_assert(std::is_same_v<decltype(&SqlBegin), lampyr_fn_sql_begin>);
static_assert(std::is_same_v<decltype(&SqlTxQuery), lampyr_fn_sql_tx_query>);
static_assert(std::is_same_v<decltype(&SqlCommit), lampyr_fn_sql_end>);
static_assert(std::is_same_v<decltype(&SqlRollback), lampyr_fn_sql_end>);

struct Entry {
  const char* name;
  void* fn;
};
#define LAMPYR_FN(n, f) Entry{n, reinterpret_cast<void*>(&f)}
const Entry kTable[] = {
    LAMPYR_FN("sql_query", SqlQuery),   LAMPYR_FN("sql_begin", SqlBegin),       LAMPYR_FN("sql_tx_query", SqlTxQuery),
    LAMPYR_FN("sql_commit", SqlCommit), LAMPYR_FN("sql_rollback", SqlRollback),
};
#undef LAMPYR_FN

}  // namespace

void* LookupSqlFunction(const char* name) {
  for (const auto& e : kTable)
    if (std::strcmp(e.name, name) == 0) return e.fn;
  return nullptr;
}

}  // namespace lampyr::plugin
