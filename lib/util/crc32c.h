// CRC32C (Castagnoli), as iSCSI's header and data digests use it (RFC 7143
// §13.1, RFC 3385). Uses the SSE4.2 instruction where the CPU has it and
// tables elsewhere; both give the same value.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bootfleet::util {

// Continues a CRC: pass the previous result as `crc` (0 to start). The
// value is the finished CRC (already inverted), as the wire carries it.
uint32_t crc32c(const void* data, size_t length, uint32_t crc = 0);

}  // namespace bootfleet::util
