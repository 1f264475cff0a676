// ChannelHub end to end inside one process: real hubs, real loopback TCP,
// one event loop (plus a second thread only where a peer must stop reading).
#include "channel/channel_hub.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "channel/channel_auth.h"
#include "channel/channel_wire.h"
#include "core/log.h"
#include "core/metrics.h"
#include "../support/loop_until.h"

namespace lampyr {
namespace {

ChannelOptions Fast() {
  ChannelOptions o;
  o.reconnect_min_s = 0.02;
  o.reconnect_max_s = 0.2;
  return o;
}

struct Result {
  bool done = false;
  CallError err = CallError::kNone;
  Status st;
  std::string reply;
};

ChannelHub::DetailedReplyFn Into(Result* r) {
  return [r](CallError e, Status st, std::string reply) {
    EXPECT_FALSE(r->done) << "reply delivered twice";
    r->done = true;
    r->err = e;
    r->st = st;
    r->reply = std::move(reply);
  };
}

class ChannelHubTest : public ::testing::Test {
 protected:
  void SetUp() override { log::SetLevel(log::Level::kError); }

  std::unique_ptr<ChannelHub> Root(const std::string& name = "gate", const std::string& secret = "s3cret",
                                   uint16_t port = 0) {
    auto hub = std::make_unique<ChannelHub>(&loop_, name, secret, Fast());
    Status st = hub->Listen("127.0.0.1", port);
    EXPECT_TRUE(st.ok()) << st.message();
    return hub;
  }
  std::unique_ptr<ChannelHub> Child(const std::string& name, ChannelHub* root, const std::string& secret = "s3cret") {
    auto hub = std::make_unique<ChannelHub>(&loop_, name, secret, Fast());
    hub->Connect(root->name(), "127.0.0.1", root->port());
    return hub;
  }
  std::string LinkField(ChannelHub* hub, const std::string& peer, const char* field) {
    Json::Value links = hub->LinksJson();
    for (const auto& l : links)
      if (l["peer"].asString() == peer) return l[field].asString();
    return "";
  }

