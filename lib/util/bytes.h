// Byte-order helpers and small byte-buffer utilities shared by the parsers.
// On-disk formats (VHD, NBD) are big-endian; these helpers make every load
// and store explicit so that no struct is ever read by casting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace bootfleet::util {

inline uint16_t load_be16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
inline uint64_t load_be64(const uint8_t* p) {
  return (uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}
inline void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
inline void store_be64(uint8_t* p, uint64_t v) {
  store_be32(p, static_cast<uint32_t>(v >> 32));
  store_be32(p + 4, static_cast<uint32_t>(v));
}

// True when every byte of the buffer is zero. Word-at-a-time; this sits on
// the hot path of every conversion.
bool is_all_zero(const void* data, size_t length);

// UTF-8 <-> UTF-16 (big or little endian), as VHD's parent name (BE) and
// its W2ku/W2ru locators (LE) need. Invalid UTF-16 yields U+FFFD.
std::string utf16_to_utf8(std::span<const uint8_t> bytes, bool big_endian);
std::string utf8_to_utf16(const std::string& text, bool big_endian);

// Lower-case hex of a byte range.
std::string to_hex(std::span<const uint8_t> bytes);
// The value of one hex digit (either case), or -1 for any other character.
inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A printable rendering of a 4-byte field such as a VHD creator code:
// "win " stays "win ", unprintable bytes become \xNN.
std::string printable_code(const uint8_t* p, size_t length);

}  // namespace bootfleet::util
