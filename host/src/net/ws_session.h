// WsSession: a client session over WebSocket (wsport, DESIGN §3a). The
// connection starts as HTTP: the upgrade request is answered by hand
// (net/ws_handshake.h); after that, RFC 6455 framing is wslay's (masking,
// fragments reassembled up to the limit, ping/pong, the close handshake).
// One binary message carries exactly one Firefly frame, which then goes
// through Session like a TCP frame: plugins cannot tell the two apart.
//
// I/O goes through a bufferevent, plain or OpenSSL (wss), so TLS is
// libevent's and not ours. Flow control is the TCP session's: reading pauses
// at max_inflight unanswered requests or above the output high-water mark.
#pragma once

#include <wslay/wslay.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "net/session.h"

namespace lampyr {

class WsSession final : public Session {
 public:
  // `tls`: bev is an OpenSSL bufferevent (wss), which does its own writing.
  WsSession(NetServer* server, SessionId id, bufferevent* bev, std::string peer, net::AddressKey address, bool tls);
  ~WsSession() override;

  void WriteFrame(uint32_t command, std::string_view body) override;
  void WriteEncoded(std::string_view frame) override;
  void Close(const char* reason, bool flush = false) override;
  size_t pending_output() const override;
  // Plain ws: sends queued output straight to the socket, as TcpSession
  // does (EV_WRITE, an epoll_ctl on and off per reply, is armed only while
  // the socket is full). wss: the OpenSSL bufferevent writes by itself.
  void Flush() override;

  // RFC 6455 close code sent when the session closes for `reason`
  // (0: none, the connection just ends).
  static uint16_t CloseCodeFor(const char* reason);

 private:
  static void OnRead(bufferevent* bev, void* arg);       // wss: the OpenSSL bufferevent reads
  static void OnReadable(int fd, short what, void* arg);  // plain ws: our own read event
  static void OnWrite(bufferevent* bev, void* arg);
  static void OnEvent(bufferevent* bev, short what, void* arg);
  static void OnOutputChanged(evbuffer* buf, const evbuffer_cb_info* info, void* arg);
  static ssize_t WsRecv(wslay_event_context_ptr ctx, uint8_t* buf, size_t len, int flags, void* user);
  static ssize_t WsSend(wslay_event_context_ptr ctx, const uint8_t* data, size_t len, int flags, void* user);
  static void WsOnMessage(wslay_event_context_ptr ctx, const wslay_event_on_msg_recv_arg* arg, void* user);
  template <typename F>
  void Guard(F&& f);

  void OnAnswered() override { MaybeResumeReading(); }
  void ReadHandshake();
  void ReadMessages();
  // Plain ws: reads the socket into the server's scratch buffer and hands
  // the bytes to wslay in place, as TcpSession does with frames.
  void ReadSocket();
  void Feed(const char* data, size_t len);  // wslay reads [data, data+len); rx_pos_ = bytes taken
  void FeedPending();
  void PauseReading();
  void OnMessage(uint8_t opcode, const uint8_t* data, size_t len);
  // Queues one binary message holding `frame`.
  void QueueMessage(std::string_view frame);
  // Moves what wslay has queued (messages, pongs, close) into the output.
  void SendQueued();
  // Closes with an RFC 6455 code because the client broke the rules.
  void Fail(uint16_t code, const char* reason);
  void QueueClose(uint16_t code);
  void FinishClose();
  bool MustPause() const;
  void MaybeResumeReading();
  void CheckOutputCap();
  void CheckMessageProgress(int64_t now);
  void QueueFlush();

  bufferevent* bev_;
  event* read_ev_ = nullptr;  // plain ws only
  evbuffer_cb_entry* output_cb_;
  std::string pending_in_;    // plain ws: bytes read and not taken yet (handshake, or after a pause)
  const char* rx_data_ = nullptr;  // plain ws: what WsRecv hands to wslay
  size_t rx_len_ = 0, rx_pos_ = 0;
  wslay_event_context_ptr ws_ = nullptr;  // null until the handshake is done
  std::string frame_;                     // scratch for encoding one frame
  int64_t accepted_us_;
  int64_t partial_since_us_ = 0;  // see CheckMessageProgress
  const bool tls_;
  bool write_armed_ = false;      // plain ws: EV_WRITE on because the socket was full
  bool flush_queued_ = false;     // plain ws: output waits for Flush (end of read or of turn)
  bool in_read_ = false;          // inside wslay_event_recv: output and closing wait
  bool read_paused_ = false;
  bool got_message_ = false;
  bool close_queued_ = false;
  bool close_flush_ = false;
};

}  // namespace lampyr
