#include "util/connection_set.h"

#include <sys/socket.h>

#include "util/log.h"

namespace bootfleet::util {

bool ConnectionSet::add(int fd, const std::string& peer, size_t limit) {
  std::lock_guard lock(mutex_);
  if (connections_.size() >= limit) return false;
  connections_[fd] = peer;
  if (stopping_) ::shutdown(fd, SHUT_RD);  // stop() already went through the set
  return true;
}

void ConnectionSet::remove(int fd) {
  std::lock_guard lock(mutex_);
  connections_.erase(fd);
  empty_.notify_all();
}

bool ConnectionSet::stop() {
  if (stopping_.exchange(true)) return false;
  std::lock_guard lock(mutex_);
  for (auto& [fd, peer] : connections_) ::shutdown(fd, SHUT_RD);
  empty_.notify_all();  // wait_empty() starts its grace period
  return true;
}

void ConnectionSet::wait_empty(std::chrono::milliseconds grace) {
  std::unique_lock lock(mutex_);
  empty_.wait(lock, [this] { return connections_.empty() || stopping_; });
  if (empty_.wait_for(lock, grace, [this] { return connections_.empty(); })) return;
  const std::string after =
      grace.count() % 1000 ? std::to_string(grace.count()) + " ms" : std::to_string(grace.count() / 1000) + " s";
  for (auto& [fd, peer] : connections_) {
    log_line(peer + ": closed: still sending " + after + " after the server began to stop (the client is not reading its replies)");
    ::shutdown(fd, SHUT_RDWR);
  }
  empty_.wait(lock, [this] { return connections_.empty(); });
}

size_t ConnectionSet::size() {
  std::lock_guard lock(mutex_);
  return connections_.size();
}

}  // namespace bootfleet::util
