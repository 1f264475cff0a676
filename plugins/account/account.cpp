// account: register / login with salted password hashes, and a player record
// kept by the data layer (docs/data.md, "From a plugin"). Runs on a server
// with "db": true; the tables are in conf/schema.sql and must be declared in
// the config:
//   "tables": {"account": {"pk": "id", "fk": "name", "autoinc": true},
//              "player":  {"pk": "id", "fk": "account_id", "autoinc": true}}
// (the fk of account is its name: a login finds the account by name through
// the cached fk list; the fk of player finds a player by account).
//
// Commands (body -> reply). Expected refusals are replies starting "err ";
// a data-layer failure is the protocol's error reply (handler_error).
//   200 register "<name> <password>" -> "ok <account id>" | "err name taken" |
//                 "err bad name" (1..32 of [A-Za-z0-9_.-]) | "err bad password" (4..128 bytes)
//   201 login    "<name> <password>" -> "ok " + show's fields; creates the player record on the
//                 first login and counts logins | "err wrong name or password"
//   202 gold     "<+N|-N>"          -> "gold <new total>" (atomic add, any number of servers) |
//                 "err not enough gold" (never below 0) | "err not logged in" | "err bad amount"
//   203 show                         -> "player=<id> nickname=<n> gold=<g> logins=<l>"
//   204 set      "<field> <bytes>"   -> "ok"; field motto (TEXT: UTF-8) or bag (BLOB: any bytes)
//   205 get      "<field>"           -> the field's bytes exactly (empty for NULL)
//   206 top      "[min_gold]"        -> "<nickname>=<gold> ..." richest 10 first; a raw query, so
//                 it sees what was flushed to MySQL (flush_interval_ms), not newer updates
//   207 peek     "<player id> ..."   -> "<id>=<nickname>:<gold> ..." ("<id>=-" for none): one multi-get
//   208 delete   "<password>"        -> "ok deleted": removes the player and the account records
//                 (flushed as DELETE) and logs the session out | "err wrong name or password".
//                 The name can be registered again once the DELETE reached MySQL.
// Commands 202-208 need a login on the same connection (the player id is session data).
//
// Passwords: Argon2id through libsodium (crypto_pwhash_str_alg at the
// library's INTERACTIVE limits: 64 MiB, 2 passes), stored in libsodium's
// self-describing "$argon2id$v=19$m=...,t=...,p=...$salt$hash" form; never
// the password. Each hash costs tens of milliseconds of CPU and 64 MiB, so
// it runs on the host's worker pool ("work"), never on the event loop:
// other players are served meanwhile. Accounts made by earlier versions keep
// "pbkdf2-sha256$<rounds>$<salt hex>$<key hex>" (PBKDF2-HMAC-SHA256, the
// hand-written code below, kept only to verify them); such an account, and
// one whose Argon2id parameters are below today's limits, is rehashed when
// it logs in with the right password.
// Config: {"account_table": "account", "player_table": "player"}.
#include <lampyr/plugin.hpp>

#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <sstream>

