// room: chat rooms. Built twice from this file: libroom.so (v1) and
// libroom_v2.so (ROOM_V2 defined), both named "room", so a server can be
// reloaded v1 -> v2 -> v1 while its players stay in their rooms.
//
// Commands (body -> reply; pushes go to the room's members):
//   100 join  <room>  -> greeting (differs v1/v2); pushes 110 "<session> joined <room>"
//                        to the members already there. Joining moves the
//                        session out of its previous room.
//   101 leave         -> "left <room>"; pushes 110 "<session> left <room>"
//   102 say   <text>  -> "ok <n>" (n = the room's message count); pushes
//                        111 "<session>: <text>" to every member, the sender too
//   103 who           -> member session ids, one per line, ascending
//   104 stats         -> "rooms=R members=M messages=N checksum=HEX version=V generation=G server=S"
//                        checksum covers rooms, members and message counts, so it
//                        is the same before and after a reload in either direction.
// Errors (fail, code 2): join with an invalid name (1..32 printable, no space),
// leave/say/who outside a room, too many rooms (config "max_rooms").
//
// State across reloads: schema 1 (v1) and 2 (v2), text lines.
//   schema 1:  "R <room> <messages>" then one "M <session>" per member
//   schema 2:  "lampyr-room 2 <total messages>" first; R lines carry a 4th
//              field, the room's peak member count
// v2 migrates schema 1 (peak = current members); v1 reads schema 2 by
// ignoring the extra fields, so v1 -> v2 -> v1 keeps everything v1 knows.
#include <lampyr/plugin.hpp>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace {

using lampyr::sdk::Request;
using lampyr::sdk::Session;

#ifdef ROOM_V2
constexpr uint32_t kSchema = 2;
constexpr const char* kVersion = "2.0";
#else
constexpr uint32_t kSchema = 1;
constexpr const char* kVersion = "1.0";
#endif

enum : uint32_t { kJoin = 100, kLeave = 101, kSay = 102, kWho = 103, kStats = 104, kPushEvent = 110, kPushSay = 111 };

struct RoomState {
  std::set<Session> members;
  uint64_t messages = 0;
  uint64_t peak = 0;  // v2 only (kept, but not used, by v1)
};

bool ValidRoomName(const std::string& name) {
  if (name.empty() || name.size() > 32) return false;
  for (unsigned char c : name)
    if (c <= ' ' || c == 0x7f) return false;
  return true;
}

class Room : public lampyr::sdk::Plugin {
 public:
  void init() override {
    max_rooms_ = uint64_t(config_int("max_rooms", 1000));
    on(kJoin, [this](Request& r) { Join(r); });
    on(kLeave, [this](Request& r) { Leave(r); });
    on(kSay, [this](Request& r) { Say(r); });
    on(kWho, [this](Request& r) { Who(r); });
    on(kStats, [this](Request& r) { r.reply(Stats()); });
    // A member whose connection closes leaves its room (others are told).
    watch_sessions([this](Session s, bool open) {
      if (!open) RemoveMember(s);
    });
    // Periodic gauges: what /metrics shows about the rooms of this generation.
    every(uint64_t(config_int("stats_interval_ms", 1000)), [this] { PublishGauges(); });
  }

  std::string save_state() override {
    std::ostringstream out;
#ifdef ROOM_V2
    out << "lampyr-room 2 " << total_messages_ << "\n";
#endif
    for (const auto& [name, room] : rooms_) {
      out << "R " << name << " " << room.messages;
#ifdef ROOM_V2
      out << " " << room.peak;
#endif
      out << "\n";
      for (Session s : room.members) out << "M " << s << "\n";
    }
    return out.str();
  }

