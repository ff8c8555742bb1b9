// iSCSI over listening TCP sockets: one thread per connection (see
// util/stream_server.h) and the table of logged-in sessions that session
// reinstatement needs (connection.h).
#pragma once

#include <string>

#include "iscsi/connection.h"
#include "util/stream_server.h"

namespace bootfleet::iscsi {

class Server {
 public:
  explicit Server(Targets& targets, ConnectionOptions connection_options = {});

  // "127.0.0.1:3260", "[::1]:3260", ":3260". Throws util::Error naming the
  // address. Returns the port bound (useful with port 0).
  uint16_t listen(const std::string& address) { return server_.listen(address); }
  void start() { server_.start(); }
  // Closes the listeners and shuts the read side of every connection: each
  // finishes the command at hand, flushes its disk and ends.
  void stop() { server_.stop(); }
  void wait() { server_.wait(); }
  size_t connection_count() { return server_.connection_count(); }

 private:
  SessionTable sessions_;
  util::StreamServer server_;
};

}  // namespace bootfleet::iscsi
