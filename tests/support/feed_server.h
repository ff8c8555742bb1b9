// For fuzz targets of protocol servers: runs `serve(fd)` on a thread with
// one end of a socketpair, sends the whole input from the other end as a
// client would, then drains the replies until the server closes. The input
// is small (libFuzzer's -max_len), so it fits the socket buffer.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <thread>

namespace bootfleet::test {

inline void feed_server(const uint8_t* data, size_t size, const std::function<void(int fd)>& serve) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return;
  std::thread server([&] {
    serve(fds[1]);
    ::shutdown(fds[1], SHUT_RDWR);
  });
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(fds[0], data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fds[0], SHUT_WR);
  uint8_t sink[65536];
  while (::recv(fds[0], sink, sizeof sink, 0) > 0) {
  }
  server.join();
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace bootfleet::test
