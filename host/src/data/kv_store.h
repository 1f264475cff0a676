// KvStore: plain shared key/value for plugins on the cluster's memcached
// (Firefly's mclient / MemObject; docs/plugins.md "Key/value"), on servers
// with "mem": true. Keys live under memcached.kv_prefix (default
// "<memcached.hostname>:kv:"), apart from the record layer's
// "<hostname>:r:..." keys, so a plugin can never overwrite a cached record.
//
// A few threads, each with its own libmemcached handle (memcached_st is not
// thread-safe), binary protocol, ketama over memcached.urls like the record
// layer. Bounded queue (memcached.kv_queue); results are posted back to the
// loop. A memcached that is down fails the call (Unavailable), fast: its
// connect timeout is short and libmemcached marks a dead server for a while.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/event_loop.h"
#include "core/status.h"

namespace lampyr::data {

enum class KvCode {
  kOk,
  kNotFound,   // get/cas/delete/unlock: no such key
  kExists,     // add: the key exists; cas: changed since read; unlock: another holder
  kNotNumber,  // incr/decr: the value is not a decimal number
  kDown,       // memcached unreachable or failed
};

struct KvResult {
  KvCode code = KvCode::kOk;
  std::string value;   // get
  uint64_t cas = 0;    // get
  uint64_t number = 0; // incr
  std::string error;   // kDown
};

class KvStore : NonCopyable {
 public:
  using Callback = std::function<void(KvResult)>;
  enum class Op { kGet, kSet, kAdd, kCas, kIncr, kDecr, kDelete, kUnlock };
  struct Request {
    Op op = Op::kGet;
    std::string key;        // without the prefix
    std::string value;      // set/add/cas; unlock: the holder's token
    uint32_t exptime = 0;   // seconds (memcached rules: > 30 days = unix time)
    uint64_t cas = 0;
    uint64_t delta = 0;     // incr/decr
    uint64_t initial = 0;   // incr/decr of a missing key
  };

  KvStore(EventLoop* loop, const MemcachedConfig& cfg);
  ~KvStore();  // Stop()
  Status Start();
  void Stop();

  // Loop thread. False (no callback) when the queue is full or stopped.
  bool Submit(Request r, Callback cb);
  // Is `key` (without prefix) acceptable: 1..250 bytes with the prefix, no
  // spaces or control bytes?
  bool ValidKey(const std::string& key) const;
  const std::string& prefix() const { return prefix_; }

  static constexpr size_t kMaxValue = 1000 * 1000;  // under memcached's 1 MiB item limit

 private:
  void Worker();

  EventLoop* loop_;
  MemcachedConfig cfg_;
  std::string prefix_;
  size_t queue_limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<Request, Callback>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lampyr::data
