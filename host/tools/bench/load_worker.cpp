#include "load_worker.h"

#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/frame_codec.h"

namespace lampyr::bench {

namespace {

constexpr int kMaxConnecting = 256;  // connects in progress at once: a burst of
                                     // 10k SYNs overflows the listen backlog and
                                     // costs 1 s SYN retries
constexpr size_t kSeqOffset = net::kHeaderSize;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace

LoadWorker::LoadWorker(const LoadOptions& opts, const std::atomic<int>* phase)
    : opts_(opts), phase_(phase), conns_(static_cast<size_t>(opts.connections)) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  // The request template: body bytes 'a'..'z', the first 8 replaced by the
  // sequence number on each send.
  std::string body(opts_.body_bytes, 'x');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  net::FrameLimits limits;
  net::AppendFrame(limits, opts_.command, body, &request_);
  read_buf_.resize(std::max<size_t>(256 * 1024, 2 * request_.size()));
  for (Conn& c : conns_) c.sent_ns.resize(static_cast<size_t>(opts_.depth));
  if (!opts_.ws_request.empty()) {
    static const wslay_frame_callbacks kTx = {&LoadWorker::WsSend, nullptr, &LoadWorker::WsMask};
    static const wslay_frame_callbacks kRx = {nullptr, &LoadWorker::WsRecv, nullptr};
    wslay_frame_context_init(&tx_, &kTx, this);
    for (Conn& c : conns_) wslay_frame_context_init(&c.rx, &kRx, &c);
  }
  if (opts_.tls) {
    // A load generator against one's own server: the certificate is not
    // checked (a test server's is self-signed); the cipher work is the point.
    tls_ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(tls_ctx_, SSL_VERIFY_NONE, nullptr);
  }
}

LoadWorker::~LoadWorker() {
  for (Conn& c : conns_) {
    if (c.fd >= 0) close(c.fd);
    if (c.rx) wslay_frame_context_free(c.rx);
    if (c.ssl) SSL_free(c.ssl);
  }
  if (tx_) wslay_frame_context_free(tx_);
  if (tls_ctx_) SSL_CTX_free(tls_ctx_);
  if (epfd_ >= 0) close(epfd_);
}

ssize_t LoadWorker::WsSend(const uint8_t* data, size_t len, int, void* user) {
  static_cast<LoadWorker*>(user)->tx_out_->append(reinterpret_cast<const char*>(data), len);
  return static_cast<ssize_t>(len);
}

ssize_t LoadWorker::WsRecv(uint8_t* buf, size_t len, int, void* user) {
  Conn* c = static_cast<Conn*>(user);
  size_t n = std::min(len, c->rx_in.size() - c->rx_pos);
  if (n == 0) return WSLAY_ERR_WANT_READ;
  memcpy(buf, c->rx_in.data() + c->rx_pos, n);
  c->rx_pos += n;
  return static_cast<ssize_t>(n);
}

int LoadWorker::WsMask(uint8_t* buf, size_t len, void* user) {
  // Masking only has to be unpredictable to proxies, not to this benchmark.
  auto* w = static_cast<LoadWorker*>(user);
  for (size_t i = 0; i < len; ++i) {
    w->mask_ = w->mask_ * 1664525u + 1013904223u;
    buf[i] = static_cast<uint8_t>(w->mask_ >> 24);
  }
  return 0;
}

void LoadWorker::Run(std::atomic<int>* ready, std::atomic<int>* answered) {
  answered_ = answered;
  size_t next_open = 0;
  bool signalled = false;
  epoll_event evs[256];
  while (phase_->load(std::memory_order_relaxed) != static_cast<int>(Phase::kStop)) {
    while (next_open < conns_.size() && pending_connects_ < kMaxConnecting) Open(&conns_[next_open++]);
    if (!signalled && next_open == conns_.size() && pending_connects_ == 0) {
      signalled = true;
      ready->fetch_add(1);
    }
    int n = epoll_wait(epfd_, evs, 256, 20);
    if (n <= 0) continue;
    const int64_t now = NowNs();  // one clock read per wake-up is precise enough
    for (int i = 0; i < n; ++i) {
      Conn* c = &conns_[evs[i].data.u32];
      if (c->fd < 0) continue;
      const uint32_t ev = evs[i].events;
      if (!c->connected) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
          int err = 0;
          socklen_t len = sizeof err;
          getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) Fail(c, std::string("connect: ") + strerror(err));
          else OnConnected(c);
        }
        continue;
      }
      if (c->ssl && !c->tls_ready) {
        ContinueTlsHandshake(c);
        continue;
      }
      if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) OnReadable(c, now);
      if (c->fd >= 0 && (ev & EPOLLOUT) && c->want_write) {
        SetWantWrite(c, false);
        Flush(c);
      }
    }
  }
  for (const Conn& c : conns_)
    if (c.correct == 0) ++stats_.silent_connections;
}

