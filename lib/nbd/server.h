// NBD over listening sockets: one thread per client connection (see
// util/stream_server.h for listening and stopping).
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
  explicit Server(ExportResolver& resolver, ConnectionOptions connection_options = {});

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
