// The loop's exception boundary. libevent is C: an exception unwinding out of
// a callback it runs (a timer, a socket event, an HTTP request, a posted task)
// reaches std::terminate and takes every player of the process with it. So
// every entry from libevent into our code goes through Guarded(), which logs
// what escaped, counts it (lampyr_callback_exceptions_total{where}) and
// returns: one request fails, the process keeps serving.
//
// Handlers should still catch what they expect and answer with a proper
// error; Guarded is the last line, not the error path.
#pragma once

#include <exception>
#include <utility>

namespace lampyr {

// Logs at ERROR and counts. `where` is a fixed label ("timer", "admin", ...).
void ReportEscapedException(const char* where, const char* what) noexcept;

// True when `f` returned normally, false when an exception was stopped
// (callers that owe someone an answer use it to send an error instead).
template <typename F>
bool Guarded(const char* where, F&& f) noexcept {
  try {
    std::forward<F>(f)();
    return true;
  } catch (const std::exception& e) {
    ReportEscapedException(where, e.what());
  } catch (...) {
    ReportEscapedException(where, "non-standard exception");
  }
  return false;
}

}  // namespace lampyr
