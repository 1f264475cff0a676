// AddressLimit: open connections per client address
// (protocol.max_connections_per_ip), so that one address cannot take every
// slot of max_connections. IPv4 counts per address (an IPv4-mapped IPv6
// peer is its IPv4 address); IPv6 counts per /64, the block one subscriber
// is given: limiting single IPv6 addresses would limit nothing.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <unordered_map>

namespace lampyr::net {

struct AddressKey {
  uint64_t hi = 0;  // IPv6: the /64 prefix; IPv4: 0
  uint64_t lo = 0;  // IPv4: 1 << 32 | address; IPv6: 0
  bool operator==(const AddressKey&) const = default;
};

// The key of `addr` (AF_INET / AF_INET6; anything else is one shared key).
inline AddressKey AddressKeyOf(const sockaddr* addr) {
  AddressKey k;
  if (addr->sa_family == AF_INET) {
    k.lo = (uint64_t{1} << 32) | ntohl(reinterpret_cast<const sockaddr_in*>(addr)->sin_addr.s_addr);
  } else if (addr->sa_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      uint32_t v4;
      memcpy(&v4, a.s6_addr + 12, 4);
      k.lo = (uint64_t{1} << 32) | ntohl(v4);
    } else {
      memcpy(&k.hi, a.s6_addr, 8);
    }
  }
  return k;
}

class AddressLimit {
 public:
  explicit AddressLimit(uint32_t per_address) : limit_(per_address) {}

  // Counts a new connection from `key`; false (nothing counted) when the
  // address already has the limit. Always true with limit 0 (off).
  bool TryAdd(const AddressKey& key) {
    if (limit_ == 0) return true;
    uint32_t& n = open_[key];
    if (n >= limit_) return false;
    ++n;
    return true;
  }
  // The connection counted by TryAdd(key) closed.
  void Remove(const AddressKey& key) {
    if (limit_ == 0) return;
    auto it = open_.find(key);
    if (it != open_.end() && --it->second == 0) open_.erase(it);
  }
  uint32_t limit() const { return limit_; }

 private:
  // Keys come from the network: a per-process random seed keeps a client
  // from choosing addresses that all land in one bucket.
  struct Hash {
    uint64_t seed;
    size_t operator()(const AddressKey& k) const {
      uint64_t x = (k.hi ^ seed) * 0x9E3779B97F4A7C15ull ^ k.lo;
      x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
      x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
      return static_cast<size_t>(x ^ (x >> 31));
    }
  };
  uint32_t limit_;
  std::unordered_map<AddressKey, uint32_t, Hash> open_{16, Hash{std::random_device{}()}};  // addresses with open connections
};

}  // namespace lampyr::net
