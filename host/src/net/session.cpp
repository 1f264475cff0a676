#include "net/session.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

#include "core/event_loop.h"
#include "core/guard.h"
#include "core/log.h"
#include "net/frame_codec.h"
#include "net/net_server.h"

namespace lampyr {

using net::DecodedFrame;
using net::FrameError;
using net::kHeaderSize;

namespace {

// A bufferevent freezes the start of its output (only it may drain);
// libevent's own writer lifts the freeze the same way.
void DrainOutput(evbuffer* out, size_t n) {
  evbuffer_unfreeze(out, 1);
  evbuffer_drain(out, n);
  evbuffer_freeze(out, 1);
}

}  // namespace

Session::Session(NetServer* server, SessionId id, std::string peer, net::AddressKey address)
    : server_(server),
      id_(id),
      peer_(std::move(peer)),
      address_(address),
      rate_(server->protocol().rate.per_s, server->protocol().rate.burst, EventLoop::NowMicros()) {}

int64_t Session::RateClock() const { return rate_.enabled() ? EventLoop::NowMicros() : 0; }

void Session::Request(uint32_t command, std::string_view body, int64_t now_us) {
  uint32_t seq = order_.Next();
  if (rate_.Take(now_us)) server_->OnFrame(this, seq, command, body);
  else server_->OnOverRate(this, seq, command, rate_.refused_streak());
}

void Session::Answer(uint32_t seq, uint32_t command, std::string_view body, bool declined) {
  if (closing_) return;
  order_.Answer(seq, command, body, declined, [this](uint32_t c, std::string_view b) { WriteFrame(c, b); });
  OnAnswered();
}

TcpSession::TcpSession(NetServer* server, SessionId id, bufferevent* bev, std::string peer, net::AddressKey address)
    : Session(server, id, std::move(peer), address), bev_(bev) {
  bufferevent_setcb(bev_, nullptr, &TcpSession::OnWrite, &TcpSession::OnEvent, this);
  // EV_WRITE stays off: with it on, every reply would register a write event
  // (an epoll_ctl) and wait a loop turn to be sent, then unregister it (another
  // epoll_ctl). Output is written straight to the socket by Flush instead, and
  // EV_WRITE is armed only while the socket is full.
  bufferevent_disable(bev_, EV_READ | EV_WRITE);  // a new bufferevent has EV_WRITE on
  // While EV_WRITE is armed: OnWrite once the output is down to the low-water
  // mark (reading resumes there), and a timeout when the client reads nothing
  // at all for idle_timeout_s (it would otherwise hold its output forever).
  bufferevent_setwatermark(bev_, EV_WRITE, server_->output_low_water(), 0);
  if (server_->idle_timeout()) bufferevent_set_timeouts(bev_, nullptr, server_->idle_timeout());
  output_cb_ = evbuffer_add_cb(bufferevent_get_output(bev_), &TcpSession::OnOutputChanged, this);
  // Reading bypasses the bufferevent too: libevent asks the kernel how much is
  // readable (an ioctl) before every read and copies into its buffer; we read
  // into the server's scratch buffer and handle frames in place. The idle
  // timeout rides on the read event: EV_PERSIST re-arms it on every read.
  read_ev_ = event_new(server_->loop_base(), bufferevent_getfd(bev_), EV_READ | EV_PERSIST, &TcpSession::OnReadable, this);
  event_add(read_ev_, server_->idle_timeout());
}

TcpSession::~TcpSession() {
  evbuffer* out = bufferevent_get_output(bev_);
  evbuffer_remove_cb_entry(out, output_cb_);  // libevent may free the buffer later
  server_->AccountOutput(0, evbuffer_get_length(out));
  event_free(read_ev_);
  bufferevent_free(bev_);
}

size_t TcpSession::pending_output() const { return evbuffer_get_length(bufferevent_get_output(bev_)); }

template <typename F>
void TcpSession::Guard(F&& f) {
  bool done = false;
  Guarded("net session", [&] {
    f();
    done = true;
  });
  if (!done) {
    in_read_ = false;
    Close("internal_error");
  }
}

void TcpSession::OnOutputChanged(evbuffer*, const evbuffer_cb_info* info, void* arg) {
  static_cast<TcpSession*>(arg)->server_->AccountOutput(info->n_added, info->n_deleted);
}

void TcpSession::OnReadable(int, short what, void* arg) {
  TcpSession* s = static_cast<TcpSession*>(arg);
  s->Guard([s, what] {
    if (what & EV_TIMEOUT) s->server_->OnSessionError(s, "idle");
    else s->ReadSocket();
  });
}

void TcpSession::ReadSocket() {
  if (closing_ || in_read_) return;
  uint8_t* buf = server_->read_buffer();
  ssize_t n = recv(bufferevent_getfd(bev_), buf, NetServer::kReadBufferSize, 0);
  if (n == 0) return Close("client_closed");
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    return Close("socket_error");
  }
  if (!pending_in_.empty()) {
    // Behind a partial frame (or a pause): keep the stream in one place.
    pending_in_.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
    ReadFrames();
    return;
  }
  // The common case: whole frames straight from the scratch buffer, no copy.
  in_read_ = true;
  bool partial = false, progressed = false;
  size_t used = HandleFrames(buf, static_cast<size_t>(n), &partial, &progressed);
  if (!closing_) {
    if (used < static_cast<size_t>(n)) pending_in_.assign(reinterpret_cast<const char*>(buf) + used, n - used);
    CheckFrameProgress(partial, progressed);
  }
  in_read_ = false;
  if (flush_queued_) Flush();  // every reply of this read in one send
}

