// iSCSI over listening TCP sockets: one thread per connection (see
// util/stream_server.h) and the table of logged-in sessions that session
// reinstatement needs (connection.h).
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "iscsi/connection.h"
#include "util/stream_server.h"

namespace bootfleet::iscsi {

class Server {
 public:
  // Each peer address may hold `per_peer` connections (a PC has one, and a
  // second while it reinstates), and a login must be done within `handshake`.
  explicit Server(Targets& targets, ConnectionOptions connection_options = {},
                  util::PeerLimits::Options limits = default_limits());
  static util::PeerLimits::Options default_limits() {
    return {.per_peer = 8, .total = 512, .handshake = std::chrono::seconds(30), .what = "iSCSI"};
  }
  ~Server();

  // "127.0.0.1:3260", "[::1]:3260", ":3260". Throws util::Error naming the
  // address. Returns the port bound (useful with port 0).
  uint16_t listen(const std::string& address) { return server_.listen(address); }
  void start();
  // Closes the listeners and shuts the read side of every connection: each
  // finishes the command at hand, flushes its disk and ends.
  void stop();
  void wait() { server_.wait(); }
  size_t connection_count() { return server_.connection_count(); }

 private:
  SessionTable sessions_;
  util::StreamServer server_;
  // Lets go, once a second, of what vanished connections left (SessionTable).
  std::thread expiry_;
  std::mutex expiry_mutex_;
  std::condition_variable expiry_wake_;
  bool stopping_ = false;
};

}  // namespace bootfleet::iscsi
