#include "channel/channel_link.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/err.h>

#include <cerrno>
#include <cstring>

#include "channel/channel_auth.h"
#include "channel/channel_tls.h"
#include "core/log.h"

namespace lampyr::channel {

namespace {

bool ValidNodeName(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return false;
  return true;
}

}  // namespace

Link::Link(EventLoop* loop, LinkDelegate* delegate, const LinkSettings* settings, Direction dir, int fd,
           std::string address, std::string expected_root)
    : loop_(loop),
      delegate_(delegate),
      settings_(settings),
      dir_(dir),
      state_(dir == Direction::kIn ? State::kHandshake : State::kConnecting),
      address_(std::move(address)),
      peer_(std::move(expected_root)) {
  if (settings_->tls) {
    // TLS under the channel protocol: the bufferevent does the TLS handshake
    // first (BEV_EVENT_CONNECTED on the child side comes after it).
    bev_ = bufferevent_openssl_socket_new(
        loop_->base(), fd, settings_->tls->NewSsl(),
        dir == Direction::kIn ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_openssl_set_allow_dirty_shutdown(bev_, 1);
  } else {
    bev_ = bufferevent_socket_new(loop_->base(), fd, BEV_OPT_CLOSE_ON_FREE);
  }
  bufferevent_setcb(bev_, &Link::OnRead, nullptr, &Link::OnEvent, this);
  bufferevent_set_max_single_read(bev_, kPreAuthReadBytes);
  flush_ev_ = event_new(loop_->base(), -1, 0, &Link::OnFlush, this);
  last_recv_us_ = EventLoop::NowMicros();
  if (dir_ == Direction::kIn) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
  }
  // Both sides bound the handshake: a silent or slow peer holds nothing for long.
  handshake_timer_ = loop_->RunAfter(settings_->handshake_timeout_s, [this] {
    handshake_timer_ = 0;
    if (state_ != State::kUp) Close("handshake timed out", dir_ == Direction::kIn);
  });
}

Link::~Link() {
  if (handshake_timer_) loop_->Cancel(handshake_timer_);
  event_free(flush_ev_);
  if (bev_) bufferevent_free(bev_);
}

Status Link::Connect(const sockaddr* addr, socklen_t len) {
  if (bufferevent_socket_connect(bev_, const_cast<sockaddr*>(addr), static_cast<int>(len)) != 0)
    return Status::Error(std::string("connect failed: ") + strerror(errno));
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  return Status::OK();
}

size_t Link::pending_output() const {
  return corked_.size() + (bev_ ? evbuffer_get_length(bufferevent_get_output(bev_)) : 0);
}

void Link::Send(const Frame& f) {
  if (state_ == State::kClosed || state_ == State::kConnecting) return;
  uint8_t prefix[kHeaderSize + 3 * 255];
  size_t n = EncodePrefix(f, prefix, sizeof prefix);
  evbuffer* out = bufferevent_get_output(bev_);
  if (corked_.empty() && evbuffer_get_length(out) != 0) {
    // Already backed up: queue behind what waits.
    evbuffer_add(out, prefix, n);
    if (!f.payload.empty()) evbuffer_add(out, f.payload.data(), f.payload.size());
  } else {
    if (corked_.empty()) event_active(flush_ev_, EV_WRITE, 0);
    corked_.append(reinterpret_cast<const char*>(prefix), n);
    corked_.append(f.payload);
  }
  // The backpressure rule: a peer that does not read gets its link reset
  // (and the calls on it failed) rather than our memory.
  if (pending_output() > settings_->max_output) Close("output over the cap (peer not reading)");
}

void Link::OnFlush(int, short, void* arg) { static_cast<Link*>(arg)->Flush(); }

void Link::Flush() {
  if (state_ == State::kClosed || corked_.empty()) return;
  size_t done = 0;
  int fd = bufferevent_getfd(bev_);
  evbuffer* out = bufferevent_get_output(bev_);
  // Over TLS every byte goes through the bufferevent (it encrypts).
  if (fd >= 0 && evbuffer_get_length(out) == 0 && !settings_->tls) {
    ssize_t w = send(fd, corked_.data(), corked_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) done = static_cast<size_t>(w);
    // Errors other than a full socket surface through the bufferevent's own
    // write attempt below (or its read side), which closes the link.
  }
  if (done < corked_.size()) evbuffer_add(out, corked_.data() + done, corked_.size() - done);
  corked_.clear();
  if (corked_.capacity() > (1u << 20)) corked_.shrink_to_fit();
}

void Link::Close(const std::string& reason, bool auth) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  if (handshake_timer_) {
    loop_->Cancel(handshake_timer_);
    handshake_timer_ = 0;
  }
  // The bufferevent is freed with the Link (deferred by the hub), so frames
  // being read right now stay valid; here it only stops.
  bufferevent_disable(bev_, EV_READ | EV_WRITE);
  int fd = bufferevent_getfd(bev_);
  if (fd >= 0) shutdown(fd, SHUT_RDWR);
  delegate_->OnLinkClosed(this, reason, auth);
}

