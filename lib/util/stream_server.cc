#include "util/stream_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/log.h"
#include "util/net.h"

namespace bootfleet::util {

namespace {
// "NBD" -> "nbd": the protocol label of the connection metrics.
std::string protocol_label(std::string what) {
  for (char& c : what) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return what;
}
}  // namespace

StreamServer::StreamServer(PeerLimits::Options limits, Handler handler)
    : what_(limits.what),
      handler_(std::move(handler)),
      limits_(std::move(limits)),
      metrics_(protocol_label(what_)) {}

StreamServer::~StreamServer() {
  stop();
  wait();
  for (int fd : listen_fds_) ::close(fd);
  for (const auto& p : unix_paths_) ::unlink(p.c_str());
}

uint16_t StreamServer::listen(const std::string& address) {
  if (address.rfind("unix:", 0) == 0) {
    std::string path = address.substr(5);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof sa.sun_path) {
      throw Error(address + ": a unix socket path must be 1 to " + std::to_string(sizeof sa.sun_path - 1) + " bytes");
    }
    std::memcpy(sa.sun_path, path.c_str(), path.size());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw errno_error(address);
    ::unlink(path.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 128) != 0) {
      int err = errno;
      ::close(fd);
      throw errno_error(address, err);
    }
    listen_fds_.push_back(fd);
    unix_paths_.push_back(path);
    return 0;
  }
  ListeningSocket l = listen_tcp(address, what_);
  listen_fds_.push_back(l.fd);
  return l.port;
}

void StreamServer::start() {
  for (int fd : listen_fds_) acceptors_.emplace_back([this, fd] { accept_loop(fd); });
}

void StreamServer::accept_loop(int listen_fd) {
  while (!connections_.stopping()) {
    pollfd p{listen_fd, POLLIN, 0};
    int rc = ::poll(&p, 1, 200);  // wakes to notice stop()
    if (rc <= 0) continue;
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR && errno != EAGAIN) log_line(what_ + ": accept failed: " + std::strerror(errno));
      continue;
    }
    if (sa.ss_family != AF_UNIX) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    std::string peer = peer_name(sa);
    std::string host = address_of(sa).first;
    if (sa.ss_family == AF_UNIX) host += "#" + std::to_string(fd);  // local: each is its own peer
    std::string refusal;
    auto slot = std::make_shared<PeerLimits::Slot>(limits_.admit(fd, host, refusal));
    if (!*slot) {
      log_line(refusal);
      metrics_.refused.add();
      ::close(fd);
      continue;
    }
    metrics_.accepted.add();
    metrics_.open.add(1);
    connections_.add(fd, peer);
    std::thread([this, fd, peer, slot] {
      handler_({fd, peer, connections_.stopping_flag(), [slot] { slot->established(); }});
      slot->release();  // before the descriptor can be reused
      ::close(fd);
      connections_.remove(fd);
      metrics_.open.add(-1);
    }).detach();
  }
}

void StreamServer::stop() { connections_.stop(); }

void StreamServer::wait() {
  for (auto& t : acceptors_)
    if (t.joinable()) t.join();
  acceptors_.clear();
  connections_.wait_empty();
}

}  // namespace bootfleet::util
