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

// A listen address taken apart: "HOST:PORT", "[V6]:PORT" or ":PORT" (host
// empty: every address). Every listener option goes through this one check
// (NBD, HTTP, HTTPS, TFTP, and any later protocol), so a port outside
// 0-65535 is refused by name instead of wrapping around in getaddrinfo
// (which takes 99999 as 34463).
struct HostPort {
  std::string host;   // without brackets; empty: every address
  uint16_t port = 0;  // 0: any free port (only where the caller allows it)
};

// Parses a port number "1".."65535" ("0" too when `allow_zero`: the system
// picks one, as tests do). Throws util::Error starting with `what`, e.g.
// "--http-listen ':99999': port 99999 is outside 1-65535".
uint16_t parse_port(const std::string& text, const std::string& what, bool allow_zero);

// Splits and checks `address` as above; throws util::Error naming `what`
// (an option, or "FILE:LINE:COL: key 'listen'") and what would be right.
HostPort parse_listen_address(const std::string& address, const std::string& what, bool allow_zero = true);

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
