// "kv_*" and "data_preload" (plugin.h "Shared key/value and preload",
// docs/plugins.md "Key/value"): a plugin's calls on the server's KvStore and
// DataEngine. Like every async host function, each call holds a lease on
// the calling generation until its completion.
#include <lampyr/plugin.hpp>
#include <sys/random.h>

#include <cstring>
#include <memory>
#include <type_traits>
#include <string>

#include "data/data_engine.h"
#include "data/kv_store.h"
#include "data/preload.h"
#include "plugin/host_api.h"
#include "plugin/plugin_host.h"

namespace lampyr::plugin {
namespace {

using State = Generation::State;
namespace json = sdk::datajson;
using data::KvCode;
using data::KvResult;
using data::KvStore;

// Takes the lease; Finish() hands the outcome over and ends it.
class KvOp {
 public:
  KvOp(Generation* g, uint64_t cookie) : gen_(g->weak_from_this()), cookie_(cookie) { ++g->pending_calls; }
  void Finish(int status, const std::string& data) const {
    auto gen = gen_.lock();
    if (!gen || gen->state == State::kRetired) return;
    if (gen->pending_calls) --gen->pending_calls;
    if (gen->desc()->on_complete) {
      Activity running = gen->Running("kv completion");
      gen->desc()->on_complete(gen->ctx, cookie_, status, data.data(), data.size());
    }
    gen->host->LeaseEnded(gen.get());
  }

