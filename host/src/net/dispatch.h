// How a client request reaches gameplay and how its answer gets back.
// A request is identified by a RequestContext; whoever received it (the net
// server for a local client, a channel for a forwarded one) implements
// Responder. Handlers may answer at once or later (async), exactly once:
// Reply, Decline (no answer frame) or Fail (the documented error reply).
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <unordered_map>

namespace lampyr {

// Cluster-unique: high 16 bits = node id of the owning net server, low 48 =
// per-process connection counter.
using SessionId = uint64_t;
constexpr int kSessionNodeShift = 48;
inline uint16_t SessionNode(SessionId id) { return static_cast<uint16_t>(id >> kSessionNodeShift); }

// Error codes carried by the error reply (docs/protocol.md). Stable numbers.
enum class ErrorCode : uint32_t {
  kUnknownCommand = 1,
  kHandlerError = 2,
  kTimeout = 3,
  kUnavailable = 4,
  kOverloaded = 5,
};
const char* ErrorCodeName(ErrorCode c);

class Responder;

struct RequestContext {
  SessionId session = 0;
  uint64_t token = 0;       // the responder's own reference to this request
  uint32_t command = 0;
  Responder* responder = nullptr;
};

class Responder {
 public:
  virtual ~Responder() = default;
  virtual void Reply(const RequestContext& ctx, std::string_view body) = 0;
  virtual void Decline(const RequestContext& ctx) = 0;
  virtual void Fail(const RequestContext& ctx, ErrorCode code, std::string_view message) = 0;
};

using CommandHandler = std::function<void(const RequestContext&, std::string_view body)>;

// Command id -> handler. Single-threaded (the loop). Replacing entries in one
// loop turn is atomic for every request, which is what reload relies on.
class CommandTable {
 public:
  void Set(uint32_t command, CommandHandler h) { handlers_[command] = std::move(h); }
  void Remove(uint32_t command) { handlers_.erase(command); }
  const CommandHandler* Find(uint32_t command) const {
    auto it = handlers_.find(command);
    return it == handlers_.end() ? nullptr : &it->second;
  }
  // Called for commands with no entry (forwarding); unset = unknown command.
  void SetFallback(CommandHandler h) { fallback_ = std::move(h); }
  const CommandHandler* fallback() const { return fallback_ ? &fallback_ : nullptr; }

  // Runs the handler for ctx.command, or the fallback, or fails the request
  // with kUnknownCommand. A handler exception fails it with kHandlerError.
  void Dispatch(const RequestContext& ctx, std::string_view body) const;

 private:
  std::unordered_map<uint32_t, CommandHandler> handlers_;
  CommandHandler fallback_;
};

}  // namespace lampyr
