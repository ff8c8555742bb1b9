// Where the block layer turns an exception into an errno for the protocol.
//
// Design note. Devices answer with errnos (device.h): a protocol can only
// send EIO, not a sentence. The sentence (which VHD file, which offset,
// what the kernel said) exists only in the util::Error being dropped, so it
// is logged here, once, at the one place it is dropped; nothing above logs
// it again, and the client's "Input/output error" can be matched to a line
// in the server's log.
#pragma once

#include <cstdint>
#include <string>

#include "util/error.h"

namespace bootfleet::block {

// Logs "WHAT: OP of LENGTH bytes at offset OFFSET failed: WHY; the client
// gets EIO" and returns EIO. `what` names the device (a version's file, a
// write cache's data file); `op` is "read", "write", …
int io_error(const std::string& what, const char* op, uint64_t offset, uint64_t length, const util::Error& e);

}  // namespace bootfleet::block
