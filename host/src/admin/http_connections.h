// HttpConnections: the connections of one evhttp server, counted and timed.
//
// - A cap: at `max_connections` open connections the listener pauses; new
//   ones wait in the kernel's backlog and hold no descriptor of ours, so a
//   flood of admin connections cannot starve the client port.
// - An absolute deadline: a request must arrive whole (headers and body)
//   within `request_timeout_s` of its connection opening or of the previous
//   answer on it; its answer too. evhttp's own timeout restarts on every
//   byte, so one byte a second held a connection for ever. While a handler
//   works on a request (a reload may take a minute) there is no deadline:
//   handlers bound their own work.
// - Accept errors (out of descriptors) pause the listener (core/accept_backoff.h).
//
// evhttp 2.1 has no hook per connection, only one that makes its
// bufferevent (evhttp_set_bevcb): the bufferevent is the connection's key.
// Its owner (the evhttp_connection) is set up right after the hook returns,
// so it is adopted on the next loop turn — holding a reference on the
// bufferevent until then, so a connection that dies meanwhile cannot leave a
// dangling key — and from then on evhttp's close callback reports its end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "core/event_loop.h"
#include "core/status.h"

struct bufferevent;
struct event_base;
struct evconnlistener;
struct evhttp;
struct evhttp_connection;
struct evhttp_request;

namespace lampyr {

class HttpConnections : NonCopyable {
 public:
  // Installs itself as `http`'s bufferevent hook; call before binding.
  HttpConnections(EventLoop* loop, evhttp* http, size_t max_connections, double request_timeout_s);
  // Call Detach() before evhttp_free(http), destroy after it.
  ~HttpConnections();

  // The listener evhttp accepts on (after binding): paused at the cap and
  // after accept errors.
  void Attach(evconnlistener* listener);
  // Stops every timer and callback: evhttp_free comes next.
  void Detach();

  // `req` arrived whole and goes to a handler: its deadline stops.
  void RequestReceived(evhttp_request* req);
  // The answer to `req` is about to be sent: the deadline runs again (for
  // the answer, then for the next request on a kept-alive connection).
  void AnswerSending(evhttp_request* req);

  size_t open() const { return conns_.size(); }
  bool accepting() const { return accepting_; }

 private:
  struct Conn {
    evhttp_connection* evcon = nullptr;  // null until adopted
    bool held = true;                    // we hold a reference on the bufferevent
    bool in_handler = false;
    TimerId deadline = 0;
  };

  static bufferevent* OnNewConnection(event_base* base, void* arg);
  static void OnClosed(evhttp_connection* evcon, void* arg);
  static void OnAcceptError(evconnlistener* l, void* arg);
  bufferevent* NewConnection(event_base* base);
  void Adopt(bufferevent* bev);
  void Expire(bufferevent* bev);
  void Forget(bufferevent* bev);
  void Arm(bufferevent* bev, Conn& c);
  Conn* Find(evhttp_request* req, bufferevent** bev);
  // Enables or disables the listener: accepts run below the cap and outside
  // an accept-error pause.
  void UpdateListener();

  EventLoop* loop_;
  evhttp* http_;
  size_t max_;
  double timeout_s_;
  evconnlistener* listener_ = nullptr;
  bool accepting_ = true;
  bool error_pause_ = false;
  bool detached_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unordered_map<bufferevent*, Conn> conns_;
};

}  // namespace lampyr
