// What one LAN peer may hold of a TCP server: connections per peer address,
// connections in all, and how long a connection may take to prove itself
// (finish its handshake: the NBD options, an HTTP request head, an iSCSI
// login). nbd::Server and http::Server use it; any server that runs one
// thread per connection can.
//
// Use:
//   util::PeerLimits limits({.per_peer = 16, .total = 512,
//                            .handshake = std::chrono::seconds(10), .what = "NBD"});
//   ...accept(fd) from `host` (the address without the port)...
//   std::string why;
//   util::PeerLimits::Slot slot = limits.admit(fd, host, why);
//   if (!slot) { log(why); close(fd); }       // over a cap: refuse
//   ...read the handshake...                   // the deadline is running
//   slot.established();                        // proved itself: no deadline
//   ...serve; for a new request on the same connection (HTTP keep-alive):
//   slot.waiting(idle);                        // deadline again, evictable again
//   ...end: destroy `slot` BEFORE close(fd)
//
// Design note. A connection is "waiting" from admit() until established()
// and again after waiting(): it has a deadline and holds a slot without
// having asked for anything yet, which is all a slowloris or half-open
// socket ever does. At its deadline its socket is shut both ways (one
// watcher thread for all connections), so whatever blocking read the
// connection's thread is in ends at once, TLS handshakes included; that
// thread logs and closes as for any disconnect. When the server is full, a
// newcomer evicts the oldest waiting connection the same way instead of
// being refused, so sockets that only hold slots can delay a real client by
// at most one connection, never lock it out. A peer over its own cap is
// refused: it evicts nobody. Shutting (not closing) a socket is safe against
// descriptor reuse because the slot is released, under the same lock,
// before its owner closes the descriptor.
//
// Peers are told apart by address only: on a LAN anyone can take several
// addresses, so per-peer caps bound what one careless or hostile PC holds,
// and the eviction of waiting connections is what keeps the rest serving.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace bootfleet::util {

class PeerLimits {
 public:
  struct Options {
    size_t per_peer = 16;                           // connections from one address
    size_t total = 256;                             // connections in all
    std::chrono::milliseconds handshake{10000};    // from admit() to established()
    std::string what = "server";                    // "NBD", "HTTP": for the log lines
  };
  struct Entry;  // one connection (internal)

  // A connection's place. Empty (false) when refused. Movable; releasing it
  // (destruction) frees the place and must happen before the socket closes.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : owner_(other.owner_), entry_(other.entry_) { other.owner_ = nullptr; }
    Slot& operator=(Slot&& other) noexcept;
    ~Slot() { release(); }
    explicit operator bool() const { return owner_ != nullptr; }
    // The handshake is done: no deadline, not evictable.
    void established();
    // Waiting for the peer again (e.g. its next HTTP request): it has
    // `deadline` to finish, and is evictable meanwhile.
    void waiting(std::chrono::milliseconds deadline);
    // True once the deadline or an eviction shut the socket (for the log).
    bool expired() const;
    void release();

   private:
    friend class PeerLimits;
    Slot(PeerLimits* owner, std::list<Entry>::iterator entry) : owner_(owner), entry_(entry) {}
    PeerLimits* owner_ = nullptr;
    std::list<Entry>::iterator entry_;
  };

  explicit PeerLimits(Options options);
  ~PeerLimits();
  PeerLimits(const PeerLimits&) = delete;
  PeerLimits& operator=(const PeerLimits&) = delete;

  // A place for socket `fd` from `host`, waiting with the handshake
  // deadline; or an empty Slot and `refusal` saying which cap was hit.
  // Logs each eviction and each expired deadline with the peer.
  Slot admit(int fd, const std::string& host, std::string& refusal);

  size_t total();
  size_t from(const std::string& host);
  const Options& options() const { return options_; }

  struct Entry {
    int fd;
    std::string host;
    bool waiting = true;
    bool expired = false;
    std::chrono::steady_clock::time_point since, deadline;
    std::chrono::milliseconds allowed;  // what the deadline was set to, for the log
  };

 private:
  void watch();
  void expire(Entry& e, const std::string& why);

  Options options_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::list<Entry> entries_;  // oldest first
  std::map<std::string, size_t> per_host_;
  bool stopping_ = false;
  std::thread watcher_;
};

}  // namespace bootfleet::util
