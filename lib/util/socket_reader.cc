#include "util/socket_reader.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

namespace bootfleet::util {

namespace {

std::atomic<int> readers_awake{0};
const int max_awake_for_polling = std::max(1, static_cast<int>(std::thread::hardware_concurrency() / 2));

}  // namespace

SocketReader::SocketReader(int fd, std::chrono::microseconds busy_poll, std::function<bool()> before_wait)
    : fd_(fd), busy_poll_(busy_poll), before_wait_(std::move(before_wait)) {
  readers_awake.fetch_add(1, std::memory_order_relaxed);
}

SocketReader::~SocketReader() { readers_awake.fetch_sub(1, std::memory_order_relaxed); }

bool SocketReader::read_exact(void* buf, size_t n) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    if (pos_ < end_) {
      size_t k = std::min(n, end_ - pos_);
      std::memcpy(p, in_.data() + pos_, k);
      pos_ += k;
      p += k;
      n -= k;
      continue;
    }
    if (before_wait_ && !before_wait_()) return false;
    ssize_t got;
    if (n >= in_.size()) {
      got = ::recv(fd_, p, n, 0);
      if (got > 0) {
        p += got;
        n -= static_cast<size_t>(got);
        continue;
      }
    } else {
      got = receive(in_.data(), in_.size());
      if (got > 0) {
        pos_ = 0;
        end_ = static_cast<size_t>(got);
        continue;
      }
    }
    if (got < 0 && errno == EINTR) continue;
    return false;
  }
  return true;
}

ssize_t SocketReader::receive(void* buf, size_t n) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  ssize_t got = -1;
  bool polled = false;
  if (poll_next_wait_ && busy_poll_.count() > 0 &&
      readers_awake.load(std::memory_order_relaxed) <= max_awake_for_polling) {
    polled = true;
    // poll() looks at the socket without taking its lock, which a recv()
    // loop would fight the client's incoming data for.
    pollfd p{fd_, POLLIN, 0};
    while (::poll(&p, 1, 0) == 0 && Clock::now() - start < busy_poll_) {
    }
    got = ::recv(fd_, buf, n, MSG_DONTWAIT);
  }
  if (!polled || (got < 0 && (errno == EAGAIN || errno == EINTR))) {
    readers_awake.fetch_sub(1, std::memory_order_relaxed);
    got = ::recv(fd_, buf, n, 0);
    readers_awake.fetch_add(1, std::memory_order_relaxed);
  }
  poll_next_wait_ = Clock::now() - start < busy_poll_;
  return got;
}

}  // namespace bootfleet::util
