// NBD over listening sockets: one thread per client connection (see
// util/stream_server.h for listening and stopping).
//
// Connections are admitted by a util::PeerLimits: at most `per_peer` from
// one address and `total` in all, each with `handshake` to finish the
// option haggling (past it, or when a newcomer needs the place of the
// oldest connection still haggling, its socket is shut and logged). A
// connection in transmission is never cut by these limits; what it may hold
// in memory is bounded in connection.cc.
//
// stop() closes the listeners and shuts the read side of every client
// socket: each connection finishes the request it is serving, flushes its
// device and ends; wait() returns when all have.
#pragma once

#include <string>

#include "nbd/connection.h"
#include "util/stream_server.h"

namespace bootfleet::nbd {

class Server {
 public:
  explicit Server(ExportResolver& resolver, ConnectionOptions connection_options = {},
                  util::PeerLimits::Options limits = default_limits());
  static util::PeerLimits::Options default_limits() {
    return {.per_peer = 16, .total = 512, .handshake = std::chrono::seconds(10), .what = "NBD"};
  }

  // See util::StreamServer::listen.
  uint16_t listen(const std::string& address) { return server_.listen(address); }
  // Accepts until stop(); returns at once, connections run on their own threads.
  void start() { server_.start(); }
  void stop() { server_.stop(); }
  // Blocks until stop() was called and every connection has ended.
  void wait() { server_.wait(); }
  size_t connection_count() { return server_.connection_count(); }

 private:
  util::StreamServer server_;
};

}  // namespace bootfleet::nbd
