// Link: one authenticated TCP connection between two nodes. Cuts the byte
// stream into channel frames, runs the handshake (either side), answers
// pings, and resets itself when the peer misbehaves or stops reading (output
// over the cap). Everything else goes to its Delegate, the hub.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "channel/channel_wire.h"
#include "core/event_loop.h"
#include "core/status.h"

struct bufferevent;
struct event;

namespace lampyr::channel {

// Until the handshake is done a link is anybody's: its frames are the
// handshake's, all under 200 bytes. A larger frame then is refused at its
// header, before its body is buffered (issue 8: twelve 16 MiB first frames
// cost 185 MiB).
constexpr size_t kMaxPreAuthFrame = 4096;
// How much one read takes from the socket before the handshake, so an
// unauthenticated link holds a few KiB however fast it sends.
constexpr size_t kPreAuthReadBytes = 8192;
// After it: large frames (forwarded bodies) arrive in fewer loop turns.
constexpr size_t kReadBytes = 256 << 10;

class ChannelTls;

struct LinkSettings {
  std::string self;     // this node's name
  std::string secret;   // cluster secret (never logged)
  const ChannelTls* tls = nullptr;  // master.channel_tls; null = plain TCP
  size_t max_preauth_frame = kMaxPreAuthFrame;
  size_t max_frame = (16u << 20) + 4096;
  size_t max_output = 64u << 20;
  double handshake_timeout_s = 5;
};

class Link;

class LinkDelegate {
 public:
  virtual ~LinkDelegate() = default;
  virtual void OnLinkUp(Link* link) = 0;
  virtual void OnLinkFrame(Link* link, Frame& frame) = 0;
  // `auth` is true when the peer was dropped for failing the handshake.
  virtual void OnLinkClosed(Link* link, const std::string& reason, bool auth) = 0;
  // Root side, after the child proved the secret: "" admits it, anything
  // else is the reason it is refused (duplicate name, ...).
  virtual std::string AdmitChild(const std::string& name) = 0;
};

class Link : NonCopyable {
 public:
  enum class Direction { kIn, kOut };
  enum class State { kConnecting, kHandshake, kUp, kClosed };

  // kIn: `fd` is an accepted socket. kOut: call Connect() next.
  Link(EventLoop* loop, LinkDelegate* delegate, const LinkSettings* settings, Direction dir, int fd,
       std::string address, std::string expected_root);
  ~Link();

  Status Connect(const sockaddr* addr, socklen_t len);

  // Queues a frame; no-op unless up (or handshaking, for handshake frames).
  void Send(const Frame& f);
  // Stops the link now: no more callbacks except OnLinkClosed (once).
  void Close(const std::string& reason, bool auth = false);

  Direction direction() const { return dir_; }
  State state() const { return state_; }
  bool up() const { return state_ == State::kUp; }
  const std::string& peer() const { return peer_; }  // node name ("" until hello)
  const std::string& address() const { return address_; }
  int64_t last_recv_us() const { return last_recv_us_; }
  size_t pending_output() const;

 private:
  static void OnRead(bufferevent* bev, void* arg);
  static void OnFlush(int, short, void* arg);
  void Flush();
  static void OnEvent(bufferevent* bev, short what, void* arg);
  void ReadFrames();
  void HandleHandshake(const Frame& f);
  // Handshake done: the full frame limit and read size apply from now on.
  void BecomeUp();
  // Writes a reject frame straight to the socket (it is tiny) and closes.
  void Reject(const std::string& reason, bool auth);

  EventLoop* loop_;
  LinkDelegate* delegate_;
  const LinkSettings* settings_;
  Direction dir_;
  State state_;
  bufferevent* bev_ = nullptr;
  // Frames sent during this loop turn, written with one syscall at its end
  // (straight to the socket: no write-event round trip when it has room).
  std::string corked_;
  event* flush_ev_ = nullptr;
  std::string address_;
  std::string peer_;
  std::string child_nonce_, root_nonce_;
  TimerId handshake_timer_ = 0;
  int64_t last_recv_us_ = 0;
};

}  // namespace lampyr::channel
