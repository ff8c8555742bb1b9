// libFuzzer target for what bootfleet-nbd-client parses
// (client/nbd_client_proto.h): the NBD server's greeting and its replies to
// NBD_OPT_GO (whoever answers on the server's address) and the kernel's generic
// netlink attributes. The first byte picks the parser, the rest is its
// input. Each must refuse with std::runtime_error or return what fits:
// attribute values inside the input, nested lists walked to the end, no
// read out of bounds (ASan) and no misaligned access (UBSan).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <stdexcept>
#include <string_view>

#include "nbd_client_proto.h"

using namespace bootfleet;

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "fuzz_nbd_client: invariant broken: %s\n", what);
  std::abort();
}

// Every value lies inside `in`; its nested lists too, down to `depth`.
void walk(std::span<const uint8_t> in, int depth) {
  for (auto& [type, value] : client::netlink_attrs(in)) {
    (void)type;
    auto* begin = reinterpret_cast<const uint8_t*>(value.data());
    if (begin < in.data() || begin + value.size() > in.data() + in.size()) broken("an attribute's value outside its input");
    if (depth > 0) walk({begin, value.size()}, depth - 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::span<const uint8_t> in(data + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      try {
        client::parse_hello(in);
        if (in.size() < 18) broken("a short greeting accepted");
      } catch (const std::runtime_error&) {
      }
      break;
    case 1:
      // A conversation of option replies to NBD_OPT_GO: header, data, ...
      try {
        client::GoReplies replies;
        while (in.size() >= 20) {
          auto reply = client::parse_option_reply(in.first(20), 7);
          if (reply.length > 65536) broken("an option reply above 64 KiB accepted");
          in = in.subspan(20);
          if (reply.length > in.size()) break;
          if (replies.add(reply.type, in.first(reply.length))) break;
          in = in.subspan(reply.length);
        }
      } catch (const std::runtime_error&) {
      }
      break;
    case 2:
      client::parse_family(in);
      break;
    case 3:
      // An index needs a 4-byte header and a 4-byte value.
      if (client::parse_link_dead(in) != -1 && in.size() < 8) broken("an index from fewer than 8 bytes");
      break;
    default:
      walk(in, 4);
  }
  return 0;
}
