#include "lampyr_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "net/frame_codec.h"

namespace lampyr::client {

namespace {

net::FrameLimits LimitsOf(const Options& o) {
  net::FrameLimits l;
  l.head = o.head;
  l.proto_version = o.proto_version;
  l.server_version = o.server_version;
  l.max_body = o.max_body;
  return l;
}

std::string Errno(const char* what) { return std::string(what) + ": " + strerror(errno); }

bool IsDisconnect(int err) { return err == ECONNRESET || err == EPIPE || err == ENOTCONN; }

}  // namespace

Client::Client(Options o) : opts_(o) {}

Client::~Client() { Close(); }

int64_t Client::NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Status Client::Connect(const std::string& host, uint16_t port, int timeout_ms) {
  Close();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) return Status::Error("cannot resolve " + host + ": " + gai_strerror(rc));
  const int64_t deadline = NowMs() + timeout_ms;
  std::string last = "no address for " + host;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    // Non-blocking underneath so that every wait is bounded by poll();
    // the public calls still behave as blocking ones.
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = Errno("socket");
      continue;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last = Errno("connect");
      close(fd);
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int left = static_cast<int>(std::max<int64_t>(0, deadline - NowMs()));
    int n;
    do n = poll(&p, 1, left);
    while (n < 0 && errno == EINTR);
    int err = 0;
    socklen_t len = sizeof err;
    if (n == 0) {
      last = "connect: timed out after " + std::to_string(timeout_ms) + " ms";
      close(fd);
      continue;
    }
    if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      if (err) errno = err;
      last = Errno("connect");
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fd_ = fd;
    break;
  }
  freeaddrinfo(res);
  if (fd_ < 0) return Status::Error(host + ":" + service + ": " + last);
  if (opts_.ws) {
    Status s = Upgrade(host + ":" + service, deadline);
    if (!s.ok()) {
      Close();
      return s;
    }
  }
  return Status::OK();
}

Status Client::Upgrade(const std::string& host, int64_t deadline_ms) {
  // The key only has to be valid; the server's answer to it is not checked
  // (this client trusts the server it was pointed at).
  Status s = WriteAll("GET " + opts_.ws_path + " HTTP/1.1\r\nHost: " + host +
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                      "bGFtcHlyLWNsaWVudC0xNg==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  if (!s.ok()) return s;
  std::string head;
  size_t end;
  while ((end = head.find("\r\n\r\n")) == std::string::npos) {
    if (head.size() > 8192) return Status::Error("WebSocket upgrade: no end to the response");
    pollfd p{fd_, POLLIN, 0};
    int left = static_cast<int>(std::max<int64_t>(0, deadline_ms - NowMs()));
    if (poll(&p, 1, left) <= 0) return Status::Error("WebSocket upgrade: timed out");
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n == 0) return Status::Error("WebSocket upgrade: closed by the server");
    if (n < 0 && errno != EAGAIN && errno != EINTR) return Status::Error(Errno("recv"));
    if (n > 0) head.append(buf, static_cast<size_t>(n));
  }
  if (head.compare(0, 13, "HTTP/1.1 101 ") != 0)
    return Status::Error("WebSocket upgrade refused: " + head.substr(0, head.find("\r\n")));
  static const wslay_frame_callbacks kTx = {&Client::WsSend, nullptr, &Client::WsMask};
  static const wslay_frame_callbacks kRx = {nullptr, &Client::WsRecv, nullptr};
  if (wslay_frame_context_init(&ws_tx_, &kTx, this) != 0 || wslay_frame_context_init(&ws_rx_, &kRx, this) != 0)
    return Status::Error("WebSocket: out of memory");
  ws_in_ = head.substr(end + 4);
  UnwrapMessages();
  return Status::OK();
}

ssize_t Client::WsSend(const uint8_t* data, size_t len, int, void* user) {
  static_cast<Client*>(user)->ws_out_->append(reinterpret_cast<const char*>(data), len);
  return static_cast<ssize_t>(len);
}

ssize_t Client::WsRecv(uint8_t* buf, size_t len, int, void* user) {
  auto* c = static_cast<Client*>(user);
  size_t n = std::min(len, c->ws_in_.size() - c->ws_pos_);
  if (n == 0) return WSLAY_ERR_WANT_READ;
  memcpy(buf, c->ws_in_.data() + c->ws_pos_, n);
  c->ws_pos_ += n;
  return static_cast<ssize_t>(n);
}

int Client::WsMask(uint8_t* buf, size_t len, void* user) {
  auto* c = static_cast<Client*>(user);
  for (size_t i = 0; i < len; ++i) {
    c->mask_seed_ = c->mask_seed_ * 1664525u + 1013904223u;
    buf[i] = static_cast<uint8_t>(c->mask_seed_ >> 24);
  }
  return 0;
}

void Client::UnwrapMessages() {
  for (;;) {
    wslay_frame_iocb io{};
    ssize_t r = wslay_frame_recv(ws_rx_, &io);
    if (r == WSLAY_ERR_WANT_READ) break;
    if (r < 0) {
      broken_ = Status::Error("bad WebSocket frame from server");
      break;
    }
    ws_msg_.append(reinterpret_cast<const char*>(io.data), io.data_length);
    if (ws_msg_.size() < io.payload_length) continue;  // the rest of this frame comes next
    if (io.opcode == WSLAY_CONNECTION_CLOSE) {
      uint16_t code = ws_msg_.size() >= 2 ? static_cast<uint16_t>((uint8_t(ws_msg_[0]) << 8) | uint8_t(ws_msg_[1])) : 0;
      broken_ = Status::Error("closed by the server (WebSocket code " + std::to_string(code) + ")");
      peer_closed_ = true;
    } else if (io.opcode == WSLAY_BINARY_FRAME || io.opcode == WSLAY_CONTINUATION_FRAME) {
      if (!io.fin) continue;  // a fragmented message goes on (the server sends none)
      in_ += ws_msg_;        // one message, one frame: the frames in order are the stream
    }
    ws_msg_.clear();  // pings and pongs carry no frame
  }
  ws_in_.erase(0, ws_pos_);
  ws_pos_ = 0;
}

