// ReplyOrder: the "replies leave in request order" rule of one session,
// apart from any transport (TCP today, WebSocket next). Requests are numbered
// as they are read; an answer that comes before an earlier request's waits
// here until every earlier request has been answered or declined.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace lampyr::net {

class ReplyOrder {
 public:
  // The number of the next request read.
  uint32_t Next() { return next_seq_++; }
  // Requests read and not answered yet (seq arithmetic is modulo 2^32).
  uint32_t inflight() const { return next_seq_ - next_reply_seq_; }

  // Request `seq` is answered with (command, body), or declined (no frame).
  // `emit(command, body)` runs for every frame that is now due, in order.
  // A second answer to one request, or one to an unknown seq, is ignored.
  template <typename Emit>
  void Answer(uint32_t seq, uint32_t command, std::string_view body, bool declined, Emit&& emit) {
    if (static_cast<int32_t>(seq - next_reply_seq_) < 0 || static_cast<int32_t>(next_seq_ - seq) <= 0) return;
    if (seq != next_reply_seq_) {
      parked_.try_emplace(seq, Parked{declined, command, std::string(body)});
      return;
    }
    if (!declined) emit(command, body);
    ++next_reply_seq_;
    while (!parked_.empty() && parked_.begin()->first == next_reply_seq_) {
      auto node = parked_.extract(parked_.begin());
      if (!node.mapped().declined) emit(node.mapped().command, std::string_view(node.mapped().body));
      ++next_reply_seq_;
    }
  }

  // Forgets answers waiting for earlier ones (the session is closing).
  void Clear() { parked_.clear(); }

 private:
  struct Parked {
    bool declined;
    uint32_t command;
    std::string body;
  };
  uint32_t next_seq_ = 0;        // assigned to the next request read
  uint32_t next_reply_seq_ = 0;  // the request whose answer leaves next
  std::map<uint32_t, Parked> parked_;
};

}  // namespace lampyr::net
