// Server push, groups, broadcast, kick and asynchronous answers. No plugin
// can trigger pushes yet, so the NetServer runs in this process on its own
// event-loop thread, with handlers that call its push API, and 100 real
// client sockets talk to it over loopback.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <stdexcept>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/event_loop.h"
#include "core/metrics.h"
#include "lampyr_client.h"
#include "net/dispatch.h"
#include "net/frame_codec.h"
#include "net/net_server.h"

namespace lampyr {
namespace {

using client::Client;
using client::Frame;

// Requests understood by the test server.
enum : uint32_t {
  kJoin = 10,       // body: group
  kBroadcast = 11,  // body: group|payload -> push kBroadcastPush to the group, reply with the count
  kPushSelf = 12,   // push kSelfPush(body) to the caller, then reply "pushed"
  kWhoAmI = 13,     // reply: the caller's session id
  kPushMany = 14,   // body: id,id,...|payload -> push kManyPush, reply with the count
  kLeave = 15,      // body: group
  kKickSelf = 16,   // push "bye" then kick the caller
  kDeferred = 17,   // reply with the body 50 ms later
  kDecline = 18,    // no answer at all
  kEcho = 19,
  kGroupSize = 20,  // body: group; reply: its size
};
enum : uint32_t { kBroadcastPush = 500, kSelfPush = 501, kManyPush = 502, kByePush = 503 };

constexpr uint16_t kNode = 7;

class PushServer {
 public:
  PushServer() {
    ProtocolConfig proto;
    proto.idle_timeout_s = 0;
    net_ = std::make_unique<NetServer>(&loop_, proto, &commands_, kNode);
    InstallHandlers();
    net_->AddOpenCallback([this](SessionId, const std::string&) {
      if (throw_on_open_) throw std::runtime_error("open callback failed");
    });
    Status s = net_->Listen("127.0.0.1", 0);
    if (!s.ok()) throw std::runtime_error(s.message());
    thread_ = std::thread([this] { loop_.Run(); });
  }
  ~PushServer() {
    loop_.Post([this] { loop_.Quit(); });
    thread_.join();
    net_.reset();
  }
  uint16_t port() const { return net_->port(); }
  // The next session opens get an exception out of an open callback.
  std::atomic<bool> throw_on_open_{false};

 private:
  static std::pair<std::string, std::string> SplitBar(std::string_view body) {
    size_t bar = body.find('|');
    if (bar == std::string_view::npos) return {std::string(body), ""};
    return {std::string(body.substr(0, bar)), std::string(body.substr(bar + 1))};
  }

  void InstallHandlers() {
    NetServer* net = net_.get();
    commands_.Set(kJoin, [net](const RequestContext& ctx, std::string_view body) {
      net->JoinGroup(std::string(body), ctx.session);
      ctx.responder->Reply(ctx, "joined");
    });
    commands_.Set(kLeave, [net](const RequestContext& ctx, std::string_view body) {
      net->LeaveGroup(std::string(body), ctx.session);
      ctx.responder->Reply(ctx, "left");
    });
    commands_.Set(kBroadcast, [net](const RequestContext& ctx, std::string_view body) {
      auto [group, payload] = SplitBar(body);
      ctx.responder->Reply(ctx, std::to_string(net->Broadcast(group, kBroadcastPush, payload)));
    });
    commands_.Set(kGroupSize, [net](const RequestContext& ctx, std::string_view body) {
      ctx.responder->Reply(ctx, std::to_string(net->GroupSize(std::string(body))));
    });
    commands_.Set(kPushSelf, [net](const RequestContext& ctx, std::string_view body) {
      net->Push(ctx.session, kSelfPush, body);
      ctx.responder->Reply(ctx, "pushed");
    });
    commands_.Set(kWhoAmI, [](const RequestContext& ctx, std::string_view) {
      ctx.responder->Reply(ctx, std::to_string(ctx.session));
    });
    commands_.Set(kPushMany, [net](const RequestContext& ctx, std::string_view body) {
      auto [list, payload] = SplitBar(body);
      std::vector<SessionId> ids;
      std::stringstream ss(list);
      std::string item;
      while (std::getline(ss, item, ',')) ids.push_back(std::stoull(item));
      ctx.responder->Reply(ctx, std::to_string(net->PushMany(ids, kManyPush, payload)));
    });
    commands_.Set(kKickSelf, [net](const RequestContext& ctx, std::string_view) {
      net->Push(ctx.session, kByePush, "bye");
      net->Kick(ctx.session, "test");
      ctx.responder->Reply(ctx, "never seen");  // the session is closing: dropped
    });
    commands_.Set(kDeferred, [this](const RequestContext& ctx, std::string_view body) {
      loop_.RunAfter(0.05, [ctx, b = std::string(body)] { ctx.responder->Reply(ctx, b); });
    });
    commands_.Set(kDecline, [](const RequestContext& ctx, std::string_view) { ctx.responder->Decline(ctx); });
    commands_.Set(kEcho, [](const RequestContext& ctx, std::string_view body) { ctx.responder->Reply(ctx, body); });
  }