void LoadWorker::Open(Conn* c) {
  c->fd = socket(opts_.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    ++stats_.errors;
    if (stats_.first_error.empty()) stats_.first_error = std::string("socket: ") + strerror(errno);
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u32 = static_cast<uint32_t>(c - conns_.data());
  epoll_ctl(epfd_, EPOLL_CTL_ADD, c->fd, &ev);
  c->want_write = true;
  ++pending_connects_;
  if (connect(c->fd, reinterpret_cast<const sockaddr*>(&opts_.addr), opts_.addr_len) == 0) OnConnected(c);
  else if (errno != EINPROGRESS) Fail(c, std::string("connect: ") + strerror(errno));
}

void LoadWorker::OnConnected(Conn* c) {
  c->connected = true;
  SetWantWrite(c, false);
  if (tls_ctx_ && !c->ssl) {
    c->ssl = SSL_new(tls_ctx_);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_connect_state(c->ssl);
    return ContinueTlsHandshake(c);  // comes back here when it is done
  }
  --pending_connects_;  // connected, and for wss past the TLS handshake
  if (!opts_.ws_request.empty()) {
    c->out = opts_.ws_request;  // requests follow the server's 101
    Flush(c);
    return;
  }
  SendRequests(c, opts_.one_shot ? 1 : opts_.depth, NowNs());
}

void LoadWorker::AppendRequest(Conn* c) {
  if (opts_.body_bytes >= 8) memcpy(&request_[kSeqOffset], &c->next_seq, 8);
  ++c->next_seq;
  if (!tx_) {
    c->out.append(request_);
    return;
  }
  wslay_frame_iocb io{};
  io.fin = 1;
  io.opcode = WSLAY_BINARY_FRAME;
  io.mask = 1;
  io.payload_length = request_.size();
  io.data = reinterpret_cast<const uint8_t*>(request_.data());
  io.data_length = request_.size();
  tx_out_ = &c->out;
  wslay_frame_send(tx_, &io);  // WsSend takes everything: one call, one whole frame
}

void LoadWorker::SendRequests(Conn* c, int n, int64_t now) {
  const uint32_t depth = static_cast<uint32_t>(opts_.depth);
  for (int i = 0; i < n; ++i) {
    AppendRequest(c);
    c->sent_ns[(c->ring_head + c->in_flight) % depth] = now;
    ++c->in_flight;
  }
  if (!c->want_write) Flush(c);  // else EPOLLOUT flushes it
}

void LoadWorker::Flush(Conn* c) {
  if (c->out.empty()) return;
  ssize_t n = SendBytes(c, c->out.data(), c->out.size());
  if (n <= 0) return;  // waits for EPOLLOUT, or failed
  if (static_cast<size_t>(n) == c->out.size()) {
    c->out.clear();
  } else {
    c->out.erase(0, static_cast<size_t>(n));
    SetWantWrite(c, true);
  }
}

void LoadWorker::OnReadable(Conn* c, int64_t now) {
  // The leftover partial reply goes first, then what the socket has. The
  // buffer holds two whole frames, so a leftover always leaves room.
  char* buf = read_buf_.data();
  size_t have = c->in.size();
  memcpy(buf, c->in.data(), have);
  c->in.clear();
  ssize_t r = RecvBytes(c, buf + have, read_buf_.size() - have);
  if (r < 0) return;
  if (r == 0) {
    c->in.assign(buf, have);
    return;
  }
  have += static_cast<size_t>(r);
  const bool measuring = phase_->load(std::memory_order_relaxed) == static_cast<int>(Phase::kMeasure);
  int answered = 0;
  if (tx_) {
    answered = ReadWs(c, buf, have, measuring, now);
    if (c->fd < 0) return;
  } else {
    net::FrameLimits limits;
    limits.max_body = 0xFFFFFFF0u;  // an oversized reply is a wrong reply, not a framing error
    size_t pos = 0;
    while (pos < have) {
      net::DecodedFrame f;
      net::FrameError e = net::DecodeFrame(reinterpret_cast<const uint8_t*>(buf + pos), have - pos, limits, &f);
      if (e == net::FrameError::kNeedMore) break;
      if (e != net::FrameError::kOk) return Fail(c, std::string("undecodable reply: ") + net::FrameErrorName(e));
      if (c->in_flight == 0) return Fail(c, "a frame arrived with no request in flight");
      Verify(c, buf + pos, f.frame_size, measuring, now);
      ++answered;
      pos += f.frame_size;
    }
    if (pos < have) c->in.assign(buf + pos, have - pos);
  }
  if (answered == 0) return;
  if (opts_.one_shot) {
    answered_->fetch_add(answered);
    return;
  }
  if (phase_->load(std::memory_order_relaxed) != static_cast<int>(Phase::kStop)) SendRequests(c, answered, now);
}

void LoadWorker::Verify(Conn* c, const char* frame, size_t len, bool measuring, int64_t now) {
  // The echo of a request is that request's exact bytes: header (command,
  // length) and body, including its sequence number.
  bool ok = len == request_.size();
  if (ok && opts_.body_bytes >= 8) {
    ok = memcmp(frame, request_.data(), kSeqOffset) == 0 && memcmp(frame + kSeqOffset, &c->expect_seq, 8) == 0 &&
         memcmp(frame + kSeqOffset + 8, request_.data() + kSeqOffset + 8, request_.size() - kSeqOffset - 8) == 0;
  } else if (ok) {
    ok = memcmp(frame, request_.data(), request_.size()) == 0;
  }
  if (!ok) {
    ++stats_.errors;
    if (stats_.first_error.empty())
      stats_.first_error = "wrong reply: " + std::to_string(len) + " bytes, " + std::to_string(request_.size()) +
                           " expected";
  } else {
    ++c->correct;
    if (measuring) {
      ++stats_.replies;
      int64_t lat = now - c->sent_ns[c->ring_head];
      stats_.latency_ns.push_back(static_cast<uint32_t>(std::min<int64_t>(lat, UINT32_MAX)));
    }
  }
  ++c->expect_seq;
  c->ring_head = (c->ring_head + 1) % static_cast<uint32_t>(opts_.depth);
  --c->in_flight;
}

int LoadWorker::ReadWs(Conn* c, const char* data, size_t len, bool measuring, int64_t now) {
  if (!c->upgraded) {
    c->in.append(data, len);
    size_t end = c->in.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (c->in.size() > 8192) Fail(c, "no end to the upgrade response");
      return 0;
    }
    if (c->in.compare(0, 13, "HTTP/1.1 101 ") != 0) {
      Fail(c, "upgrade refused: " + c->in.substr(0, c->in.find("\r\n")));
      return 0;
    }
    c->rx_in = c->in.substr(end + 4);
    c->in.clear();
    c->upgraded = true;
    SendRequests(c, opts_.one_shot ? 1 : opts_.depth, now);
  } else {
    c->rx_in.append(data, len);
  }
  int answered = 0;
  for (;;) {
    wslay_frame_iocb io{};
    ssize_t r = wslay_frame_recv(c->rx, &io);
    if (r == WSLAY_ERR_WANT_READ) break;
    if (r < 0) {
      Fail(c, "bad WebSocket frame from the server");
      return answered;
    }
    c->msg.append(reinterpret_cast<const char*>(io.data), io.data_length);
    if (c->msg.size() < io.payload_length) continue;  // the rest of this frame comes next
    if (!io.fin || io.opcode != WSLAY_BINARY_FRAME) {
      // The server sends whole binary messages; a close frame says why it ends.
      uint16_t code = c->msg.size() >= 2 ? static_cast<uint16_t>((uint8_t(c->msg[0]) << 8) | uint8_t(c->msg[1])) : 0;
      Fail(c, io.opcode == WSLAY_CONNECTION_CLOSE ? "server closed with code " + std::to_string(code)
                                                  : "unexpected WebSocket frame, opcode " + std::to_string(io.opcode));
      return answered;
    }
    if (c->in_flight == 0) {
      Fail(c, "a message arrived with no request in flight");
      return answered;
    }
    Verify(c, c->msg.data(), c->msg.size(), measuring, now);
    c->msg.clear();
    ++answered;
  }
  c->rx_in.erase(0, c->rx_pos);
  c->rx_pos = 0;
  return answered;
}

