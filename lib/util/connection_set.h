// The open connections of a server that runs one thread per connection, and
// the way it stops: nbd::Server and http::Server both hold one.
//
// Design note. stop() sets the stopping flag first and then, under the lock,
// shuts the read side of every registered socket: each connection finishes
// the reply it is sending, sees end-of-file and ends. A connection registered
// after that (accepted while stop() ran) shuts its own read side in add(), so
// none can slip through. wait_empty() returns once every connection thread
// has called remove(). Sockets are closed by their own thread, never here, so
// a descriptor is never reused while a shutdown could still reach it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <limits>
#include <map>
#include <mutex>
#include <string>

namespace bootfleet::util {

class ConnectionSet {
 public:
  // Registers `fd` (from `peer`). False, registering nothing, when `limit`
  // connections are open already: the caller refuses this one.
  bool add(int fd, const std::string& peer, size_t limit = std::numeric_limits<size_t>::max());
  // Forgets `fd` (the caller closes it) and wakes wait_empty().
  void remove(int fd);
  // Sets the stopping flag and shuts every connection's read side. False
  // when stop() had been called already.
  bool stop();
  bool stopping() const { return stopping_; }
  // For loops that poll it (accept loops, connections between requests).
  const std::atomic<bool>* stopping_flag() const { return &stopping_; }
  // Blocks until every registered connection was removed. After stop(), a
  // connection still open `grace` later (a client that stopped reading its
  // replies keeps its thread blocked in send) has its socket shut both ways,
  // which ends that send, and is logged naming the peer.
  void wait_empty(std::chrono::milliseconds grace = std::chrono::seconds(10));
  size_t size();

 private:
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable empty_;
  std::map<int, std::string> connections_;  // fd -> peer
};

}  // namespace bootfleet::util