void TcpSession::ReadFrames() {
  if (in_read_ || closing_) return;  // a handler answered synchronously; the outer loop continues
  in_read_ = true;
  bool partial = false, progressed = false;
  size_t used = HandleFrames(reinterpret_cast<const uint8_t*>(pending_in_.data()), pending_in_.size(), &partial,
                             &progressed);
  if (!closing_) {
    pending_in_.erase(0, used);
    // A large frame may have grown the buffer; idle sessions keep nothing.
    if (pending_in_.empty() && pending_in_.capacity() > 64 * 1024) std::string().swap(pending_in_);
    CheckFrameProgress(partial, progressed);
  }
  in_read_ = false;
  if (flush_queued_) Flush();
}

size_t TcpSession::HandleFrames(const uint8_t* data, size_t len, bool* partial, bool* progressed) {
  const net::FrameLimits& limits = server_->limits();
  const int64_t now = RateClock();
  size_t pos = 0;
  while (!closing_ && pos < len) {
    if (MustPause()) {
      // Backpressure: the kernel's socket buffer now pushes back on the client.
      PauseReading();
      break;
    }
    DecodedFrame f;
    FrameError err = net::DecodeFrame(data + pos, len - pos, limits, &f);  // rejects a bad head early
    if (err == FrameError::kNeedMore) {
      *partial = true;
      break;
    }
    if (err != FrameError::kOk) {
      server_->OnSessionError(this, net::FrameErrorName(err), /*flush=*/true);
      break;
    }
    Request(f.command, f.body, now);
    pos += f.frame_size;
    *progressed = true;
  }
  return pos;
}

bool TcpSession::MustPause() {
  if (order_.inflight() >= server_->protocol().max_inflight) return true;  // handlers must catch up
  if (pending_output() <= server_->output_high_water()) return false;
  // The replies of this read normally wait for its end to leave in one send;
  // send them now, and pause only if the socket does not take them.
  Flush();
  return !closing_ && pending_output() > server_->output_high_water();
}

void TcpSession::PauseReading() {
  if (read_paused_) return;
  read_paused_ = true;
  event_del(read_ev_);
}

void TcpSession::MaybeResumeReading() {
  if (!read_paused_ || closing_ || order_.inflight() >= server_->protocol().max_inflight) return;
  // Paused for output: wait until the socket has taken it down to the low-water
  // mark (OnWrite tells). Output that is not waiting on a full socket leaves
  // at the end of this turn anyway.
  if (write_armed_ && pending_output() > server_->output_low_water()) return;
  read_paused_ = false;
  event_add(read_ev_, server_->idle_timeout());
  ReadFrames();  // frames may already be buffered
}

void TcpSession::CheckFrameProgress(bool partial, bool progressed) {
  // The idle timer only sees silence; a slowloris client that trickles a
  // byte now and then never goes silent. So a frame, too, must arrive whole
  // within idle_timeout_s of the read that left it incomplete. Checked on
  // reads only: a client that stops sending altogether hits the idle timer.
  const uint32_t limit_s = server_->protocol().idle_timeout_s;
  if (!partial || limit_s == 0) {
    partial_since_us_ = 0;
    return;
  }
  const int64_t now = EventLoop::NowMicros();
  if (progressed || partial_since_us_ == 0) {
    partial_since_us_ = now;
    return;
  }
  if (now - partial_since_us_ > int64_t{limit_s} * 1000000) server_->OnSessionError(this, "slow_frame");
}

