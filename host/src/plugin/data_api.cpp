// The data layer's host functions ("data_*" in plugin.h): a plugin's record
// operations on the server's DataEngine. Each one is an async operation that
// holds a lease on the calling generation (pending_calls) until its
// completion, so a draining generation is not unloaded while the data layer
// still owes it an answer. Completions come back on the event loop; one whose
// generation is gone or retired is dropped.
//
// Rows cross the boundary as JSON text (plugin.h "Data layer"), printed and
// parsed with the SDK's own codec (lampyr::sdk::datajson), so both sides agree
// byte for byte. Plugin code never runs on a worker thread: data_add's
// mutator is host code.
#include <lampyr/plugin.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/log.h"
#include "data/data_engine.h"
#include "plugin/host_api.h"
#include "plugin/plugin_host.h"

namespace lampyr::plugin {
namespace {

using State = Generation::State;
namespace json = sdk::datajson;


// One operation in flight: takes the lease at construction, and Finish()
// hands the outcome to the plugin and ends the lease.
class Op {
 public:
  Op(Generation* g, uint64_t cookie) : gen_(g->weak_from_this()), cookie_(cookie) { ++g->pending_calls; }

  // `ok_json` is used when s is OK, the error message otherwise.
  void Finish(const Status& s, const std::string& ok_json) const {
    auto gen = gen_.lock();
    if (!gen || gen->state == State::kRetired) return;
    --gen->pending_calls;
    const std::string& data = s.ok() ? ok_json : s.message();
    if (gen->desc()->on_complete) {
      Activity running = gen->Running("data completion");
      gen->desc()->on_complete(gen->ctx, cookie_, s.ok() ? LAMPYR_DONE_OK : LAMPYR_DONE_ERROR, data.data(),
                               data.size());
    }
    gen->host->LeaseEnded(gen.get());
  }

