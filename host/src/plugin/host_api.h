// Shared by the host function tables (host_api.cpp, data_api.cpp).
#pragma once

#include <lampyr/plugin.h>

#include <exception>
#include <string_view>

#include "core/log.h"

namespace lampyr::plugin {

inline std::string_view View(const char* d, size_t n) { return d ? std::string_view(d, n) : std::string_view(); }

// Runs `fn` and turns any exception (allocation failure, mostly) into an
// error code: nothing may unwind into plugin code.
template <typename Fn>
int Guard(Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    LOG_ERROR("plugin", "host function failed: %s", e.what());
  } catch (...) {
    LOG_ERROR("plugin", "host function failed");
  }
  return LAMPYR_ERR;
}

}  // namespace lampyr::plugin
