#include "data/cache_store.h"

#include <random>
#include <vector>

#include "core/log.h"

namespace lampyr::data {

std::string KeySpace::Record(const std::string& table, const std::string& pk) const {
  return prefix_ + ":r:" + table + ":" + EscapeKeyPart(pk);
}

std::string KeySpace::FkList(const std::string& table, const std::string& fk) const {
  return prefix_ + ":f:" + table + ":" + EscapeKeyPart(fk);
}

std::string KeySpace::IndexPrefix(const std::string& writer) const {
  return prefix_ + ":d:" + EscapeKeyPart(writer);
}

bool KeySpace::ParseRecord(const std::string& key, std::string* table, std::string* pk) const {
  const std::string head = prefix_ + ":r:";
  if (key.compare(0, head.size(), head) != 0) return false;
  const size_t colon = key.find(':', head.size());
  if (colon == std::string::npos) return false;
  *table = key.substr(head.size(), colon - head.size());
  return UnescapeKeyPart(std::string_view(key).substr(colon + 1), pk);
}

namespace {
uint64_t RandomToken() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}
}  // namespace

void CacheStore::DropChunks(McClient* mc, const std::string& key, const ChunkHead& h) {
  for (unsigned i = 0; i < h.chunks; ++i) mc->Delete(ChunkKey(key, h.token, i));
}

McResult CacheStore::Decode(McClient* mc, const std::string& key, const McItem& item, CacheSlot* slot) {
  slot->cas = item.cas;
  slot->chunks.reset();
  if (!IsChunkHead(item.value)) {
    if (!DecodeRecord(item.value, &slot->rec)) {
      // Not ours or from an incompatible build: drop it, MySQL is the truth
      // for clean data and a writer's queue holds dirty data.
      LOG_ERROR("data", "undecodable cache item %s removed", key.c_str());
      mc->Delete(key);
      return McResult::kNotFound;
    }
    return McResult::kOk;
  }
  ChunkHead h;
  if (!DecodeChunkHead(item.value, &h)) {
    LOG_ERROR("data", "undecodable chunk head %s removed", key.c_str());
    mc->Delete(key);
    return McResult::kNotFound;
  }
  std::vector<std::string> keys;
  for (unsigned i = 0; i < h.chunks; ++i) keys.push_back(ChunkKey(key, h.token, i));
  std::map<std::string, McItem> parts;
  McResult r = mc->MultiGet(keys, &parts);
  if (r != McResult::kOk) return r;
  std::string whole;
  whole.reserve(h.total);
  for (const auto& k : keys) {
    auto it = parts.find(k);
    if (it == parts.end()) return McResult::kExists;  // replaced meanwhile, or evicted: caller re-reads
    whole += it->second.value;
  }
  if (whole.size() != h.total || !DecodeRecord(whole, &slot->rec)) return McResult::kExists;
  slot->chunks = h;
  return McResult::kOk;
}

McResult CacheStore::Read(McClient* mc, const std::string& key, CacheSlot* slot) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    McItem item;
    McResult r = mc->Get(key, &item);
    if (r != McResult::kOk) return r;
    r = Decode(mc, key, item, slot);
    if (r != McResult::kExists) return r;
  }
  // The head stayed but a chunk is gone: memcached evicted part of the record.
  LOG_ERROR("data", "record %s lost a chunk in memcached; dropping the head", key.c_str());
  mc->Delete(key);
  return McResult::kNotFound;
}

McResult CacheStore::Prepare(McClient* mc, const std::string& key, const CachedRecord& rec, uint32_t exptime,
                             std::string* head, std::optional<ChunkHead>* chunks) {
  std::string bytes = EncodeRecord(rec);
  chunks->reset();
  if (bytes.size() <= kInlineMax) {
    *head = std::move(bytes);
    return McResult::kOk;
  }
  ChunkHead h;
  h.token = RandomToken();
  h.total = static_cast<uint32_t>(bytes.size());
  h.chunks = static_cast<uint16_t>((bytes.size() + kInlineMax - 1) / kInlineMax);
  for (unsigned i = 0; i < h.chunks; ++i) {
    McResult r = mc->Set(ChunkKey(key, h.token, i), bytes.substr(i * kInlineMax, kInlineMax), exptime);
    if (r != McResult::kOk) {
      DropChunks(mc, key, h);
      return r;
    }
  }
  *head = EncodeChunkHead(h);
  *chunks = h;
  return McResult::kOk;
}

McResult CacheStore::Add(McClient* mc, const std::string& key, const CachedRecord& rec, uint32_t exptime) {
  std::string head;
  std::optional<ChunkHead> chunks;
  McResult r = Prepare(mc, key, rec, exptime, &head, &chunks);
  if (r != McResult::kOk) return r;
  r = mc->Add(key, head, exptime);
  if (r != McResult::kOk && chunks) DropChunks(mc, key, *chunks);
  return r;
}

McResult CacheStore::Cas(McClient* mc, const std::string& key, const CacheSlot& old, const CachedRecord& rec,
                         uint32_t exptime) {
  std::string head;
  std::optional<ChunkHead> chunks;
  McResult r = Prepare(mc, key, rec, exptime, &head, &chunks);
  if (r != McResult::kOk) return r;
  r = mc->Cas(key, head, exptime, old.cas);
  if (r != McResult::kOk) {
    if (chunks) DropChunks(mc, key, *chunks);
    return r;
  }
  if (old.chunks) DropChunks(mc, key, *old.chunks);
  return r;
}

}  // namespace lampyr::data
