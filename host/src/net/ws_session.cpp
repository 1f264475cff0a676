#include "net/ws_session.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/event_loop.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/frame_codec.h"
#include "net/net_server.h"
#include "net/ws_handshake.h"
#include "net/ws_message.h"

namespace lampyr {

namespace {

// The upgrade request must be complete this soon after accept, however the
// bytes trickle in: a slot held by a half-sent request is a slot lost.
constexpr int64_t kHandshakeDeadlineUs = 10 * 1000000;
const timeval kHandshakeTimeout = {10, 0};
const timeval kCloseFlushTimeout = {5, 0};

Counter* WsCloseCounter(uint16_t code) {
  return Metrics().GetCounter("lampyr_ws_closes_total", "WebSocket sessions closed by the server, by RFC 6455 code",
                              "code=\"" + std::to_string(code) + "\"");
}

Counter* HandshakeCounter(const std::string& result) {
  return Metrics().GetCounter("lampyr_ws_handshakes_total", "WebSocket upgrade requests, by result",
                              "result=\"" + result + "\"");
}

}  // namespace

WsSession::WsSession(NetServer* server, SessionId id, bufferevent* bev, std::string peer, net::AddressKey address,
                     bool tls)
    : Session(server, id, std::move(peer), address), bev_(bev), accepted_us_(EventLoop::NowMicros()), tls_(tls) {
  opened_ = false;  // plugins hear of it once the upgrade is done
  bufferevent_setcb(bev_, &WsSession::OnRead, &WsSession::OnWrite, &WsSession::OnEvent, this);
  // While reading is paused for output, OnWrite tells when it is down to the
  // low-water mark.
  bufferevent_setwatermark(bev_, EV_WRITE, server_->output_low_water(), 0);
  output_cb_ = evbuffer_add_cb(bufferevent_get_output(bev_), &WsSession::OnOutputChanged, this);
  if (tls_) {
    bufferevent_set_timeouts(bev_, &kHandshakeTimeout, server_->idle_timeout());
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
    return;
  }
  // Plain ws: the bufferevent only writes, and only while the socket is full
  // (see Flush); reading is our own event, as in TcpSession.
  bufferevent_set_timeouts(bev_, nullptr, server_->idle_timeout());
  bufferevent_disable(bev_, EV_READ | EV_WRITE);  // a new bufferevent has EV_WRITE on
  read_ev_ = event_new(server_->loop_base(), bufferevent_getfd(bev_), EV_READ | EV_PERSIST, &WsSession::OnReadable,
                       this);
  event_add(read_ev_, &kHandshakeTimeout);
}

WsSession::~WsSession() {
  evbuffer* out = bufferevent_get_output(bev_);
  evbuffer_remove_cb_entry(out, output_cb_);
  server_->AccountOutput(0, evbuffer_get_length(out));
  if (ws_) wslay_event_context_free(ws_);
  if (read_ev_) event_free(read_ev_);
  bufferevent_free(bev_);
}

size_t WsSession::pending_output() const { return evbuffer_get_length(bufferevent_get_output(bev_)); }

template <typename F>
void WsSession::Guard(F&& f) {
  bool done = false;
  Guarded("ws session", [&] {
    f();
    done = true;
  });
  if (!done) {
    in_read_ = false;
    Close("internal_error");
  }
}

void WsSession::OnOutputChanged(evbuffer*, const evbuffer_cb_info* info, void* arg) {
  static_cast<WsSession*>(arg)->server_->AccountOutput(info->n_added, info->n_deleted);
}

void WsSession::OnRead(bufferevent*, void* arg) {
  auto* s = static_cast<WsSession*>(arg);
  s->Guard([s] {
    if (s->closing_) return;
    if (!s->ws_) s->ReadHandshake();
    else s->ReadMessages();
  });
}

void WsSession::OnReadable(int, short what, void* arg) {
  auto* s = static_cast<WsSession*>(arg);
  s->Guard([s, what] {
    if (s->closing_) return;
    if (what & EV_TIMEOUT) s->server_->OnSessionError(s, s->ws_ ? "idle" : "ws_handshake_timeout");
    else s->ReadSocket();
  });
}

void WsSession::ReadSocket() {
  char* buf = reinterpret_cast<char*>(server_->read_buffer());
  ssize_t n = recv(bufferevent_getfd(bev_), buf, NetServer::kReadBufferSize, 0);
  if (n == 0) return Close("client_closed");
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    return Close("socket_error");
  }
  if (!ws_) {
    pending_in_.append(buf, static_cast<size_t>(n));  // bounded: ReadHandshake answers 431 past 8 KiB
    return ReadHandshake();
  }
  if (!pending_in_.empty()) {
    pending_in_.append(buf, static_cast<size_t>(n));
    return FeedPending();
  }
  // The common case: wslay reads straight from the scratch buffer.
  Feed(buf, static_cast<size_t>(n));
  if (!closing_ && rx_pos_ < static_cast<size_t>(n)) pending_in_.assign(buf + rx_pos_, static_cast<size_t>(n) - rx_pos_);
}