void Link::Reject(const std::string& reason, bool auth) {
  Frame f;
  f.type = FrameType::kReject;
  f.src = settings_->self;
  f.payload = reason;
  std::string bytes;
  AppendFrame(f, &bytes);
  // Anything queued goes first; a reject is small enough for the socket buffer.
  Flush();
  int fd = bufferevent_getfd(bev_);
  // Over TLS there is no writing around the bufferevent: the peer just sees
  // the link close (the reason is in this side's log).
  if (fd >= 0 && evbuffer_get_length(bufferevent_get_output(bev_)) == 0 && !settings_->tls)
    (void)!send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  Close(reason, auth);
}

void Link::OnEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<Link*>(arg);
  if (what & BEV_EVENT_CONNECTED) {
    // A TLS bufferevent also reports the end of an accepted link's TLS
    // handshake this way: only the connecting side says hello.
    if (self->dir_ == Direction::kIn) return;
    int fd = bufferevent_getfd(self->bev_);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    self->state_ = State::kHandshake;
    self->child_nonce_ = RandomNonce();
    Frame hello;
    hello.type = FrameType::kHello;
    hello.src = self->settings_->self;
    hello.dst = self->peer_;
    hello.payload = self->child_nonce_;
    self->Send(hello);
    return;
  }
  if (what & BEV_EVENT_EOF) {
    self->Close("peer closed the connection");
  } else if (what & BEV_EVENT_ERROR) {
    int err = EVUTIL_SOCKET_ERROR();
    std::string why = evutil_socket_error_to_string(err);
    if (self->settings_->tls) {
      if (unsigned long e = bufferevent_get_openssl_error(self->bev_)) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        why = std::string("TLS: ") + buf;
      }
    }
    self->Close(std::string(self->state_ == State::kConnecting ? "connect failed: " : "socket error: ") + why);
  }
}

void Link::OnRead(bufferevent*, void* arg) { static_cast<Link*>(arg)->ReadFrames(); }

void Link::ReadFrames() {
  evbuffer* in = bufferevent_get_input(bev_);
  last_recv_us_ = EventLoop::NowMicros();
  while (state_ != State::kClosed) {
    size_t avail = evbuffer_get_length(in);
    if (avail < kHeaderSize) return;
    uint8_t header[kHeaderSize];
    evbuffer_copyout(in, header, kHeaderSize);
    size_t total = 0;
    const size_t limit = state_ == State::kUp ? settings_->max_frame : settings_->max_preauth_frame;
    DecodeResult r = PeekSize(header, limit, &total);
    if (r != DecodeResult::kOk) {
      std::string reason = std::string("bad frame: ") + DecodeResultName(r);
      if (r == DecodeResult::kBadVersion)
        reason = "protocol version " + std::to_string(header[2]) + " not supported (this node speaks " +
                 std::to_string(kVersion) + ")";
      else if (r == DecodeResult::kTooLarge && state_ != State::kUp)
        reason += " (over " + std::to_string(limit) + " bytes before the handshake is done)";
      // Before the handshake the hub logs the drop (at a bounded rate: anybody can connect).
      if (state_ != State::kUp) return Reject(reason, true);
      LOG_WARN("channel", "link %s (%s): %s", peer_.c_str(), address_.c_str(), reason.c_str());
      Close(reason);
      return;
    }
    if (avail < total) return;
    const uint8_t* p = evbuffer_pullup(in, static_cast<ev_ssize_t>(total));
    Frame f;
    r = Decode(p, total, &f);
    if (r != DecodeResult::kOk) {
      if (state_ == State::kUp)
        LOG_WARN("channel", "link %s (%s): bad frame: %s", peer_.c_str(), address_.c_str(), DecodeResultName(r));
      Close(std::string("bad frame: ") + DecodeResultName(r), state_ != State::kUp);
      return;
    }
    if (state_ != State::kUp) {
      HandleHandshake(f);
    } else if (f.type == FrameType::kPing) {
      Frame pong;
      pong.type = FrameType::kPong;
      Send(pong);
    } else if (f.type != FrameType::kPong) {
      delegate_->OnLinkFrame(this, f);
    }
    // A handler may have closed us; the buffer is still ours until the
    // Link is destroyed, so draining is safe either way.
    evbuffer_drain(in, total);
  }
}

