#include "nbd/protocol.h"

#include <cerrno>

#include "util/bytes.h"

namespace bootfleet::nbd {

bool parse_request(const uint8_t* b, Request& out) {
  if (util::load_be32(b) != kRequestMagic) return false;
  out.flags = util::load_be16(b + 4);
  out.type = util::load_be16(b + 6);
  out.cookie = util::load_be64(b + 8);
  out.offset = util::load_be64(b + 16);
  out.length = util::load_be32(b + 24);
  return true;
}

uint32_t to_nbd_error(int err) {
  switch (err) {
    case EPERM: case EROFS: return kErrPerm;
    case ENOMEM: return kErrNoMem;
    case EINVAL: return kErrInval;
    case ENOSPC: case EDQUOT: case EFBIG: return kErrNoSpc;
    case EOVERFLOW: return kErrOverflow;
    case ENOTSUP: return kErrNotSup;
    case ESHUTDOWN: return kErrShutdown;
    default: return kErrIo;
  }
}

}  // namespace bootfleet::nbd
