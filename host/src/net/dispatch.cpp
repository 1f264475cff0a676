#include "net/dispatch.h"

#include <exception>
#include <string>

#include "core/log.h"
#include "core/metrics.h"

namespace lampyr {

const char* ErrorCodeName(ErrorCode c) {
  switch (c) {
    case ErrorCode::kUnknownCommand: return "unknown_command";
    case ErrorCode::kHandlerError: return "handler_error";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kOverloaded: return "overloaded";
  }
  return "error";
}

void CommandTable::Dispatch(const RequestContext& ctx, std::string_view body) const {
  const CommandHandler* h = Find(ctx.command);
  if (!h) h = fallback();
  if (!h) {
    LOG_DEBUG("dispatch", "session %llu: no handler for command %u", static_cast<unsigned long long>(ctx.session),
              ctx.command);
    ctx.responder->Fail(ctx, ErrorCode::kUnknownCommand, "no handler for command " + std::to_string(ctx.command));
    return;
  }
  try {
    (*h)(ctx, body);
  } catch (const std::exception& e) {
    LOG_ERROR("dispatch", "command %u: handler threw: %s", ctx.command, e.what());
    ctx.responder->Fail(ctx, ErrorCode::kHandlerError, "handler error");
  } catch (...) {
    LOG_ERROR("dispatch", "command %u: handler threw a non-standard exception", ctx.command);
    ctx.responder->Fail(ctx, ErrorCode::kHandlerError, "handler error");
  }
}

}  // namespace lampyr
