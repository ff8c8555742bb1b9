// A small HTTP/1.1 server for what network boot and bootsrv's control API
// need: GET and HEAD of short generated texts (iPXE scripts, JSON) and of
// files (kernels, initrds) with single byte ranges; request bodies with a
// Content-Length (POST, PUT), streamed; persistent connections and
// pipelining; plain or TLS per listener. No chunked encoding.
//
// One thread per connection, admitted by a util::PeerLimits: at most
// max_connections_per_peer from one address (past it: 503 and a close) and
// max_connections in all, where a newcomer to a full server takes the place
// of the oldest connection that has not sent a whole request head, so
// sockets that only trickle bytes (slowloris) can hold a place for
// request_timeout at most and never lock out the boot scripts, kernels or
// the API, which share the one pool. Each request head must be complete
// within request_timeout of the connection (or, on a kept-alive connection,
// within idle_timeout of the previous response): a deadline for the whole
// head, which bytes arriving do not push back. A connection idle for
// idle_timeout is closed; so is one that sends a malformed request (after
// a 4xx). The handler never sees
// a request the parser refused, and never writes to the socket: it reads the
// body through a Body (in bounded pieces, so an upload of any size goes to
// its destination in constant memory), returns a Response, and the server
// frames it, applying Range to file bodies. A body the handler left unread
// closes the connection after the response (it cannot be reframed), and a
// peer that leaves mid-body ends only its own connection.
//
// stop() closes the listeners and shuts every connection's read side: each
// finishes the response it is sending and ends; wait() returns when all have.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/request.h"
#include "util/connection_set.h"
#include "util/peer_limits.h"
#include "http/stream.h"

namespace bootfleet::http {

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // When not empty: the body is this file, opened by the server (GET and
  // HEAD, with Range support); `body` is ignored.
  std::string file;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones

  static Response text(int status, const std::string& body);
};

// Where a request came from and arrived.
struct Connection {
  std::string peer;        // "10.0.2.15:4321", "[::1]:5000"
  std::string peer_host;   // "10.0.2.15", "[::1]"
  std::string local_host;  // the address the client connected to: "10.0.2.2", "[::1]"
  uint16_t local_port = 0;
  bool secure = false;     // arrived over TLS
  // The peer is this machine (127.0.0.0/8 or ::1).
  bool peer_is_loopback() const;
};

// Thrown by Body when the peer leaves or stalls before the whole body came:
// the connection is over, nothing is answered.
class BodyAborted : public util::Error {
 public:
  using util::Error::Error;
};

// The body of one request, read from the connection on demand. The first
// read answers "Expect: 100-continue" with a 100, so a client that waits for
// it sends nothing the handler did not ask for.
class Body {
 public:
  Body(Stream& stream, std::string& buffered, uint64_t length, bool expect_continue)
      : stream_(stream), buffered_(buffered), length_(length), remaining_(length), expect_continue_(expect_continue) {}
  uint64_t length() const { return length_; }
  uint64_t remaining() const { return remaining_; }
  // Up to `n` bytes of the body; 0 only once it is all read. Throws
  // BodyAborted when the peer closes or times out first.
  size_t read(void* buf, size_t n);
  // The whole body; throws BadRequest(413) when it is longer than `limit`
  // (nothing is read then).
  std::string read_all(uint64_t limit);
  bool continue_sent() const { return continue_sent_; }

 private:
  Stream& stream_;
  std::string& buffered_;  // bytes the connection read past the head
  uint64_t length_, remaining_;
  bool expect_continue_, continue_sent_ = false;
};

using Handler = std::function<Response(const Request&, const Connection&, Body&)>;
// For servers that take no bodies (max_body_bytes 0).
using SimpleHandler = std::function<Response(const Request&, const Connection&)>;

struct ServerOptions {
  size_t max_connections = 256;
  size_t max_connections_per_peer = 32;
  std::chrono::seconds request_timeout{10};  // connect (TLS included) to a whole request head
  std::chrono::seconds idle_timeout{30};
  // Methods passed to the handler; others get 405 with Allow.
  std::vector<std::string> methods = {"GET", "HEAD"};
  // Largest request body accepted (413 above it); 0: no bodies at all.
  uint64_t max_body_bytes = 0;
  // One line per request: peer, method, target, status, body bytes sent.
  // util::log_line when empty.
  std::function<void(const std::string&)> log;
};

class Server {
 public:
  Server(Handler handler, ServerOptions options = {});
  Server(SimpleHandler handler, ServerOptions options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // "127.0.0.1:8080", "[::1]:8080", ":8080" (every address). Throws
  // util::Error naming the address. Returns the port bound (useful with 0).
  uint16_t listen(const std::string& address);
  // The same over TLS with `tls` (shared by its connections).
  uint16_t listen_tls(const std::string& address, std::shared_ptr<const TlsContext> tls);
  void start();
  void stop();
  void wait();
  size_t connection_count();

 private:
  struct Listener {
    int fd;
    std::shared_ptr<const TlsContext> tls;  // null: plain HTTP
  };
  void accept_loop(const Listener& listener);
  void serve(Stream& stream, const Connection& connection, util::PeerLimits::Slot& slot);
  // Sends the response; false when the connection must close.
  bool respond(Stream& stream, const Connection& connection, const Request* request, Response response,
               bool keep_alive);
  void log(const std::string& line);

  Handler handler_;
  ServerOptions options_;
  std::vector<Listener> listeners_;
  std::vector<std::thread> acceptors_;
  util::ConnectionSet connections_;
  std::unique_ptr<util::PeerLimits> limits_;  // made in start(), from options_
};

// "HTTP/1.1 200 OK"-style reason phrases for the statuses we send.
const char* reason_phrase(int status);

}  // namespace bootfleet::http