  bool restore_state(std::string_view bytes, uint32_t from_schema) override {
    if (from_schema != 1 && from_schema != 2) {
      errorf("cannot read room state schema %u", from_schema);
      return false;
    }
    std::map<std::string, RoomState> rooms;
    std::map<Session, std::string> where;
    uint64_t total = 0;
    std::istringstream in{std::string(bytes)};
    std::string line;
    RoomState* current = nullptr;
    std::string current_name;
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string tag;
      f >> tag;
      if (tag == "lampyr-room") {
        unsigned schema = 0;
        f >> schema >> total;
        if (!f || schema != from_schema) return false;
      } else if (tag == "R") {
        std::string name;
        uint64_t messages = 0;
        f >> name >> messages;
        if (!f || !ValidRoomName(name)) return false;
        current = &rooms[name];
        current_name = name;
        current->messages = messages;
        uint64_t peak = 0;
        if (from_schema >= 2 && (f >> peak)) current->peak = peak;
        if (from_schema == 1) total += messages;  // schema 1 has no total
      } else if (tag == "M") {
        Session s = 0;
        f >> s;
        if (!f || !current) return false;
        current->members.insert(s);
        where[s] = current_name;
      } else if (!tag.empty()) {
        return false;
      }
    }
    for (auto& [name, room] : rooms) room.peak = std::max<uint64_t>(room.peak, room.members.size());
    rooms_ = std::move(rooms);
    where_ = std::move(where);
    total_messages_ = total;
    infof("restored %zu rooms, %zu members from schema %u (this is schema %u)", rooms_.size(), where_.size(),
          from_schema, kSchema);
    return true;
  }

 private:
  static std::string Group(const std::string& room) { return "room:" + room; }

  void Join(Request& r) {
    const std::string& name = r.body();
    if (!ValidRoomName(name)) {
      r.fail(LAMPYR_FAIL_HANDLER_ERROR, "invalid room name (1..32 printable characters, no spaces)");
      return;
    }
    if (!rooms_.count(name) && rooms_.size() >= max_rooms_) {
      r.fail(LAMPYR_FAIL_HANDLER_ERROR, "too many rooms");
      return;
    }
    Session s = r.session();
    auto cur = where_.find(s);
    if (cur != where_.end() && cur->second != name) RemoveMember(s);
    RoomState& room = rooms_[name];
    bool fresh = room.members.insert(s).second;
    where_[s] = name;
    room.peak = std::max<uint64_t>(room.peak, room.members.size());
    if (fresh) {
      // Tell those already there, then add the newcomer to the host group.
      broadcast(Group(name), kPushEvent, std::to_string(s) + " joined " + name);
      join(Group(name), s);
    }
#ifdef ROOM_V2
    r.reply("v2: hello " + std::to_string(s) + ", you are in " + name + " with " +
            std::to_string(room.members.size() - 1) + " others");
#else
    r.reply("welcome to " + name + ", " + std::to_string(s));
#endif
  }

  void Leave(Request& r) {
    auto it = where_.find(r.session());
    if (it == where_.end()) {
      r.fail(LAMPYR_FAIL_HANDLER_ERROR, "not in a room");
      return;
    }
    std::string name = it->second;
    RemoveMember(r.session());
    r.reply("left " + name);
  }

  void Say(Request& r) {
    auto it = where_.find(r.session());
    if (it == where_.end()) {
      r.fail(LAMPYR_FAIL_HANDLER_ERROR, "not in a room");
      return;
    }
    RoomState& room = rooms_[it->second];
    ++room.messages;
    ++total_messages_;
    broadcast(Group(it->second), kPushSay, std::to_string(r.session()) + ": " + r.body());
    counter_add("room_messages_total", "chat messages said in rooms");
    r.reply("ok " + std::to_string(room.messages));
  }

  void Who(Request& r) {
    auto it = where_.find(r.session());
    if (it == where_.end()) {
      r.fail(LAMPYR_FAIL_HANDLER_ERROR, "not in a room");
      return;
    }
    std::string out;
    for (Session s : rooms_[it->second].members) out += std::to_string(s) + "\n";
    r.reply(out);
  }

  void RemoveMember(Session s) {
    auto it = where_.find(s);
    if (it == where_.end()) return;
    std::string name = it->second;
    where_.erase(it);
    auto room = rooms_.find(name);
    if (room == rooms_.end()) return;
    room->second.members.erase(s);
    leave(Group(name), s);
    broadcast(Group(name), kPushEvent, std::to_string(s) + " left " + name);
    // An empty room keeps its message count (it is part of the state the
    // checksum follows); rooms are few and named by players.
  }

  // FNV-1a over what both versions keep: room names, members, message counts.
  uint64_t Checksum() const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](const std::string& s) {
      for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
      }
      h ^= 0xff;
      h *= 1099511628211ull;
    };
    for (const auto& [name, room] : rooms_) {
      mix(name);
      mix(std::to_string(room.messages));
      for (Session s : room.members) mix(std::to_string(s));
    }
    return h;
  }

  std::string Stats() const {
    char sum[17];
    std::snprintf(sum, sizeof sum, "%016llx", static_cast<unsigned long long>(Checksum()));
    uint64_t messages = 0;
    for (const auto& [name, room] : rooms_) messages += room.messages;
    return "rooms=" + std::to_string(rooms_.size()) + " members=" + std::to_string(where_.size()) +
           " messages=" + std::to_string(messages) + " checksum=" + sum + " version=" + kVersion +
           " generation=" + std::to_string(generation()) + " server=" + server_name();
  }

  void PublishGauges() {
    gauge_set("room_rooms", "chat rooms (including empty ones)", int64_t(rooms_.size()));
    gauge_set("room_members", "sessions in a chat room", int64_t(where_.size()));
  }

  std::map<std::string, RoomState> rooms_;
  std::map<Session, std::string> where_;  // member -> its room
  uint64_t total_messages_ = 0;
  uint64_t max_rooms_ = 1000;
};

}  // namespace

LAMPYR_PLUGIN(Room, "room", kVersion, kSchema)
