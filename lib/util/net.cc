#include "util/net.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace bootfleet::util {

uint16_t parse_port(const std::string& text, const std::string& what, bool allow_zero) {
  const std::string range = allow_zero ? "0-65535 (0: any free port)" : "1-65535";
  bool digits = !text.empty() && text.size() <= 9 &&
                std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
  if (!digits) throw Error(what + ": port '" + text + "' is not a number from " + range);
  unsigned long n = std::stoul(text);
  if (n > 65535 || (n == 0 && !allow_zero)) {
    throw Error(what + ": port " + text + " is outside " + range);
  }
  return static_cast<uint16_t>(n);
}

HostPort parse_listen_address(const std::string& address, const std::string& what, bool allow_zero) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    throw Error(what + ": '" + address + "': expected ADDRESS:PORT, e.g. 127.0.0.1:8080, [::1]:8080 or :8080");
  }
  HostPort hp;
  hp.host = address.substr(0, colon);
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') {
    hp.host = hp.host.substr(1, hp.host.size() - 2);
  } else if (hp.host.find(':') != std::string::npos) {
    throw Error(what + ": '" + address + "': an IPv6 address goes in brackets, e.g. [::1]:8080");
  }
  hp.port = parse_port(address.substr(colon + 1), what + ": '" + address + "'", allow_zero);
  return hp;
}

ListeningSocket listen_tcp(const std::string& address, const std::string& what) {
  HostPort hp = parse_listen_address(address, what + " address");
  const std::string& host = hp.host;
  const std::string port = std::to_string(hp.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) throw Error(address + ": " + gai_strerror(rc));
  int fd = -1;
  std::string last_error = "no address";
  // With no host, prefer the IPv6 wildcard: it takes IPv4 too.
  for (int pass = 0; pass < 2 && fd < 0; ++pass) {
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      if (host.empty() && (pass == 0) != (ai->ai_family == AF_INET6)) continue;
      if (!host.empty() && pass == 1) break;
      fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) continue;
      int one = 1, zero = 0;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (ai->ai_family == AF_INET6 && host.empty()) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
      if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 128) == 0) break;
      last_error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd < 0) throw Error(address + ": cannot listen for " + what + ": " + last_error);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  uint16_t bound_port = bound.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
                                                   : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return {fd, bound_port};
}

std::pair<std::string, uint16_t> address_of(const sockaddr_storage& sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&sa);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return {host, ntohs(in->sin_port)};
  }
  if (sa.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&sa);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      ::inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
      return {host, ntohs(in6->sin6_port)};
    }
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return {"[" + std::string(host) + "]", ntohs(in6->sin6_port)};
  }
  if (sa.ss_family == AF_UNIX) return {"unix", 0};
  return {"?", 0};
}

std::string peer_name(const sockaddr_storage& sa) {
  auto [host, port] = address_of(sa);
  return sa.ss_family == AF_UNIX ? host : host + ":" + std::to_string(port);
}

}  // namespace bootfleet::util
