#include "util/bytes.h"

#include <cstring>

namespace bootfleet::util {

bool is_all_zero(const void* data, size_t length) {
  auto* p = static_cast<const uint8_t*>(data);
  while (length > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    if (*p != 0) return false;
    ++p;
    --length;
  }
  // Eight words per iteration: OR-ing them keeps the loop branch-light.
  while (length >= 64) {
    uint64_t w[8];
    std::memcpy(w, p, 64);
    if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0) return false;
    p += 64;
    length -= 64;
  }
  while (length > 0) {
    if (*p != 0) return false;
    ++p;
    --length;
  }
  return true;
}

namespace {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void append_unit(std::string& out, uint16_t unit, bool big_endian) {
  if (big_endian) {
    out.push_back(static_cast<char>(unit >> 8));
    out.push_back(static_cast<char>(unit & 0xFF));
  } else {
    out.push_back(static_cast<char>(unit & 0xFF));
    out.push_back(static_cast<char>(unit >> 8));
  }
}

}  // namespace

std::string utf16_to_utf8(std::span<const uint8_t> bytes, bool big_endian) {
  std::string out;
  size_t n = bytes.size() / 2;
  auto unit = [&](size_t i) -> uint16_t {
    uint8_t a = bytes[2 * i], b = bytes[2 * i + 1];
    return big_endian ? static_cast<uint16_t>((a << 8) | b)
                      : static_cast<uint16_t>((b << 8) | a);
  };
  for (size_t i = 0; i < n; ++i) {
    uint32_t u = unit(i);
    if (u == 0) break;  // names are NUL-padded
    if (u >= 0xD800 && u <= 0xDBFF && i + 1 < n) {
      uint32_t lo = unit(i + 1);
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        append_utf8(out, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
        ++i;
        continue;
      }
    }
    if (u >= 0xD800 && u <= 0xDFFF) u = 0xFFFD;
    append_utf8(out, u);
  }
  return out;
}

std::string utf8_to_utf16(const std::string& text, bool big_endian) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<uint8_t>(text[i]);
    uint32_t cp;
    size_t extra;
    if (c < 0x80) { cp = c; extra = 0; }
    else if ((c & 0xE0) == 0xC0) { cp = c & 0x1F; extra = 1; }
    else if ((c & 0xF0) == 0xE0) { cp = c & 0x0F; extra = 2; }
    else if ((c & 0xF8) == 0xF0) { cp = c & 0x07; extra = 3; }
    else { cp = 0xFFFD; extra = 0; }
    if (i + extra >= text.size()) {  // sequence cut short by the end
      cp = 0xFFFD;
      extra = text.size() - i - 1;
    } else {
      for (size_t k = 1; k <= extra; ++k) cp = (cp << 6) | (static_cast<uint8_t>(text[i + k]) & 0x3F);
    }
    i += extra + 1;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      append_unit(out, static_cast<uint16_t>(0xD800 + (cp >> 10)), big_endian);
      append_unit(out, static_cast<uint16_t>(0xDC00 + (cp & 0x3FF)), big_endian);
    } else {
      append_unit(out, static_cast<uint16_t>(cp), big_endian);
    }
  }
  return out;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

std::string printable_code(const uint8_t* p, size_t length) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < length; ++i) {
    if (p[i] >= 0x20 && p[i] < 0x7F && p[i] != '\\') {
      out.push_back(static_cast<char>(p[i]));
    } else {
      out += "\\x";
      out.push_back(digits[p[i] >> 4]);
      out.push_back(digits[p[i] & 15]);
    }
  }
  return out;
}

}  // namespace bootfleet::util
