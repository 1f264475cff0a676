// NetServer: the client-facing listeners of one server process (netport,
// and wsport for WebSocket clients: DESIGN §3a). TCP and WebSocket sessions
// share one table, so ids, groups, limits and the connection cap are common.
// Owns every Session, the named groups used for broadcast, and implements
// Responder so handlers answer local clients through it. It also holds the
// limits that span sessions: connections per address and the server-wide
// budget of unsent output (docs/protocol.md "Limits").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "core/status.h"
#include "net/address_limit.h"
#include "net/dispatch.h"
#include "net/frame_codec.h"
#include "net/ws_handshake.h"

struct evconnlistener;
struct event;
struct event_base;
struct timeval;
struct sockaddr;
struct ssl_ctx_st;

namespace lampyr {

class EventLoop;
class Session;

class NetServer : public Responder, NonCopyable {
 public:
  using OpenCallback = std::function<void(SessionId, const std::string& peer)>;
  using CloseCallback = std::function<void(SessionId, const std::string& reason)>;

  NetServer(EventLoop* loop, const ProtocolConfig& protocol, const CommandTable* commands, uint16_t node_id);
  ~NetServer() override;

  Status Listen(const std::string& host, uint16_t port);
  uint16_t port() const { return port_; }
  // The WebSocket listener (protocol.ws_path, ws_origins, ws_tls).
  Status ListenWs(const std::string& host, uint16_t port);
  uint16_t ws_port() const { return ws_port_; }
  // Stop accepting new connections (graceful stop); existing ones stay.
  void StopAccepting();

  // Responder: answers to requests of local sessions.
  void Reply(const RequestContext& ctx, std::string_view body) override;
  void Decline(const RequestContext& ctx) override;
  void Fail(const RequestContext& ctx, ErrorCode code, std::string_view message) override;

  // Server push. Return false for an unknown or closing session.
  bool Push(SessionId id, uint32_t command, std::string_view body);
  size_t PushMany(const std::vector<SessionId>& ids, uint32_t command, std::string_view body);
  void JoinGroup(const std::string& group, SessionId id);
  void LeaveGroup(const std::string& group, SessionId id);
  size_t Broadcast(const std::string& group, uint32_t command, std::string_view body);
  size_t GroupSize(const std::string& group) const;
  // Closes a session after sending what is queued for it.
  bool Kick(SessionId id, const char* reason = "kicked");
  bool HasSession(SessionId id) const { return sessions_.count(id) != 0; }
  size_t session_count() const { return sessions_.size(); }

  void AddOpenCallback(OpenCallback cb) { open_cbs_.push_back(std::move(cb)); }
  void AddCloseCallback(CloseCallback cb) { close_cbs_.push_back(std::move(cb)); }

  // Used by Session.
  const ProtocolConfig& protocol() const { return protocol_; }
  const net::FrameLimits& limits() const { return limits_; }
  const timeval* idle_timeout() const { return idle_tv_; }
  const net::WsPolicy& ws_policy() const { return ws_policy_; }
  // A session became visible to plugins (a WebSocket after its upgrade).
  void OnSessionOpened(Session* s);
  event_base* loop_base() const;
  // Scratch space for session reads: one loop thread, one read at a time.
  static constexpr size_t kReadBufferSize = 64 * 1024;
  uint8_t* read_buffer() { return read_buf_.get(); }
  void OnFrame(Session* s, uint32_t seq, uint32_t command, std::string_view body);
  // Request `seq` came over protocol.rate: it gets the overloaded error, and
  // a session refused `burst` requests in a row is closed (rate_limited).
  void OnOverRate(Session* s, uint32_t seq, uint32_t command, uint32_t refused_streak);
  // Flow control marks of one session's unsent output (see Session).
  size_t output_high_water() const { return high_water_; }
  size_t output_low_water() const { return high_water_ / 2; }
  // Every change of a session's unsent output, for the server-wide budget.
  void AccountOutput(size_t added, size_t deleted) { output_bytes_ += added - deleted; }
  // After output was written: enforces protocol.output_budget_bytes.
  void CheckOutputBudget() {
    if (protocol_.output_budget_bytes != 0 && output_bytes_ > protocol_.output_budget_bytes) EnforceOutputBudget();
  }
  size_t output_bytes() const { return output_bytes_; }
  // Logs and closes `s`; `flush` first delivers the answers already queued
  // (a protocol error ends the stream, not the replies owed before it).
  void OnSessionError(Session* s, const char* reason, bool flush = false);
  void ScheduleReap(Session* s);
  // Session `id` has output to send at the end of this loop turn.
  void QueueFlush(SessionId id);
  void EncodeHeader(uint32_t command, size_t body_len, uint8_t* out) const;
  void AppendFrameTo(uint32_t command, std::string_view body, std::string* out) const;

 private:
  static void OnAccept(evconnlistener* l, int fd, sockaddr* addr, int socklen, void* arg);
  static void OnWsAccept(evconnlistener* l, int fd, sockaddr* addr, int socklen, void* arg);
  // Binds a listener on host:port with the client socket options.
  Status Bind(const std::string& host, uint16_t port, bool ws, evconnlistener** out, uint16_t* bound_port);
  void Accept(int fd, sockaddr* addr, bool ws);
  Status LoadTls();
  static void OnAcceptError(evconnlistener* l, void* arg);
  static void OnReap(int, short, void* arg);
  static void OnFlush(int, short, void* arg);
  Session* Find(SessionId id) const;
  void Answer(const RequestContext& ctx, uint32_t command, std::string_view body, bool declined);
  void Reap();
  void FlushQueued();
  void EnforceOutputBudget();
  enum Refusal { kAtCapacity = 0, kAddressAtLimit = 1 };
  // Closes a connection refused at accept; counts and logs it.
  void Refuse(int fd, const sockaddr* addr, Refusal why);

  EventLoop* loop_;
  ProtocolConfig protocol_;
  net::FrameLimits limits_;
  const CommandTable* commands_;
  uint16_t node_id_;
  uint64_t next_conn_ = 1;
  uint16_t port_ = 0;
  evconnlistener* listener_ = nullptr;
  evconnlistener* ws_listener_ = nullptr;
  uint16_t ws_port_ = 0;
  net::WsPolicy ws_policy_;
  ssl_ctx_st* ssl_ctx_ = nullptr;  // wss: protocol.ws_tls
  event* reap_ev_ = nullptr;
  event* flush_ev_ = nullptr;
  std::vector<SessionId> to_flush_, flushing_;
  std::unique_ptr<uint8_t[]> read_buf_{new uint8_t[kReadBufferSize]};
  const timeval* idle_tv_ = nullptr;
  std::unordered_map<SessionId, std::unique_ptr<Session>> sessions_;
  std::vector<SessionId> doomed_;
  std::unordered_map<std::string, std::unordered_set<SessionId>> groups_;
  std::vector<OpenCallback> open_cbs_;
  std::vector<CloseCallback> close_cbs_;
  net::AddressLimit per_address_;
  size_t high_water_;
  size_t output_bytes_ = 0;  // unsent output of every session, in user space
  bool enforcing_budget_ = false;
  int64_t refused_logged_us_[2] = {0, 0};  // Refuse: last log line per reason
  uint64_t refused_unlogged_[2] = {0, 0};

  Gauge* m_sessions_;
  Gauge* m_output_bytes_;
  Counter* m_accepted_;
  Counter* m_rejected_capacity_;
  Counter* m_rejected_per_ip_;
  Counter* m_budget_closes_;
  Counter* m_requests_;
  Counter* m_pushes_;
};

}  // namespace lampyr
