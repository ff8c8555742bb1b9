// Listening TCP sockets, shared by every server (NBD, HTTP).
#pragma once

#include <cstdint>
#include <string>

namespace bootfleet::util {

struct ListeningSocket {
  int fd = -1;
  uint16_t port = 0;  // the port bound (useful with port 0)
};

// Binds and listens on "HOST:PORT", "[V6]:PORT" or ":PORT" (all addresses:
// the IPv6 wildcard, which takes IPv4 too, where the system has it).
// Throws util::Error naming the address and `what` ("NBD", "HTTP").
ListeningSocket listen_tcp(const std::string& address, const std::string& what);

}  // namespace bootfleet::util
