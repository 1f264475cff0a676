// lampyr-client: talk to a Lampyr net server from a shell.
//   lampyr-client --host H --port P [options] COMMAND...   (--ws: over a wsport)
// Commands run in order on one connection; `-` reads more commands from
// stdin, one per line. Every frame received prints as one line.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <json/json.h>

#include "lampyr_client.h"

namespace {

using lampyr::Status;
using lampyr::client::Client;
using lampyr::client::Frame;
using lampyr::client::Options;

constexpr int kExitOk = 0;
constexpr int kExitConnection = 1;  // connect failed, closed unexpectedly, reply timed out
constexpr int kExitUsage = 2;

void Usage(FILE* out) {
  fprintf(out,
          "usage: lampyr-client --host H --port P [options] COMMAND...\n"
          "options:\n"
          "  --head a,b,c,d          protocol.head bytes (default 0,0,0,0)\n"
          "  --proto-version V       protocol.proto_version (default 0)\n"
          "  --server-version V      protocol.server_version (default 0)\n"
          "  --error-command C       protocol.error_command (default 4294967295)\n"
          "  --max-body N            largest frame body accepted from the server (default 16 MiB)\n"
          "  --timeout-ms T          connect and reply timeout (default 3000)\n"
          "  --json                  one JSON object per frame instead of <command>TAB<body>\n"
          "  --ws                    the port is a wsport: upgrade to WebSocket, one frame per message\n"
          "  --ws-path P             the upgrade request's path (protocol.ws_path, default /)\n"
          "commands:\n"
          "  send CMD BODY           send a request, print frames up to and including its reply\n"
          "  send-hex CMD HEX        same with a hex-encoded body\n"
          "  listen SECONDS          print every frame (pushes) received for SECONDS\n"
          "  sleep MS                wait without reading\n"
          "  -                       read commands from stdin, one per line (BODY = rest of line;\n"
          "                          blank lines and lines starting with # are skipped)\n"
          "CMD accepts decimal or 0x-prefixed hex. Bodies print as text when they are printable\n"
          "UTF-8, otherwise as hex:<hex>. Exit status: 0 ok, 1 connection failed/closed or reply\n"
          "timed out, 2 usage error.\n");
}

bool ParseU32(const std::string& s, uint32_t* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = strtoull(s.c_str(), &end, 0);
  if (errno || *end || s[0] == '-' || v > 0xFFFFFFFFull) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

bool ParseHex(const std::string& s, std::string* out) {
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string clean;
  for (char c : s)
    if (c != ' ' && c != ':') clean += c;
  if (clean.size() % 2) return false;
  out->clear();
  for (size_t i = 0; i < clean.size(); i += 2) {
    int hi = nib(clean[i]), lo = nib(clean[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

std::string ToHex(std::string_view s) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

// Valid UTF-8 without control characters: safe to print on one line.
bool IsPrintableUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return false;
      ++i;
      continue;
    }
    int extra;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) extra = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) extra = 2, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) extra = 3, cp = c & 0x07;
    else return false;
    if (i + extra >= s.size()) return false;
    for (int k = 1; k <= extra; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = cp << 6 | (cc & 0x3F);
    }
    static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    if (cp >= 0x80 && cp < 0xA0) return false;  // C1 controls
    i += 1 + extra;
  }
  return true;
}

class Runner {
 public:
  Runner(Client* c, int timeout_ms, bool json, uint32_t error_command)
      : client_(c), timeout_ms_(timeout_ms), json_(json), error_command_(error_command) {}

