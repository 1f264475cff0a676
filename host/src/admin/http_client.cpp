#include "admin/http_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace lampyr {

namespace {

using Clock = std::chrono::steady_clock;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// Waits for `events` on fd; false on timeout or poll error.
bool WaitFd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, RemainingMs(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status Connect(const std::string& host, uint16_t port, Clock::time_point deadline, int* out_fd) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string where = host + ":" + std::to_string(port);
  int gai = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (gai != 0) return Status::Error("cannot resolve " + host + ": " + gai_strerror(gai));
  std::string last = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = strerror(errno);
      continue;
    }
    int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS) {
      if (!WaitFd(fd, POLLOUT, deadline)) {
        close(fd);
        last = "connect timed out";
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      r = err == 0 ? 0 : -1;
      errno = err;
    }
    if (r != 0) {
      last = strerror(errno);
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    freeaddrinfo(res);
    *out_fd = fd;
    return Status::OK();
  }
  freeaddrinfo(res);
  return Status::Error("cannot connect to " + where + ": " + last);
}

// Parses the status line and headers of `head` (without the blank line).
Status ParseHead(const std::string& head, HttpResponse* out) {
  size_t eol = head.find("\r\n");
  std::string line = head.substr(0, eol);
  if (line.compare(0, 5, "HTTP/") != 0) return Status::Error("malformed HTTP status line");
  size_t sp = line.find(' ');
  if (sp == std::string::npos || sp + 4 > line.size()) return Status::Error("malformed HTTP status line");
  int code = 0;
  for (size_t i = sp + 1; i < sp + 4; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(line[i]))) return Status::Error("malformed HTTP status code");
    code = code * 10 + (line[i] - '0');
  }
  out->status = code;
  size_t pos = eol == std::string::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) end = head.size();
    std::string h = head.substr(pos, end - pos);
    size_t colon = h.find(':');
    if (colon != std::string::npos) {
      std::string value = h.substr(colon + 1);
      size_t b = value.find_first_not_of(" \t");
      value = b == std::string::npos ? "" : value.substr(b);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
      out->headers.emplace_back(Lower(h.substr(0, colon)), value);
    }
    pos = end + 2;
  }
  return Status::OK();
}

// Decodes a chunked body; false if incomplete or malformed.
bool Dechunk(const std::string& in, std::string* out) {
  size_t pos = 0;
  out->clear();
  for (;;) {
    size_t eol = in.find("\r\n", pos);
    if (eol == std::string::npos) return false;
    size_t n = 0;
    try {
      n = std::stoul(in.substr(pos, eol - pos), nullptr, 16);
    } catch (...) {
      return false;
    }
    pos = eol + 2;
    if (n == 0) return true;
    if (in.size() < pos + n + 2) return false;
    out->append(in, pos, n);
    pos += n + 2;
  }
}

}  // namespace

std::string HttpResponse::Header(const std::string& name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return "";
}

Status ParseHttpUrl(const std::string& text, HttpUrl* out) {
  std::string s = text;
  if (s.compare(0, 7, "http://") == 0) s = s.substr(7);
  else if (s.find("://") != std::string::npos) return Status::Error("only http:// URLs are supported: " + text);
  HttpUrl u;
  size_t slash = s.find('/');
  std::string hostport = s.substr(0, slash);
  if (slash != std::string::npos) {
    u.base_path = s.substr(slash);
    while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
  }
  std::string port_text;
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string::npos) return Status::Error("bad URL (unclosed '['): " + text);
    u.host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') return Status::Error("bad URL: " + text);
      port_text = hostport.substr(close + 2);
    }
  } else {
    size_t colon = hostport.rfind(':');
    u.host = hostport.substr(0, colon);
    if (colon != std::string::npos) port_text = hostport.substr(colon + 1);
  }
  if (u.host.empty()) return Status::Error("bad URL (no host): " + text);
  if (!port_text.empty()) {
    if (port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos)
      return Status::Error("bad URL (port): " + text);
    unsigned long p = std::stoul(port_text);
    if (p == 0 || p > 65535) return Status::Error("bad URL (port 1..65535): " + text);
    u.port = static_cast<uint16_t>(p);
  }
  *out = u;
  return Status::OK();
}

Status HttpCall(const std::string& host, uint16_t port, const std::string& method, const std::string& path,
                const std::string& body, const std::vector<std::pair<std::string, std::string>>& headers,
                HttpResponse* out, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int raw = -1;
  Status st = Connect(host, port, deadline, &raw);
  if (!st.ok()) return st;
  Fd fd(raw);

  std::string req = method + " " + path + " HTTP/1.1\r\n";
  req += "Host: " + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port) +
         "\r\n";
  req += "Connection: close\r\nAccept: application/json, text/plain\r\nUser-Agent: lampyr\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") {
    if (!body.empty()) req += "Content-Type: application/json\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n";
  req += body;

  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = send(fd.get(), req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!WaitFd(fd.get(), POLLOUT, deadline)) return Status::Error("timed out sending the request");
      continue;
    }
    // The server may answer (413, 401) and close before reading everything.
    break;
  }

  std::string in;
  size_t head_end = std::string::npos;
  long long content_length = -1;
  bool chunked = false;
  HttpResponse resp;
  for (;;) {
    if (head_end == std::string::npos) {
      head_end = in.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        st = ParseHead(in.substr(0, head_end), &resp);
        if (!st.ok()) return st;
        std::string cl = resp.Header("content-length");
        if (!cl.empty()) content_length = std::atoll(cl.c_str());
        chunked = Lower(resp.Header("transfer-encoding")).find("chunked") != std::string::npos;
      }
    }
    if (head_end != std::string::npos) {
      const size_t have = in.size() - head_end - 4;
      if (content_length >= 0 && have >= static_cast<size_t>(content_length)) break;
      if (chunked) {
        std::string decoded;
        if (Dechunk(in.substr(head_end + 4), &decoded)) break;
      }
      if (method == "HEAD" || resp.status == 204 || resp.status == 304) break;
    }
    char buf[16384];
    ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      in.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;  // closed: the body ends here
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!WaitFd(fd.get(), POLLIN, deadline))
        return Status::Error("timed out waiting for the answer of " + method + " " + path);
      continue;
    }
    if (!in.empty() && head_end != std::string::npos) break;
    return Status::Error(std::string("connection error: ") + strerror(errno));
  }
  if (head_end == std::string::npos) {
    return Status::Error(in.empty() ? "connection closed without an answer" : "truncated HTTP answer");
  }
  std::string raw_body = in.substr(head_end + 4);
  if (chunked) {
    if (!Dechunk(raw_body, &resp.body)) return Status::Error("truncated chunked HTTP body");
  } else if (content_length >= 0) {
    if (raw_body.size() < static_cast<size_t>(content_length)) return Status::Error("truncated HTTP body");
    resp.body = raw_body.substr(0, static_cast<size_t>(content_length));
  } else {
    resp.body = std::move(raw_body);
  }
  *out = std::move(resp);
  return Status::OK();
}

}  // namespace lampyr
