// Reading a block-protocol client's requests from its socket: buffered, and
// with busy polling while the client keeps the reader busy. NBD and iSCSI
// connections both read this way.
//
// Design note (measured for NBD; docs/benchmarks.md). Input is buffered: a
// client with many requests in flight sends several headers per segment,
// and one recv() takes them all in. Large payloads bypass the buffer.
// Busy polling: a client with requests in flight sends its next request a
// few microseconds after our replies reach it. Sleeping in recv() for it
// makes the client pay for waking us on another CPU (an inter-processor
// interrupt, in a VM an exit): with fio at 16 random 4 KiB reads in flight
// that wakeup was the largest single cost in the client's send path, and
// polling the socket for up to 50 us first made bootsrv faster than nbdkit
// instead of 8 % slower. Polling takes a CPU, so a reader polls only when
// its previous wait was shorter than `busy_poll` (the client keeps it busy;
// an idle or slow client costs nothing), and only while at most half the
// CPUs have a reader awake, itself included: with a hundred busy clients
// the CPUs are better spent serving them (polling there cost 13 % of
// throughput and took p99 latency from 5 to 8 ms). Readers of every
// protocol count against the same CPUs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace bootfleet::util {

class SocketReader {
 public:
  // `before_wait` runs whenever the reader is about to wait for the peer
  // (the caller sends the replies the peer may be waiting for); returning
  // false ends the read as failed.
  SocketReader(int fd, std::chrono::microseconds busy_poll, std::function<bool()> before_wait);
  ~SocketReader();
  SocketReader(const SocketReader&) = delete;
  SocketReader& operator=(const SocketReader&) = delete;

  // Reads exactly n bytes; false at EOF, on an error (errno) or when
  // before_wait failed.
  bool read_exact(void* buf, size_t n);
  // Bytes received and not yet read: whether the peer's next request is
  // already here (so replies may wait for it to be answered too).
  size_t buffered() const { return end_ - pos_; }

 private:
  ssize_t receive(void* buf, size_t n);

  int fd_;
  std::chrono::microseconds busy_poll_;
  std::function<bool()> before_wait_;
  std::vector<uint8_t> in_ = std::vector<uint8_t>(64 * 1024);
  size_t pos_ = 0, end_ = 0;
  bool poll_next_wait_ = false;  // the last wait was short: busy-poll the next one
};

}  // namespace bootfleet::util