  // Runs one command given as words (BODY may be the joined rest of a line).
  // Returns an exit status: kExitOk to continue.
  int Run(const std::string& verb, const std::vector<std::string>& args) {
    if (verb == "send" || verb == "send-hex") {
      if (args.empty() || args.size() > 2) return UsageError(verb + " needs CMD [BODY]");
      uint32_t cmd;
      if (!ParseU32(args[0], &cmd)) return UsageError("bad command id '" + args[0] + "'");
      std::string body = args.size() > 1 ? args[1] : "";
      if (verb == "send-hex" && !ParseHex(body, &body)) return UsageError("bad hex body");
      return Send(cmd, body);
    }
    if (verb == "listen") {
      if (args.size() != 1) return UsageError("listen needs SECONDS");
      char* end = nullptr;
      double secs = strtod(args[0].c_str(), &end);
      if (*end || !(secs >= 0)) return UsageError("bad SECONDS '" + args[0] + "'");
      return Listen(secs);
    }
    if (verb == "sleep") {
      uint32_t ms;
      if (args.size() != 1 || !ParseU32(args[0], &ms)) return UsageError("sleep needs MS");
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return kExitOk;
    }
    return UsageError("unknown command '" + verb + "'");
  }

 private:
  int UsageError(const std::string& what) {
    fprintf(stderr, "lampyr-client: %s\n", what.c_str());
    return kExitUsage;
  }

  int Send(uint32_t cmd, const std::string& body) {
    Status s = client_->Send(cmd, body);
    if (!s.ok()) return Fail(s);
    // Print in arrival order: pushes that come first, then the reply.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
    for (;;) {
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      Frame f;
      s = client_->Receive(&f, left > 0 ? left : 0);
      if (!s.ok()) return Fail(Status::Error("no reply to command " + std::to_string(cmd) + ": " + s.message()));
      bool is_reply = f.command == cmd;
      bool is_error = f.command == error_command_;
      Print(f, is_error ? "error" : is_reply ? "reply" : "push");
      if (is_reply || is_error) return kExitOk;
    }
  }

  int Listen(double secs) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(static_cast<int64_t>(secs * 1e6));
    for (;;) {
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      if (left <= 0) return kExitOk;
      Frame f;
      Status s = client_->Receive(&f, left);
      if (s.ok()) {
        Print(f, f.command == error_command_ ? "error" : "push");
        continue;
      }
      if (!client_->connected() || s.message().find("timed out") == std::string::npos) return Fail(s);
    }
  }

  int Fail(const Status& s) {
    fprintf(stderr, "lampyr-client: %s\n", s.message().c_str());
    return kExitConnection;
  }

  void Print(const Frame& f, const char* kind) {
    bool text = IsPrintableUtf8(f.body);
    if (json_) {
      Json::Value v(Json::objectValue);
      v["kind"] = kind;
      v["command"] = f.command;
      if (text) v["body"] = f.body;
      else v["body_hex"] = ToHex(f.body);
      Json::StreamWriterBuilder b;
      b["indentation"] = "";
      b["emitUTF8"] = true;
      printf("%s\n", Json::writeString(b, v).c_str());
    } else {
      printf("%u\t%s%s\n", f.command, text ? "" : "hex:", text ? f.body.c_str() : ToHex(f.body).c_str());
    }
    fflush(stdout);
  }

  Client* client_;
  int timeout_ms_;
  bool json_;
  uint32_t error_command_;
};

