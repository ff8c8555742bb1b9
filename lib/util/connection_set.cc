#include "util/connection_set.h"

#include <sys/socket.h>

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
  return true;
}

void ConnectionSet::wait_empty() {
  std::unique_lock lock(mutex_);
  empty_.wait(lock, [this] { return connections_.empty(); });
}

size_t ConnectionSet::size() {
  std::lock_guard lock(mutex_);
  return connections_.size();
}

}  // namespace bootfleet::util
