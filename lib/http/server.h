// A small HTTP/1.1 server for what network boot needs: GET and HEAD of
// short generated texts (iPXE scripts) and of files (kernels, initrds) with
// single byte ranges, persistent connections and pipelining. No request
// bodies, no chunked encoding, no TLS.
//
// One thread per connection, bounded by max_connections (past it a client
// gets 503 and a close). A connection idle for idle_timeout is closed; so is
// one that sends a malformed request (after a 4xx). The handler never sees
// a request the parser refused, and never writes to the socket: it returns
// a Response and the server frames it, applying Range to file bodies.
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
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/request.h"

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
  std::string local_host;  // the address the client connected to: "10.0.2.2", "[::1]"
  uint16_t local_port = 0;
};

using Handler = std::function<Response(const Request&, const Connection&)>;

struct ServerOptions {
  size_t max_connections = 256;
  std::chrono::seconds idle_timeout{30};
  // One line per request: peer, method, target, status, body bytes sent.
  // util::log_line when empty.
  std::function<void(const std::string&)> log;
};

class Server {
 public:
  Server(Handler handler, ServerOptions options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // "127.0.0.1:8080", "[::1]:8080", ":8080" (every address). Throws
  // util::Error naming the address. Returns the port bound (useful with 0).
  uint16_t listen(const std::string& address);
  void start();
  void stop();
  void wait();
  size_t connection_count();

 private:
  void accept_loop(int listen_fd);
  void serve(int fd, const Connection& connection);
  // Sends the response; false when the connection must close.
  bool respond(int fd, const Connection& connection, const Request* request, Response response, bool keep_alive);
  void log(const std::string& line);

  Handler handler_;
  ServerOptions options_;
  std::vector<int> listen_fds_;
  std::vector<std::thread> acceptors_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable idle_;
  std::map<int, std::string> clients_;  // fd -> peer
};

// "HTTP/1.1 200 OK"-style reason phrases for the statuses we send.
const char* reason_phrase(int status);

}  // namespace bootfleet::http
