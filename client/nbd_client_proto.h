// The bytes bootfleet-nbd-client reads from others, parsed apart from the
// sockets that bring them so that a fuzz target can feed them anything
// (tests/fuzz/fuzz_nbd_client.cc): the NBD server's greeting and its
// replies to NBD_OPT_GO (untrusted: whoever answers on the server's
// address), and the kernel's generic netlink messages (trusted, but parsed
// as carefully). Every function reads only inside the span it is given.
#pragma once

#include <cstdint>
#include <span>
#include <string>
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

// NBD_OPT_GO of `name` with no information requests: the option's bytes
// as the client sends them (IHAVEOPT, option, length, data).
std::vector<uint8_t> go_request(std::string_view name);

// The 20-byte header of an option reply (magic, option, type, length).
// Throws std::runtime_error on a wrong magic or a reply to another option
// than `option`, or a length above 64 KiB (a server we will not follow).
struct OptionReply {
  uint32_t type = 0, length = 0;
};
OptionReply parse_option_reply(std::span<const uint8_t> header, uint32_t option);

// What NBD_OPT_GO's replies say, fed one reply at a time (its header's
// type and its data): done once the ACK came, with the export's size from
// NBD_INFO_EXPORT. An error reply (a refusal, with the server's message:
// bootsrv says why a session ended) or an ACK without the size throws
// std::runtime_error.
class GoReplies {
 public:
  bool add(uint32_t type, std::span<const uint8_t> data);  // true: the ACK came
  uint64_t size() const { return size_; }

 private:
  uint64_t size_ = 0;
  bool have_size_ = false;
};

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
