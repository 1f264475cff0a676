// Record values and their byte encoding in memcached (docs/data.md, "Cache
// encoding"). The encoding is versioned and binary-safe: every value is
// length-prefixed, so quotes, backslashes, NUL bytes and any UTF-8 survive.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lampyr::data {

// A column value: nullopt is SQL NULL, otherwise the value's bytes as MySQL
// prints them (integers in decimal, blobs raw).
using Value = std::optional<std::string>;
// A row: column name -> value. A full row holds every column of its table.
using Row = std::map<std::string, Value>;

// One cached record. `version` counts every update of the row since it was
// first written by the engine (it is stored with each flushed row in MySQL,
// table lampyr_rowver, so a reload continues it); `epoch` = the cache epoch
// the copy was stored under (the "open" marker of its memcached server; a
// copy of another epoch is ignored, docs/data.md); `dirty` = the cache holds
// changes MySQL has not seen yet; `deleted` = a tombstone (a remove, flushed
// as DELETE).
struct CachedRecord {
  uint64_t version = 0;
  uint64_t epoch = 0;
  bool dirty = false;
  bool deleted = false;
  Row row;
};

// Format 2: "LR" 0x02 flags:u8 version:u64 epoch:u64 ncols:u16
//           { name_len:u16 name null:u8 value_len:u32 value }*   (big-endian)
// Format 1 (no epoch) still decodes, with epoch 0, which no cache epoch has.
std::string EncodeRecord(const CachedRecord& rec);
bool DecodeRecord(std::string_view bytes, CachedRecord* out);

// A chunked head: records larger than one memcached item are stored as a head
// plus `chunks` immutable items named ChunkKey(key, token, i).
// Format 1: "LC" 0x01 token:u64 chunks:u16 total:u32
struct ChunkHead {
  uint64_t token = 0;
  uint16_t chunks = 0;
  uint32_t total = 0;
};
std::string EncodeChunkHead(const ChunkHead& h);
bool DecodeChunkHead(std::string_view bytes, ChunkHead* out);
bool IsChunkHead(std::string_view bytes);
std::string ChunkKey(const std::string& key, uint64_t token, unsigned index);

// A cached foreign-key list: the primary keys of the rows whose fk column
// holds one value. Format 1: "LF" 0x01 count:u32 { len:u16 pk }*
std::string EncodePkList(const std::vector<std::string>& pks);
bool DecodePkList(std::string_view bytes, std::vector<std::string>* out);

// Key-safe form of a value: [A-Za-z0-9_.-] kept, every other byte %XX.
std::string EscapeKeyPart(std::string_view s);
bool UnescapeKeyPart(std::string_view s, std::string* out);

// FNV-1a 64: stable across processes and builds (index shard choice).
uint64_t Fnv1a(std::string_view s);

}  // namespace lampyr::data
