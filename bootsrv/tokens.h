// Bearer tokens of the control API, read from a file of "NAME TOKEN" lines.
//
// Design note. A presented token is compared with every known token, each in
// constant time, and the loop never stops early: neither the timing of one
// comparison nor which entry matched tells a guesser anything about a token.
// Comparing SHA-256 digests (fixed length) also hides the tokens' lengths.
// The NAME is what logs and the activation history show ("api:NAME"); the
// token itself is never logged.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bootfleet::bootsrv {

// True when a and b are equal; the time taken depends on neither content
// nor length.
bool constant_time_equal(std::string_view a, std::string_view b);

class TokenSet {
 public:
  // The file: one "NAME TOKEN" per line (NAME: letters, digits, '.', '_',
  // '-'; TOKEN: at least 16 printable characters without spaces); '#'
  // comments and blank lines are ignored. Throws util::Error "FILE:LINE: …"
  // naming what is wrong.
  static TokenSet load(const std::string& path);
  // The same from text (`path` only names it in errors).
  static TokenSet parse(std::string_view text, const std::string& path);

  // The name of the token equal to `presented`, if any.
  std::optional<std::string> match(std::string_view presented) const;
  size_t size() const { return entries_.size(); }

  static constexpr size_t kMinTokenLength = 16;

 private:
  struct Entry {
    std::string name;
    std::string token;
  };
  std::vector<Entry> entries_;
};

}  // namespace bootfleet::bootsrv
