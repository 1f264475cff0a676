// WebSocket clients (DESIGN §3a) against the real `lampyr` binary: wsport
// next to netport, one binary message = one Firefly frame, refused
// handshakes, RFC 6455 close codes, and TCP + WebSocket players in one room.
// The test client here writes WebSocket frames from raw bytes on purpose:
// it must also send what a correct library never would.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "harness.h"
#include "lampyr_client.h"
#include "net/frame_codec.h"

namespace lampyr {
namespace {

using client::Client;
using client::Frame;

constexpr uint32_t kEcho = 1;
constexpr uint32_t kSleep = 5;  // built-in: replies with the body after <body> ms
constexpr uint32_t kMaxBody = 1024;
constexpr uint32_t kJoin = 100, kSay = 102, kPushSay = 111;
const char* kKey = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455's example key
const char* kAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::string Frame17(uint32_t command, std::string_view body) {
  net::FrameLimits l;
  l.max_body = 0xFFFFFFF0u;
  std::string out;
  net::AppendFrame(l, command, body, &out);
  return out;
}

struct WsMessage {
  uint8_t opcode = 0;
  std::string payload;
  uint16_t close_code() const {
    return payload.size() >= 2 ? static_cast<uint16_t>((uint8_t(payload[0]) << 8) | uint8_t(payload[1])) : 0;
  }
};

// A blocking WebSocket client over a raw socket (client frames are masked).
class WsClient {
 public:
  ~WsClient() {
    if (fd_ >= 0) close(fd_);
  }
  bool Connect(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  void SendRaw(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  // Sends an upgrade request; returns the response's status (0: none).
  int Upgrade(const std::string& path = "/", const std::string& extra = "", const std::string& version = "13",
              const std::string& key = kKey) {
    SendRaw("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            (key.empty() ? "" : "Sec-WebSocket-Key: " + key + "\r\n") + "Sec-WebSocket-Version: " + version +
            "\r\n" + extra + "\r\n");
    return ReadResponse();
  }
  int ReadResponse() {
    size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos)
      if (!Fill()) return 0;
    head_ = in_.substr(0, end + 4);
    in_.erase(0, end + 4);
    return head_.size() > 12 ? std::stoi(head_.substr(9, 3)) : 0;
  }
  const std::string& head() const { return head_; }
  static std::string Encode(uint8_t opcode, std::string_view payload, bool fin = true) {
    std::string f;
    f += static_cast<char>((fin ? 0x80 : 0) | opcode);
    if (payload.size() < 126) {
      f += static_cast<char>(0x80 | payload.size());
    } else if (payload.size() < 65536) {
      f += static_cast<char>(0x80 | 126);
      f += static_cast<char>(payload.size() >> 8);
      f += static_cast<char>(payload.size() & 0xff);
    } else {
      f += static_cast<char>(0x80 | 127);
      for (int i = 7; i >= 0; --i) f += static_cast<char>((uint64_t{payload.size()} >> (8 * i)) & 0xff);
    }
    const char mask[4] = {0x12, 0x34, 0x56, 0x78};
    f.append(mask, 4);
    for (size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
    return f;
  }
  void SendMessage(uint8_t opcode, std::string_view payload, bool fin = true) { SendRaw(Encode(opcode, payload, fin)); }
  void SendFrame(uint32_t command, std::string_view body) { SendMessage(2, Frame17(command, body)); }
  // The next whole message from the server (unmasked, unfragmented: the
  // server sends each frame in one message).
  bool Receive(WsMessage* m) {
    for (;;) {
      if (in_.size() >= 2) {
        uint64_t len = uint8_t(in_[1]) & 0x7f;
        size_t off = 2;
        if (len == 126) {
          off = 4;
          len = in_.size() >= 4 ? (uint64_t{uint8_t(in_[2])} << 8) | uint8_t(in_[3]) : 0;
        } else if (len == 127) {
          off = 10;
          len = 0;
          for (size_t i = 2; i < 10 && in_.size() >= 10; ++i) len = (len << 8) | uint8_t(in_[i]);
        }
        if (in_.size() >= off && in_.size() >= off + len) {
          m->opcode = uint8_t(in_[0]) & 0x0f;
          m->payload = in_.substr(off, len);
          in_.erase(0, off + len);
          return true;
        }
      }
      if (!Fill()) return false;
    }
  }
  // The body of the next Firefly frame the server sends (skips nothing).
  bool ReceiveFrame(uint32_t* command, std::string* body) {
    WsMessage m;
    if (!Receive(&m) || m.opcode != 2 || m.payload.size() < net::kHeaderSize) return false;
    *command = net::LoadBE32(reinterpret_cast<const uint8_t*>(m.payload.data()) + 13);
    *body = m.payload.substr(net::kHeaderSize);
    return true;
  }
  // The server's close frame (skipping data messages), then its end of the connection.
  uint16_t ExpectClose() {
    WsMessage m;
    while (Receive(&m))
      if (m.opcode == 8) return m.close_code();
    return 0;
  }
  bool Closed() {
    while (Fill()) {
    }
    return eof_;
  }

 private:
  bool Fill() {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return false;
    char buf[65536];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    in_.append(buf, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string in_, head_;
  bool eof_ = false;
};

class NetWsTest : public ::testing::Test {
 protected:
  void StartServer(const std::string& protocol_extra = "", bool with_room = false) {
    port_ = test::FreePort();
    ws_port_ = test::FreePort();
    conf_ = dir_.path() + "/cluster.json";
    std::string plugins = with_room ? ", \"plugins\": [\"room\"]" : "";
    std::string plugin_defs =
        with_room ? ",\n \"plugins\": {\"room\": {\"path\": \"" + test::PluginPath("room") + "\"}}" : "";
    test::WriteFile(conf_, "{\"servers\": {\"net\": {\"netport\": " + std::to_string(port_) +
                               ", \"wsport\": " + std::to_string(ws_port_) + ", \"builtins\": {\"echo\": " +
                               std::to_string(kEcho) + ", \"sleep\": " + std::to_string(kSleep) + "}" + plugins + "}}" + plugin_defs +
                               ",\n \"protocol\": {\"max_body\": " + std::to_string(kMaxBody) + protocol_extra +
                               "}}\n");
    server_ = test::StartServer(conf_, "net", port_);
    ASSERT_NE(server_, nullptr) << "server did not start:\n" << ServerOutput();
    ASSERT_TRUE(test::WaitForPort("127.0.0.1", ws_port_, 5000));
  }
  std::unique_ptr<WsClient> OpenWs() {
    auto c = std::make_unique<WsClient>();
    EXPECT_TRUE(c->Connect(ws_port_));
    EXPECT_EQ(c->Upgrade(), 101) << c->head();
    return c;
  }
  std::string ServerOutput() { return test::ReadFile(dir_.path() + "/net.out"); }
  void TearDown() override {
    if (!server_) return;
    EXPECT_TRUE(server_->Running()) << "server died during the test:\n" << ServerOutput();
    server_->Signal(SIGTERM);
    int st = server_->Wait(10000);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st << "\n" << ServerOutput();
  }
  // The server still answers a fresh WebSocket client.
  void ExpectServing() {
    auto c = OpenWs();
    c->SendFrame(kEcho, "still here");
    uint32_t cmd = 0;
    std::string body;
    ASSERT_TRUE(c->ReceiveFrame(&cmd, &body));
    EXPECT_EQ(body, "still here");
  }

  test::TempDir dir_;
  std::string conf_;
  uint16_t port_ = 0, ws_port_ = 0;
  std::unique_ptr<test::Process> server_;
};

TEST_F(NetWsTest, SameReplyOverWsportAsOverNetport) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string request = Frame17(kEcho, std::string("hello \0\xff", 8));
  // TCP: the reply's bytes as they come off the socket.
  Client tcp;
  ASSERT_TRUE(tcp.Connect("127.0.0.1", port_).ok());
  ASSERT_TRUE(tcp.SendRaw(request).ok());
  Frame f;
  ASSERT_TRUE(tcp.Receive(&f).ok());
  const std::string tcp_reply = Frame17(f.command, f.body);

  WsClient ws;
  ASSERT_TRUE(ws.Connect(ws_port_));
  ASSERT_EQ(ws.Upgrade(), 101) << ws.head();
  EXPECT_NE(ws.head().find(std::string("Sec-WebSocket-Accept: ") + kAccept), std::string::npos) << ws.head();
  ws.SendMessage(2, request);
  WsMessage m;
  ASSERT_TRUE(ws.Receive(&m));
  EXPECT_EQ(m.opcode, 2);
  EXPECT_EQ(m.payload, tcp_reply);

  // Fragments are one message; a ping between them is answered.
  ws.SendMessage(2, request.substr(0, 5), /*fin=*/false);
  ws.SendMessage(9, "are you there");
  ws.SendMessage(0, request.substr(5));
  ASSERT_TRUE(ws.Receive(&m));
  EXPECT_EQ(m.opcode, 10);
  EXPECT_EQ(m.payload, "are you there");
  ASSERT_TRUE(ws.Receive(&m));
  EXPECT_EQ(m.payload, tcp_reply);

  // Pipelined requests come back in order, as on TCP.
  std::string burst;
  for (int i = 0; i < 200; ++i) burst += WsClient::Encode(2, Frame17(kEcho, "r" + std::to_string(i)));
  ws.SendRaw(burst);
  for (int i = 0; i < 200; ++i) {
    uint32_t cmd = 0;
    std::string body;
    ASSERT_TRUE(ws.ReceiveFrame(&cmd, &body)) << i;
    ASSERT_EQ(body, "r" + std::to_string(i));
  }
  // A client close is answered with a close.
  ws.SendMessage(8, std::string("\x03\xe8", 2));
  EXPECT_EQ(ws.ExpectClose(), 1000);
  EXPECT_TRUE(ws.Closed());
}

TEST_F(NetWsTest, ReadingPausesAtMaxInflightAndEveryReplyComesInOrder) {
  // Slow handlers and max_inflight 4: the session stops taking messages from
  // the bytes it has read and picks them up again as answers leave.
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(, "max_inflight": 4)"));
  auto ws = OpenWs();
  std::string burst;
  for (int i = 0; i < 60; ++i)
    burst += WsClient::Encode(2, i % 3 == 0 ? Frame17(kSleep, std::to_string(i % 7) + " s" + std::to_string(i))
                                            : Frame17(kEcho, "e" + std::to_string(i)));
  ws->SendRaw(burst);
  for (int i = 0; i < 60; ++i) {
    uint32_t cmd = 0;
    std::string body;
    ASSERT_TRUE(ws->ReceiveFrame(&cmd, &body)) << i;
    EXPECT_EQ(body, i % 3 == 0 ? std::to_string(i % 7) + " s" + std::to_string(i) : "e" + std::to_string(i));
  }
}

TEST_F(NetWsTest, BadHandshakesAreRefused) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(, "ws_path": "/game", "ws_origins": ["https://play.example"])"));
  struct Case {
    const char* what;
    std::string path, extra, version, key;
    int status;
  } cases[] = {
      {"other path", "/", "", "13", kKey, 404},
      {"no key", "/game", "", "13", "", 400},
      {"short key", "/game", "", "13", "c2hvcnQ=", 400},
      {"version 8", "/game", "", "8", kKey, 426},
      {"foreign origin", "/game", "Origin: https://evil.example\r\n", "13", kKey, 403},
      {"allowed origin", "/game?session=1", "Origin: https://play.example\r\n", "13", kKey, 101},
      {"no origin (not a browser)", "/game", "", "13", kKey, 101},
  };
  for (const Case& c : cases) {
    WsClient ws;
    ASSERT_TRUE(ws.Connect(ws_port_));
    EXPECT_EQ(ws.Upgrade(c.path, c.extra, c.version, c.key), c.status) << c.what << "\n" << ws.head();
    if (c.status != 101) {
      EXPECT_TRUE(ws.Closed()) << c.what;
    }
  }
  for (const char* junk : {"POST /game HTTP/1.1\r\nHost: x\r\n\r\n", "GET /game\r\n\r\n",
                           "GET /game HTTP/1.1\r\n bad folding\r\n\r\n"}) {
    WsClient ws;
    ASSERT_TRUE(ws.Connect(ws_port_));
    ws.SendRaw(junk);
    int status = ws.ReadResponse();
    EXPECT_TRUE(status == 400 || status == 405) << junk << " -> " << ws.head();
    EXPECT_TRUE(ws.Closed());
  }
  {
    WsClient ws;  // a header block that never ends
    ASSERT_TRUE(ws.Connect(ws_port_));
    ws.SendRaw("GET /game HTTP/1.1\r\nX: " + std::string(9000, 'a'));
    EXPECT_EQ(ws.ReadResponse(), 431);
  }
}

TEST_F(NetWsTest, TextMessageClosesWith1003) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto ws = OpenWs();
  ws->SendMessage(1, "hello as text");
  EXPECT_EQ(ws->ExpectClose(), 1003);
  EXPECT_TRUE(ws->Closed());
  ExpectServing();
}

TEST_F(NetWsTest, MessageThatIsNotOneFrameClosesWith1007) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string two = Frame17(kEcho, "a") + Frame17(kEcho, "b");
  for (const std::string& payload : {two, two.substr(0, 20), std::string(), std::string(17, 'x')}) {
    auto ws = OpenWs();
    ws->SendMessage(2, payload);
    EXPECT_EQ(ws->ExpectClose(), 1007) << payload.size();
    EXPECT_TRUE(ws->Closed());
  }
  ExpectServing();
}

TEST_F(NetWsTest, OversizeClosesWith1009) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  {
    auto ws = OpenWs();  // a message longer than a frame may be
    ws->SendMessage(2, Frame17(kEcho, std::string(kMaxBody + 1, 'x')));
    EXPECT_EQ(ws->ExpectClose(), 1009);
  }
  {
    auto ws = OpenWs();  // reassembled fragments count together
    ws->SendMessage(2, std::string(kMaxBody, 'x'), false);
    ws->SendMessage(0, std::string(100, 'x'));
    EXPECT_EQ(ws->ExpectClose(), 1009);
  }
  {
    auto ws = OpenWs();  // exactly max_body is fine
    ws->SendFrame(kEcho, std::string(kMaxBody, 'y'));
    uint32_t cmd = 0;
    std::string body;
    ASSERT_TRUE(ws->ReceiveFrame(&cmd, &body));
    EXPECT_EQ(body.size(), kMaxBody);
  }
  EXPECT_NE(ServerOutput().find("closed: too_large"), std::string::npos) << ServerOutput();
}

TEST_F(NetWsTest, TcpAndWsPlayersInOneRoomSeeEachOther) {
  ASSERT_NO_FATAL_FAILURE(StartServer("", /*with_room=*/true));
  Client tcp;
  ASSERT_TRUE(tcp.Connect("127.0.0.1", port_).ok());
  Frame f;
  ASSERT_TRUE(tcp.Call(kJoin, "hall", &f).ok());
  auto ws = OpenWs();
  ws->SendFrame(kJoin, "hall");
  uint32_t cmd = 0;
  std::string body;
  ASSERT_TRUE(ws->ReceiveFrame(&cmd, &body));
  EXPECT_EQ(cmd, kJoin);
  ws->SendFrame(kSay, "hi from ws");
  // The sender hears its own line (push) and its reply, in some order.
  bool heard = false, replied = false;
  while (!(heard && replied) && ws->ReceiveFrame(&cmd, &body)) {
    if (cmd == kPushSay && body.find("hi from ws") != std::string::npos) heard = true;
    if (cmd == kSay) replied = true;
  }
  EXPECT_TRUE(heard && replied);
  for (;;) {  // the TCP player hears it too
    ASSERT_TRUE(tcp.Receive(&f).ok());
    if (f.command == kPushSay) break;
  }
  EXPECT_NE(f.body.find("hi from ws"), std::string::npos) << f.body;
  ASSERT_TRUE(tcp.Call(kSay, "hi from tcp", &f).ok());
  for (;;) {
    ASSERT_TRUE(ws->ReceiveFrame(&cmd, &body));
    if (cmd == kPushSay && body.find("hi from tcp") != std::string::npos) break;
  }
}

TEST_F(NetWsTest, ClientLibraryAndLampyrClientSpeakWebSocket) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  client::Options o;
  o.ws = true;
  Client c(o);
  Status s = c.Connect("127.0.0.1", ws_port_);
  ASSERT_TRUE(s.ok()) << s.message();
  Frame f;
  ASSERT_TRUE(c.Call(kEcho, "via the library", &f).ok());
  EXPECT_EQ(f.body, "via the library");
  ASSERT_TRUE(c.SendRaw(Frame17(kEcho, "a") + Frame17(kEcho, "b")).ok());  // two frames, one message
  EXPECT_TRUE(c.WaitClosed());