void Client::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (ws_rx_) wslay_frame_context_free(ws_rx_);
  if (ws_tx_) wslay_frame_context_free(ws_tx_);
  ws_rx_ = ws_tx_ = nullptr;
  ws_in_.clear();
  ws_msg_.clear();
  ws_pos_ = 0;
  peer_closed_ = false;
  broken_ = Status::OK();
  in_.clear();
  queued_.clear();
}

Status Client::Send(uint32_t command, std::string_view body) {
  std::string frame;
  net::AppendFrame(LimitsOf(opts_), command, body, &frame);
  return SendRaw(frame);
}

Status Client::SendRaw(std::string_view bytes) {
  if (fd_ < 0) return Status::Error("not connected");
  if (!ws_tx_) return WriteAll(bytes);
  std::string message;
  wslay_frame_iocb io{};
  io.fin = 1;
  io.opcode = WSLAY_BINARY_FRAME;
  io.mask = 1;
  io.payload_length = bytes.size();
  io.data = reinterpret_cast<const uint8_t*>(bytes.data());
  io.data_length = bytes.size();
  ws_out_ = &message;
  if (wslay_frame_send(ws_tx_, &io) < 0 && !bytes.empty()) return Status::Error("WebSocket: cannot encode");
  return WriteAll(message);
}

Status Client::WriteAll(std::string_view bytes) {
  const int64_t deadline = NowMs() + opts_.send_timeout_ms;
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int64_t left = deadline - NowMs();
      if (left <= 0) return Status::Error("send: timed out (the server is not reading)");
      pollfd p{fd_, POLLOUT, 0};
      poll(&p, 1, static_cast<int>(left));
      continue;
    }
    if (n < 0 && IsDisconnect(errno)) peer_closed_ = true;
    return Status::Error(Errno("send"));
  }
  return Status::OK();
}

void Client::DecodeBuffered() {
  if (!broken_.ok()) {
    in_.clear();  // the stream cannot be re-synchronised; drop what follows
    return;
  }
  const net::FrameLimits limits = LimitsOf(opts_);
  size_t off = 0;
  while (off < in_.size()) {
    net::DecodedFrame f;
    net::FrameError e =
        net::DecodeFrame(reinterpret_cast<const uint8_t*>(in_.data()) + off, in_.size() - off, limits, &f);
    if (e == net::FrameError::kNeedMore) break;
    if (e != net::FrameError::kOk) {
      broken_ = Status::Error(std::string("bad frame from server: ") + net::FrameErrorName(e));
      in_.clear();
      return;
    }
    queued_.push_back(Frame{f.command, std::string(f.body)});
    off += f.frame_size;
  }
  in_.erase(0, off);
}

Status Client::Fill(int64_t deadline_ms) {
  if (fd_ < 0) return Status::Error("not connected");
  if (peer_closed_) return Status::Error("connection closed by server");
  for (;;) {
    char buf[64 * 1024];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      if (ws_rx_) {
        ws_in_.append(buf, static_cast<size_t>(n));
        UnwrapMessages();
      } else {
        in_.append(buf, static_cast<size_t>(n));
      }
      DecodeBuffered();
      return Status::OK();
    }
    if (n == 0) {
      peer_closed_ = true;
      return Status::Error("connection closed by server");
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      if (IsDisconnect(errno)) peer_closed_ = true;
      return Status::Error(Errno("recv"));
    }
    int64_t left = deadline_ms - NowMs();
    if (left <= 0) return Status::Error("timed out waiting for data from the server");
    pollfd p{fd_, POLLIN, 0};
    poll(&p, 1, static_cast<int>(left));
  }
}

Status Client::Receive(Frame* out, int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  while (queued_.empty()) {
    if (!broken_.ok()) return broken_;
    Status s = Fill(deadline);
    if (!s.ok() && queued_.empty()) return s;
  }
  *out = std::move(queued_.front());
  queued_.pop_front();
  return Status::OK();
}

Status Client::Call(uint32_t command, std::string_view body, Frame* reply, int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  size_t scanned = queued_.size();  // frames queued before the request cannot answer it
  Status s = Send(command, body);
  if (!s.ok()) return s;
  for (;;) {
    for (size_t i = scanned; i < queued_.size(); ++i) {
      if (queued_[i].command == command || queued_[i].command == opts_.error_command) {
        *reply = std::move(queued_[i]);
        queued_.erase(queued_.begin() + static_cast<std::ptrdiff_t>(i));
        return Status::OK();
      }
    }
    scanned = queued_.size();
    if (!broken_.ok()) return broken_;
    s = Fill(deadline);
    if (!s.ok() && queued_.size() == scanned) return s;
  }
}

bool Client::WaitClosed(int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  while (!peer_closed_) {
    if (fd_ < 0) return false;
    Status s = Fill(deadline);
    if (!s.ok() && !peer_closed_) return false;  // timed out or a local error
  }
  return true;
}

}  // namespace lampyr::client
