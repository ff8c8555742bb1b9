#include "tokens.h"

#include <fstream>
#include <sstream>

#include "util/error.h"
#include "util/sha256.h"

namespace bootfleet::bootsrv {

using util::Error;

bool constant_time_equal(std::string_view a, std::string_view b) {
  util::Digest da = util::sha256({reinterpret_cast<const uint8_t*>(a.data()), a.size()});
  util::Digest db = util::sha256({reinterpret_cast<const uint8_t*>(b.data()), b.size()});
  volatile uint8_t diff = 0;
  for (size_t i = 0; i < da.size(); ++i) diff = diff | (da[i] ^ db[i]);
  return diff == 0;
}

TokenSet TokenSet::parse(std::string_view text, const std::string& path) {
  TokenSet set;
  size_t line_number = 0, pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string where = path + ":" + std::to_string(line_number) + ": ";
    std::istringstream fields{std::string(line)};
    std::string name, token, extra;
    fields >> name;
    if (name.empty() || name[0] == '#') continue;
    fields >> token >> extra;
    if (token.empty()) throw Error(where + "'" + name + "' has no token; lines are 'NAME TOKEN'");
    if (!extra.empty() && extra[0] != '#') {
      throw Error(where + "more than two fields; lines are 'NAME TOKEN' (a token holds no spaces)");
    }
    for (char c : name) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                c == '-';
      if (!ok) {
        throw Error(where + "the name '" + name + "' holds '" + std::string(1, c) +
                    "'; names are letters, digits, '.', '_' and '-'");
      }
    }
    if (token.size() < kMinTokenLength) {
      throw Error(where + "the token of '" + name + "' is " + std::to_string(token.size()) +
                  " characters; tokens are at least 16 (e.g. the output of 'openssl rand -hex 32')");
    }
    for (char c : token) {
      if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) {
        throw Error(where + "the token of '" + name + "' holds a byte that is not printable ASCII");
      }
    }
    for (const auto& e : set.entries_) {
      if (e.name == name) throw Error(where + "the name '" + name + "' appears twice; names must be unique");
      if (e.token == token) throw Error(where + "'" + name + "' has the same token as '" + e.name + "'");
    }
    set.entries_.push_back({name, token});
    if (end == text.size()) break;
  }
  return set;
}

TokenSet TokenSet::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw util::errno_error(path + ": cannot read the API token file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

std::optional<std::string> TokenSet::match(std::string_view presented) const {
  std::optional<std::string> found;
  for (const auto& e : entries_) {
    if (constant_time_equal(e.token, presented) && !found) found = e.name;
  }
  return found;
}

}  // namespace bootfleet::bootsrv
