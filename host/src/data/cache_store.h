// CacheStore: records in memcached. Names keys, encodes records, and splits
// records larger than one memcached item (1 MiB by default) into immutable
// chunks behind a small head, so CAS still guards the whole record through
// its head. Stateless apart from the key prefix: every call takes the
// calling thread's McClient.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "data/memcache_client.h"
#include "data/record_codec.h"

namespace lampyr::data {

class KeySpace {
 public:
  explicit KeySpace(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string Record(const std::string& table, const std::string& pk) const;
  std::string FkList(const std::string& table, const std::string& fk) const;
  std::string IndexPrefix(const std::string& writer) const;
  // Inverse of Record(); false for a key of another shape.
  bool ParseRecord(const std::string& key, std::string* table, std::string* pk) const;
  // memcached keys are at most 250 bytes.
  static constexpr size_t kMaxKey = 250;

 private:
  std::string prefix_;
};

struct CacheSlot {
  CachedRecord rec;
  uint64_t cas = 0;
  std::optional<ChunkHead> chunks;  // set when stored as chunks
};

class CacheStore {
 public:
  // Records whose encoding is above this are chunked.
  static constexpr size_t kInlineMax = 1000 * 1000;

  // kOk with `slot` filled, kNotFound, or kDown. A head whose chunks were
  // evicted is removed and reported as kNotFound.
  static McResult Read(McClient* mc, const std::string& key, CacheSlot* slot);
  // Decodes an already fetched head (MultiGet); fetches chunks if needed.
  static McResult Decode(McClient* mc, const std::string& key, const McItem& item, CacheSlot* slot);
  static McResult Add(McClient* mc, const std::string& key, const CachedRecord& rec, uint32_t exptime);
  // Replaces the record if its CAS is still `old.cas` (kExists otherwise).
  static McResult Cas(McClient* mc, const std::string& key, const CacheSlot& old, const CachedRecord& rec,
                      uint32_t exptime);

 private:
  // Writes chunks when needed and returns the head or inline bytes.
  static McResult Prepare(McClient* mc, const std::string& key, const CachedRecord& rec, uint32_t exptime,
                          std::string* head, std::optional<ChunkHead>* chunks);
  static void DropChunks(McClient* mc, const std::string& key, const ChunkHead& h);
};

}  // namespace lampyr::data