  EventLoop loop_;
};

TEST(ChannelWire, FrameRoundTrip) {
  channel::Frame f;
  f.type = channel::FrameType::kCall;
  f.id = 0xDEADBEEF;
  f.aux = 1500;
  f.src = "net";
  f.dst = "game1";
  f.method = "room.join";
  f.payload = std::string_view("\0\x01payload", 9);
  std::string bytes;
  channel::AppendFrame(f, &bytes);
  ASSERT_EQ(bytes.size(), channel::kHeaderSize + 3 + 5 + 9 + 9);
  size_t total = 0;
  ASSERT_EQ(channel::PeekSize(reinterpret_cast<const uint8_t*>(bytes.data()), 1 << 20, &total),
            channel::DecodeResult::kOk);
  ASSERT_EQ(total, bytes.size());
  channel::Frame g;
  ASSERT_EQ(channel::Decode(reinterpret_cast<const uint8_t*>(bytes.data()), total, &g), channel::DecodeResult::kOk);
  EXPECT_EQ(g.type, f.type);
  EXPECT_EQ(g.id, f.id);
  EXPECT_EQ(g.aux, f.aux);
  EXPECT_EQ(g.src, "net");
  EXPECT_EQ(g.dst, "game1");
  EXPECT_EQ(g.method, "room.join");
  EXPECT_EQ(g.payload, f.payload);
  // Limits and versions are checked before anything is buffered.
  EXPECT_EQ(channel::PeekSize(reinterpret_cast<const uint8_t*>(bytes.data()), 10, &total),
            channel::DecodeResult::kTooLarge);
  bytes[2] = 2;
  EXPECT_EQ(channel::PeekSize(reinterpret_cast<const uint8_t*>(bytes.data()), 1 << 20, &total),
            channel::DecodeResult::kBadVersion);
  bytes[0] = 'G';
  EXPECT_EQ(channel::PeekSize(reinterpret_cast<const uint8_t*>(bytes.data()), 1 << 20, &total),
            channel::DecodeResult::kBadMagic);
}

TEST(ChannelAuth, HmacSha256KnownAnswer) {
  // RFC 4231, test case 2.
  std::string mac = channel::HmacSha256("Jefe", "what do ya want for nothing?");
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : mac) {
    hex += kHex[c >> 4];
    hex += kHex[c & 15];
  }
  EXPECT_EQ(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Proofs bind the role and both names.
  std::string a = channel::Proof("k", 'C', "n1", "n2", "game", "gate");
  EXPECT_TRUE(channel::ProofEquals(a, channel::Proof("k", 'C', "n1", "n2", "game", "gate")));
  EXPECT_FALSE(channel::ProofEquals(a, channel::Proof("k", 'R', "n1", "n2", "game", "gate")));
  EXPECT_FALSE(channel::ProofEquals(a, channel::Proof("k", 'C', "n1", "n2", "gam", "egate")));
  EXPECT_FALSE(channel::ProofEquals(a, channel::Proof("K", 'C', "n1", "n2", "game", "gate")));
}

TEST_F(ChannelHubTest, CallsBothWaysAndNotify) {
  auto root = Root();
  auto child = Child("game1", root.get());
  std::string notified_from, notified_args;
  root->RegisterMethod("add", [](const std::string& from, std::string_view args, ChannelHub::Respond respond) {
    respond(Status::OK(), from + ":" + std::string(args) + "+1");
  });
  child->RegisterMethod("hello", [](const std::string& from, std::string_view args, ChannelHub::Respond respond) {
    respond(Status::OK(), "hello " + from + " " + std::string(args));
  });
  child->RegisterMethod("note", [&](const std::string& from, std::string_view args, ChannelHub::Respond) {
    notified_from = from;
    notified_args = std::string(args);
  });
  ASSERT_TRUE(RunUntil(loop_, [&] { return child->IsConnected("gate") && root->IsConnected("game1"); }));
  EXPECT_EQ(LinkField(child.get(), "gate", "state"), "up");
  EXPECT_EQ(LinkField(child.get(), "gate", "direction"), "out");
  EXPECT_EQ(LinkField(root.get(), "game1", "direction"), "in");

  Result up, down;
  child->CallDetailed("gate", "add", "41", Into(&up));
  root->CallDetailed("game1", "hello", "there", Into(&down));
  ASSERT_TRUE(RunUntil(loop_, [&] { return up.done && down.done; }));
  EXPECT_TRUE(up.st.ok()) << up.st.message();
  EXPECT_EQ(up.reply, "game1:41+1");
  EXPECT_TRUE(down.st.ok()) << down.st.message();
  EXPECT_EQ(down.reply, "hello gate there");

  root->Notify("game1", "note", std::string(100000, 'x'));
  ASSERT_TRUE(RunUntil(loop_, [&] { return !notified_args.empty(); }));
  EXPECT_EQ(notified_from, "gate");
  EXPECT_EQ(notified_args.size(), 100000u);

  // The public Call form.
  bool called = false;
  std::string reply;
  child->Call("gate", "add", "1", [&](Status st, std::string r) {
    called = st.ok();
    reply = r;
  });
  ASSERT_TRUE(RunUntil(loop_, [&] { return called; }));
  EXPECT_EQ(reply, "game1:1+1");
}

TEST_F(ChannelHubTest, HandlerErrorsAndAsyncReplies) {
  auto root = Root();
  auto child = Child("game1", root.get());
  ChannelHub::Respond later;
  root->RegisterMethod("fail", [](const std::string&, std::string_view, ChannelHub::Respond respond) {
    respond(Status::Error("no such room"), "");
  });
  root->RegisterMethod("later", [&](const std::string&, std::string_view, ChannelHub::Respond respond) {
    later = std::move(respond);
  });
  root->RegisterMethod("throws", [](const std::string&, std::string_view, ChannelHub::Respond) {
    throw std::runtime_error("boom");
  });
  ASSERT_TRUE(RunUntil(loop_, [&] { return child->IsConnected("gate"); }));
  Result fail, async, thrown;
  child->CallDetailed("gate", "fail", "", Into(&fail));
  child->CallDetailed("gate", "later", "", Into(&async));
  child->CallDetailed("gate", "throws", "", Into(&thrown));
  ASSERT_TRUE(RunUntil(loop_, [&] { return fail.done && thrown.done && later; }));
  EXPECT_EQ(fail.err, CallError::kRemote);
  EXPECT_EQ(fail.st.message(), "no such room");
  EXPECT_EQ(thrown.err, CallError::kRemote);
  EXPECT_NE(thrown.st.message().find("boom"), std::string::npos) << thrown.st.message();
  EXPECT_FALSE(async.done);
  later(Status::OK(), "finally");
  later(Status::OK(), "twice is ignored");
  ASSERT_TRUE(RunUntil(loop_, [&] { return async.done; }));
  EXPECT_EQ(async.reply, "finally");
}

TEST_F(ChannelHubTest, UnknownMethodUnknownNodeAndTimeout) {
  auto root = Root();
  auto child = Child("game1", root.get());
  root->RegisterMethod("never", [](const std::string&, std::string_view, ChannelHub::Respond) {});
  ASSERT_TRUE(RunUntil(loop_, [&] { return child->IsConnected("gate"); }));
  Result no_method, no_node, timeout, self_call;
  child->CallDetailed("gate", "nope", "", Into(&no_method));
  child->CallDetailed("game7", "x", "", Into(&no_node));
  child->CallDetailed("gate", "never", "", Into(&timeout), 0.2);
  child->RegisterMethod("me", [](const std::string& from, std::string_view, ChannelHub::Respond r) {
    r(Status::OK(), "self:" + from);
  });
  child->CallDetailed("game1", "me", "", Into(&self_call));
  ASSERT_TRUE(RunUntil(loop_, [&] { return no_method.done && no_node.done && timeout.done && self_call.done; }));
  EXPECT_EQ(no_method.err, CallError::kUnknownMethod);
  EXPECT_NE(no_method.st.message().find("has no method nope"), std::string::npos) << no_method.st.message();
  EXPECT_EQ(no_node.err, CallError::kUnknownNode);
  EXPECT_NE(no_node.st.message().find("unknown node game7"), std::string::npos) << no_node.st.message();
  EXPECT_EQ(timeout.err, CallError::kTimeout);
  EXPECT_NE(timeout.st.message().find("timed out"), std::string::npos) << timeout.st.message();
  EXPECT_EQ(self_call.reply, "self:game1");
  EXPECT_EQ(child->pending_calls(), 0u);
}

TEST_F(ChannelHubTest, WrongSecretIsRefused) {
  auto root = Root();
  uint64_t before = Metrics().Value("lampyr_channel_auth_rejected_total");
  // Both ends prove the secret: a child with the wrong one finds the root
  // unproven and hangs up; the root never admits it.
  auto intruder = Child("game1", root.get(), "guess");
  ASSERT_TRUE(RunUntil(loop_, [&] {
    return LinkField(intruder.get(), "gate", "error").find("failed to prove the cluster secret") != std::string::npos &&
           static_cast<uint64_t>(Metrics().Value("lampyr_channel_auth_rejected_total")) > before;
  })) << intruder->LinksJson().toStyledString();
  EXPECT_FALSE(root->IsConnected("game1"));
  EXPECT_FALSE(intruder->IsConnected("gate"));
  EXPECT_TRUE(root->Peers().empty());

  // The right secret still works after all that.
  auto good = Child("game3", root.get());
  ASSERT_TRUE(RunUntil(loop_, [&] { return root->IsConnected("game3"); }));
}

TEST_F(ChannelHubTest, DuplicateNodeNameIsRefused) {
  auto root = Root();
  auto first = Child("game1", root.get());
  ASSERT_TRUE(RunUntil(loop_, [&] { return first->IsConnected("gate"); }));
  auto second = Child("game1", root.get());
  ASSERT_TRUE(RunUntil(loop_, [&] { return LinkField(second.get(), "gate", "error").find("duplicate node name") != std::string::npos; }));
  EXPECT_FALSE(second->IsConnected("gate"));
  // The first one is untouched.
  Result r;
  root->RegisterMethod("ping", [](const std::string& from, std::string_view, ChannelHub::Respond respond) {
    respond(Status::OK(), from);
  });
  first->CallDetailed("gate", "ping", "", Into(&r));
  ASSERT_TRUE(RunUntil(loop_, [&] { return r.done; }));
  EXPECT_EQ(r.reply, "game1");
}

TEST_F(ChannelHubTest, LinkDropFailsInflightCallsAtOnce) {
  auto root = Root();
  auto child = Child("game1", root.get());
  std::vector<ChannelHub::Respond> held;
  child->RegisterMethod("hold", [&](const std::string&, std::string_view, ChannelHub::Respond r) {
    held.push_back(std::move(r));
  });
  ASSERT_TRUE(RunUntil(loop_, [&] { return root->IsConnected("game1"); }));
  std::vector<Result> results(3);
  for (auto& r : results) root->CallDetailed("game1", "hold", "", Into(&r), 600);
  ASSERT_TRUE(RunUntil(loop_, [&] { return held.size() == 3; }));
  bool down_seen = false;
  root->AddPeerCallback([&](const std::string& node, bool up) {
    if (node == "game1" && !up) down_seen = true;
  });
  child.reset();  // the process is gone
  ASSERT_TRUE(RunUntil(loop_, [&] { return results[0].done && results[1].done && results[2].done; }));
  for (auto& r : results) {
    EXPECT_EQ(r.err, CallError::kLinkDown) << r.st.message();
    EXPECT_NE(r.st.message().find("went down"), std::string::npos) << r.st.message();
  }
  EXPECT_TRUE(down_seen);
  EXPECT_EQ(root->pending_calls(), 0u);
  // New calls fail fast too.
  Result after;
  root->CallDetailed("game1", "hold", "", Into(&after), 600);
  ASSERT_TRUE(RunUntil(loop_, [&] { return after.done; }));
  EXPECT_EQ(after.err, CallError::kUnknownNode);
}

TEST_F(ChannelHubTest, ChildReconnectsAfterRootRestarts) {
  auto root = Root();
  uint16_t port = root->port();
  auto child = Child("game1", root.get());
  int ups = 0;
  child->AddPeerCallback([&](const std::string& node, bool up) {
    if (node == "gate" && up) ++ups;
  });
  ASSERT_TRUE(RunUntil(loop_, [&] { return child->IsConnected("gate"); }));
  root.reset();
  ASSERT_TRUE(RunUntil(loop_, [&] { return !child->IsConnected("gate"); }));
  // While the root is away calls fail with a clear error, no hang.
  Result away;
  child->CallDetailed("gate", "echo", "", Into(&away));
  ASSERT_TRUE(RunUntil(loop_, [&] { return away.done; }));
  EXPECT_EQ(away.err, CallError::kUnknownNode);
  EXPECT_EQ(LinkField(child.get(), "gate", "state") == "up", false);

  root = Root("gate", "s3cret", port);
  root->RegisterMethod("echo", [](const std::string&, std::string_view a, ChannelHub::Respond r) {
    r(Status::OK(), std::string(a));
  });
  ASSERT_TRUE(RunUntil(loop_, [&] { return child->IsConnected("gate") && root->IsConnected("game1"); }));
  EXPECT_EQ(ups, 2);
  Result back;
  child->CallDetailed("gate", "echo", "again", Into(&back));
  ASSERT_TRUE(RunUntil(loop_, [&] { return back.done; }));
  EXPECT_EQ(back.reply, "again");
}

TEST_F(ChannelHubTest, RelayThroughTheCommonRoot) {
  auto root = Root();
  auto net = Child("net", root.get());
  auto game = Child("game1", root.get());
  std::vector<ChannelHub::Respond> held;
  game->RegisterMethod("who", [](const std::string& from, std::string_view a, ChannelHub::Respond r) {
    r(Status::OK(), "game1 answers " + from + " " + std::string(a));
  });
  game->RegisterMethod("hold", [&](const std::string&, std::string_view, ChannelHub::Respond r) {
    held.push_back(std::move(r));
  });
  std::string pushed;
  net->RegisterMethod("push", [&](const std::string& from, std::string_view a, ChannelHub::Respond) {
    pushed = from + ":" + std::string(a);
  });
  ASSERT_TRUE(RunUntil(loop_, [&] { return net->IsConnected("game1") && game->IsConnected("net"); }));
  Result r;
  net->CallDetailed("game1", "who", "?", Into(&r));
  game->Notify("net", "push", "hi");
  ASSERT_TRUE(RunUntil(loop_, [&] { return r.done && !pushed.empty(); }));
  EXPECT_EQ(r.reply, "game1 answers net ?");
  EXPECT_EQ(pushed, "game1:hi");
  // Only direct links are listed.
  for (const auto& l : net->LinksJson()) EXPECT_EQ(l["peer"].asString(), "gate");

  // The far end drops while a relayed call waits: the root answers for it.
  Result held_call;
  net->CallDetailed("game1", "hold", "", Into(&held_call), 600);
  ASSERT_TRUE(RunUntil(loop_, [&] { return held.size() == 1; }));
  game.reset();
  ASSERT_TRUE(RunUntil(loop_, [&] { return held_call.done; }));
  EXPECT_EQ(held_call.err, CallError::kLinkDown) << held_call.st.message();
  ASSERT_TRUE(RunUntil(loop_, [&] { return !net->IsConnected("game1"); }));
}

// Connects a raw socket to the root and collects what it answers until EOF.
std::string RawExchange(EventLoop& loop, uint16_t port, const std::string& bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  std::string got;
  bool eof = false;
  RunUntil(loop, [&] {
    char buf[4096];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) got.append(buf, n);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) eof = true;
      if (n <= 0) break;
    }
    return eof;
  });
  EXPECT_TRUE(eof) << "the root did not close the connection";
  close(fd);
  return got;
}

