// The bytes bootfleet-nbd-client reads from others, parsed apart from the
// sockets that bring them so that a fuzz target can feed them anything
// (tests/fuzz/fuzz_nbd_client.cc): the NBD server's greeting and its reply
// to NBD_OPT_EXPORT_NAME (untrusted: whoever answers on the server's
// address), and the kernel's generic netlink messages (trusted, but parsed
// as carefully). Every function reads only inside the span it is given.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace bootfleet::client {

// The server's fixed-newstyle greeting (18 bytes: NBDMAGIC, IHAVEOPT,
// handshake flags). Throws std::runtime_error saying what is wrong.
struct Hello {
  bool no_zeroes = false;  // the server omits the 124 zero bytes after the export reply
};
Hello parse_hello(std::span<const uint8_t> bytes);

// The export's size from the reply to NBD_OPT_EXPORT_NAME (size, flags:
// at least 10 bytes). Throws std::runtime_error when it is shorter.
uint64_t parse_export_reply(std::span<const uint8_t> bytes);

// One level of netlink attributes: (type without its flag bits, value)
// pairs in order. A malformed tail (a length below the header's or past
// the end) ends the list.
std::vector<std::pair<uint16_t, std::string_view>> netlink_attrs(std::span<const uint8_t> bytes);

// The nbd generic netlink family: its id, and its multicast group's
// (NBD_GENL_MCAST_GROUP_NAME), from the attributes of a
// CTRL_CMD_GETFAMILY reply; 0 for what the reply lacks.
struct NbdFamily {
  uint16_t id = 0;
  uint32_t group = 0;
};
NbdFamily parse_family(std::span<const uint8_t> attributes);

// The device index (N of /dev/nbdN) in the attributes of an
// NBD_CMD_LINK_DEAD event, or -1.
int parse_link_dead(std::span<const uint8_t> attributes);

}  // namespace bootfleet::client
