// Session: one client connection. TcpSession owns its bufferevent, cuts the byte
// stream into frames, hands each to the server's command table in order, and
// puts replies back in request order even when handlers answer out of order.
// Flow control: it stops reading while too many requests are unanswered
// (max_inflight) or while its unsent output is above the high-water mark, so
// a pipelining client is slowed down by TCP instead of being buffered for.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "net/address_limit.h"
#include "net/dispatch.h"
#include "net/reply_order.h"
#include "net/token_bucket.h"

struct bufferevent;
struct event;
struct evbuffer;
struct evbuffer_cb_entry;
struct evbuffer_cb_info;

namespace lampyr {

class NetServer;

// What NetServer needs from a client session, whatever carries its bytes:
// the request/reply rules of DESIGN §3 live here (numbering, reply order,
// rate limit, groups); a transport subclass moves the frames (TcpSession
// below; WsSession in ws_session.h puts each frame in a WebSocket message).
class Session : NonCopyable {
 public:
  Session(NetServer* server, SessionId id, std::string peer, net::AddressKey address);
  virtual ~Session() = default;

  SessionId id() const { return id_; }
  const std::string& peer() const { return peer_; }
  const net::AddressKey& address() const { return address_; }
  bool closing() const { return closing_; }
  // Plugins know the session (its open callbacks ran). A WebSocket session
  // opens once its handshake is done; until then it only holds a slot.
  bool opened() const { return opened_; }

  // Request `seq` is answered with (command, body), or declined (no frame).
  // Replies leave strictly in seq order; a second answer to one request is
  // ignored.
  void Answer(uint32_t seq, uint32_t command, std::string_view body, bool declined);
  // Writes a push frame now (pushes do not wait for pending replies).
  virtual void WriteFrame(uint32_t command, std::string_view body) = 0;
  // Writes an already encoded frame (broadcast encodes once for everyone).
  virtual void WriteEncoded(std::string_view frame) = 0;

  // Stops reading and frees the connection at the end of this loop turn.
  // `flush` first sends what is already queued (bounded by a short timeout).
  virtual void Close(const char* reason, bool flush = false) = 0;

  std::vector<std::string>& groups() { return groups_; }
  const char* close_reason() const { return close_reason_; }
  virtual size_t pending_output() const = 0;
  // Sends queued output (NetServer calls it at the end of the loop turn for
  // output written outside this session's reads).
  virtual void Flush() = 0;

 protected:
  // One whole request frame read: numbers it and hands it to the server
  // (or refuses it over the rate limit). `now_us` is 0 without a rate limit.
  void Request(uint32_t command, std::string_view body, int64_t now_us);
  int64_t RateClock() const;
  // An answer was written: reading may resume (flow control).
  virtual void OnAnswered() = 0;

  NetServer* server_;
  SessionId id_;
  std::string peer_;
  net::AddressKey address_;
  net::ReplyOrder order_;
  net::TokenBucket rate_;
  bool closing_ = false;
  bool opened_ = true;
  const char* close_reason_ = "";
  std::vector<std::string> groups_;
};

// A session over a plain TCP connection (netport): the Firefly byte stream.
class TcpSession final : public Session {
 public:
  TcpSession(NetServer* server, SessionId id, bufferevent* bev, std::string peer, net::AddressKey address);
  ~TcpSession() override;

  void WriteFrame(uint32_t command, std::string_view body) override;
  void WriteEncoded(std::string_view frame) override;
  void Close(const char* reason, bool flush = false) override;
  size_t pending_output() const override;
  void Flush() override;

 private:
  static void OnReadable(int fd, short what, void* arg);
  static void OnWrite(bufferevent* bev, void* arg);
  static void OnEvent(bufferevent* bev, short what, void* arg);
  static void OnOutputChanged(evbuffer* buf, const evbuffer_cb_info* info, void* arg);
  void OnAnswered() override { MaybeResumeReading(); }
  // Runs a libevent callback of this session behind the exception boundary;
  // whatever escaped leaves the session in an unknown state, so it closes.
  template <typename F>
  void Guard(F&& f);
  void ReadSocket();
  // Handles the frames left in pending_in_ (after a pause, or split reads).
  void ReadFrames();
  // Hands the whole frames at data[0, len) to the server; returns the bytes
  // used. Stops at a partial frame (*partial), at backpressure, on close.
  size_t HandleFrames(const uint8_t* data, size_t len, bool* partial, bool* progressed);
  // Before the next request is read: must reading pause (flow control)?
  bool MustPause();
  void PauseReading();
  void MaybeResumeReading();
  void CheckOutputCap();
  void QueueFlush();
  void CheckFrameProgress(bool partial, bool progressed);

  bufferevent* bev_;  // the write side (and the close-with-flush timeout)
  event* read_ev_;    // the read side: our own event, see ReadSocket
  evbuffer_cb_entry* output_cb_;  // accounts output in the server-wide budget
  std::string pending_in_;  // bytes read but not handled yet
  bool read_paused_ = false;
  bool in_read_ = false;
  bool flush_queued_ = false;  // output waits for Flush (end of read or of turn)
  bool write_armed_ = false;   // EV_WRITE enabled: the socket was full
  int64_t partial_since_us_ = 0;  // when the current incomplete frame stalled
};

}  // namespace lampyr
