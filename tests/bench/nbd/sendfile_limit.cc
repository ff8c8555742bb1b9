// The ceiling for serving cached reads on this machine: a bare loop that
// sends a file from the page cache to a loopback TCP socket with sendfile()
// in requests of BS bytes, while a second process receives and discards them,
// as a client's recv() would. No protocol, no headers, no lookups: what any
// server (ours, nbdkit) could reach at most with one connection. bench_nbd
// prints it as "limit" beside each sequential figure, so a ratio can be read
// against what the machine allows.
//
// Usage: sendfile_limit FILE SECONDS [BS]   prints "MiB/s"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: sendfile_limit FILE SECONDS [BS]\n");
    return 2;
  }
  int file = ::open(argv[1], O_RDONLY);
  struct stat st{};
  if (file < 0 || ::fstat(file, &st) != 0 || st.st_size <= 0) {
    std::perror(argv[1]);
    return 1;
  }
  const double seconds = std::atof(argv[2]);
  const size_t bs = argc > 3 ? std::strtoull(argv[3], nullptr, 0) : (1u << 20);
  const auto size = static_cast<uint64_t>(st.st_size) / bs * bs;

  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 1) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("listen on 127.0.0.1");
    return 1;
  }
  // The receiver is a process of its own, as a client is: two threads of
  // one process were kept on one CPU by the scheduler's wake-affinity and
  // read half of what two servers with their own client reached.
  const pid_t receiver = ::fork();
  if (receiver < 0) {
    std::perror("fork");
    return 1;
  }
  if (receiver == 0) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ::_exit(1);
    std::vector<char> buf(bs);
    while (::recv(s, buf.data(), buf.size(), 0) > 0) {
    }
    ::_exit(0);
  }
  int sock = ::accept(listener, nullptr, nullptr);
  const bool copy = std::getenv("COPY") != nullptr;
  std::vector<char> copybuf(bs);
  const auto start = std::chrono::steady_clock::now();
  const auto stop = start + std::chrono::duration<double>(seconds);
  uint64_t pos = 0;
  // Bytes handed to the socket: all but the socket buffers' few MiB have
  // reached the receiver when the time is up.
  uint64_t sent = 0;
  while (std::chrono::steady_clock::now() < stop) {
    off_t offset = static_cast<off_t>(pos);
    if (copy) {
      if (::pread(file, copybuf.data(), bs, offset) != static_cast<ssize_t>(bs)) return 1;
      for (size_t done = 0; done < bs;) {
        ssize_t n = ::send(sock, copybuf.data() + done, bs - done, 0);
        if (n <= 0) return 1;
        done += static_cast<size_t>(n);
      }
      pos = (pos + bs) % size;
      sent += bs;
      continue;
    }
    for (size_t left = bs; left > 0;) {
      ssize_t n = ::sendfile(sock, file, &offset, left);
      if (n <= 0) {
        std::perror("sendfile");
        return 1;
      }
      left -= static_cast<size_t>(n);
    }
    pos = (pos + bs) % size;
    sent += bs;
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ::shutdown(sock, SHUT_RDWR);
  int status = 0;
  ::waitpid(receiver, &status, 0);
  std::printf("%.1f\n", static_cast<double>(sent) / elapsed / (1u << 20));
  return 0;
}
