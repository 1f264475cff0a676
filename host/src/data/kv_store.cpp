#include "data/kv_store.h"

#include <libmemcached/memcached.h>

#include <cstdlib>
#include <cstring>

#include "core/log.h"

namespace lampyr::data {
namespace {

// One libmemcached handle, owned by one worker thread.
class Handle : NonCopyable {
 public:
  explicit Handle(const MemcachedConfig& cfg) : m_(memcached_create(nullptr)) {
    if (!m_) return;
    memcached_behavior_set(m_, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);  // incr with an initial value needs it
    memcached_behavior_set(m_, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
    memcached_behavior_set(m_, MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
    memcached_behavior_set(m_, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_behavior_set(m_, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 1000);  // ms
    memcached_behavior_set(m_, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 2000);     // ms
    memcached_behavior_set(m_, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 1);       // s before a dead server is tried again
    for (const auto& url : cfg.urls) {
      auto colon = url.rfind(':');
      if (colon == std::string::npos) continue;  // the config reader refused it already
      memcached_server_add(m_, url.substr(0, colon).c_str(),
                           static_cast<in_port_t>(std::atoi(url.c_str() + colon + 1)));
    }
  }
  ~Handle() {
    if (m_) memcached_free(m_);
  }
  memcached_st* get() const { return m_; }
  std::string Error(memcached_return_t rc) const {
    return std::string("memcached: ") + (m_ ? memcached_last_error_message(m_) : memcached_strerror(nullptr, rc));
  }

 private:
  memcached_st* m_;
};

KvResult Down(const Handle& h, memcached_return_t rc) {
  KvResult r;
  r.code = KvCode::kDown;
  r.error = h.Error(rc);
  return r;
}

KvResult Store(const Handle& h, memcached_return_t rc) {
  KvResult r;
  switch (rc) {
    case MEMCACHED_SUCCESS:
    case MEMCACHED_STORED:
    case MEMCACHED_DELETED:
      return r;
    case MEMCACHED_NOTFOUND:
      r.code = KvCode::kNotFound;
      return r;
    case MEMCACHED_DATA_EXISTS:
    case MEMCACHED_NOTSTORED:  // add of an existing key
      r.code = KvCode::kExists;
      return r;
    default:
      return Down(h, rc);
  }
}

// get with its CAS value (libmemcached 1.1 has no memcached_gets: mget +
// fetch_result, FACTS.md).
KvResult Get(const Handle& h, const std::string& key) {
  const char* keys[] = {key.data()};
  size_t lens[] = {key.size()};
  memcached_return_t rc = memcached_mget(h.get(), keys, lens, 1);
  if (rc != MEMCACHED_SUCCESS) return Down(h, rc);
  KvResult out;
  out.code = KvCode::kNotFound;
  memcached_result_st* res;
  while ((res = memcached_fetch_result(h.get(), nullptr, &rc)) != nullptr) {
    out.code = KvCode::kOk;
    out.value.assign(memcached_result_value(res), memcached_result_length(res));
    out.cas = memcached_result_cas(res);
    memcached_result_free(res);
  }
  if (rc != MEMCACHED_END && rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND) return Down(h, rc);
  return out;
}

KvResult Run(const Handle& h, const std::string& key, const KvStore::Request& q) {
  memcached_st* m = h.get();
  if (!m) {
    KvResult r;
    r.code = KvCode::kDown;
    r.error = "memcached: out of memory";
    return r;
  }
  const time_t exp = static_cast<time_t>(q.exptime);
  switch (q.op) {
    case KvStore::Op::kGet:
      return Get(h, key);
    case KvStore::Op::kSet:
      return Store(h, memcached_set(m, key.data(), key.size(), q.value.data(), q.value.size(), exp, 0));
    case KvStore::Op::kAdd:
      return Store(h, memcached_add(m, key.data(), key.size(), q.value.data(), q.value.size(), exp, 0));
    case KvStore::Op::kCas:
      return Store(h, memcached_cas(m, key.data(), key.size(), q.value.data(), q.value.size(), exp, 0, q.cas));
    case KvStore::Op::kDelete:
      return Store(h, memcached_delete(m, key.data(), key.size(), 0));
    case KvStore::Op::kIncr:
    case KvStore::Op::kDecr: {
      uint64_t value = 0;
      memcached_return_t rc =
          q.op == KvStore::Op::kIncr
              ? memcached_increment_with_initial(m, key.data(), key.size(), q.delta, q.initial, exp, &value)
              : memcached_decrement_with_initial(m, key.data(), key.size(), q.delta, q.initial, exp, &value);
      if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_STORED) {
        KvResult r = Store(h, rc);
        if (r.code != KvCode::kDown) return r;
        // memcached refuses incr of a value that is not a decimal number, and
        // libmemcached 1.1 reports that answer only as "UNKNOWN READ
        // FAILURE": look at the value to tell it from a dead server.
        KvResult cur = Get(h, key);
        if (cur.code == KvCode::kOk &&
            (cur.value.empty() || cur.value.find_first_not_of("0123456789") != std::string::npos)) {
          KvResult bad;
          bad.code = KvCode::kNotNumber;
          bad.error = "kv: the value of \"" + q.key + "\" is not a decimal number";
          return bad;
        }
        return r;
      }
      KvResult r;
      r.number = value;
      return r;
    }
    case KvStore::Op::kUnlock: {
      // Delete only while the lock still holds OUR token. Between the get
      // and the delete another holder can only have taken it if ours had
      // already expired (add succeeds only on a missing key), and then the
      // delete removes the newcomer's lock: the documented limit of a lock
      // whose holder outlived its TTL.
      KvResult cur = Get(h, key);
      if (cur.code != KvCode::kOk) return cur;
      if (cur.value != q.value) {
        KvResult r;
        r.code = KvCode::kExists;
        return r;
      }
      return Store(h, memcached_delete(m, key.data(), key.size(), 0));
    }
  }
  return KvResult();
}

}  // namespace

KvStore::KvStore(EventLoop* loop, const MemcachedConfig& cfg)
    : loop_(loop), cfg_(cfg), prefix_(cfg.kv_prefix.empty() ? cfg.hostname + ":kv:" : cfg.kv_prefix),
      queue_limit_(cfg.kv_queue) {}

KvStore::~KvStore() {
  *alive_ = false;
  Stop();
}

Status KvStore::Start() {
  if (cfg_.urls.empty()) return Status::Error("memcached.urls is empty");
  for (uint32_t i = 0; i < cfg_.kv_threads; ++i) threads_.emplace_back([this] { Worker(); });
  return Status::OK();
}

void KvStore::Stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

bool KvStore::ValidKey(const std::string& key) const {
  if (key.empty() || prefix_.size() + key.size() > 250) return false;
  for (char ch : key)
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f) return false;
  return true;
}

bool KvStore::Submit(Request r, Callback cb) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_ || queue_.size() >= queue_limit_) return false;
    queue_.emplace_back(std::move(r), std::move(cb));
  }
  cv_.notify_one();
  return true;
}

void KvStore::Worker() {
  Handle h(cfg_);
  while (true) {
    std::pair<Request, Callback> item;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    KvResult r = Run(h, prefix_ + item.first.key, item.first);
    std::shared_ptr<bool> alive = alive_;
    loop_->Post([alive, cb = std::move(item.second), r = std::move(r)]() mutable {
      if (*alive) cb(std::move(r));
    });
  }
}

}  // namespace lampyr::data