 private:
  std::weak_ptr<Generation> gen_;
  uint64_t cookie_;
};

// The engine for a new operation of `h`, or the refusal code.
int Engine(lampyr_host* h, data::DataEngine** out) {
  Generation* g = Generation::From(h);
  if (!g->active()) return LAMPYR_ERR_STATE;
  *out = g->host->data();
  return *out ? LAMPYR_OK : LAMPYR_ERR_UNAVAILABLE;
}

// Starts `run(engine, op)` for the calling generation after the checks.
template <typename Run>
int Start(lampyr_host* h, uint64_t cookie, Run&& run) {
  return Guard([&] {
    data::DataEngine* engine = nullptr;
    if (int rc = Engine(h, &engine); rc != LAMPYR_OK) return rc;
    run(engine, Op(Generation::From(h), cookie));
    return LAMPYR_OK;
  });
}

std::string RowJson(const std::optional<data::Row>& row) {
  std::string out;
  if (row) json::put_row(out, *row);
  else out = "null";
  return out;
}

int DataGet(lampyr_host* h, const char* table, const char* pk, size_t pk_len, uint64_t cookie) {
  return Guard([&] {
    if (!table || !pk) return LAMPYR_ERR_ARG;
    return Start(h, cookie, [&](data::DataEngine* e, Op op) {
      e->Get(table, std::string(View(pk, pk_len)),
             [op](Status s, std::optional<data::Row> row) { op.Finish(s, s.ok() ? RowJson(row) : ""); });
    });
  });
}

int DataGetMany(lampyr_host* h, const char* table, const char* pks_json, size_t len, uint64_t cookie) {
  return Guard([&] {
    std::vector<data::Value> keys;
    if (!table || !json::parse_values(View(pks_json, len), &keys)) return LAMPYR_ERR_ARG;
    std::vector<std::string> pks;
    for (auto& k : keys) {
      if (!k) return LAMPYR_ERR_ARG;  // a NULL key names nothing
      pks.push_back(std::move(*k));
    }
    return Start(h, cookie, [&](data::DataEngine* e, Op op) {
      e->GetMany(table, std::move(pks), [op](Status s, std::vector<std::optional<data::Row>> rows) {
        std::string out = "[";
        for (size_t i = 0; i < rows.size(); ++i) out += (i ? "," : "") + RowJson(rows[i]);
        op.Finish(s, out + "]");
      });
    });
  });
}

int DataGetByFk(lampyr_host* h, const char* table, const char* fk, size_t fk_len, uint64_t cookie) {
  return Guard([&] {
    if (!table || !fk) return LAMPYR_ERR_ARG;
    return Start(h, cookie, [&](data::DataEngine* e, Op op) {
      e->GetByFk(table, std::string(View(fk, fk_len)), [op](Status s, std::vector<data::Row> rows) {
        std::string out = "[";
        for (size_t i = 0; i < rows.size(); ++i) {
          if (i) out += ',';
          json::put_row(out, rows[i]);
        }
        op.Finish(s, out + "]");
      });
    });
  });
}

int DataCreate(lampyr_host* h, const char* table, const char* row_json, size_t len, uint64_t cookie) {
  return Guard([&] {
    data::Row row;
    if (!table || !json::parse_row(View(row_json, len), &row)) return LAMPYR_ERR_ARG;
    return Start(h, cookie, [&](data::DataEngine* e, Op op) {
      e->Create(table, std::move(row), [op](Status s, std::string pk) {
        std::string out = "{\"pk\":";
        json::put_string(out, pk);
        op.Finish(s, out + "}");
      });
    });
  });
}

int DataUpdate(lampyr_host* h, const char* table, const char* pk, size_t pk_len, const char* fields_json, size_t len,
               uint64_t cookie) {
  return Guard([&] {
    data::Row fields;
    if (!table || !pk || !json::parse_row(View(fields_json, len), &fields)) return LAMPYR_ERR_ARG;
    return Start(h, cookie, [&](data::DataEngine* e, Op op) {
      e->Update(table, std::string(View(pk, pk_len)), std::move(fields), [op](Status s) { op.Finish(s, "{}"); });
    });
  });
}

// Strict decimal int64 (what MySQL prints for integer columns).
bool ParseInt64(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  __int128 v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  if (s[0] == '-') v = -v;
  if (v < INT64_MIN || v > INT64_MAX) return false;
  *out = static_cast<int64_t>(v);
  return true;
}

int DataAdd(lampyr_host* h, const char* table, const char* pk, size_t pk_len, const char* column, int64_t delta,
            int64_t min, int64_t max, uint64_t cookie) {
  return Guard([&] {
    if (!table || !pk || !column || !*column || min > max) return LAMPYR_ERR_ARG;
    std::string col = column;
    // Runs on a worker, once per CAS attempt, on the freshest row: host code only.
    data::DataEngine::Mutator add = [col, delta, min, max](data::Row& row) {
      auto it = row.find(col);
      if (it == row.end()) return Status::Error("data: unknown column \"" + col + "\"");
      int64_t now = 0, next = 0;
      if (it->second && !ParseInt64(*it->second, &now))
        return Status::Error("data: column \"" + col + "\" does not hold an integer");
      if (__builtin_add_overflow(now, delta, &next) || next < min || next > max)
        return Status::Error("data: out of bounds: " + col + " is " + std::to_string(now) + ", adding " +
                             std::to_string(delta) + " leaves [" + std::to_string(min) + ", " + std::to_string(max) + "]");
      it->second = std::to_string(next);
      return Status::OK();
    };
    return Start(h, cookie, [&](data::DataEngine* e, Op op) {
      e->Modify(table, std::string(View(pk, pk_len)), std::move(add),
                [op](Status s, data::Row row) { op.Finish(s, s.ok() ? RowJson(row) : ""); });
    });
  });
}

int DataRemove(lampyr_host* h, const char* table, const char* pk, size_t pk_len, uint64_t cookie) {
  return Guard([&] {
    if (!table || !pk) return LAMPYR_ERR_ARG;
    return Start(h, cookie, [&](data::DataEngine* e, Op op) {
      e->Remove(table, std::string(View(pk, pk_len)), [op](Status s) { op.Finish(s, "{}"); });
    });
  });
}

int DataQuery(lampyr_host* h, const char* sql, const char* params_json, size_t len, uint64_t cookie) {
  return Guard([&] {
    std::vector<data::Value> params;
    if (!sql || !*sql || !json::parse_values(View(params_json, len), &params)) return LAMPYR_ERR_ARG;
    return Start(h, cookie, [&](data::DataEngine* e, Op op) {
      e->Query(sql, std::move(params), [op](Status s, std::vector<std::vector<data::Value>> rows, uint64_t affected) {
        std::string out = "{\"rows\":[";
        for (size_t i = 0; i < rows.size(); ++i) out += (i ? "," : "") + json::values(rows[i]);
        op.Finish(s, out + "],\"affected\":" + std::to_string(affected) + "}");
      });
    });
  });
}

static_assert(std::is_same_v<decltype(&DataGet), lampyr_fn_data_get>);
static_assert(std::is_same_v<decltype(&DataGetMany), lampyr_fn_data_get_many>);
static_assert(std::is_same_v<decltype(&DataGetByFk), lampyr_fn_data_get_by_fk>);
static_assert(std::is_same_v<decltype(&DataCreate), lampyr_fn_data_create>);
static_assert(std::is_same_v<decltype(&DataUpdate), lampyr_fn_data_update>);
static_assert(std::is_same_v<decltype(&DataAdd), lampyr_fn_data_add>);
static_assert(std::is_same_v<decltype(&DataRemove), lampyr_fn_data_remove>);
static_assert(std::is_same_v<decltype(&DataQuery), lampyr_fn_data_query>);

struct Entry {
  const char* name;
  void* fn;
};
#define LAMPYR_FN(n, f) Entry{n, reinterpret_cast<void*>(&f)}
const Entry kTable[] = {
    LAMPYR_FN("data_get", DataGet),       LAMPYR_FN("data_get_many", DataGetMany),
    LAMPYR_FN("data_get_by_fk", DataGetByFk), LAMPYR_FN("data_create", DataCreate),
    LAMPYR_FN("data_update", DataUpdate), LAMPYR_FN("data_add", DataAdd),
    LAMPYR_FN("data_remove", DataRemove), LAMPYR_FN("data_query", DataQuery),
};
#undef LAMPYR_FN

}  // namespace

void* LookupDataFunction(const char* name) {
  for (const auto& e : kTable)
    if (std::strcmp(e.name, name) == 0) return e.fn;
  return LookupWorkFunction(name);  // "work", "sql_*", "kv_*"
}

}  // namespace lampyr::plugin
