#include "data/memcache_client.h"

#include <libmemcached/memcached.h>

namespace lampyr::data {
namespace {

McResult Fold(memcached_return_t rc) {
  switch (rc) {
    case MEMCACHED_SUCCESS:
    case MEMCACHED_STORED:
    case MEMCACHED_DELETED:
    case MEMCACHED_END:
    case MEMCACHED_BUFFERED:
      return McResult::kOk;
    case MEMCACHED_NOTFOUND:
      return McResult::kNotFound;
    case MEMCACHED_DATA_EXISTS:
      return McResult::kExists;
    case MEMCACHED_NOTSTORED:
      return McResult::kNotStored;
    case MEMCACHED_E2BIG:
      return McResult::kTooBig;
    default:
      return McResult::kDown;
  }
}

}  // namespace

const char* McResultName(McResult r) {
  switch (r) {
    case McResult::kOk: return "ok";
    case McResult::kNotFound: return "not found";
    case McResult::kExists: return "exists";
    case McResult::kNotStored: return "not stored";
    case McResult::kTooBig: return "too big";
    case McResult::kDown: return "down";
  }
  return "?";
}

std::unique_ptr<McClient> McClient::Create(const MemcachedConfig& cfg, Status* status) {
  memcached_st* m = memcached_create(nullptr);
  if (!m) {
    *status = Status::Error("memcached: out of memory");
    return nullptr;
  }
  std::unique_ptr<McClient> c(new McClient(m));
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 1000);  // ms
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 2000);     // ms
  // A dead server is retried after 1 s instead of being hammered per call.
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 1);
  for (const auto& url : cfg.urls) {
    const auto colon = url.rfind(':');
    int port = 0;
    if (colon == std::string::npos || colon == 0) {
      *status = Status::Error("memcached.urls: bad \"" + url + "\" (expected host:port)");
      return nullptr;
    }
    try {
      port = std::stoi(url.substr(colon + 1));
    } catch (...) {
      port = 0;
    }
    if (port <= 0 || port > 65535) {
      *status = Status::Error("memcached.urls: bad port in \"" + url + "\"");
      return nullptr;
    }
    if (memcached_server_add(m, url.substr(0, colon).c_str(), static_cast<in_port_t>(port)) != MEMCACHED_SUCCESS) {
      *status = Status::Error("memcached.urls: cannot add \"" + url + "\"");
      return nullptr;
    }
  }
  *status = Status::OK();
  return c;
}

std::unique_ptr<McClient> McClient::Clone() const {
  memcached_st* m = memcached_clone(nullptr, m_);
  return m ? std::unique_ptr<McClient>(new McClient(m)) : nullptr;
}

std::unique_ptr<McClient> McClient::CloneQuiet() const {
  auto c = Clone();
  if (!c) return c;
  memcached_behavior_set(c->m_, MEMCACHED_BEHAVIOR_NOREPLY, 1);
  memcached_behavior_set(c->m_, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 1);
  return c;
}

void McClient::Flush() { memcached_flush_buffers(m_); }

McClient::~McClient() { memcached_free(m_); }

McResult McClient::Get(const std::string& key, McItem* out) {
  std::map<std::string, McItem> items;
  McResult r = MultiGet({key}, &items);
  if (r != McResult::kOk) return r;
  auto it = items.find(key);
  if (it == items.end()) return McResult::kNotFound;
  *out = std::move(it->second);
  return McResult::kOk;
}

McResult McClient::MultiGet(const std::vector<std::string>& keys, std::map<std::string, McItem>* out) {
  return MultiGetImpl(nullptr, keys, out);
}

McResult McClient::MultiGetByKey(const std::string& group, const std::vector<std::string>& keys,
                                 std::map<std::string, McItem>* out) {
  return MultiGetImpl(&group, keys, out);
}

McResult McClient::AddByKey(const std::string& group, const std::string& key, const std::string& value,
                            uint32_t exptime) {
  return Fold(memcached_add_by_key(m_, group.data(), group.size(), key.data(), key.size(), value.data(), value.size(),
                                   exptime, 0));
}

McResult McClient::CasByKey(const std::string& group, const std::string& key, const std::string& value,
                            uint32_t exptime, uint64_t cas) {
  return Fold(memcached_cas_by_key(m_, group.data(), group.size(), key.data(), key.size(), value.data(), value.size(),
                                   exptime, 0, cas));
}

McResult McClient::MultiGetImpl(const std::string* group, const std::vector<std::string>& keys,
                                std::map<std::string, McItem>* out) {
  if (keys.empty()) return McResult::kOk;
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  ptrs.reserve(keys.size());
  lens.reserve(keys.size());
  for (const auto& k : keys) {
    ptrs.push_back(k.data());
    lens.push_back(k.size());
  }
  memcached_return_t rc =
      group ? memcached_mget_by_key(m_, group->data(), group->size(), ptrs.data(), lens.data(), keys.size())
            : memcached_mget(m_, ptrs.data(), lens.data(), keys.size());
  if (rc != MEMCACHED_SUCCESS) return Fold(rc) == McResult::kOk ? McResult::kOk : McResult::kDown;
  memcached_result_st result;
  memcached_result_create(m_, &result);
  McResult status = McResult::kOk;
  while (true) {
    memcached_result_st* r = memcached_fetch_result(m_, &result, &rc);
    if (!r) {
      if (rc != MEMCACHED_END && rc != MEMCACHED_NOTFOUND && rc != MEMCACHED_SUCCESS) status = McResult::kDown;
      break;
    }
    McItem item;
    item.value.assign(memcached_result_value(r), memcached_result_length(r));
    item.cas = memcached_result_cas(r);
    (*out)[std::string(memcached_result_key_value(r), memcached_result_key_length(r))] = std::move(item);
  }
  memcached_result_free(&result);
  return status;
}

McResult McClient::Set(const std::string& key, const std::string& value, uint32_t exptime) {
  return Fold(memcached_set(m_, key.data(), key.size(), value.data(), value.size(), exptime, 0));
}

McResult McClient::Add(const std::string& key, const std::string& value, uint32_t exptime) {
  return Fold(memcached_add(m_, key.data(), key.size(), value.data(), value.size(), exptime, 0));
}

McResult McClient::Cas(const std::string& key, const std::string& value, uint32_t exptime, uint64_t cas) {
  return Fold(memcached_cas(m_, key.data(), key.size(), value.data(), value.size(), exptime, 0, cas));
}

McResult McClient::Append(const std::string& key, const std::string& value) {
  return Fold(memcached_append(m_, key.data(), key.size(), value.data(), value.size(), 0, 0));
}

McResult McClient::Delete(const std::string& key) { return Fold(memcached_delete(m_, key.data(), key.size(), 0)); }

McResult McClient::Touch(const std::string& key, uint32_t exptime) {
  return Fold(memcached_touch(m_, key.data(), key.size(), exptime));
}

uint32_t McClient::ServerOf(const std::string& key) const {
  return memcached_generate_hash(m_, key.data(), key.size());
}

std::string McClient::last_error() const {
  const char* e = memcached_last_error_message(m_);
  return e ? e : "";
}

}  // namespace lampyr::data
