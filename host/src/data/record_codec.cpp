#include "data/record_codec.h"

namespace lampyr::data {
namespace {

constexpr uint8_t kFormat = 1;
// Records carry their cache epoch since format 2.
constexpr uint8_t kRecordFormat = 2;
constexpr uint8_t kDirty = 1, kDeleted = 2;

void Put8(std::string* s, uint8_t v) { s->push_back(static_cast<char>(v)); }
void Put16(std::string* s, uint16_t v) {
  Put8(s, v >> 8);
  Put8(s, v & 0xff);
}
void Put32(std::string* s, uint32_t v) {
  Put16(s, v >> 16);
  Put16(s, v & 0xffff);
}
void Put64(std::string* s, uint64_t v) {
  Put32(s, static_cast<uint32_t>(v >> 32));
  Put32(s, static_cast<uint32_t>(v));
}

// Bounds-checked reader: every Get fails once the input is exhausted.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool Get8(uint8_t* v) {
    if (b_.size() < 1) return false;
    *v = static_cast<uint8_t>(b_[0]);
    b_.remove_prefix(1);
    return true;
  }
  bool Get16(uint16_t* v) {
    uint8_t a, b;
    if (!Get8(&a) || !Get8(&b)) return false;
    *v = static_cast<uint16_t>(a << 8 | b);
    return true;
  }
  bool Get32(uint32_t* v) {
    uint16_t a, b;
    if (!Get16(&a) || !Get16(&b)) return false;
    *v = static_cast<uint32_t>(a) << 16 | b;
    return true;
  }
  bool Get64(uint64_t* v) {
    uint32_t a, b;
    if (!Get32(&a) || !Get32(&b)) return false;
    *v = static_cast<uint64_t>(a) << 32 | b;
    return true;
  }
  bool Bytes(size_t n, std::string* out) {
    if (b_.size() < n) return false;
    out->assign(b_.data(), n);
    b_.remove_prefix(n);
    return true;
  }
  bool Magic(char a, char b, uint8_t* format = nullptr, uint8_t newest = kFormat) {
    if (b_.size() < 3 || b_[0] != a || b_[1] != b) return false;
    const uint8_t f = static_cast<uint8_t>(b_[2]);
    if (format ? (f < 1 || f > newest) : f != kFormat) return false;
    if (format) *format = f;
    b_.remove_prefix(3);
    return true;
  }
  bool done() const { return b_.empty(); }

 private:
  std::string_view b_;
};

}  // namespace

std::string EncodeRecord(const CachedRecord& rec) {
  size_t size = 24;
  for (const auto& [k, v] : rec.row) size += 7 + k.size() + (v ? v->size() : 0);
  std::string s;
  s.reserve(size);
  s += "LR";
  Put8(&s, kRecordFormat);
  Put8(&s, (rec.dirty ? kDirty : 0) | (rec.deleted ? kDeleted : 0));
  Put64(&s, rec.version);
  Put64(&s, rec.epoch);
  Put16(&s, static_cast<uint16_t>(rec.row.size()));
  for (const auto& [k, v] : rec.row) {
    Put16(&s, static_cast<uint16_t>(k.size()));
    s += k;
    Put8(&s, v ? 0 : 1);
    Put32(&s, v ? static_cast<uint32_t>(v->size()) : 0);
    if (v) s += *v;
  }
  return s;
}

bool DecodeRecord(std::string_view bytes, CachedRecord* out) {
  Reader r(bytes);
  uint8_t flags;
  uint16_t n;
  CachedRecord rec;
  uint8_t format = 0;
  if (!r.Magic('L', 'R', &format, kRecordFormat) || !r.Get8(&flags) || !r.Get64(&rec.version)) return false;
  if (format >= 2 && !r.Get64(&rec.epoch)) return false;
  if (!r.Get16(&n)) return false;
  rec.dirty = flags & kDirty;
  rec.deleted = flags & kDeleted;
  for (uint16_t i = 0; i < n; ++i) {
    uint16_t klen;
    uint8_t null;
    uint32_t vlen;
    std::string name, value;
    if (!r.Get16(&klen) || !r.Bytes(klen, &name) || !r.Get8(&null) || !r.Get32(&vlen) || !r.Bytes(vlen, &value))
      return false;
    if (null) rec.row[name] = std::nullopt;
    else rec.row[name] = std::move(value);
  }
  if (!r.done()) return false;
  *out = std::move(rec);
  return true;
}

std::string EncodeChunkHead(const ChunkHead& h) {
  std::string s = "LC";
  Put8(&s, kFormat);
  Put64(&s, h.token);
  Put16(&s, h.chunks);
  Put32(&s, h.total);
  return s;
}

bool IsChunkHead(std::string_view bytes) { return bytes.size() >= 2 && bytes[0] == 'L' && bytes[1] == 'C'; }

bool DecodeChunkHead(std::string_view bytes, ChunkHead* out) {
  Reader r(bytes);
  return r.Magic('L', 'C') && r.Get64(&out->token) && r.Get16(&out->chunks) && r.Get32(&out->total) && r.done();
}

std::string ChunkKey(const std::string& key, uint64_t token, unsigned index) {
  static const char* hex = "0123456789abcdef";
  std::string s = key + "#";
  for (int i = 60; i >= 0; i -= 4) s += hex[(token >> i) & 0xf];
  return s + "#" + std::to_string(index);
}

std::string EncodePkList(const std::vector<std::string>& pks) {
  std::string s = "LF";
  Put8(&s, kFormat);
  Put32(&s, static_cast<uint32_t>(pks.size()));
  for (const auto& pk : pks) {
    Put16(&s, static_cast<uint16_t>(pk.size()));
    s += pk;
  }
  return s;
}

bool DecodePkList(std::string_view bytes, std::vector<std::string>* out) {
  Reader r(bytes);
  uint32_t n;
  if (!r.Magic('L', 'F') || !r.Get32(&n)) return false;
  std::vector<std::string> pks;
  for (uint32_t i = 0; i < n; ++i) {
    uint16_t len;
    std::string pk;
    if (!r.Get16(&len) || !r.Bytes(len, &pk)) return false;
    pks.push_back(std::move(pk));
  }
  if (!r.done()) return false;
  *out = std::move(pks);
  return true;
}

std::string EscapeKeyPart(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

bool UnescapeKeyPart(std::string_view s, std::string* out) {
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out->push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    int a = nib(s[i + 1]), b = nib(s[i + 2]);
    if (a < 0 || b < 0) return false;
    out->push_back(static_cast<char>(a << 4 | b));
    i += 2;
  }
  return true;
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace lampyr::data
