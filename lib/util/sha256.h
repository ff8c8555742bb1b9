// SHA-256 through OpenSSL (which uses the CPU's SHA extensions where present:
// about 1.6 GB/s on the build machines), for block and disk digests.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace bootfleet::util {

using Digest = std::array<uint8_t, 32>;

Digest sha256(std::span<const uint8_t> data);
std::string digest_hex(const Digest& d);
// Parses 64 hex digits; throws Error naming `what` otherwise.
Digest parse_digest_hex(const std::string& hex, const std::string& what);

// SHA-256 (hex) of a file's content; throws Error naming the file.
std::string file_sha256_hex(const std::string& path);

// Incremental hashing.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::span<const uint8_t> data);
  Digest finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bootfleet::util