namespace {

using lampyr::sdk::DataStatus;
using lampyr::sdk::Request;
using lampyr::sdk::Row;
using lampyr::sdk::WorkStatus;

enum : uint32_t { kRegister = 200, kLogin = 201, kGold = 202, kShow = 203, kSet = 204, kGet = 205, kTop = 206,
                 kPeek = 207, kDelete = 208 };

// ---- SHA-256 (FIPS 180-4), HMAC (RFC 2104), PBKDF2 (RFC 8018) ----------------
// In the plugin so that it needs no library; checked against the RFC test
// vectors by the integration test's known-answer login. Tables at namespace
// scope (internal linkage), not function statics.
constexpr uint32_t kShaInit[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
constexpr uint32_t kShaRounds[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

class Sha256 {
 public:
  Sha256() { reset(); }
  void reset() {
    std::memcpy(h_, kShaInit, sizeof h_);
    len_ = 0;
    fill_ = 0;
  }
  void update(std::string_view d) {
    for (char c : d) {
      buf_[fill_++] = static_cast<uint8_t>(c);
      if (fill_ == 64) {
        block();
        fill_ = 0;
      }
    }
    len_ += d.size();
  }
  std::string digest() {  // 32 raw bytes
    uint64_t bits = len_ * 8;
    update(std::string_view("\x80", 1));
    while (fill_ != 56) update(std::string_view("\0", 1));
    for (int i = 7; i >= 0; --i) buf_[fill_++] = uint8_t(bits >> (8 * i));
    block();
    std::string out(32, '\0');
    for (int i = 0; i < 32; ++i) out[i] = char(h_[i / 4] >> (24 - 8 * (i % 4)));
    reset();
    return out;
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  void block() {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t(buf_[4 * i]) << 24 | uint32_t(buf_[4 * i + 1]) << 16 | uint32_t(buf_[4 * i + 2]) << 8 |
             buf_[4 * i + 3];
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kShaRounds[i] + w[i];
      uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h_[0] += a, h_[1] += b, h_[2] += c, h_[3] += d, h_[4] += e, h_[5] += f, h_[6] += g, h_[7] += h;
  }

  uint32_t h_[8];
  uint8_t buf_[64];
  size_t fill_ = 0;
  uint64_t len_ = 0;
};

// HMAC-SHA256 with the key's inner and outer states computed once, so each
// PBKDF2 round costs two compressions instead of four.
class HmacSha256 {
 public:
  explicit HmacSha256(std::string_view key) {
    std::string k(key);
    if (k.size() > 64) {
      inner_.update(k);
      k = inner_.digest();
    }
    k.resize(64, '\0');
    std::string ipad(k), opad(k);
    for (int i = 0; i < 64; ++i) ipad[i] ^= 0x36, opad[i] ^= 0x5c;
    inner_.update(ipad);
    outer_.update(opad);
  }
  std::string mac(std::string_view msg) const {
    Sha256 in = inner_, out = outer_;
    in.update(msg);
    out.update(in.digest());
    return out.digest();
  }

 private:
  Sha256 inner_, outer_;
};

// One 32-byte block of PBKDF2-HMAC-SHA256 (dkLen = 32).
std::string Pbkdf2(std::string_view password, std::string_view salt, uint32_t rounds) {
  const HmacSha256 hmac(password);
  std::string u = hmac.mac(std::string(salt) + std::string("\0\0\0\1", 4));
  std::string out = u;
  for (uint32_t i = 1; i < rounds; ++i) {
    u = hmac.mac(u);
    for (size_t j = 0; j < out.size(); ++j) out[j] ^= u[j];
  }
  return out;
}

// Argon2id at libsodium's interactive limits. Runs on a worker thread.
std::string HashPassword(std::string_view password) {
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                            crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0)
    throw lampyr::sdk::Error("account: password hashing failed (out of memory?)");
  return out;
}

bool Unhex(std::string_view hex, std::string* out) {
  if (hex.size() % 2) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int v = 0;
    for (char c : hex.substr(i, 2)) {
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else return false;
    }
    *out += char(v);
  }
  return true;
}

// Constant-time comparison against a stored "pbkdf2-sha256$rounds$salt$key".
bool CheckPbkdf2(std::string_view password, const std::string& stored) {
  char salt_hex[65] = {}, key_hex[129] = {};
  unsigned rounds = 0;
  if (std::sscanf(stored.c_str(), "pbkdf2-sha256$%u$%64[0-9a-f]$%128[0-9a-f]", &rounds, salt_hex, key_hex) != 3)
    return false;
  std::string salt, key;
  if (rounds == 0 || rounds > 10000000 || !Unhex(salt_hex, &salt) || !Unhex(key_hex, &key) || key.size() != 32)
    return false;
  std::string got = Pbkdf2(password, salt, rounds);
  return sodium_memcmp(got.data(), key.data(), 32) == 0;
}

// What a password check found: whether it matched, and when it did and the
// stored hash is outdated (PBKDF2, or Argon2id below today's limits), the
// new hash to store.
struct Verdict {
  bool ok = false;
  std::string rehash;
};

// Runs on a worker thread.
Verdict CheckPassword(std::string_view password, const std::string& stored) {
  Verdict v;
  if (stored.rfind("$argon2", 0) == 0) {
    v.ok = crypto_pwhash_str_verify(stored.c_str(), password.data(), password.size()) == 0;
    if (v.ok && crypto_pwhash_str_needs_rehash(stored.c_str(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                               crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
      v.rehash = HashPassword(password);
  } else {
    v.ok = CheckPbkdf2(password, stored);
    if (v.ok) v.rehash = HashPassword(password);
  }
  return v;
}

// Wall-clock time for records (now_ms() is the loop's monotonic clock).
int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool ValidName(std::string_view n) {
  if (n.empty() || n.size() > 32) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return false;
  return true;
}

std::string Field(const Row& row, const std::string& col) {
  auto it = row.find(col);
  return it != row.end() && it->second ? *it->second : std::string();
}

// "name password" -> both; false when there is no space.
bool SplitCredentials(const std::string& body, std::string* name, std::string* password) {
  size_t sp = body.find(' ');
  if (sp == std::string::npos) return false;
  *name = body.substr(0, sp);
  *password = body.substr(sp + 1);
  return true;
}

class Account : public lampyr::sdk::Plugin {
 public:
  void init() override {
    accounts_ = config_string("account_table", "account");
    players_ = config_string("player_table", "player");
    for (const auto& t : {accounts_, players_})
      if (!ValidName(t) || t.find('.') != std::string::npos || t.find('-') != std::string::npos)
        throw lampyr::sdk::Error("account: bad table name " + t);
    if (sodium_init() < 0) throw lampyr::sdk::Error("account: libsodium failed to initialise");
    on(kRegister, [this](Request& r) { Register(r); });
    on(kLogin, [this](Request& r) { Login(r); });
    on(kGold, [this](Request& r) { Gold(r); });
    on(kShow, [this](Request& r) { WithPlayer(r, [this, r](const std::string& pk) { Show(r, pk); }); });
    on(kSet, [this](Request& r) { Set(r); });
    on(kGet, [this](Request& r) { Get(r); });
    on(kTop, [this](Request& r) { Top(r); });
    on(kPeek, [this](Request& r) { Peek(r); });
    on(kDelete, [this](Request& r) { Delete(r); });
  }

 private:
  // A data-layer failure: the error reply, the detail in the log.
  bool Failed(const Request& r, const DataStatus& st) {
    if (st.ok()) return false;
    errorf("command %u: %s", r.command(), st.message.c_str());
    r.fail(LAMPYR_FAIL_HANDLER_ERROR, st.message);
    return true;
  }
  // Starting a data operation can be refused at once (draining generation).
  void Started(const Request& r, bool ok) {
    if (!ok) r.fail(LAMPYR_FAIL_UNAVAILABLE, "data layer unavailable");
  }

  void Register(const Request& r) {
    std::string name, password;
    if (!SplitCredentials(r.body(), &name, &password) || !ValidName(name)) return void(r.reply("err bad name"));
    if (password.size() < 4 || password.size() > 128) return void(r.reply("err bad password"));
    Started(r, db_get_by_fk(accounts_, name, [this, r, name, password](DataStatus st, std::vector<Row> rows) {
              if (Failed(r, st)) return;
              if (!rows.empty()) return void(r.reply("err name taken"));
              Hashing(r, work([password] { return HashPassword(password); },
                              [this, r, name](WorkStatus ws, std::string hash) {
                                if (HashFailed(r, ws)) return;
                                Row account{{"name", name}, {"pwhash", hash}, {"created_ms", std::to_string(UnixMs())}};
                                Started(r, db_create(accounts_, account, [this, r](DataStatus st, std::string pk) {
                                          // The UNIQUE name index refuses the loser of a race between two
                                          // registrations.
                                          if (!st.ok() && st.message.find("Duplicate") != std::string::npos)
                                            return void(r.reply("err name taken"));
                                          if (!Failed(r, st)) r.reply("ok " + pk);
                                        }));
                              }));
            }));
  }

  void Login(const Request& r) {
    std::string name, password;
    if (!SplitCredentials(r.body(), &name, &password) || !ValidName(name))
      return void(r.reply("err wrong name or password"));
    Started(r, db_get_by_fk(accounts_, name, [this, r, password](DataStatus st, std::vector<Row> rows) {
              if (Failed(r, st)) return;
              // An unknown name costs a hash too, so timing does not tell which names exist.
              std::string stored = rows.empty() ? std::string() : Field(rows[0], "pwhash");
              std::string id = rows.empty() ? std::string() : Field(rows[0], "id");
              std::string name = rows.empty() ? std::string() : Field(rows[0], "name");
              Verify(r, password, stored, id, [this, r, id, name] { FindPlayer(r, id, name, true); });
            }));
  }

  // The account's player, created on the first login. `retry`: a create
  // refused by the UNIQUE account_id index (another server created it first)
  // looks once more.
  void FindPlayer(const Request& r, const std::string& account_id, const std::string& name, bool retry) {
    Started(r, db_get_by_fk(players_, account_id, [=, this](DataStatus st, std::vector<Row> rows) {
              if (Failed(r, st)) return;
              if (!rows.empty()) return LoggedIn(r, account_id, Field(rows[0], "id"));
              Row player{{"account_id", account_id}, {"nickname", name}, {"gold", "0"}, {"logins", "0"}};
              Started(r, db_create(players_, player, [=, this](DataStatus st, std::string pk) {
                        if (!st.ok() && retry && st.message.find("Duplicate") != std::string::npos)
                          return FindPlayer(r, account_id, name, false);
                        if (!Failed(r, st)) LoggedIn(r, account_id, pk);
                      }));
            }));
  }

  void LoggedIn(const Request& r, const std::string& account_id, const std::string& player) {
    session_set(r.session(), "account", account_id);
    session_set(r.session(), "player", player);
    Started(r, db_add(players_, player, "logins", 1, [this, r](DataStatus st, std::optional<Row> row) {
              if (!Failed(r, st)) r.reply("ok " + Describe(*row));
            }));
  }

  std::string Describe(const Row& p) {
    return "player=" + Field(p, "id") + " nickname=" + Field(p, "nickname") + " gold=" + Field(p, "gold") +
           " logins=" + Field(p, "logins");
  }

  // Runs fn(player id) when the session is logged in.
  template <class Fn>
  void WithPlayer(const Request& r, Fn&& fn) {
    auto player = session_get(r.session(), "player");
    if (!player) return void(r.reply("err not logged in"));
    fn(*player);
  }

  void Gold(const Request& r) {
    WithPlayer(r, [&](const std::string& pk) {
      const std::string& b = r.body();
      auto n = lampyr::sdk::json::to_int(!b.empty() && b[0] == '+' ? std::string_view(b).substr(1) : std::string_view(b));
      if (!n || *n == INT64_MIN) return void(r.reply("err bad amount"));
      Started(r, db_add(
                     players_, pk, "gold", *n,
                     [this, r](DataStatus st, std::optional<Row> row) {
                       if (!st.ok() && st.message.rfind("data: out of bounds", 0) == 0)
                         return void(r.reply("err not enough gold"));
                       if (!Failed(r, st)) r.reply("gold " + Field(*row, "gold"));
                     },
                     0));
    });
  }

  void Show(const Request& r, const std::string& pk) {
    Started(r, db_get(players_, pk, [this, r](DataStatus st, std::optional<Row> row) {
              if (Failed(r, st)) return;
              if (!row) return void(r.fail(LAMPYR_FAIL_HANDLER_ERROR, "player record vanished"));
              r.reply(Describe(*row));
            }));
  }

  static bool KnownField(const std::string& f) { return f == "motto" || f == "bag"; }

  void Set(const Request& r) {
    WithPlayer(r, [&](const std::string& pk) {
      size_t sp = r.body().find(' ');
      std::string field = r.body().substr(0, sp);
      if (sp == std::string::npos || !KnownField(field)) return void(r.reply("err unknown field"));
      Started(r, db_update(players_, pk, Row{{field, r.body().substr(sp + 1)}}, [this, r](DataStatus st) {
                if (!Failed(r, st)) r.reply("ok");
              }));
    });
  }

  void Get(const Request& r) {
    WithPlayer(r, [&](const std::string& pk) {
      std::string field = r.body();
      if (!KnownField(field)) return void(r.reply("err unknown field"));
      Started(r, db_get(players_, pk, [this, r, field](DataStatus st, std::optional<Row> row) {
                if (Failed(r, st)) return;
                r.reply(row ? Field(*row, field) : std::string());
              }));
    });
  }

  void Top(const Request& r) {
    WithPlayer(r, [&](const std::string&) {
      std::string min = r.body().empty() ? "0" : r.body();
      if (!lampyr::sdk::json::to_int(min)) return void(r.reply("err bad amount"));
      // Table names are checked at init; the value is a bound parameter.
      std::string sql = "SELECT nickname, gold FROM " + players_ + " WHERE gold >= ? ORDER BY gold DESC, id LIMIT 10";
      Started(r, db_query(sql, {min}, [this, r](DataStatus st, std::vector<std::vector<lampyr::sdk::Value>> rows, uint64_t) {
                if (Failed(r, st)) return;
                std::string out;
                for (const auto& row : rows)
                  if (row.size() == 2) out += (out.empty() ? "" : " ") + row[0].value_or("") + "=" + row[1].value_or("");
                r.reply(out);
              }));
    });
  }

  void Peek(const Request& r) {
    WithPlayer(r, [&](const std::string&) {
      std::vector<std::string> ids;
      std::istringstream in(r.body());
      for (std::string id; in >> id && ids.size() < 100;) ids.push_back(id);
      Started(r, db_get_many(players_, ids, [this, r, ids](DataStatus st, std::vector<std::optional<Row>> rows) {
                if (Failed(r, st)) return;
                std::string out;
                for (size_t i = 0; i < ids.size() && i < rows.size(); ++i)
                  out += (i ? " " : "") + ids[i] + "=" +
                         (rows[i] ? Field(*rows[i], "nickname") + ":" + Field(*rows[i], "gold") : "-");
                r.reply(out);
              }));
    });
  }

  // Checks the password again, then removes the player, then the account.
  void Delete(const Request& r) {
    auto account = session_get(r.session(), "account");
    auto player = session_get(r.session(), "player");
    if (!account || !player) return void(r.reply("err not logged in"));
    Started(r, db_get(accounts_, *account, [this, r, player = *player](DataStatus st, std::optional<Row> acc) {
              if (Failed(r, st)) return;
              if (!acc) return void(r.reply("err wrong name or password"));
              const std::string id = Field(*acc, "id");
              // No rehash: the account is about to go.
              Verify(r, r.body(), Field(*acc, "pwhash"), id, [this, r, id, player] { RemoveBoth(r, id, player); },
                     false);
            }));
  }

  void RemoveBoth(const Request& r, const std::string& id, const std::string& player) {
              Started(r, db_remove(players_, player, [this, r, id](DataStatus st) {
                        if (Failed(r, st)) return;
                        Started(r, db_remove(accounts_, id, [this, r](DataStatus st) {
                                  if (Failed(r, st)) return;
                                  session_erase(r.session(), "account");
                                  session_erase(r.session(), "player");
                                  r.reply("ok deleted");
                                }));
                      }));
  }

  // Checks `password` against `stored` on a worker, stores a new hash when
  // the old one is outdated (rehash on login), then runs `then` on the loop.
  // A wrong password (or an empty `stored`: no such account) answers "err
  // wrong name or password".
  template <class Then>
  void Verify(const Request& r, const std::string& password, const std::string& stored, const std::string& id,
              Then then, bool rehash = true) {
    Hashing(r, work(
                   [password, stored] {
                     if (!stored.empty()) return CheckPassword(password, stored);
                     HashPassword(password);  // same cost as a real check
                     return Verdict{};
                   },
                   [this, r, id, then, rehash](WorkStatus ws, Verdict v) {
                     if (HashFailed(r, ws)) return;
                     if (!v.ok) return void(r.reply("err wrong name or password"));
                     if (v.rehash.empty() || !rehash) return then();
                     // The login does not depend on the rehash: a failed update only
                     // leaves the old hash, which still verifies next time.
                     bool started = db_update(accounts_, id, Row{{"pwhash", v.rehash}}, [this, id](DataStatus st) {
                       if (st.ok()) infof("account %s: password rehashed with Argon2id", id.c_str());
                       else warnf("account %s: rehash not stored: %s", id.c_str(), st.message.c_str());
                     });
                     if (!started) warnf("account %s: rehash not stored (data layer refused)", id.c_str());
                     then();
                   }));
  }
  // Starting a hash can be refused at once (draining, the work queue full).
  void Hashing(const Request& r, bool ok) {
    if (!ok) r.fail(LAMPYR_FAIL_OVERLOADED, "busy: try again");
  }
  bool HashFailed(const Request& r, const WorkStatus& ws) {
    if (ws.ok()) return false;
    errorf("command %u: %s", r.command(), ws.error.c_str());
    r.fail(LAMPYR_FAIL_HANDLER_ERROR, ws.error);
    return true;
  }

  std::string accounts_, players_;
};

}  // namespace

LAMPYR_PLUGIN(Account, "account", "1.0", 1)
