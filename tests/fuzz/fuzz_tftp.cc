// libFuzzer target for the TFTP packet layer: the input is one datagram as
// a peer might send it. The parser must return a packet or a ParseError,
// never crash or read out of bounds; whatever parses must survive option
// negotiation and path normalization, and a request rebuilt from its parsed
// form must parse back to the same thing.
#include <cstdint>
#include <cstring>
#include <string>
#include <variant>

#include "tftp/packet.h"
#include "tftp/root.h"

using namespace bootfleet::tftp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Packet packet = parse_packet({data, size});
  if (auto* request = std::get_if<Request>(&packet)) {
    Limits limits;
    limits.max_blksize = 1468;
    Negotiation n = negotiate(request->options, limits, 74213);
    if (n.params.blksize < kMinBlksize || n.params.blksize > limits.max_blksize) __builtin_trap();
    if (n.params.windowsize < 1 || n.params.windowsize > limits.max_windowsize) __builtin_trap();
    auto name = Root::normalize(request->filename, "/srv/tftp");
    if (auto* relative = std::get_if<std::string>(&name)) {
      // A normalized name never climbs out and is never absolute.
      if (relative->empty() || relative->front() == '/') __builtin_trap();
      if (*relative == ".." || relative->rfind("../", 0) == 0 || relative->find("/../") != std::string::npos ||
          (relative->size() >= 3 && relative->compare(relative->size() - 3, 3, "/..") == 0)) {
        __builtin_trap();
      }
    }
    Packet again = parse_packet(build_request(*request));
    auto* back = std::get_if<Request>(&again);
    if (!back || back->filename != request->filename || back->mode != request->mode ||
        back->options != request->options) {
      __builtin_trap();
    }
  } else if (auto* oack = std::get_if<OptionAck>(&packet)) {
    Packet again = parse_packet(build_oack(oack->options));
    auto* back = std::get_if<OptionAck>(&again);
    if (!back || back->options != oack->options) __builtin_trap();
  }
  return 0;
}
