// CHAP for iSCSI logins (RFC 1994 with MD5, as RFC 7143 §12.1.3 uses it):
// one-way (the initiator proves it knows the secret) and mutual (the target
// proves it too, with a secret of its own).
//
// Secrets come from a file the admin writes, one line per client:
//   # NAME  USER  SECRET  [TARGET_USER TARGET_SECRET]
//   pc01    pc01  0123456789abcdef
//   *       lab   a-secret-for-all  bootsrv  another-secret
// NAME is a client name (its named sessions) or '*' (every other login,
// discovery included). A secret is 12 to 255 characters (RFC 7143 asks for
// at least 96 bits). Secrets are never logged; errors name the file and line.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bootfleet::iscsi {

struct ChapCredentials {
  std::string user, secret;                // what the initiator must prove
  std::string target_user, target_secret;  // mutual CHAP: what we prove (empty: one-way)
  bool mutual() const { return !target_secret.empty(); }
};

class ChapSecrets {
 public:
  // Throws util::Error "FILE:LINE: …" naming what is wrong.
  static ChapSecrets load(const std::string& path);
  // The credentials for `client` (a client name, or "" for anonymous and
  // discovery logins): its own line, else '*', else none (no CHAP asked).
  std::optional<ChapCredentials> find(const std::string& client) const;
  bool empty() const { return by_name_.empty(); }

 private:
  std::map<std::string, ChapCredentials> by_name_;
};

// MD5(id || secret || challenge).
std::vector<uint8_t> chap_response(uint8_t id, const std::string& secret, const std::vector<uint8_t>& challenge);
// A binary value as CHAP keys carry it: "0x" hex or "0b" base64. nullopt
// when malformed or longer than 1024 bytes.
std::optional<std::vector<uint8_t>> decode_binary(const std::string& text);
std::string encode_hex(const std::vector<uint8_t>& bytes);  // "0x…"
// Constant-time comparison of two byte strings of equal length.
bool equal_secret(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b);

}  // namespace bootfleet::iscsi
