// A read-only TFTP server (RFC 1350, with RFC 2347 option negotiation,
// 2348 blksize, 2349 timeout and tsize, 7440 windowsize) for network-boot
// loaders.
//
// One thread reads requests on the listening socket. Each accepted read
// request gets its own thread and its own ephemeral UDP socket, whose port
// is the server's transfer ID (RFC 1350 section 4), bound to the address
// the request came to so that replies leave from the address the client
// talked to. Write requests get ERROR 2.
//
// Transfers are bounded for peers that need not even exist: a read request
// is one UDP packet from any source address anyone cares to write. So one
// address gets at most `max_per_peer` transfers (past it: ERROR 0 "busy");
// past `max_transfers` in all, the oldest transfer whose client never
// acknowledged anything (a spoofed source never can) is evicted for the
// newcomer, and only when every transfer has been acknowledged is the
// newcomer told "busy". A negotiated timeout is at most
// limits.max_timeout, and a transfer without progress for `give_up` ends
// whatever its retries and timeout would allow.
//
// stop() closes the listener; every transfer notices within 200 ms, sends
// nothing more and ends; stop() returns when all have.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "tftp/packet.h"
#include "tftp/root.h"
#include "util/file.h"

namespace bootfleet::tftp {

// A UDP address and port.
struct Endpoint {
  sockaddr_storage address{};
  socklen_t length = 0;
};

// Consulted before the file system with the normalized name ("a/b.ipxe"):
// returning content serves it, std::nullopt falls through to the root.
// Called from transfer threads, possibly several at once.
using VirtualFiles = std::function<std::optional<std::string>(const std::string& name)>;

struct ServerOptions {
  // "127.0.0.1:69", "[::1]:69", ":69" (every address, IPv6 and IPv4).
  std::string listen = ":69";
  std::string root = "/usr/lib/ipxe";
  Limits limits;
  // Retransmission timeout when the client does not ask for one.
  std::chrono::milliseconds default_timeout{1000};
  // Retransmissions of one packet (or window) before giving up.
  int max_retries = 5;
  size_t max_transfers = 64;
  size_t max_per_peer = 8;
  std::chrono::milliseconds give_up{15000};
  VirtualFiles virtual_files;
  // Called on the transfer's thread when a file was sent whole, with its
  // normalized name and the client's address ("10.0.2.15"): bootsrv's boot
  // stages start here for a PC that loads iPXE over TFTP.
  std::function<void(const std::string& name, const std::string& peer_host)> on_served;
  // One line per transfer and per refused request; util::log_line if empty.
  std::function<void(const std::string&)> log;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens the root and binds the listening socket, then serves on a thread
  // of its own. Throws util::Error naming the root or the address. Returns
  // the UDP port bound (useful with port 0).
  uint16_t start();
  // Idempotent; blocks until the listener and every transfer have ended.
  void stop();
  size_t active_transfers();

 private:
  void listen_loop();
  void handle_request(const uint8_t* data, size_t size, const Endpoint& peer, const Endpoint& local);
  struct Transfer;
  void run_transfer(const Request& request, const Endpoint& peer, int socket, Transfer& transfer);
  void end_transfer(const std::shared_ptr<Transfer>& transfer);
  void refuse(const Endpoint& peer, const Endpoint& local, ErrorCode code, const std::string& message,
              const std::string& log_line);
  void log(const std::string& line);

  ServerOptions options_;
  std::unique_ptr<Root> root_;
  util::UniqueFd listen_fd_;
  int family_ = 0;
  std::thread listener_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable idle_;
  size_t transfers_ = 0;                          // threads running transfers
  std::list<std::shared_ptr<Transfer>> running_;  // oldest first; evicted ones leave at once
};

}  // namespace bootfleet::tftp
