#include "iscsi/chap.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>

#include "util/bytes.h"
#include "util/error.h"

namespace bootfleet::iscsi {

using util::Error;

ChapSecrets ChapSecrets::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw util::errno_error(path + ": cannot read the CHAP secrets file");
  ChapSecrets out;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string s; words >> s;) w.push_back(s);
    if (w.empty()) continue;
    std::string where = path + ":" + std::to_string(number) + ": ";
    if (w.size() != 3 && w.size() != 5) {
      throw Error(where + "expected NAME USER SECRET [TARGET_USER TARGET_SECRET], got " + std::to_string(w.size()) +
                  " words");
    }
    for (size_t i : {size_t{2}, size_t{4}}) {
      if (i < w.size() && (w[i].size() < 12 || w[i].size() > 255)) {
        throw Error(where + (i == 2 ? "the secret" : "the target secret") + " of '" + w[0] +
                    "' must be 12 to 255 characters (RFC 7143 asks for at least 96 bits)");
      }
    }
    if (w.size() == 5 && w[4] == w[2]) {
      throw Error(where + "the target secret of '" + w[0] + "' must differ from the initiator's (RFC 7143 §12.1.3)");
    }
    if (out.by_name_.count(w[0])) throw Error(where + "'" + w[0] + "' has a line already");
    ChapCredentials c{w[1], w[2], w.size() == 5 ? w[3] : "", w.size() == 5 ? w[4] : ""};
    out.by_name_[w[0]] = std::move(c);
  }
  return out;
}

std::optional<ChapCredentials> ChapSecrets::find(const std::string& client) const {
  if (!client.empty()) {
    if (auto it = by_name_.find(client); it != by_name_.end()) return it->second;
  }
  if (auto it = by_name_.find("*"); it != by_name_.end()) return it->second;
  return std::nullopt;
}

std::vector<uint8_t> chap_response(uint8_t id, const std::string& secret, const std::vector<uint8_t>& challenge) {
  std::vector<uint8_t> input;
  input.push_back(id);
  input.insert(input.end(), secret.begin(), secret.end());
  input.insert(input.end(), challenge.begin(), challenge.end());
  std::vector<uint8_t> digest(EVP_MAX_MD_SIZE);
  unsigned int n = 0;
  if (EVP_Digest(input.data(), input.size(), digest.data(), &n, EVP_md5(), nullptr) != 1) {
    throw Error("CHAP: MD5 is not available from OpenSSL");
  }
  digest.resize(n);
  OPENSSL_cleanse(input.data(), input.size());
  return digest;
}

namespace {
int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

std::optional<std::vector<uint8_t>> decode_binary(const std::string& text) {
  if (text.size() < 3 || text[0] != '0' || text.size() > 2 + 2048) return std::nullopt;
  std::vector<uint8_t> out;
  if (text[1] == 'x' || text[1] == 'X') {
    std::string digits = text.substr(2);
    if (digits.size() % 2) digits.insert(digits.begin(), '0');  // "0xabc": a leading nibble
    for (size_t i = 0; i < digits.size(); i += 2) {
      int hi = util::hex_value(digits[i]), lo = util::hex_value(digits[i + 1]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<uint8_t>(hi << 4 | lo));
    }
  } else if (text[1] == 'b' || text[1] == 'B') {
    uint32_t acc = 0;
    int bits = 0;
    size_t i = 2;
    for (; i < text.size() && text[i] != '='; ++i) {
      int v = base64_value(text[i]);
      if (v < 0) return std::nullopt;
      acc = (acc << 6) | static_cast<uint32_t>(v);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push_back(static_cast<uint8_t>(acc >> bits));
      }
    }
    for (; i < text.size(); ++i)
      if (text[i] != '=') return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (out.empty() || out.size() > 1024) return std::nullopt;
  return out;
}

std::string encode_hex(const std::vector<uint8_t>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string s = "0x";
  for (uint8_t b : bytes) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

bool equal_secret(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace bootfleet::iscsi
