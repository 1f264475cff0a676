// McClient: one libmemcached handle (memcached_st is not thread-safe, so each
// worker owns a Clone()). Binary protocol, CAS on, ketama consistent hashing
// over memcached.urls. Results are folded into a small enum so callers can
// tell "the cache said no" (NotFound, Exists, NotStored) from "the cache is
// not there" (Down): the latter switches the engine to degraded mode.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"

struct memcached_st;

namespace lampyr::data {

enum class McResult { kOk, kNotFound, kExists, kNotStored, kTooBig, kDown };
const char* McResultName(McResult r);

struct McItem {
  std::string value;
  uint64_t cas = 0;
};

class McClient : NonCopyable {
 public:
  // Returns null with `status` set when a url is malformed.
  static std::unique_ptr<McClient> Create(const MemcachedConfig& cfg, Status* status);
  std::unique_ptr<McClient> Clone() const;
  // A clone whose stores are pipelined without waiting for answers (binary
  // quiet commands, buffered until Flush()). For writes whose outcome does
  // not matter, like clearing dirty flags after a flush: a failed CAS there
  // just means the record stays dirty.
  std::unique_ptr<McClient> CloneQuiet() const;
  void Flush();
  ~McClient();

  McResult Get(const std::string& key, McItem* out);
  // Found items only; kDown when the round trip failed.
  McResult MultiGet(const std::vector<std::string>& keys, std::map<std::string, McItem>* out);
  McResult Set(const std::string& key, const std::string& value, uint32_t exptime);
  McResult Add(const std::string& key, const std::string& value, uint32_t exptime);
  McResult Cas(const std::string& key, const std::string& value, uint32_t exptime, uint64_t cas);
  McResult Append(const std::string& key, const std::string& value);
  McResult Delete(const std::string& key);
  // The same, on the server that `group` hashes to (libmemcached's *_by_key):
  // each server keeps its own copy of the cache-epoch marker, read in the same
  // round trip as a record of that server (docs/data.md, "Cache epochs").
  McResult MultiGetByKey(const std::string& group, const std::vector<std::string>& keys,
                         std::map<std::string, McItem>* out);
  McResult AddByKey(const std::string& group, const std::string& key, const std::string& value, uint32_t exptime);
  McResult CasByKey(const std::string& group, const std::string& key, const std::string& value, uint32_t exptime,
                    uint64_t cas);
  McResult Touch(const std::string& key, uint32_t exptime);

  // Index of the server `key` hashes to (groups keys by server).
  uint32_t ServerOf(const std::string& key) const;

  // The last error text from libmemcached (for logs).
  std::string last_error() const;

 private:
  explicit McClient(memcached_st* m) : m_(m) {}
  McResult MultiGetImpl(const std::string* group, const std::vector<std::string>& keys,
                        std::map<std::string, McItem>* out);
  memcached_st* m_;
};

}  // namespace lampyr::data