void Link::BecomeUp() {
  state_ = State::kUp;
  loop_->Cancel(handshake_timer_);
  handshake_timer_ = 0;
  bufferevent_set_max_single_read(bev_, kReadBytes);
}

void Link::HandleHandshake(const Frame& f) {
  const std::string& secret = settings_->secret;
  if (f.type == FrameType::kReject) {
    Close("refused by " + (peer_.empty() ? address_ : peer_) + ": " + std::string(f.payload), true);
    return;
  }
  if (dir_ == Direction::kIn) {
    if (f.type == FrameType::kHello && peer_.empty()) {
      if (!ValidNodeName(f.src)) return Reject("bad node name", true);
      if (f.payload.size() != kNonceSize) return Reject("bad hello", true);
      if (!f.dst.empty() && f.dst != settings_->self)
        return Reject("this is node " + settings_->self + ", not " + std::string(f.dst), false);
      peer_ = std::string(f.src);
      child_nonce_ = std::string(f.payload);
      root_nonce_ = RandomNonce();
      std::string payload = root_nonce_ + Proof(secret, 'R', child_nonce_, root_nonce_, peer_, settings_->self);
      Frame c;
      c.type = FrameType::kChallenge;
      c.src = settings_->self;
      c.dst = peer_;
      c.payload = payload;
      Send(c);
      return;
    }
    if (f.type == FrameType::kAuth && !peer_.empty() && !root_nonce_.empty()) {
      std::string want = Proof(secret, 'C', child_nonce_, root_nonce_, peer_, settings_->self);
      if (!ProofEquals(f.payload, want)) return Reject("authentication failed (cluster secret mismatch)", true);
      std::string refusal = delegate_->AdmitChild(peer_);
      if (!refusal.empty()) return Reject(refusal, false);
      BecomeUp();
      Frame w;
      w.type = FrameType::kWelcome;
      w.src = settings_->self;
      Send(w);
      if (state_ == State::kUp) delegate_->OnLinkUp(this);
      return;
    }
    return Reject(std::string("unexpected ") + FrameTypeName(f.type) + " during handshake", true);
  }
  // Outbound (child) side.
  if (f.type == FrameType::kChallenge && !child_nonce_.empty() && root_nonce_.empty()) {
    if (f.src != peer_) {
      Close("connected to node " + std::string(f.src) + ", expected " + peer_, false);
      return;
    }
    if (f.payload.size() != kNonceSize + kProofSize) return Close("bad challenge", true);
    root_nonce_ = std::string(f.payload.substr(0, kNonceSize));
    std::string want = Proof(secret, 'R', child_nonce_, root_nonce_, settings_->self, peer_);
    if (!ProofEquals(f.payload.substr(kNonceSize), want))
      return Close("root " + peer_ + " failed to prove the cluster secret", true);
    std::string proof = Proof(secret, 'C', child_nonce_, root_nonce_, settings_->self, peer_);
    Frame a;
    a.type = FrameType::kAuth;
    a.src = settings_->self;
    a.payload = proof;
    Send(a);
    return;
  }
  if (f.type == FrameType::kWelcome && !root_nonce_.empty()) {
    BecomeUp();
    delegate_->OnLinkUp(this);
    return;
  }
  Close(std::string("unexpected ") + FrameTypeName(f.type) + " during handshake", true);
}

}  // namespace lampyr::channel