  EventLoop loop_;
  CommandTable commands_;
  std::unique_ptr<NetServer> net_;
  std::thread thread_;
};

class NetPushTest : public ::testing::Test {
 protected:
  std::unique_ptr<Client> Connect() {
    auto c = std::make_unique<Client>();
    Status s = c->Connect("127.0.0.1", server_.port());
    EXPECT_TRUE(s.ok()) << s.message();
    return c;
  }
  std::vector<std::unique_ptr<Client>> ConnectMany(int n) {
    std::vector<std::unique_ptr<Client>> v;
    for (int i = 0; i < n; ++i) v.push_back(Connect());
    return v;
  }
  static std::string CallOk(Client* c, uint32_t cmd, std::string_view body) {
    Frame f;
    Status s = c->Call(cmd, body, &f);
    EXPECT_TRUE(s.ok()) << "command " << cmd << ": " << s.message();
    EXPECT_EQ(f.command, cmd);
    return f.body;
  }
  // The next frame must be the reply to a fresh echo: nothing else was pushed.
  static void ExpectNothingPushed(Client* c) {
    ASSERT_TRUE(c->Send(kEcho, "probe").ok());
    Frame f;
    ASSERT_TRUE(c->Receive(&f).ok());
    EXPECT_EQ(f.command, kEcho) << "unexpected push: " << f.body;
  }

