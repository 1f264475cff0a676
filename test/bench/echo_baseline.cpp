// lampyr-echo-baseline --port P [--host H]: the least a libevent server must
// do to echo the client protocol (17-byte framing, docs/protocol.md, default
// protocol config: head 0,0,0,0, versions 0, max_body 65536). scripts/bench.sh
// runs it beside `lampyr` with the echo builtin under the same load, so the
// host's cost is measured against this floor. No sessions, no dispatch, no
// metrics: validate the header, move the frame from input to output.
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "net/frame_codec.h"

namespace {

lampyr::net::FrameLimits g_limits;  // the host's defaults

void OnEvent(bufferevent* bev, short, void*) { bufferevent_free(bev); }

void OnRead(bufferevent* bev, void*) {
  evbuffer* in = bufferevent_get_input(bev);
  evbuffer* out = bufferevent_get_output(bev);
  for (;;) {
    size_t len = evbuffer_get_length(in);
    if (len < lampyr::net::kHeaderSize) return;
    uint8_t hdr[lampyr::net::kHeaderSize];
    evbuffer_copyout(in, hdr, sizeof hdr);
    lampyr::net::FrameHeader h;
    if (lampyr::net::ParseHeader(hdr, g_limits, &h) != lampyr::net::FrameError::kOk) {
      bufferevent_free(bev);  // same rule as the host: bad input closes the connection
      return;
    }
    size_t total = lampyr::net::kHeaderSize + h.body_len;
    if (len < total) return;
    // The echo reply is the request frame itself (same command, same body).
    evbuffer_remove_buffer(in, out, total);
  }
}

void OnAccept(evconnlistener* l, evutil_socket_t fd, sockaddr*, int, void*) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bufferevent* bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) {
    close(fd);
    return;
  }
  bufferevent_set_max_single_read(bev, 64 * 1024);  // libevent's 4 KiB default costs wake-ups
  bufferevent_setcb(bev, OnRead, nullptr, OnEvent, nullptr);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

void OnSignal(evutil_socket_t, short, void* base) { event_base_loopbreak(static_cast<event_base*>(base)); }

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::string host = "127.0.0.1";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
  }
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "usage: lampyr-echo-baseline --port P [--host H]\n");
    return 2;
  }
  rlimit rl;  // as lampyr does: many connections need many descriptors
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  event_base* base = event_base_new();
  sockaddr_storage ss{};
  int len = sizeof ss;
  std::string spec = host + ":" + std::to_string(port);
  if (evutil_parse_sockaddr_port(spec.c_str(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    fprintf(stderr, "lampyr-echo-baseline: bad address %s\n", spec.c_str());
    return 2;
  }
  evconnlistener* l = evconnlistener_new_bind(base, OnAccept, nullptr, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                              4096, reinterpret_cast<sockaddr*>(&ss), len);
  if (!l) {
    fprintf(stderr, "lampyr-echo-baseline: cannot listen on %s: %s\n", spec.c_str(), strerror(errno));
    return 1;
  }
  event* term = evsignal_new(base, SIGTERM, OnSignal, base);
  event* intr = evsignal_new(base, SIGINT, OnSignal, base);
  event_add(term, nullptr);
  event_add(intr, nullptr);
  event_base_dispatch(base);
  event_free(term);
  event_free(intr);
  evconnlistener_free(l);
  event_base_free(base);
  return 0;
}
