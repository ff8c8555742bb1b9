#include "util/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "util/bytes.h"
#include "util/error.h"

namespace bootfleet::util {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
    throw Error("OpenSSL: cannot initialise SHA-256");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::update(std::span<const uint8_t> data) {
  if (EVP_DigestUpdate(impl_->ctx, data.data(), data.size()) != 1) throw Error("OpenSSL: SHA-256 update failed");
}

Digest Sha256::finish() {
  Digest d{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, d.data(), &len) != 1 || len != d.size()) {
    throw Error("OpenSSL: SHA-256 final failed");
  }
  return d;
}

Digest sha256(std::span<const uint8_t> data) {
  Digest d{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr) != 1) {
    throw Error("OpenSSL: SHA-256 failed");
  }
  return d;
}

std::string digest_hex(const Digest& d) { return to_hex(d); }

Digest parse_digest_hex(const std::string& hex, const std::string& what) {
  Digest d{};
  if (hex.size() != 64) throw Error(what + ": a SHA-256 digest is 64 hex digits, got " + std::to_string(hex.size()));
  auto nibble = [&](char c) -> uint8_t {
    if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<uint8_t>(c - 'A' + 10);
    throw Error(what + ": '" + std::string(1, c) + "' is not a hex digit");
  };
  for (size_t i = 0; i < 32; ++i) d[i] = static_cast<uint8_t>((nibble(hex[2 * i]) << 4) | nibble(hex[2 * i + 1]));
  return d;
}

std::string file_sha256_hex(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw errno_error(path, errno);
  Sha256 h;
  std::vector<uint8_t> buf(1 << 20);
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw errno_error("read " + path, err);
    }
    if (n == 0) break;
    h.update({buf.data(), static_cast<size_t>(n)});
  }
  ::close(fd);
  return digest_hex(h.finish());
}

}  // namespace bootfleet::util
