// Listening TCP sockets, shared by every server (NBD, HTTP).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <utility>

namespace bootfleet::util {

struct ListeningSocket {
  int fd = -1;
  uint16_t port = 0;  // the port bound (useful with port 0)
};

// Binds and listens on "HOST:PORT", "[V6]:PORT" or ":PORT" (all addresses:
// the IPv6 wildcard, which takes IPv4 too, where the system has it).
// Throws util::Error naming the address and `what` ("NBD", "HTTP").
ListeningSocket listen_tcp(const std::string& address, const std::string& what);

// "1.2.3.4" / "[::1]" and the port of a socket address; an IPv4-mapped IPv6
// address is shown as IPv4, since that is what the client typed. A unix
// socket is "unix", port 0.
std::pair<std::string, uint16_t> address_of(const sockaddr_storage& sa);
// "HOST:PORT" of address_of(), or "unix".
std::string peer_name(const sockaddr_storage& sa);

}  // namespace bootfleet::util