// "send 1 hello world" -> verb "send", args {"1", "hello world"}.
bool SplitLine(const std::string& line, std::string* verb, std::vector<std::string>* args) {
  size_t i = line.find_first_not_of(" \t");
  if (i == std::string::npos || line[i] == '#') return false;
  size_t j = line.find_first_of(" \t", i);
  *verb = line.substr(i, j == std::string::npos ? std::string::npos : j - i);
  args->clear();
  if (j == std::string::npos) return true;
  size_t k = line.find_first_not_of(" \t", j);
  if (k == std::string::npos) return true;
  if (*verb == "send" || *verb == "send-hex") {
    size_t e = line.find_first_of(" \t", k);
    args->push_back(line.substr(k, e == std::string::npos ? std::string::npos : e - k));
    if (e != std::string::npos && e + 1 <= line.size()) args->push_back(line.substr(e + 1));
  } else {
    args->push_back(line.substr(k));
    while (!args->back().empty() && (args->back().back() == ' ' || args->back().back() == '\t'))
      args->back().pop_back();
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host;
  uint32_t port = 0, timeout_ms = 3000;
  bool json = false;
  Options opts;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) break;
    if (a == "--help") {
      Usage(stdout);
      return kExitOk;
    }
    if (a == "--json") {
      json = true;
      continue;
    }
    if (a == "--ws") {
      opts.ws = true;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "lampyr-client: %s needs a value\n", a.c_str());
      return kExitUsage;
    }
    std::string v = argv[++i];
    uint32_t n = 0;
    bool ok = true;
    if (a == "--host") host = v;
    else if (a == "--port") ok = ParseU32(v, &port) && port >= 1 && port <= 65535;
    else if (a == "--timeout-ms") ok = ParseU32(v, &timeout_ms) && timeout_ms <= 86400000;
    else if (a == "--proto-version") {
      ok = ParseU32(v, &n) && n <= 255;
      opts.proto_version = static_cast<uint8_t>(n);
    }
    else if (a == "--server-version") ok = ParseU32(v, &opts.server_version);
    else if (a == "--error-command") ok = ParseU32(v, &opts.error_command);
    else if (a == "--max-body") ok = ParseU32(v, &opts.max_body);
    else if (a == "--ws-path") {
      ok = !v.empty() && v[0] == '/' && v.find_first_of(" \r\n") == std::string::npos;
      opts.ws_path = v;
    }
    else if (a == "--head") {
      size_t start = 0;
      for (int k = 0; k < 4 && ok; ++k) {
        size_t comma = v.find(',', start);
        if ((k < 3) != (comma != std::string::npos)) ok = false;
        std::string part = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        ok = ok && ParseU32(part, &n) && n <= 255;
        opts.head[k] = static_cast<uint8_t>(n);
        start = comma + 1;
      }
    } else {
      fprintf(stderr, "lampyr-client: unknown option %s\n", a.c_str());
      Usage(stderr);
      return kExitUsage;
    }
    if (!ok) {
      fprintf(stderr, "lampyr-client: bad value for %s: '%s'\n", a.c_str(), v.c_str());
      return kExitUsage;
    }
  }
  if (host.empty() || port == 0 || i >= argc) {
    Usage(stderr);
    return kExitUsage;
  }

  // Check the whole command line before connecting: a typo should not send
  // half of a script.
  struct Step {
    std::string verb;
    std::vector<std::string> args;
  };
  std::vector<Step> steps;
  for (; i < argc; ++i) {
    std::string verb = argv[i];
    size_t want = verb == "send" || verb == "send-hex" ? 2 : verb == "listen" || verb == "sleep" ? 1 : 0;
    if (verb != "-" && want == 0) {
      fprintf(stderr, "lampyr-client: unknown command '%s'\n", verb.c_str());
      return kExitUsage;
    }
    if (i + static_cast<int>(want) >= argc) {
      fprintf(stderr, "lampyr-client: %s needs %zu argument(s)\n", verb.c_str(), want);
      return kExitUsage;
    }
    Step st{verb, {}};
    for (size_t k = 0; k < want; ++k) st.args.push_back(argv[++i]);
    steps.push_back(std::move(st));
  }

  Client client(opts);
  Status s = client.Connect(host, static_cast<uint16_t>(port), static_cast<int>(timeout_ms));
  if (!s.ok()) {
    fprintf(stderr, "lampyr-client: %s\n", s.message().c_str());
    return kExitConnection;
  }
  Runner runner(&client, static_cast<int>(timeout_ms), json, opts.error_command);
  for (const Step& st : steps) {
    if (st.verb != "-") {
      if (int rc = runner.Run(st.verb, st.args); rc != kExitOk) return rc;
      continue;
    }
    std::string line, verb;
    std::vector<std::string> args;
    int lineno = 0;
    while (std::getline(std::cin, line)) {
      ++lineno;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!SplitLine(line, &verb, &args)) continue;
      if (int rc = runner.Run(verb, args); rc != kExitOk) {
        if (rc == kExitUsage) fprintf(stderr, "lampyr-client: stdin line %d: %s\n", lineno, line.c_str());
        return rc;
      }
    }
  }
  return kExitOk;
}