void WsSession::Feed(const char* data, size_t len) {
  rx_data_ = data;
  rx_len_ = len;
  rx_pos_ = 0;
  ReadMessages();
  rx_data_ = nullptr;
  rx_len_ = 0;
}

void WsSession::FeedPending() {
  Feed(pending_in_.data(), pending_in_.size());
  if (closing_) return;
  pending_in_.erase(0, rx_pos_);
  if (pending_in_.empty() && pending_in_.capacity() > 64 * 1024) std::string().swap(pending_in_);
}

void WsSession::PauseReading() {
  if (read_paused_) return;
  read_paused_ = true;
  if (tls_) bufferevent_disable(bev_, EV_READ);
  else event_del(read_ev_);
}

void WsSession::ReadHandshake() {
  evbuffer* in = tls_ ? bufferevent_get_input(bev_) : nullptr;
  const size_t have = in ? evbuffer_get_length(in) : pending_in_.size();
  const size_t look = std::min(have, net::kWsMaxRequestBytes);
  const char* bytes = in ? reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ev_ssize_t>(look)))
                         : pending_in_.data();
  const size_t len = net::WsRequestLength(std::string_view(bytes, look));
  net::WsUpgrade answer;
  if (len == 0) {
    if (have >= net::kWsMaxRequestBytes) {
      answer.status = 431;
      answer.error = "too_large";
      answer.response = net::WsRefusal(431);
    } else if (EventLoop::NowMicros() - accepted_us_ > kHandshakeDeadlineUs) {
      HandshakeCounter("timeout")->Inc();
      return server_->OnSessionError(this, "ws_handshake_timeout");
    } else {
      return;  // wait for the rest
    }
  } else {
    answer = net::AnswerUpgrade(std::string_view(bytes, len), server_->ws_policy());
    // What follows is already WebSocket.
    if (in) evbuffer_drain(in, len);
    else pending_in_.erase(0, len);
  }
  bufferevent_write(bev_, answer.response.data(), answer.response.size());
  QueueFlush();
  if (answer.status != 101) {
    HandshakeCounter(answer.error)->Inc();
    LOG_WARN("net", "session %llu (%s): WebSocket upgrade refused: %d %s", static_cast<unsigned long long>(id_),
             peer_.c_str(), answer.status, answer.error.c_str());
    return Close("ws_handshake", /*flush=*/true);
  }
  HandshakeCounter("ok")->Inc();
  static const wslay_event_callbacks kCallbacks = {
      &WsSession::WsRecv, &WsSession::WsSend, nullptr, nullptr, nullptr, nullptr, &WsSession::WsOnMessage};
  if (wslay_event_context_server_init(&ws_, &kCallbacks, this) != 0) {
    ws_ = nullptr;
    return Close("internal_error");
  }
  // A message may hold one frame: header + max_body. Longer ones are closed
  // by wslay with 1009 before they are buffered.
  wslay_event_config_set_max_recv_msg_length(ws_, net::kHeaderSize + uint64_t{server_->protocol().max_body});
  if (tls_) bufferevent_set_timeouts(bev_, server_->idle_timeout(), server_->idle_timeout());
  else event_add(read_ev_, server_->idle_timeout());  // from now on the idle timer
  opened_ = true;
  server_->OnSessionOpened(this);
  if (closing_) return;
  if (in && evbuffer_get_length(in) > 0) ReadMessages();
  if (!in && !pending_in_.empty()) FeedPending();
}

