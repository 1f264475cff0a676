// Session: one client TCP connection. Owns its bufferevent, cuts the byte
// stream into frames, hands each to the server's command table in order, and
// puts replies back in request order even when handlers answer out of order.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "net/dispatch.h"

struct bufferevent;
struct event;

namespace lampyr {

class NetServer;

class Session : NonCopyable {
 public:
  Session(NetServer* server, SessionId id, bufferevent* bev, std::string peer);
  ~Session();

  SessionId id() const { return id_; }
  const std::string& peer() const { return peer_; }
  bool closing() const { return closing_; }

  // Request `seq` is answered with (command, body), or declined (no frame).
  // Replies leave strictly in seq order; a second answer to one request is
  // ignored.
  void Answer(uint32_t seq, uint32_t command, std::string_view body, bool declined);
  // Writes a push frame now (pushes do not wait for pending replies).
  void WriteFrame(uint32_t command, std::string_view body);
  // Writes an already encoded frame (broadcast encodes once for everyone).
  void WriteEncoded(std::string_view frame);

  // Stops reading and frees the connection at the end of this loop turn.
  // `flush` first sends what is already queued (bounded by a short timeout).
  void Close(const char* reason, bool flush = false);

  std::vector<std::string>& groups() { return groups_; }
  const char* close_reason() const { return close_reason_; }
  size_t pending_output() const;
  // Sends queued output straight to the socket (NetServer calls it at the
  // end of the loop turn for output written outside this session's reads).
  void Flush();

 private:
  static void OnReadable(int fd, short what, void* arg);
  static void OnWrite(bufferevent* bev, void* arg);
  static void OnEvent(bufferevent* bev, short what, void* arg);
  void ReadSocket();
  // Handles the frames left in pending_in_ (after a pause, or split reads).
  void ReadFrames();
  // Hands the whole frames at data[0, len) to the server; returns the bytes
  // used. Stops at a partial frame (*partial), at backpressure, on close.
  size_t HandleFrames(const uint8_t* data, size_t len, bool* partial, bool* progressed);
  void PauseReading();
  void CheckOutputCap();
  void QueueFlush();
  void CheckFrameProgress(bool partial, bool progressed);
  uint32_t inflight() const { return next_seq_ - next_reply_seq_; }

  NetServer* server_;
  SessionId id_;
  bufferevent* bev_;  // the write side (and the close-with-flush timeout)
  event* read_ev_;    // the read side: our own event, see ReadSocket
  std::string pending_in_;  // bytes read but not handled yet
  std::string peer_;
  uint32_t next_seq_ = 0;        // assigned to the next request read
  uint32_t next_reply_seq_ = 0;  // the request whose answer leaves next
  struct Parked {
    bool declined;
    uint32_t command;
    std::string body;
  };
  std::map<uint32_t, Parked> parked_;  // answered before an earlier request
  bool closing_ = false;
  const char* close_reason_ = "";
  bool read_paused_ = false;
  bool in_read_ = false;
  bool flush_queued_ = false;  // output waits for Flush (end of read or of turn)
  bool write_armed_ = false;   // EV_WRITE enabled: the socket was full
  int64_t partial_since_us_ = 0;  // when the current incomplete frame stalled
  std::vector<std::string> groups_;
};

}  // namespace lampyr
