// Listening stream sockets (TCP or unix) and one thread per accepted
// connection: what nbd::Server and iscsi::Server share. The protocol is the
// handler's; this owns listening, accepting, the limits a LAN peer is held
// to (peer_limits.h: caps per address and in all, a handshake deadline),
// the connection set and the way a server stops (connection_set.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "util/connection_set.h"
#include "util/metrics.h"
#include "util/peer_limits.h"

namespace bootfleet::util {

class StreamServer {
 public:
  // Runs on the connection's own thread; `stopping` turns true when the
  // server stops. The socket is closed after it returns.
  // The handler calls `established` once the peer has finished its
  // handshake (NBD options, iSCSI login): that lifts the deadline.
  struct Connection {
    int fd;
    std::string peer;  // "HOST:PORT" or "unix"
    const std::atomic<bool>* stopping;
    std::function<void()> established;
  };
  using Handler = std::function<void(const Connection&)>;

  // `limits.what` names the protocol in errors and logs ("NBD", "iSCSI").
  StreamServer(PeerLimits::Options limits, Handler handler);
  ~StreamServer();
  StreamServer(const StreamServer&) = delete;
  StreamServer& operator=(const StreamServer&) = delete;

  // "127.0.0.1:10809", "[::1]:10809", ":10809" (all addresses), or
  // "unix:/path/to/socket". Throws util::Error naming the address. Returns
  // the port bound (useful with port 0), or 0 for a unix socket.
  uint16_t listen(const std::string& address);
  // Accepts until stop(); returns at once.
  void start();
  void stop();
  // Blocks until stop() was called and every connection has ended.
  void wait();
  size_t connection_count() { return connections_.size(); }

 private:
  void accept_loop(int listen_fd);

  std::string what_;
  Handler handler_;
  PeerLimits limits_;
  std::vector<int> listen_fds_;
  std::vector<std::string> unix_paths_;
  std::vector<std::thread> acceptors_;
  ConnectionSet connections_;
  metrics::ProtocolMetrics metrics_;  // of this protocol (docs/status.md)
};

}  // namespace bootfleet::util