void TcpSession::WriteFrame(uint32_t command, std::string_view body) {
  if (closing_) return;
  uint8_t hdr[kHeaderSize];
  server_->EncodeHeader(command, body.size(), hdr);
  evbuffer* out = bufferevent_get_output(bev_);
  if (body.size() <= 512) {
    // One copy into one chain: cheaper than two adds for small frames.
    uint8_t buf[kHeaderSize + 512];
    memcpy(buf, hdr, kHeaderSize);
    memcpy(buf + kHeaderSize, body.data(), body.size());
    evbuffer_add(out, buf, kHeaderSize + body.size());
  } else {
    evbuffer_add(out, hdr, kHeaderSize);
    evbuffer_add(out, body.data(), body.size());
  }
  CheckOutputCap();
}

void TcpSession::WriteEncoded(std::string_view frame) {
  if (closing_) return;
  evbuffer_add(bufferevent_get_output(bev_), frame.data(), frame.size());
  CheckOutputCap();
}

void TcpSession::CheckOutputCap() {
  if (pending_output() > server_->protocol().max_output_bytes) server_->OnSessionError(this, "slow_consumer");
  else QueueFlush();
  server_->CheckOutputBudget();
}

void TcpSession::QueueFlush() {
  if (flush_queued_ || closing_) return;
  flush_queued_ = true;
  if (!in_read_) server_->QueueFlush(id_);  // else ReadFrames flushes when it ends
}

void TcpSession::Flush() {
  flush_queued_ = false;
  if (closing_ || write_armed_) return;  // the bufferevent owns the rest
  evbuffer* out = bufferevent_get_output(bev_);
  if (evbuffer_get_length(out) == 0) return;
  evbuffer_iovec chunks[16];
  int n = evbuffer_peek(out, -1, nullptr, chunks, 16);
  iovec iov[16];
  for (int i = 0; i < n && i < 16; ++i) iov[i] = {chunks[i].iov_base, chunks[i].iov_len};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(n < 16 ? n : 16);
  ssize_t w = sendmsg(bufferevent_getfd(bev_), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w > 0) {
    DrainOutput(out, static_cast<size_t>(w));
  } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Close("socket_error");
  if (evbuffer_get_length(out) > 0) {
    // The socket is full: let the bufferevent write the rest when it drains
    // (OnWrite disarms it again).
    write_armed_ = true;
    bufferevent_enable(bev_, EV_WRITE);
  }
}

void TcpSession::Close(const char* reason, bool flush) {
  if (closing_) return;
  closing_ = true;
  close_reason_ = reason;
  order_.Clear();
  event_del(read_ev_);
  if (flush && pending_output() > 0) {
    // Finish sending (a kick message, say), but never wait long for it.
    static const timeval kFlushTimeout = {5, 0};
    bufferevent_set_timeouts(bev_, nullptr, &kFlushTimeout);
    bufferevent_setwatermark(bev_, EV_WRITE, 0, 0);
    bufferevent_setcb(bev_, nullptr, &TcpSession::OnWrite, &TcpSession::OnEvent, this);
    bufferevent_enable(bev_, EV_WRITE);
    return;
  }
  // Dropped: what it had not taken is garbage now; give the budget back at once.
  evbuffer* out = bufferevent_get_output(bev_);
  DrainOutput(out, evbuffer_get_length(out));
  server_->ScheduleReap(this);
}

void TcpSession::OnWrite(bufferevent*, void* arg) {
  // Called when the output is down to the low-water mark (0 when closing).
  TcpSession* s = static_cast<TcpSession*>(arg);
  s->Guard([s] {
    if (s->closing_) {
      if (s->pending_output() == 0) s->server_->ScheduleReap(s);
      return;
    }
    if (s->pending_output() == 0) {
      s->write_armed_ = false;
      bufferevent_disable(s->bev_, EV_WRITE);
    }
    s->MaybeResumeReading();
  });
}

void TcpSession::OnEvent(bufferevent*, short what, void* arg) {
  TcpSession* s = static_cast<TcpSession*>(arg);
  s->Guard([s, what] {
    if (s->closing_) {
      s->server_->ScheduleReap(s);  // flush failed or timed out
      return;
    }
    if (what & BEV_EVENT_EOF) s->Close("client_closed");
    else if (what & BEV_EVENT_TIMEOUT) s->server_->OnSessionError(s, "slow_consumer");  // output stalled
    else s->Close("socket_error");
  });
}

}  // namespace lampyr