ssize_t WsSession::WsRecv(wslay_event_context_ptr ctx, uint8_t* buf, size_t len, int, void* user) {
  auto* s = static_cast<WsSession*>(user);
  if (s->closing_ || s->MustPause()) {
    // Backpressure: what is not read stays in the kernel's socket buffer.
    if (!s->closing_) s->PauseReading();
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  int n = 0;
  if (s->tls_) {
    n = evbuffer_remove(bufferevent_get_input(s->bev_), buf, len);
  } else {
    n = static_cast<int>(std::min(len, s->rx_len_ - s->rx_pos_));
    if (n > 0) memcpy(buf, s->rx_data_ + s->rx_pos_, static_cast<size_t>(n));
    s->rx_pos_ += static_cast<size_t>(n);
  }
  if (n <= 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  return n;
}

ssize_t WsSession::WsSend(wslay_event_context_ptr ctx, const uint8_t* data, size_t len, int, void* user) {
  auto* s = static_cast<WsSession*>(user);
  // The output buffer takes everything; its size is bounded by the output
  // cap (CheckOutputCap), not here.
  if (bufferevent_write(s->bev_, data, len) != 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  s->QueueFlush();
  return static_cast<ssize_t>(len);
}

void WsSession::WsOnMessage(wslay_event_context_ptr, const wslay_event_on_msg_recv_arg* arg, void* user) {
  auto* s = static_cast<WsSession*>(user);
  s->got_message_ = true;
  s->OnMessage(arg->opcode, arg->msg, arg->msg_length);
}

void WsSession::ReadMessages() {
  if (in_read_ || closing_) return;
  in_read_ = true;
  got_message_ = false;
  int rv = wslay_event_recv(ws_);
  in_read_ = false;
  if (closing_) return FinishClose();
  if (rv != 0) return server_->OnSessionError(this, "ws_error");
  SendQueued();  // replies of this read, pongs, close answers
  if (closing_) return;
  if (flush_queued_) Flush();  // every reply of this read in one send
  if (!wslay_event_want_read(ws_)) {
    // wslay stops reading when the client closed, or when it refused a
    // frame (a protocol error, an oversized message) and queued the close.
    if (wslay_event_get_close_received(ws_)) return Close("client_closed", /*flush=*/true);
    close_queued_ = true;
    uint16_t code = wslay_event_get_status_code_sent(ws_);
    WsCloseCounter(code)->Inc();
    return server_->OnSessionError(this, code == WSLAY_CODE_MESSAGE_TOO_BIG ? "too_large" : "ws_protocol_error",
                                   /*flush=*/true);
  }
  CheckMessageProgress(EventLoop::NowMicros());
  CheckOutputCap();
}

void WsSession::CheckMessageProgress(int64_t now) {
  // The TCP session's slow_frame rule for messages: bytes that keep coming
  // without completing a message for idle_timeout_s are a slowloris, which
  // the idle timer (reset by every read) would never catch. Approximate: the
  // clock starts at the first read after a completed message.
  const uint32_t limit_s = server_->protocol().idle_timeout_s;
  if (limit_s == 0 || got_message_ || partial_since_us_ == 0) {
    partial_since_us_ = now;
    return;
  }
  if (now - partial_since_us_ > int64_t{limit_s} * 1000000) Fail(1008, "slow_frame");
}

void WsSession::OnMessage(uint8_t opcode, const uint8_t* data, size_t len) {
  if (closing_) return;
  if (opcode != WSLAY_TEXT_FRAME && opcode != WSLAY_BINARY_FRAME) return;  // ping, pong, close: wslay answers
  net::DecodedFrame f;
  net::WsVerdict v = net::ClassifyWsMessage(opcode, data, len, server_->limits(), &f);
  if (v.close_code == 0) return Request(f.command, f.body, RateClock());
  Fail(v.close_code, v.reason);
}

void WsSession::WriteFrame(uint32_t command, std::string_view body) {
  if (closing_ || !ws_) return;
  frame_.clear();
  server_->AppendFrameTo(command, body, &frame_);
  QueueMessage(frame_);
  // A large reply must not keep a large scratch buffer for the session's life.
  if (frame_.capacity() > 64 * 1024) std::string().swap(frame_);
}

void WsSession::WriteEncoded(std::string_view frame) {
  if (closing_ || !ws_) return;
  QueueMessage(frame);
}

void WsSession::QueueMessage(std::string_view frame) {
  wslay_event_msg msg{WSLAY_BINARY_FRAME, reinterpret_cast<const uint8_t*>(frame.data()), frame.size()};
  if (wslay_event_queue_msg(ws_, &msg) != 0) return server_->OnSessionError(this, "ws_error");
  // Inside a read, replies wait for its end and leave together.
  if (!in_read_) SendQueued();
  CheckOutputCap();
}

void WsSession::QueueFlush() {
  if (tls_ || flush_queued_ || closing_) return;
  flush_queued_ = true;
  if (!in_read_) server_->QueueFlush(id_);  // else ReadMessages flushes when it ends
}

void WsSession::Flush() {
  flush_queued_ = false;
  if (tls_ || closing_ || write_armed_) return;  // the bufferevent owns the rest
  evbuffer* out = bufferevent_get_output(bev_);
  if (evbuffer_get_length(out) == 0) return;
  // The bufferevent freezes the start of its output (only it may drain);
  // libevent's own writer lifts the freeze the same way.
  evbuffer_unfreeze(out, 1);
  int n = evbuffer_write(out, bufferevent_getfd(bev_));
  evbuffer_freeze(out, 1);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Close("socket_error");
  if (evbuffer_get_length(out) > 0) {
    write_armed_ = true;  // the socket is full: OnWrite tells when it drained
    bufferevent_enable(bev_, EV_WRITE);
  }
}

void WsSession::SendQueued() {
  if (!ws_ || !wslay_event_want_write(ws_)) return;
  if (wslay_event_send(ws_) != 0 && !closing_) server_->OnSessionError(this, "ws_error");
}

void WsSession::CheckOutputCap() {
  if (closing_) return;
  if (pending_output() > server_->protocol().max_output_bytes) server_->OnSessionError(this, "slow_consumer");
  server_->CheckOutputBudget();
}

bool WsSession::MustPause() const {
  return order_.inflight() >= server_->protocol().max_inflight || pending_output() > server_->output_high_water();
}

void WsSession::MaybeResumeReading() {
  if (!read_paused_ || closing_ || in_read_) return;
  if (order_.inflight() >= server_->protocol().max_inflight || pending_output() > server_->output_low_water()) return;
  read_paused_ = false;
  // Bytes may already be here.
  if (tls_) {
    bufferevent_enable(bev_, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(bev_)) > 0) ReadMessages();
  } else {
    event_add(read_ev_, server_->idle_timeout());
    if (!pending_in_.empty()) FeedPending();
  }
}

void WsSession::Fail(uint16_t code, const char* reason) {
  if (closing_) return;
  WsCloseCounter(code)->Inc();
  QueueClose(code);
  server_->OnSessionError(this, reason, /*flush=*/true);
}

void WsSession::QueueClose(uint16_t code) {
  if (!ws_ || close_queued_) return;
  close_queued_ = true;
  wslay_event_queue_close(ws_, code, nullptr, 0);
}

uint16_t WsSession::CloseCodeFor(const char* reason) {
  auto is = [reason](const char* r) { return std::strcmp(reason, r) == 0; };
  if (is("client_closed") || is("socket_error")) return 0;
  if (is("kicked")) return 1000;
  if (is("internal_error")) return 1011;
  if (is("too_large")) return 1009;
  if (is("bad_head") || is("bad_version") || is("bad_length")) return 1007;
  return 1008;  // idle, slow_frame, slow_consumer, rate_limited: the server's policy
}

void WsSession::Close(const char* reason, bool flush) {
  if (closing_) return;
  if (flush && ws_ && !close_queued_) {
    if (uint16_t code = CloseCodeFor(reason)) {
      WsCloseCounter(code)->Inc();
      QueueClose(code);
    }
  }
  closing_ = true;
  close_reason_ = reason;
  close_flush_ = flush;
  order_.Clear();
  bufferevent_disable(bev_, EV_READ);
  if (read_ev_) event_del(read_ev_);
  if (!in_read_) FinishClose();  // else ReadMessages finishes after wslay returns
}

void WsSession::FinishClose() {
  if (close_flush_) {
    SendQueued();
    if (pending_output() > 0) {
      // Deliver the close frame and what was owed before it, never waiting long.
      bufferevent_set_timeouts(bev_, nullptr, &kCloseFlushTimeout);
      bufferevent_setwatermark(bev_, EV_WRITE, 0, 0);
      bufferevent_enable(bev_, EV_WRITE);
      return;
    }
  }
  // Dropped: what the client has not taken is garbage; give the budget back now.
  evbuffer* out = bufferevent_get_output(bev_);
  evbuffer_unfreeze(out, 1);
  evbuffer_drain(out, evbuffer_get_length(out));
  evbuffer_freeze(out, 1);
  server_->ScheduleReap(this);
}

void WsSession::OnWrite(bufferevent*, void* arg) {
  auto* s = static_cast<WsSession*>(arg);
  s->Guard([s] {
    if (s->closing_) {
      if (s->pending_output() == 0) s->server_->ScheduleReap(s);
      return;
    }
    if (!s->tls_ && s->pending_output() == 0) {
      s->write_armed_ = false;
      bufferevent_disable(s->bev_, EV_WRITE);
    }
    s->MaybeResumeReading();
  });
}

void WsSession::OnEvent(bufferevent*, short what, void* arg) {
  auto* s = static_cast<WsSession*>(arg);
  s->Guard([s, what] {
    if (what & BEV_EVENT_CONNECTED) return;  // the TLS handshake is done
    if (s->closing_) {
      s->server_->ScheduleReap(s);  // flush failed or timed out
      return;
    }
    if (what & BEV_EVENT_EOF) s->Close("client_closed");
    else if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING))
      s->server_->OnSessionError(s, s->ws_ ? "idle" : "ws_handshake_timeout");
    else if (what & BEV_EVENT_TIMEOUT) s->server_->OnSessionError(s, "slow_consumer");
    else s->Close("socket_error");
  });
}

}  // namespace lampyr
