#include "core/guard.h"

#include <string>

#include "core/log.h"
#include "core/metrics.h"

namespace lampyr {

void ReportEscapedException(const char* where, const char* what) noexcept {
  // Logging and the registry allocate; if that throws too (out of memory)
  // there is nothing better to do than to carry on.
  try {
    LOG_ERROR("loop", "exception escaped a %s callback and was stopped there: %s", where, what);
    Metrics()
        .GetCounter("lampyr_callback_exceptions_total",
                    "Exceptions that escaped a callback run by the event loop (caught at the boundary)",
                    std::string("where=\"") + where + "\"")
        ->Inc();
  } catch (...) {
  }
}

}  // namespace lampyr
