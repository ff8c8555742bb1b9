// Listening sockets and one thread per client connection.
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
#include <thread>
#include <vector>

#include "nbd/connection.h"
#include "util/connection_set.h"
#include "util/peer_limits.h"

namespace bootfleet::nbd {

class Server {
 public:
  explicit Server(ExportResolver& resolver, ConnectionOptions connection_options = {},
                  util::PeerLimits::Options limits = default_limits());
  static util::PeerLimits::Options default_limits() {
    return {.per_peer = 16, .total = 512, .handshake = std::chrono::seconds(10), .what = "NBD"};
  }
  ~Server();

  // "127.0.0.1:10809", "[::1]:10809", ":10809" (all addresses), or
  // "unix:/path/to/socket". Throws util::Error naming the address. Returns
  // the port bound (useful with port 0), or 0 for a unix socket.
  uint16_t listen(const std::string& address);
  // Accepts until stop(); returns at once, connections run on their own threads.
  void start();
  void stop();
  // Blocks until stop() was called and every connection has ended.
  void wait();
  size_t connection_count();

 private:
  void accept_loop(int listen_fd);

  ExportResolver& resolver_;
  ConnectionOptions connection_options_;  // its `stopping` is set per connection
  std::vector<int> listen_fds_;
  std::vector<std::string> unix_paths_;
  std::vector<std::thread> acceptors_;
  util::ConnectionSet connections_;
  util::PeerLimits limits_;
};

}  // namespace bootfleet::nbd
