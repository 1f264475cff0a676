// LoadWorker: one thread driving a share of lampyr-bench's connections with
// its own epoll loop. Each connection keeps `depth` requests in flight: every
// verified reply sends the next request, so the load is closed-loop and the
// server sets the pace. Every reply is checked byte for byte against the
// request it answers (replies come back in request order, docs/protocol.md):
// the request body carries a sequence number when it is at least 8 bytes.
// With `ws_request` set, each connection first upgrades to WebSocket and
// then sends and expects every frame as one binary message (framing by
// wslay's frame API, client frames masked), so TCP and WebSocket are
// measured by the same loop. With `tls` the bytes go through OpenSSL (wss):
// the TLS handshake first, then the same upgrade and messages.
#pragma once

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace lampyr::bench {

enum class Phase : int { kWarmup = 0, kMeasure = 1, kStop = 2 };

struct LoadOptions {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  int connections = 0;      // this worker's share
  int depth = 1;
  uint32_t command = 1;
  uint32_t body_bytes = 32;
  bool one_shot = false;    // --idle: one round trip per connection, then hold it open
  std::string ws_request;   // non-empty: the HTTP upgrade request each connection starts with
  bool tls = false;         // wss: TLS under the WebSocket (the server's certificate is not verified)
};

struct LoadStats {
  uint64_t replies = 0;                // verified replies during the measured phase
  uint64_t errors = 0;                 // wrong replies, failed connects, closed connections
  std::vector<uint32_t> latency_ns;    // one per measured reply
  std::string first_error;             // the first error seen, for the report
  uint64_t silent_connections = 0;     // connections that never got a correct reply
};

class LoadWorker {
 public:
  LoadWorker(const LoadOptions& opts, const std::atomic<int>* phase);
  ~LoadWorker();
  LoadWorker(const LoadWorker&) = delete;
  LoadWorker& operator=(const LoadWorker&) = delete;

  // Runs until the phase is kStop. Sets ready once every connection is
  // established (or failed), and in one-shot mode bumps `answered` once per
  // connection whose single round trip completed.
  void Run(std::atomic<int>* ready, std::atomic<int>* answered);
  // Valid after Run returned.
  LoadStats& stats() { return stats_; }

 private:
  struct Conn {
    int fd = -1;
    bool connected = false;
    bool want_write = false;   // EPOLLOUT armed: output is pending or connect in progress
    uint64_t next_seq = 0;     // carried by the next request sent
    uint64_t expect_seq = 0;   // carried by the next reply expected
    std::string in;            // a partial reply left over from the last read
    std::string out;           // bytes the socket did not take yet
    std::vector<int64_t> sent_ns;  // ring of send times, one per request in flight
    uint32_t ring_head = 0, in_flight = 0;
    uint64_t correct = 0;      // verified replies, any phase
    // WebSocket (LoadOptions::ws_request):
    bool upgraded = false;
    wslay_frame_context_ptr rx = nullptr;  // decodes the server's frames
    std::string rx_in;                     // bytes not yet taken by rx
    size_t rx_pos = 0;
    std::string msg;                       // payload of the message being received
    // wss (LoadOptions::tls):
    SSL* ssl = nullptr;
    bool tls_ready = false;                // the TLS handshake is done
  };

  void Open(Conn* c);
  void OnConnected(Conn* c);
  void OnReadable(Conn* c, int64_t now);
  void SendRequests(Conn* c, int n, int64_t now);
  void Flush(Conn* c);
  void Fail(Conn* c, const std::string& why);
  void SetWantWrite(Conn* c, bool on);
  // Socket I/O, plain or through TLS: bytes moved, 0 when none can move now
  // (EPOLLOUT armed if the write side is what waits), -1 after Fail.
  ssize_t SendBytes(Conn* c, const char* data, size_t len);
  ssize_t RecvBytes(Conn* c, char* buf, size_t len);
  void ContinueTlsHandshake(Conn* c);
  void AppendRequest(Conn* c);
  // Checks one reply frame against the request it answers.
  void Verify(Conn* c, const char* frame, size_t len, bool measuring, int64_t now);
  // Handles received bytes over WebSocket; returns the replies verified.
  int ReadWs(Conn* c, const char* data, size_t len, bool measuring, int64_t now);
  static ssize_t WsSend(const uint8_t* data, size_t len, int flags, void* user);
  static ssize_t WsRecv(uint8_t* buf, size_t len, int flags, void* user);
  static int WsMask(uint8_t* buf, size_t len, void* user);

  LoadOptions opts_;
  const std::atomic<int>* phase_;
  std::vector<Conn> conns_;
  int epfd_ = -1;
  int pending_connects_ = 0;
  std::atomic<int>* answered_ = nullptr;
  std::string request_;           // one request frame; its sequence field is patched per send
  std::vector<char> read_buf_;    // shared by all connections of this worker
  LoadStats stats_;
  wslay_frame_context_ptr tx_ = nullptr;  // encodes requests (stateless between whole frames)
  std::string* tx_out_ = nullptr;         // where WsSend appends
  uint32_t mask_ = 0x9e3779b9;
  SSL_CTX* tls_ctx_ = nullptr;
};

}  // namespace lampyr::bench