  const std::string out = dir_.path() + "/cli.out";
  auto cli = test::Process::Start({std::string(LAMPYR_BIN_DIR) + "/lampyr-client", "--host", "127.0.0.1", "--port",
                                   std::to_string(ws_port_), "--ws", "send", "1", "from the cli"},
                                  {}, out);
  ASSERT_NE(cli, nullptr);
  int st = cli->Wait(10000);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << test::ReadFile(out);
  EXPECT_EQ(test::ReadFile(out), "1\tfrom the cli\n");
}

// wss: protocol.ws_tls with a throwaway self-signed certificate; the client
// speaks TLS with OpenSSL over a blocking socket.
TEST_F(NetWsTest, WssServesTheSameSessionsOverTls) {
  const std::string cert = dir_.path() + "/cert.pem", key = dir_.path() + "/key.pem";
  auto gen = test::Process::Start({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                                   "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"},
                                  {}, dir_.path() + "/openssl.out");
  ASSERT_NE(gen, nullptr);
  int st = gen->Wait(30000);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << test::ReadFile(dir_.path() + "/openssl.out");
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(, "ws_tls": {"cert": "cert.pem", "key": "key.pem"})"));

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(ws_port_);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  timeval tv{5, 0};  // a hung server fails the test instead of blocking it
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  ASSERT_EQ(SSL_connect(ssl), 1) << ERR_error_string(ERR_get_error(), nullptr);
  auto write = [&](const std::string& b) { ASSERT_EQ(SSL_write(ssl, b.data(), static_cast<int>(b.size())), int(b.size())); };
  std::string in;
  auto read_until = [&](size_t n) {
    char buf[4096];
    while (in.size() < n) {
      int r = SSL_read(ssl, buf, sizeof buf);
      if (r <= 0) return false;
      in.append(buf, static_cast<size_t>(r));
    }
    return true;
  };
  write(std::string("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ") +
        kKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n" + WsClient::Encode(2, Frame17(kEcho, "over tls")));
  size_t head_end = std::string::npos;
  while ((head_end = in.find("\r\n\r\n")) == std::string::npos) ASSERT_TRUE(read_until(in.size() + 1));
  EXPECT_EQ(in.compare(0, 12, "HTTP/1.1 101"), 0) << in;
  in.erase(0, head_end + 4);
  const std::string reply = Frame17(kEcho, "over tls");
  ASSERT_TRUE(read_until(2 + reply.size()));
  EXPECT_EQ(uint8_t(in[0]), 0x82);  // fin + binary
  EXPECT_EQ(in.substr(2, reply.size()), reply);
  in.erase(0, 2 + reply.size());
  write(WsClient::Encode(1, "text"));  // the same close codes over TLS
  ASSERT_TRUE(read_until(4));
  EXPECT_EQ(uint8_t(in[0]), 0x88);
  EXPECT_EQ((uint8_t(in[2]) << 8) | uint8_t(in[3]), 1003);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  close(fd);

  // Many pipelined sessions at once: lampyr-bench --wss checks every reply
  // byte for byte against its request and exits 1 on any error.
  const std::string out = dir_.path() + "/bench.out";
  auto bench = test::Process::Start({std::string(LAMPYR_BIN_DIR) + "/lampyr-bench", "--port", std::to_string(ws_port_),
                                     "--wss", "--connections", "20", "--depth", "4", "--duration", "0.5", "--warmup",
                                     "0.1", "--json"},
                                    {}, out);
  ASSERT_NE(bench, nullptr);
  st = bench->Wait(60000);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << test::ReadFile(out);
  const std::string report = test::ReadFile(out);
  EXPECT_NE(report.find("\"errors\":0,"), std::string::npos) << report;
  EXPECT_EQ(report.find("\"requests\":0,"), std::string::npos) << report;
}

TEST_F(NetWsTest, ConnectionCapIsSharedWithTcp) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(, "max_connections": 2)"));
  Client tcp;
  ASSERT_TRUE(tcp.Connect("127.0.0.1", port_).ok());
  Frame f;
  ASSERT_TRUE(tcp.Call(kEcho, "1", &f).ok());
  auto ws = OpenWs();
  WsClient third;  // one TCP + one WebSocket: the server is full
  ASSERT_TRUE(third.Connect(ws_port_));
  EXPECT_EQ(third.Upgrade(), 0);
  EXPECT_TRUE(third.Closed());
  ws->SendFrame(kEcho, "2");
  uint32_t cmd = 0;
  std::string body;
  ASSERT_TRUE(ws->ReceiveFrame(&cmd, &body));
  EXPECT_EQ(body, "2");
}

}  // namespace
}  // namespace lampyr
