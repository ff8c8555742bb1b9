// Listening sockets and one thread per client connection.
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

namespace bootfleet::nbd {

class Server {
 public:
  explicit Server(ExportResolver& resolver, ConnectionOptions connection_options = {});
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
};

}  // namespace bootfleet::nbd
