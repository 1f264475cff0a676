// The Firefly client framing (DESIGN §3): byte layout against Firefly's
// struct.pack('!sssss3I', ...), incremental decoding at every split point,
// and each way a header can be rejected.
#include "net/frame_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace lampyr::net {
namespace {

std::string Bytes(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s.push_back(static_cast<char>(b));
  return s;
}

const uint8_t* U8(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

FrameLimits Limits() {
  FrameLimits l;
  l.head = {0x12, 0x34, 0x56, 0x78};
  l.proto_version = 3;
  l.server_version = 0x01020304;
  l.max_body = 1024;
  return l;
}

std::string Frame(const FrameLimits& l, uint32_t command, const std::string& body) {
  std::string out;
  AppendFrame(l, command, body, &out);
  return out;
}

FrameError Decode(const std::string& s, const FrameLimits& l, DecodedFrame* f) {
  return DecodeFrame(U8(s), s.size(), l, f);
}

// Firefly's netconnect packs the header as struct.pack('!sssss3I', h0, h1, h2,
// h3, proto_version, server_version, length, command): five single bytes then
// three big-endian u32, no padding ('!' = network order, standard sizes).
TEST(FrameCodec, HeaderLayoutMatchesFireflyStructPack) {
  FrameLimits l = Limits();
  std::string f = Frame(l, 0xA1B2C3D4, "hi!");
  const std::string expected = Bytes({0x12, 0x34, 0x56, 0x78,   // head
                                      0x03,                     // proto_version
                                      0x01, 0x02, 0x03, 0x04,   // server_version
                                      0x00, 0x00, 0x00, 0x07,   // length = 3 + 4
                                      0xA1, 0xB2, 0xC3, 0xD4})  // command
                               + "hi!";
  ASSERT_EQ(f.size(), kHeaderSize + 3);
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(static_cast<uint8_t>(f[i]), static_cast<uint8_t>(expected[i])) << "byte " << i;
}

TEST(FrameCodec, DecodesWhatItEncodes) {
  FrameLimits l = Limits();
  std::string body(300, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7);
  std::string f = Frame(l, 42, body);
  DecodedFrame d;
  ASSERT_EQ(Decode(f, l, &d), FrameError::kOk);
  EXPECT_EQ(d.command, 42u);
  EXPECT_EQ(d.body, body);
  EXPECT_EQ(d.frame_size, f.size());
}

TEST(FrameCodec, ZeroLengthBody) {
  FrameLimits l = Limits();
  std::string f = Frame(l, 7, "");
  ASSERT_EQ(f.size(), kHeaderSize);
  EXPECT_EQ(f.substr(9, 4), Bytes({0, 0, 0, 4}));
  DecodedFrame d;
  ASSERT_EQ(Decode(f, l, &d), FrameError::kOk);
  EXPECT_EQ(d.command, 7u);
  EXPECT_TRUE(d.body.empty());
  EXPECT_EQ(d.frame_size, kHeaderSize);
}

// A stream of several frames cut at any byte must decode to the same frames
// as the whole stream: the server sees arbitrary TCP segmentation.
TEST(FrameCodec, EverySplitPointDecodesIdentically) {
  FrameLimits l = Limits();
  const std::vector<std::pair<uint32_t, std::string>> sent = {
      {1, "alpha"}, {2, ""}, {0xFFFFFFFF, std::string(40, 'x')}, {3, std::string("\0\1\2", 3)}};
  std::string stream;
  for (const auto& [cmd, body] : sent) AppendFrame(l, cmd, body, &stream);

  auto decode_all = [&](std::string* buf, std::vector<std::pair<uint32_t, std::string>>* got) {
    for (;;) {
      DecodedFrame d;
      FrameError e = DecodeFrame(U8(*buf), buf->size(), l, &d);
      if (e == FrameError::kNeedMore) return;
      ASSERT_EQ(e, FrameError::kOk);
      got->emplace_back(d.command, std::string(d.body));
      buf->erase(0, d.frame_size);
    }
  };
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    std::vector<std::pair<uint32_t, std::string>> got;
    std::string buf = stream.substr(0, cut);
    decode_all(&buf, &got);
    buf += stream.substr(cut);
    decode_all(&buf, &got);
    EXPECT_EQ(got, sent) << "split at byte " << cut;
    EXPECT_TRUE(buf.empty()) << "split at byte " << cut;
  }
  // And fed one byte at a time.
  std::vector<std::pair<uint32_t, std::string>> got;
  std::string buf;
  for (char c : stream) {
    buf.push_back(c);
    decode_all(&buf, &got);
  }
  EXPECT_EQ(got, sent);
}

TEST(FrameCodec, IncompleteHeaderOrBodyNeedsMore) {
  FrameLimits l = Limits();
  std::string f = Frame(l, 9, "payload");
  for (size_t n = 0; n < f.size(); ++n) {
    DecodedFrame d;
    EXPECT_EQ(DecodeFrame(U8(f), n, l, &d), FrameError::kNeedMore) << "with " << n << " bytes";
  }
}

TEST(FrameCodec, BadHeadAtEachOfTheFourBytes) {
  FrameLimits l = Limits();
  for (size_t i = 0; i < 4; ++i) {
    std::string f = Frame(l, 1, "x");
    f[i] = static_cast<char>(f[i] ^ 0x01);
    DecodedFrame d;
    EXPECT_EQ(Decode(f, l, &d), FrameError::kBadHead) << "head byte " << i;
    // Rejected as soon as the bad byte has arrived, without waiting for 17.
    EXPECT_EQ(DecodeFrame(U8(f), i + 1, l, &d), FrameError::kBadHead) << "head byte " << i;
  }
}

TEST(FrameCodec, BadProtoVersion) {
  FrameLimits l = Limits();
  std::string f = Frame(l, 1, "x");
  f[4] = 4;
  DecodedFrame d;
  EXPECT_EQ(Decode(f, l, &d), FrameError::kBadVersion);
}

TEST(FrameCodec, BadServerVersionAtEachByte) {
  FrameLimits l = Limits();
  for (size_t i = 5; i < 9; ++i) {
    std::string f = Frame(l, 1, "x");
    f[i] = static_cast<char>(f[i] ^ 0x80);
    DecodedFrame d;
    EXPECT_EQ(Decode(f, l, &d), FrameError::kBadVersion) << "byte " << i;
  }
}

TEST(FrameCodec, LengthBelowFourIsRejected) {
  FrameLimits l = Limits();
  for (uint32_t len : {0u, 1u, 2u, 3u}) {
    std::string f = Frame(l, 1, "");
    StoreBE32(reinterpret_cast<uint8_t*>(f.data()) + 9, len);
    DecodedFrame d;
    EXPECT_EQ(Decode(f, l, &d), FrameError::kBadLength) << "length " << len;
  }
}

TEST(FrameCodec, BodyOfExactlyMaxBodyIsAcceptedOneMoreIsNot) {
  FrameLimits l = Limits();
  std::string ok = Frame(l, 5, std::string(l.max_body, 'a'));
  DecodedFrame d;
  ASSERT_EQ(Decode(ok, l, &d), FrameError::kOk);
  EXPECT_EQ(d.body.size(), l.max_body);

  std::string big = Frame(l, 5, std::string(l.max_body + 1, 'a'));
  EXPECT_EQ(Decode(big, l, &d), FrameError::kTooLarge);
  // The header alone is enough to refuse it: no waiting for a huge body.
  EXPECT_EQ(DecodeFrame(U8(big), kHeaderSize, l, &d), FrameError::kTooLarge);
}

TEST(FrameCodec, HugeLengthFieldDoesNotOverflow) {
  FrameLimits l = Limits();
  l.max_body = 0x7FFFFFFB;
  std::string f = Frame(l, 1, "");
  StoreBE32(reinterpret_cast<uint8_t*>(f.data()) + 9, 0xFFFFFFFF);
  DecodedFrame d;
  EXPECT_EQ(Decode(f, l, &d), FrameError::kTooLarge);
  StoreBE32(reinterpret_cast<uint8_t*>(f.data()) + 9, 0x7FFFFFFF);  // body = max_body: wait for it
  EXPECT_EQ(Decode(f, l, &d), FrameError::kNeedMore);
}

TEST(FrameCodec, FrameErrorNamesAreStable) {
  EXPECT_STREQ(FrameErrorName(FrameError::kBadHead), "bad_head");
  EXPECT_STREQ(FrameErrorName(FrameError::kBadVersion), "bad_version");
  EXPECT_STREQ(FrameErrorName(FrameError::kBadLength), "bad_length");
  EXPECT_STREQ(FrameErrorName(FrameError::kTooLarge), "too_large");
}

}  // namespace
}  // namespace lampyr::net