 private:
  std::weak_ptr<Generation> gen_;
  uint64_t cookie_;
};

std::string Why(KvCode c) { return c == KvCode::kNotFound ? "not_found" : "exists"; }

// Common path: checks, lease, submit. `format` turns an OK result into JSON.
template <typename Format>
int Start(lampyr_host* h, KvStore::Request q, uint64_t cookie, Format format) {
  return Guard([&] {
    Generation* g = Generation::From(h);
    if (!g->active()) return LAMPYR_ERR_STATE;
    KvStore* kv = g->host->kv();
    if (!kv) return LAMPYR_ERR_UNAVAILABLE;
    if (!kv->ValidKey(q.key) || q.value.size() > KvStore::kMaxValue) return LAMPYR_ERR_ARG;
    auto op = std::make_shared<KvOp>(g, cookie);
    bool queued = kv->Submit(std::move(q), [op, format](KvResult r) {
      if (r.code == KvCode::kDown) return op->Finish(LAMPYR_DONE_UNAVAILABLE, r.error);
      if (r.code == KvCode::kNotNumber) return op->Finish(LAMPYR_DONE_ERROR, r.error);
      op->Finish(LAMPYR_DONE_OK, format(r));
    });
    if (!queued) {
      if (g->pending_calls) --g->pending_calls;
      return LAMPYR_ERR_BUSY;
    }
    return LAMPYR_OK;
  });
}

std::string OkJson(const KvResult& r) {
  return r.code == KvCode::kOk ? "{\"ok\":true}" : "{\"ok\":false,\"why\":\"" + Why(r.code) + "\"}";
}

KvStore::Request Req(KvStore::Op op, const char* key, size_t key_len) {
  KvStore::Request q;
  q.op = op;
  q.key.assign(View(key, key_len));
  return q;
}

int KvGet(lampyr_host* h, const char* key, size_t key_len, uint64_t cookie) {
  return Start(h, Req(KvStore::Op::kGet, key, key_len), cookie, [](const KvResult& r) {
    if (r.code != KvCode::kOk) return std::string("null");
    std::string out = "{\"value\":";
    json::put_string(out, r.value);
    return out + ",\"cas\":\"" + std::to_string(r.cas) + "\"}";
  });
}

int KvStoreAs(KvStore::Op op, lampyr_host* h, const char* key, size_t key_len, const char* value, size_t len,
              uint32_t exptime, uint64_t cas, uint64_t cookie) {
  return Guard([&] {
    if (!key || (!value && len)) return LAMPYR_ERR_ARG;
    KvStore::Request q = Req(op, key, key_len);
    q.value.assign(View(value, len));
    q.exptime = exptime;
    q.cas = cas;
    return Start(h, std::move(q), cookie, OkJson);
  });
}

int KvSet(lampyr_host* h, const char* key, size_t key_len, const char* value, size_t len, uint32_t exptime,
          uint64_t cookie) {
  return KvStoreAs(KvStore::Op::kSet, h, key, key_len, value, len, exptime, 0, cookie);
}
int KvAdd(lampyr_host* h, const char* key, size_t key_len, const char* value, size_t len, uint32_t exptime,
          uint64_t cookie) {
  return KvStoreAs(KvStore::Op::kAdd, h, key, key_len, value, len, exptime, 0, cookie);
}
int KvCas(lampyr_host* h, const char* key, size_t key_len, const char* value, size_t len, uint32_t exptime,
          uint64_t cas, uint64_t cookie) {
  if (cas == 0) return LAMPYR_ERR_ARG;  // 0 would be an unconditional set
  return KvStoreAs(KvStore::Op::kCas, h, key, key_len, value, len, exptime, cas, cookie);
}

int KvIncr(lampyr_host* h, const char* key, size_t key_len, int64_t delta, uint64_t initial, uint32_t exptime,
           uint64_t cookie) {
  KvStore::Request q = Req(delta < 0 ? KvStore::Op::kDecr : KvStore::Op::kIncr, key, key_len);
  q.delta = delta < 0 ? static_cast<uint64_t>(-(delta + 1)) + 1 : static_cast<uint64_t>(delta);
  q.initial = initial;
  q.exptime = exptime;
  return Start(h, std::move(q), cookie, [](const KvResult& r) {
    if (r.code != KvCode::kOk) return "{\"ok\":false,\"why\":\"" + Why(r.code) + "\"}";
    return "{\"value\":\"" + std::to_string(r.number) + "\"}";
  });
}

int KvDelete(lampyr_host* h, const char* key, size_t key_len, uint64_t cookie) {
  return Start(h, Req(KvStore::Op::kDelete, key, key_len), cookie, OkJson);
}

// Lock keys have their own corner of the namespace: "lock:<key>".
std::string LockKey(const char* key, size_t key_len) { return "lock:" + std::string(View(key, key_len)); }

int KvLock(lampyr_host* h, const char* key, size_t key_len, uint32_t ttl_s, uint64_t cookie) {
  return Guard([&] {
  if (!key || key_len == 0 || ttl_s == 0 || ttl_s > 86400) return LAMPYR_ERR_ARG;
  unsigned char raw[12];
  if (getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) return LAMPYR_ERR;
  std::string token;
  for (unsigned char c : raw) {
    token += "0123456789abcdef"[c >> 4];
    token += "0123456789abcdef"[c & 15];
  }
  KvStore::Request q;
  q.op = KvStore::Op::kAdd;
  q.key = LockKey(key, key_len);
  q.value = token;
  q.exptime = ttl_s;
  return Start(h, std::move(q), cookie, [token](const KvResult& r) {
    if (r.code != KvCode::kOk) return "{\"ok\":false,\"why\":\"" + Why(r.code) + "\"}";
    return "{\"ok\":true,\"token\":\"" + token + "\"}";
  });
  });
}

int KvUnlock(lampyr_host* h, const char* key, size_t key_len, const char* token, size_t token_len, uint64_t cookie) {
  return Guard([&] {
    if (!key || key_len == 0 || !token || token_len == 0) return LAMPYR_ERR_ARG;
    KvStore::Request q;
    q.op = KvStore::Op::kUnlock;
    q.key = LockKey(key, key_len);
    q.value.assign(token, token_len);
    return Start(h, std::move(q), cookie, OkJson);
  });
}

int DataPreload(lampyr_host* h, const char* table, uint64_t cookie) {
  return Guard([&] {
    Generation* g = Generation::From(h);
    if (!table) return LAMPYR_ERR_ARG;
    if (!g->active()) return LAMPYR_ERR_STATE;
    data::DataEngine* engine = g->host->data();
    if (!engine) return LAMPYR_ERR_UNAVAILABLE;
    const TableConfig* t = g->host->FindTable(table);
    if (!t) return LAMPYR_ERR_ARG;  // not declared in "tables"
    auto op = std::make_shared<KvOp>(g, cookie);
    data::Preload(engine, *t, [op](Status s, size_t rows) {
      if (!s.ok()) return op->Finish(LAMPYR_DONE_ERROR, s.message());
      op->Finish(LAMPYR_DONE_OK, "{\"rows\":\"" + std::to_string(rows) + "\"}");
    });
    return LAMPYR_OK;
  });
}

static_assert(std::is_same_v<decltype(&KvGet), lampyr_fn_kv_get>);
static_assert(std::is_same_v<decltype(&KvSet), lampyr_fn_kv_store>);
static_assert(std::is_same_v<decltype(&KvAdd), lampyr_fn_kv_store>);
static_assert(std::is_same_v<decltype(&KvCas), lampyr_fn_kv_cas>);
static_assert(std::is_same_v<decltype(&KvIncr), lampyr_fn_kv_incr>);
static_assert(std::is_same_v<decltype(&KvDelete), lampyr_fn_kv_delete>);
static_assert(std::is_same_v<decltype(&KvLock), lampyr_fn_kv_lock>);
static_assert(std::is_same_v<decltype(&KvUnlock), lampyr_fn_kv_unlock>);
static_assert(std::is_same_v<decltype(&DataPreload), lampyr_fn_data_preload>);

struct Entry {
  const char* name;
  void* fn;
};
#define LAMPYR_FN(n, f) Entry{n, reinterpret_cast<void*>(&f)}
const Entry kTable[] = {
    LAMPYR_FN("kv_get", KvGet),       LAMPYR_FN("kv_set", KvSet),     LAMPYR_FN("kv_add", KvAdd),
    LAMPYR_FN("kv_cas", KvCas),       LAMPYR_FN("kv_incr", KvIncr),   LAMPYR_FN("kv_delete", KvDelete),
    LAMPYR_FN("kv_lock", KvLock),     LAMPYR_FN("kv_unlock", KvUnlock), LAMPYR_FN("data_preload", DataPreload),
};
#undef LAMPYR_FN

}  // namespace

void* LookupKvFunction(const char* name) {
  for (const auto& e : kTable)
    if (std::strcmp(e.name, name) == 0) return e.fn;
  return nullptr;
}

}  // namespace lampyr::plugin
