#include "util/peer_limits.h"

#include <sys/socket.h>

#include "util/log.h"

namespace bootfleet::util {

using Clock = std::chrono::steady_clock;

PeerLimits::PeerLimits(Options options) : options_(std::move(options)) {
  watcher_ = std::thread([this] { watch(); });
}

PeerLimits::~PeerLimits() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  watcher_.join();
}

namespace {
std::string seconds_text(std::chrono::milliseconds d) {
  return d.count() % 1000 ? std::to_string(d.count()) + " ms" : std::to_string(d.count() / 1000) + " s";
}
}  // namespace

// Under mutex_. The socket is shut, not closed: its thread sees end-of-file
// (or an error) in whatever it is blocked on, and closes it itself.
void PeerLimits::expire(Entry& e, const std::string& why) {
  e.expired = true;
  e.waiting = false;
  ::shutdown(e.fd, SHUT_RDWR);
  log_line(options_.what + " " + e.host + ": closed: " + why);
}

PeerLimits::Slot PeerLimits::admit(int fd, const std::string& host, std::string& refusal) {
  std::lock_guard lock(mutex_);
  size_t& mine = per_host_[host];
  if (mine >= options_.per_peer) {
    refusal = options_.what + " " + host + ": refused: " + std::to_string(mine) +
              " connections from this address already (the cap per peer is " + std::to_string(options_.per_peer) + ")";
    return {};
  }
  if (entries_.size() >= options_.total) {
    Entry* oldest = nullptr;
    for (auto& e : entries_) {
      if (e.waiting && (!oldest || e.since < oldest->since)) oldest = &e;
    }
    if (!oldest) {
      if (mine == 0) per_host_.erase(host);
      refusal = options_.what + " " + host + ": refused: " + std::to_string(options_.total) +
                " connections open, all of them past their handshake (the cap in all)";
      return {};
    }
    // The evicted entry stays counted until its thread releases it: the
    // cap is briefly exceeded by one per eviction, never by more than the
    // connections that are ending.
    expire(*oldest, "evicted: the server is full (" + std::to_string(options_.total) +
                        " connections) and this one had not finished its handshake or request, the oldest such");
  }
  ++mine;
  auto now = Clock::now();
  entries_.push_back(Entry{fd, host, true, false, now, now + options_.handshake, options_.handshake});
  changed_.notify_all();
  return Slot(this, std::prev(entries_.end()));
}

size_t PeerLimits::total() {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

size_t PeerLimits::from(const std::string& host) {
  std::lock_guard lock(mutex_);
  auto it = per_host_.find(host);
  return it == per_host_.end() ? 0 : it->second;
}

void PeerLimits::watch() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto now = Clock::now();
    auto next = now + std::chrono::seconds(3600);
    for (auto& e : entries_) {
      if (!e.waiting) continue;
      if (e.deadline <= now) {
        expire(e, "did not finish its handshake or request within " + seconds_text(e.allowed));
      } else if (e.deadline < next) {
        next = e.deadline;
      }
    }
    changed_.wait_until(lock, next);
  }
}

PeerLimits::Slot& PeerLimits::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = other.owner_;
    entry_ = other.entry_;
    other.owner_ = nullptr;
  }
  return *this;
}

void PeerLimits::Slot::established() {
  if (!owner_) return;
  std::lock_guard lock(owner_->mutex_);
  entry_->waiting = false;
}

void PeerLimits::Slot::waiting(std::chrono::milliseconds deadline) {
  if (!owner_) return;
  {
    std::lock_guard lock(owner_->mutex_);
    if (entry_->expired) return;
    auto now = Clock::now();
    entry_->waiting = true;
    entry_->since = now;
    entry_->deadline = now + deadline;
    entry_->allowed = deadline;
  }
  owner_->changed_.notify_all();
}

bool PeerLimits::Slot::expired() const {
  if (!owner_) return false;
  std::lock_guard lock(owner_->mutex_);
  return entry_->expired;
}

void PeerLimits::Slot::release() {
  if (!owner_) return;
  {
    std::lock_guard lock(owner_->mutex_);
    auto it = owner_->per_host_.find(entry_->host);
    if (it != owner_->per_host_.end() && --it->second == 0) owner_->per_host_.erase(it);
    owner_->entries_.erase(entry_);
  }
  owner_ = nullptr;
}

}  // namespace bootfleet::util
