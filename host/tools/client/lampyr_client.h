// A small blocking client for the Firefly client protocol (docs/protocol.md).
// Used by tests, lampyr-client and tools: one connection, poll() timeouts,
// the same frame codec as the server (lampyr_proto).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include <wslay/wslay.h>

#include "core/status.h"

namespace lampyr::client {

struct Frame {
  uint32_t command = 0;
  std::string body;
};

struct Options {
  std::array<uint8_t, 4> head{0, 0, 0, 0};
  uint8_t proto_version = 0;
  uint32_t server_version = 0;
  uint32_t max_body = 16u << 20;          // larger incoming frames are a protocol error
  uint32_t error_command = 0xFFFFFFFF;    // the server's protocol.error_command
  int send_timeout_ms = 10000;            // Send/SendRaw give up when the peer stops reading
  // WebSocket (the server's wsport, DESIGN §3a): Connect upgrades first, then
  // every Send/SendRaw is one binary message and every message received
  // carries one frame.
  bool ws = false;
  std::string ws_path = "/";
};

class Client : NonCopyable {
 public:
  explicit Client(Options o = {});
  ~Client();

  Status Connect(const std::string& host, uint16_t port, int timeout_ms = 3000);
  Status Send(uint32_t command, std::string_view body);
  // Raw bytes, for bad-input tests (over WebSocket: one message holding them).
  Status SendRaw(std::string_view bytes);
  // The next frame (reply or push).
  Status Receive(Frame* out, int timeout_ms = 3000);
  // Send, then the next frame whose command is `command` or error_command;
  // other frames (pushes) are kept for Receive.
  Status Call(uint32_t command, std::string_view body, Frame* reply, int timeout_ms = 3000);
  // True when the server closed the connection within the timeout. Frames
  // that arrive meanwhile are kept for Receive.
  bool WaitClosed(int timeout_ms = 3000);
  void Close();
  int fd() const { return fd_; }
  bool connected() const { return fd_ >= 0; }
  // Frames already received but not yet returned by Receive.
  size_t queued() const { return queued_.size(); }

 private:
  // Reads what the socket has (waiting up to the deadline) and decodes whole
  // frames into queued_. Returns an error on close, timeout or socket error.
  Status Fill(int64_t deadline_ms);
  // Moves whole frames from in_ to queued_; bad input sets broken_.
  void DecodeBuffered();
  static int64_t NowMs();

  Options opts_;
  int fd_ = -1;
  bool peer_closed_ = false;
  Status broken_;                  // set once the server sent an undecodable frame
  std::string in_;                 // undecoded bytes
  std::deque<Frame> queued_;       // decoded, not yet received
  // WebSocket: the server's messages are unwrapped into in_ (one frame each).
  Status Upgrade(const std::string& host, int64_t deadline_ms);
  Status WriteAll(std::string_view bytes);
  void UnwrapMessages();
  static ssize_t WsSend(const uint8_t* data, size_t len, int flags, void* user);
  static ssize_t WsRecv(uint8_t* buf, size_t len, int flags, void* user);
  static int WsMask(uint8_t* buf, size_t len, void* user);
  wslay_frame_context_ptr ws_rx_ = nullptr, ws_tx_ = nullptr;
  std::string ws_in_;              // received bytes not yet taken by ws_rx_
  size_t ws_pos_ = 0;
  std::string ws_msg_;             // payload of the message being received
  std::string* ws_out_ = nullptr;  // where WsSend appends
  uint32_t mask_seed_ = 0x2545F491;
};

}  // namespace lampyr::client