ssize_t LoadWorker::SendBytes(Conn* c, const char* data, size_t len) {
  if (!c->ssl) {
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) SetWantWrite(c, true);
    else Fail(c, std::string("send: ") + strerror(errno));
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
  }
  size_t written = 0;
  int r = SSL_write_ex(c->ssl, data, len, &written);
  if (r == 1) return static_cast<ssize_t>(written);
  int err = SSL_get_error(c->ssl, r);
  if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
    SetWantWrite(c, true);  // retried with the same bytes from Flush
    return 0;
  }
  Fail(c, "TLS write failed: " + std::string(ERR_reason_error_string(ERR_get_error()) ?: "connection lost"));
  return -1;
}

ssize_t LoadWorker::RecvBytes(Conn* c, char* buf, size_t len) {
  if (!c->ssl) {
    ssize_t r = recv(c->fd, buf, len, 0);
    if (r > 0) return r;
    if (r == 0) {
      Fail(c, "server closed the connection");
      return -1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    Fail(c, std::string("recv: ") + strerror(errno));
    return -1;
  }
  // One SSL_read returns one TLS record at most, and epoll does not see what
  // OpenSSL already holds: read until it has nothing more or the buffer is full.
  size_t got = 0;
  while (got < len) {
    size_t n = 0;
    int r = SSL_read_ex(c->ssl, buf + got, len - got, &n);
    if (r == 1) {
      got += n;
      continue;
    }
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_WANT_WRITE) {
      SetWantWrite(c, true);
      break;
    }
    if (got > 0) break;  // deliver what came; the error shows on the next read
    Fail(c, err == SSL_ERROR_ZERO_RETURN ? "server closed the connection" : "TLS read failed");
    return -1;
  }
  return static_cast<ssize_t>(got);
}

void LoadWorker::ContinueTlsHandshake(Conn* c) {
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    c->tls_ready = true;
    return OnConnected(c);
  }
  int err = SSL_get_error(c->ssl, r);
  if (err == SSL_ERROR_WANT_READ) return SetWantWrite(c, false);
  if (err == SSL_ERROR_WANT_WRITE) return SetWantWrite(c, true);
  unsigned long e = ERR_get_error();
  Fail(c, "TLS handshake failed: " + std::string(e ? ERR_reason_error_string(e) : "connection closed"));
}

void LoadWorker::SetWantWrite(Conn* c, bool on) {
  if (c->want_write == on) return;
  c->want_write = on;
  epoll_event ev{};
  ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
  ev.data.u32 = static_cast<uint32_t>(c - conns_.data());
  epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd, &ev);
}

void LoadWorker::Fail(Conn* c, const std::string& why) {
  ++stats_.errors;
  if (stats_.first_error.empty()) stats_.first_error = why;
  if (!c->connected || (c->ssl && !c->tls_ready)) --pending_connects_;
  close(c->fd);  // also leaves the epoll set
  c->fd = -1;
}

}  // namespace lampyr::bench
