#include "nbd/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/net.h"
#include "util/log.h"

namespace bootfleet::nbd {

using util::Error;

Server::Server(ExportResolver& resolver, ConnectionOptions connection_options, util::PeerLimits::Options limits)
    : resolver_(resolver), connection_options_(connection_options), limits_(std::move(limits)) {}

Server::~Server() {
  stop();
  wait();
  for (int fd : listen_fds_) ::close(fd);
  for (const auto& p : unix_paths_) ::unlink(p.c_str());
}

uint16_t Server::listen(const std::string& address) {
  if (address.rfind("unix:", 0) == 0) {
    std::string path = address.substr(5);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof sa.sun_path) {
      throw Error(address + ": a unix socket path must be 1 to " + std::to_string(sizeof sa.sun_path - 1) + " bytes");
    }
    std::memcpy(sa.sun_path, path.c_str(), path.size());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw util::errno_error(address);
    ::unlink(path.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 128) != 0) {
      int err = errno;
      ::close(fd);
      throw util::errno_error(address, err);
    }
    listen_fds_.push_back(fd);
    unix_paths_.push_back(path);
    return 0;
  }
  util::ListeningSocket l = util::listen_tcp(address, "NBD");
  listen_fds_.push_back(l.fd);
  return l.port;
}

void Server::start() {
  for (int fd : listen_fds_) acceptors_.emplace_back([this, fd] { accept_loop(fd); });
}

namespace {
// The peer's address, and the same with its port ("10.0.0.5", "10.0.0.5:4711").
std::pair<std::string, std::string> peer_name(const sockaddr_storage& sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&sa);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return {host, std::string(host) + ":" + std::to_string(ntohs(in->sin_port))};
  }
  if (sa.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    std::string h = "[" + std::string(host) + "]";
    return {h, h + ":" + std::to_string(ntohs(in6->sin6_port))};
  }
  return {"unix", "unix"};
}
}  // namespace

void Server::accept_loop(int listen_fd) {
  while (!connections_.stopping()) {
    pollfd p{listen_fd, POLLIN, 0};
    int rc = ::poll(&p, 1, 200);  // wakes to notice stop()
    if (rc <= 0) continue;
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR && errno != EAGAIN) util::log_line(std::string("accept failed: ") + std::strerror(errno));
      continue;
    }
    if (sa.ss_family != AF_UNIX) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    auto names = peer_name(sa);
    std::string host = names.first, peer = names.second;  // plain variables: lambdas capture them
    if (sa.ss_family == AF_UNIX) host += "#" + std::to_string(fd);  // local: each is its own peer
    std::string refusal;
    auto slot = std::make_shared<util::PeerLimits::Slot>(limits_.admit(fd, host, refusal));
    if (!*slot) {
      util::log_line(refusal);
      ::close(fd);
      continue;
    }
    connections_.add(fd, peer);
    std::thread([this, fd, peer, slot] {
      ConnectionOptions options = connection_options_;
      options.stopping = connections_.stopping_flag();
      options.on_established = [slot] { slot->established(); };
      serve_connection(fd, resolver_, peer, options);
      slot->release();  // before the descriptor can be reused
      ::close(fd);
      connections_.remove(fd);
    }).detach();
  }
}

void Server::stop() { connections_.stop(); }

void Server::wait() {
  for (auto& t : acceptors_)
    if (t.joinable()) t.join();
  acceptors_.clear();
  connections_.wait_empty();
}

size_t Server::connection_count() { return connections_.size(); }

}  // namespace bootfleet::nbd