TEST_F(ChannelHubTest, BadPeersAreDroppedWithAReason) {
  auto root = Root();
  // A newer protocol version gets told why.
  channel::Frame hello;
  hello.type = channel::FrameType::kHello;
  hello.src = "future";
  std::string nonce(channel::kNonceSize, 'n');
  hello.payload = nonce;
  std::string bytes;
  channel::AppendFrame(hello, &bytes);
  bytes[2] = 9;
  std::string answer = RawExchange(loop_, root->port(), bytes);
  EXPECT_NE(answer.find("protocol version 9 not supported"), std::string::npos) << answer;

  // Not the channel protocol at all.
  answer = RawExchange(loop_, root->port(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(answer.find("bad magic"), std::string::npos) << answer;

  // A call before authenticating.
  channel::Frame call;
  call.type = channel::FrameType::kCall;
  call.method = "x";
  bytes.clear();
  channel::AppendFrame(call, &bytes);
  answer = RawExchange(loop_, root->port(), bytes);
  EXPECT_NE(answer.find("unexpected call during handshake"), std::string::npos) << answer;
  EXPECT_TRUE(root->Peers().empty());
}

TEST_F(ChannelHubTest, ForgedProofIsRejected) {
  auto root = Root();
  uint64_t before = Metrics().Value("lampyr_channel_auth_rejected_total");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(root->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  channel::Frame hello;
  hello.type = channel::FrameType::kHello;
  hello.src = "game1";
  hello.dst = "gate";
  std::string nonce(channel::kNonceSize, 'n');
  hello.payload = nonce;
  std::string bytes;
  channel::AppendFrame(hello, &bytes);
  ASSERT_EQ(send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  std::string got;
  bool eof = false;
  auto pump = [&] {
    char buf[4096];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) got.append(buf, n);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) eof = true;
      if (n <= 0) break;
    }
  };
  channel::Frame challenge;
  ASSERT_TRUE(RunUntil(loop_, [&] {
    pump();
    size_t total = 0;
    return got.size() >= channel::kHeaderSize &&
           channel::PeekSize(reinterpret_cast<const uint8_t*>(got.data()), 1 << 20, &total) ==
               channel::DecodeResult::kOk &&
           got.size() >= total &&
           channel::Decode(reinterpret_cast<const uint8_t*>(got.data()), total, &challenge) ==
               channel::DecodeResult::kOk;
  }));
  EXPECT_EQ(challenge.type, channel::FrameType::kChallenge);
  EXPECT_EQ(challenge.src, "gate");
  // The secret never travels: the challenge holds a nonce and a MAC only.
  EXPECT_EQ(challenge.payload.size(), channel::kNonceSize + channel::kProofSize);
  EXPECT_EQ(std::string(challenge.payload).find("s3cret"), std::string::npos);
  channel::Frame auth;
  auth.type = channel::FrameType::kAuth;
  std::string forged(channel::kProofSize, 'f');
  auth.payload = forged;
  bytes.clear();
  channel::AppendFrame(auth, &bytes);
  got.clear();
  ASSERT_EQ(send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  ASSERT_TRUE(RunUntil(loop_, [&] {
    pump();
    return eof;
  }));
  close(fd);
  EXPECT_NE(got.find("authentication failed"), std::string::npos) << got;
  EXPECT_EQ(static_cast<uint64_t>(Metrics().Value("lampyr_channel_auth_rejected_total")), before + 1);
  EXPECT_FALSE(root->IsConnected("game1"));
}

TEST_F(ChannelHubTest, OversizedFrameResetsTheLink) {
  ChannelOptions small = Fast();
  small.max_frame = 4096;
  ChannelHub root(&loop_, "gate", "s", small);
  ASSERT_TRUE(root.Listen("127.0.0.1", 0).ok());
  ChannelHub child(&loop_, "game1", "s", Fast());
  child.Connect("gate", "127.0.0.1", root.port());
  // Both ends: the root admits the child before the child has read the welcome.
  ASSERT_TRUE(RunUntil(loop_, [&] { return root.IsConnected("game1") && child.IsConnected("gate"); }));
  Result r;
  root.RegisterMethod("big", [](const std::string&, std::string_view, ChannelHub::Respond respond) {
    respond(Status::OK(), "");
  });
  child.CallDetailed("gate", "big", std::string(10000, 'b'), Into(&r), 600);
  ASSERT_TRUE(RunUntil(loop_, [&] { return r.done; }));
  EXPECT_EQ(r.err, CallError::kLinkDown) << r.st.message();
  // It comes back by itself.
  ASSERT_TRUE(RunUntil(loop_, [&] { return child.IsConnected("gate"); }));
}

TEST_F(ChannelHubTest, SlowPeerIsCappedNotBuffered) {
  ChannelOptions capped = Fast();
  capped.max_output = 256 << 10;
  capped.dead_after_s = 600;  // only the cap may end this link
  ChannelHub root(&loop_, "gate", "s", capped);
  ASSERT_TRUE(root.Listen("127.0.0.1", 0).ok());

  EventLoop child_loop;
  auto child = std::make_unique<ChannelHub>(&child_loop, "game1", "s", Fast());
  child->RegisterMethod("sink", [](const std::string&, std::string_view, ChannelHub::Respond) {});
  child->Connect("gate", "127.0.0.1", root.port());
  std::thread t([&] { child_loop.Run(); });
  ASSERT_TRUE(RunUntil(loop_, [&] { return root.IsConnected("game1"); }));

  // The child stops reading: its loop is stuck until we let it go.
  std::mutex mu;
  std::condition_variable cv;
  bool release = false, stuck = false;
  child_loop.Post([&] {
    std::unique_lock<std::mutex> lock(mu);
    stuck = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return stuck; });
  }
  uint64_t resets = Metrics().Value("lampyr_channel_link_resets_total", "reason=\"output_cap\"");
  Result waiting;
  root.CallDetailed("game1", "sink", "", Into(&waiting), 600);
  // Half the cap per tick: only a peer that stops draining lets it pile up.
  std::string chunk(64 << 10, 'z');
  size_t sent = 0;
  TimerId flood = loop_.RunEvery(0.001, [&] {
    for (int i = 0; i < 2 && root.IsConnected("game1"); ++i) {
      root.Notify("game1", "sink", chunk);
      sent += chunk.size();
    }
  });
  bool capped_ok = RunUntil(loop_, [&] { return !root.IsConnected("game1"); });
  loop_.Cancel(flood);
  EXPECT_TRUE(capped_ok);
  // More than the cap went out before the reset: the kernel buffers took
  // their share, then our side stopped at the cap.
  EXPECT_GT(sent, size_t{256 << 10});
  ASSERT_TRUE(RunUntil(loop_, [&] { return waiting.done; }));
  EXPECT_EQ(waiting.err, CallError::kLinkDown);
  EXPECT_NE(waiting.st.message().find("over the cap"), std::string::npos) << waiting.st.message();
  EXPECT_EQ(static_cast<uint64_t>(Metrics().Value("lampyr_channel_link_resets_total", "reason=\"output_cap\"")),
            resets + 1);

  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  child_loop.Post([&] { child_loop.Quit(); });
  t.join();
  child.reset();
}

TEST_F(ChannelHubTest, FrozenPeerIsDeclaredDeadAndRejoins) {
  ChannelOptions quick = Fast();
  quick.ping_interval_s = 0.05;
  quick.dead_after_s = 0.5;
  ChannelHub root(&loop_, "gate", "s", quick);
  ASSERT_TRUE(root.Listen("127.0.0.1", 0).ok());
  EventLoop child_loop;
  auto child = std::make_unique<ChannelHub>(&child_loop, "game1", "s", quick);
  child->Connect("gate", "127.0.0.1", root.port());
  std::thread t([&] { child_loop.Run(); });
  ASSERT_TRUE(RunUntil(loop_, [&] { return root.IsConnected("game1"); }));

  // The child hangs (no FIN, no RST: as a frozen process or a cut cable looks).
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  child_loop.Post([&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
  });
  uint64_t silent = Metrics().Value("lampyr_channel_link_resets_total", "reason=\"silent\"");
  ASSERT_TRUE(RunUntil(loop_, [&] { return !root.IsConnected("game1"); }));
  EXPECT_EQ(static_cast<uint64_t>(Metrics().Value("lampyr_channel_link_resets_total", "reason=\"silent\"")),
            silent + 1);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  // Awake again, the child notices the reset and links up anew.
  ASSERT_TRUE(RunUntil(loop_, [&] { return root.IsConnected("game1"); }));
  child_loop.Post([&] { child_loop.Quit(); });
  t.join();
  child.reset();
}

}  // namespace
}  // namespace lampyr