  PushServer server_;
};

TEST_F(NetPushTest, BroadcastReachesEveryMemberOfTheGroupOnly) {
  auto members = ConnectMany(100);
  auto outsiders = ConnectMany(10);
  for (auto& c : members) ASSERT_EQ(CallOk(c.get(), kJoin, "room"), "joined");
  for (auto& c : outsiders) ASSERT_EQ(CallOk(c.get(), kJoin, "lobby"), "joined");
  ASSERT_EQ(CallOk(outsiders[0].get(), kBroadcast, "room|hello room"), "100");
  for (size_t i = 0; i < members.size(); ++i) {
    Frame f;
    Status s = members[i]->Receive(&f);
    ASSERT_TRUE(s.ok()) << "member " << i << ": " << s.message();
    EXPECT_EQ(f.command, kBroadcastPush);
    EXPECT_EQ(f.body, "hello room");
  }
  for (auto& c : outsiders) ExpectNothingPushed(c.get());
}

TEST_F(NetPushTest, BroadcastFromAMemberReachesItToo) {
  auto members = ConnectMany(3);
  for (auto& c : members) CallOk(c.get(), kJoin, "g");
  // The sender gets the push and its reply; Call keeps the push for Receive.
  ASSERT_EQ(CallOk(members[0].get(), kBroadcast, "g|x"), "3");
  for (auto& c : members) {
    Frame f;
    ASSERT_TRUE(c->Receive(&f).ok());
    EXPECT_EQ(f.command, kBroadcastPush);
  }
}

TEST_F(NetPushTest, SessionIdsAreUniqueAndCarryTheNode) {
  auto clients = ConnectMany(50);
  std::set<SessionId> ids;
  for (auto& c : clients) {
    SessionId id = std::stoull(CallOk(c.get(), kWhoAmI, ""));
    EXPECT_EQ(SessionNode(id), kNode);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), clients.size());
}

TEST_F(NetPushTest, PushToOneSessionAndToAList) {
  auto clients = ConnectMany(100);
  std::vector<std::string> ids;
  for (auto& c : clients) ids.push_back(CallOk(c.get(), kWhoAmI, ""));
  std::string even;
  for (size_t i = 0; i < ids.size(); i += 2) even += (even.empty() ? "" : ",") + ids[i];
  even += ",999999";  // an unknown session is skipped, not counted
  ASSERT_EQ(CallOk(clients[1].get(), kPushMany, even + "|to the evens"), "50");
  for (size_t i = 0; i < clients.size(); ++i) {
    if (i % 2) {
      ExpectNothingPushed(clients[i].get());
      continue;
    }
    Frame f;
    ASSERT_TRUE(clients[i]->Receive(&f).ok()) << "client " << i;
    EXPECT_EQ(f.command, kManyPush);
    EXPECT_EQ(f.body, "to the evens");
  }
  // Push to self: the push goes out before the reply to the same request.
  auto& c = clients[3];
  ASSERT_TRUE(c->Send(kPushSelf, "just me").ok());
  Frame f;
  ASSERT_TRUE(c->Receive(&f).ok());
  EXPECT_EQ(f.command, kSelfPush);
  EXPECT_EQ(f.body, "just me");
  ASSERT_TRUE(c->Receive(&f).ok());
  EXPECT_EQ(f.command, kPushSelf);
}

TEST_F(NetPushTest, LeavingOrClosingRemovesASessionFromItsGroups) {
  auto clients = ConnectMany(10);
  for (auto& c : clients) CallOk(c.get(), kJoin, "g");
  CallOk(clients[0].get(), kLeave, "g");
  for (int i = 5; i < 10; ++i) clients[i]->Close();
  // The server notices the closes asynchronously; poll the group's size.
  std::string size;
  for (int attempt = 0; attempt < 200; ++attempt) {
    size = CallOk(clients[1].get(), kGroupSize, "g");
    if (size == "4") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(size, "4");
  ASSERT_EQ(CallOk(clients[1].get(), kBroadcast, "g|after"), "4");
  ExpectNothingPushed(clients[0].get());
  for (int i = 1; i < 5; ++i) {
    Frame f;
    ASSERT_TRUE(clients[i]->Receive(&f).ok());
    EXPECT_EQ(f.body, "after");
  }
}

TEST_F(NetPushTest, KickDeliversWhatWasQueuedThenCloses) {
  auto victim = Connect();
  auto other = Connect();
  ASSERT_TRUE(victim->Send(kKickSelf, "").ok());
  Frame f;
  ASSERT_TRUE(victim->Receive(&f).ok());
  EXPECT_EQ(f.command, kByePush);
  EXPECT_EQ(f.body, "bye");
  EXPECT_TRUE(victim->WaitClosed(5000));
  EXPECT_EQ(victim->queued(), 0u) << "a reply after the kick leaked out";
  EXPECT_EQ(CallOk(other.get(), kEcho, "fine"), "fine");
}

TEST_F(NetPushTest, AsyncAndDeclinedAnswersKeepRequestOrder) {
  auto c = Connect();
  std::string burst;
  net::FrameLimits limits;
  net::AppendFrame(limits, kDeferred, "first (answered 50 ms later)", &burst);
  net::AppendFrame(limits, kEcho, "second", &burst);
  net::AppendFrame(limits, kDecline, "", &burst);
  net::AppendFrame(limits, kPushSelf, "push", &burst);
  net::AppendFrame(limits, kEcho, "fourth", &burst);
  ASSERT_TRUE(c->SendRaw(burst).ok());
  // The push leaves at once; the replies wait for the deferred first one.
  std::vector<std::pair<uint32_t, std::string>> want = {{kSelfPush, "push"},
                                                        {kDeferred, "first (answered 50 ms later)"},
                                                        {kEcho, "second"},
                                                        {kPushSelf, "pushed"},
                                                        {kEcho, "fourth"}};
  for (size_t i = 0; i < want.size(); ++i) {
    Frame f;
    ASSERT_TRUE(c->Receive(&f).ok()) << "frame " << i;
    EXPECT_EQ(f.command, want[i].first) << "frame " << i;
    EXPECT_EQ(f.body, want[i].second) << "frame " << i;
  }
}

TEST_F(NetPushTest, ReplyToAClosedSessionIsDroppedQuietly) {
  auto c = Connect();
  ASSERT_TRUE(c->Send(kDeferred, "too late").ok());
  c->Close();  // gone before the deferred reply
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto other = Connect();
  EXPECT_EQ(CallOk(other.get(), kEcho, "ok"), "ok");
}

// An exception that escapes host code run by libevent (here an open callback
// inside the accept) stops at the loop's boundary: logged, counted, and the
// server and every other session keep going.
TEST_F(NetPushTest, ExceptionOutOfACallbackDoesNotTakeTheServerDown) {
  auto before = Connect();
  ASSERT_EQ(CallOk(before.get(), kEcho, "accepted"), "accepted");
  const int64_t escaped = Metrics().Value("lampyr_callback_exceptions_total", "where=\"net accept\"");
  server_.throw_on_open_ = true;
  auto during = Connect();
  ASSERT_EQ(CallOk(during.get(), kEcho, "opened anyway"), "opened anyway");
  server_.throw_on_open_ = false;
  EXPECT_EQ(Metrics().Value("lampyr_callback_exceptions_total", "where=\"net accept\""), escaped + 1);
  EXPECT_EQ(CallOk(before.get(), kEcho, "still here"), "still here");
  auto after = Connect();
  EXPECT_EQ(CallOk(after.get(), kEcho, "and new ones"), "and new ones");
}

}  // namespace
}  // namespace lampyr
