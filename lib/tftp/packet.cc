#include "tftp/packet.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "util/bytes.h"

namespace bootfleet::tftp {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A cursor over NUL-terminated strings. Each read either yields a string
// whose terminator was inside the packet, or fails: nothing ever reads past
// the end.
class Strings {
 public:
  explicit Strings(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  bool at_end() const { return pos_ >= bytes_.size(); }
  // Trailing NUL bytes only: some PXE ROMs pad their requests with zeros.
  bool only_padding_left() const {
    return std::all_of(bytes_.begin() + static_cast<std::ptrdiff_t>(std::min(pos_, bytes_.size())), bytes_.end(),
                       [](uint8_t b) { return b == 0; });
  }
  bool next(std::string& out) {
    if (at_end()) return false;
    const uint8_t* start = bytes_.data() + pos_;
    const void* nul = std::memchr(start, 0, bytes_.size() - pos_);
    if (!nul) return false;
    size_t length = static_cast<size_t>(static_cast<const uint8_t*>(nul) - start);
    out.assign(reinterpret_cast<const char*>(start), length);
    pos_ += length + 1;
    return true;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

// Options: pairs of NUL-terminated strings up to the end of the packet.
// `what` names the packet for the messages.
std::variant<ParseError, OptionList> parse_options(Strings& in, const char* what) {
  OptionList options;
  while (!in.at_end()) {
    if (in.only_padding_left()) break;
    std::string name, value;
    if (!in.next(name)) return ParseError{std::string(what) + ": option name without a NUL terminator"};
    if (name.empty()) return ParseError{std::string(what) + ": empty option name"};
    if (!in.next(value)) {
      return ParseError{std::string(what) + ": option '" + lower(name) + "' has no value (odd option list)"};
    }
    options.emplace_back(lower(std::move(name)), std::move(value));
  }
  return options;
}

Packet parse_request(Opcode opcode, std::span<const uint8_t> body) {
  const char* what = opcode == Opcode::rrq ? "RRQ" : "WRQ";
  Strings in(body);
  Request request;
  request.opcode = opcode;
  if (!in.next(request.filename)) return ParseError{std::string(what) + ": file name without a NUL terminator"};
  if (request.filename.empty()) return ParseError{std::string(what) + ": empty file name"};
  if (!in.next(request.mode)) return ParseError{std::string(what) + ": mode missing or without a NUL terminator"};
  request.mode = lower(std::move(request.mode));
  if (request.mode.empty()) return ParseError{std::string(what) + ": empty mode"};
  auto options = parse_options(in, what);
  if (auto* error = std::get_if<ParseError>(&options)) return *error;
  request.options = std::move(std::get<OptionList>(options));
  return request;
}

void append_string(std::vector<uint8_t>& out, const std::string& s) {
  // A NUL inside would end the string early on the wire; cut it there
  // rather than send something the peer parses differently.
  size_t length = std::min(s.size(), std::strlen(s.c_str()));
  out.insert(out.end(), s.begin(), s.begin() + static_cast<std::ptrdiff_t>(length));
  out.push_back(0);
}

std::vector<uint8_t> header(Opcode opcode, size_t reserve) {
  std::vector<uint8_t> out;
  out.reserve(reserve + 2);
  out.resize(2);
  util::store_be16(out.data(), static_cast<uint16_t>(opcode));
  return out;
}

}  // namespace

Packet parse_packet(std::span<const uint8_t> bytes) {
  if (bytes.size() < 2) return ParseError{"packet of " + std::to_string(bytes.size()) + " bytes has no opcode"};
  uint16_t opcode = util::load_be16(bytes.data());
  auto body = bytes.subspan(2);
  switch (opcode) {
    case static_cast<uint16_t>(Opcode::rrq):
    case static_cast<uint16_t>(Opcode::wrq):
      return parse_request(static_cast<Opcode>(opcode), body);
    case static_cast<uint16_t>(Opcode::data): {
      if (body.size() < 2) return ParseError{"DATA: no block number"};
      if (body.size() - 2 > kMaxBlksize) return ParseError{"DATA: payload larger than 65464 bytes"};
      return Data{util::load_be16(body.data()), std::vector<uint8_t>(body.begin() + 2, body.end())};
    }
    case static_cast<uint16_t>(Opcode::ack):
      // Bytes after the block number are ignored: nothing in them matters.
      if (body.size() < 2) return ParseError{"ACK: no block number"};
      return Ack{util::load_be16(body.data())};
    case static_cast<uint16_t>(Opcode::error): {
      if (body.size() < 2) return ParseError{"ERROR: no error code"};
      ErrorPacket error{util::load_be16(body.data()), {}};
      // Peers forget the terminator; take the message up to the end then.
      auto text = body.subspan(2);
      const void* nul = std::memchr(text.data(), 0, text.size());
      size_t length = nul ? static_cast<size_t>(static_cast<const uint8_t*>(nul) - text.data()) : text.size();
      error.message.assign(reinterpret_cast<const char*>(text.data()), length);
      return error;
    }
    case static_cast<uint16_t>(Opcode::oack): {
      Strings in(body);
      auto options = parse_options(in, "OACK");
      if (auto* e = std::get_if<ParseError>(&options)) return *e;
      return OptionAck{std::move(std::get<OptionList>(options))};
    }
    default:
      return ParseError{"unknown opcode " + std::to_string(opcode)};
  }
}

std::vector<uint8_t> build_request(const Request& request) {
  auto out = header(request.opcode, request.filename.size() + request.mode.size() + 2);
  append_string(out, request.filename);
  append_string(out, request.mode);
  for (const auto& [name, value] : request.options) {
    append_string(out, name);
    append_string(out, value);
  }
  return out;
}

std::vector<uint8_t> build_data(uint16_t block, std::span<const uint8_t> payload) {
  auto out = header(Opcode::data, 2 + payload.size());
  out.resize(4);
  util::store_be16(out.data() + 2, block);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::vector<uint8_t> build_ack(uint16_t block) {
  auto out = header(Opcode::ack, 2);
  out.resize(4);
  util::store_be16(out.data() + 2, block);
  return out;
}

std::vector<uint8_t> build_error(ErrorCode code, const std::string& message) {
  auto out = header(Opcode::error, 3 + message.size());
  out.resize(4);
  util::store_be16(out.data() + 2, static_cast<uint16_t>(code));
  append_string(out, message);
  return out;
}

std::vector<uint8_t> build_oack(const OptionList& options) {
  auto out = header(Opcode::oack, 64);
  for (const auto& [name, value] : options) {
    append_string(out, name);
    append_string(out, value);
  }
  return out;
}

std::variant<ParseError, uint64_t> parse_option_number(const std::string& name, const std::string& value,
                                                       uint64_t min, uint64_t max) {
  auto range = " (expected " + std::to_string(min) + ".." + std::to_string(max) + ")";
  if (value.empty()) return ParseError{name + ": empty value" + range};
  // At most 10 digits: anything larger is nonsense for every TFTP option,
  // and the limit keeps the arithmetic below from overflowing.
  if (value.size() > 10) return ParseError{name + " '" + value.substr(0, 24) + "': too large" + range};
  uint64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return ParseError{name + " '" + value + "': not a decimal number" + range};
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n < min || n > max) return ParseError{name + " " + value + ": out of range" + range};
  return n;
}

Negotiation negotiate(const OptionList& options, const Limits& limits, uint64_t file_size) {
  Negotiation result;
  std::vector<std::string> seen;
  for (const auto& [name, value] : options) {
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      result.ignored.push_back(name + ": given twice, the first one counts");
      continue;
    }
    seen.push_back(name);
    if (name == "blksize") {
      // RFC 2348 allows 8..65464; larger requests are lowered to our limit
      // like smaller-than-asked answers the RFC permits (as tftpd-hpa does).
      auto n = parse_option_number(name, value, kMinBlksize, 0xFFFFFFFFull);
      if (auto* e = std::get_if<ParseError>(&n)) {
        result.ignored.push_back(e->message);
        continue;
      }
      uint64_t limit = std::clamp<uint64_t>(limits.max_blksize, kMinBlksize, kMaxBlksize);
      result.params.blksize = static_cast<uint16_t>(std::min(std::get<uint64_t>(n), limit));
      result.oack.emplace_back(name, std::to_string(result.params.blksize));
    } else if (name == "windowsize") {
      auto n = parse_option_number(name, value, 1, 65535);  // RFC 7440
      if (auto* e = std::get_if<ParseError>(&n)) {
        result.ignored.push_back(e->message);
        continue;
      }
      uint64_t limit = std::max<uint64_t>(limits.max_windowsize, 1);
      result.params.windowsize = static_cast<uint16_t>(std::min(std::get<uint64_t>(n), limit));
      result.oack.emplace_back(name, std::to_string(result.params.windowsize));
    } else if (name == "timeout") {
      // RFC 2349: 1..255 seconds, and the server must echo it unchanged or
      // leave it out, so out-of-range values are ignored, not clamped. Our
      // range stops at limits.max_timeout: a peer that asks for 255 s (and
      // never answers) would otherwise hold a transfer for 255 s per retry.
      auto n = parse_option_number(name, value, 1, std::max<uint64_t>(limits.max_timeout, 1));
      if (auto* e = std::get_if<ParseError>(&n)) {
        result.ignored.push_back(e->message);
        continue;
      }
      result.params.timeout_seconds = static_cast<uint8_t>(std::get<uint64_t>(n));
      result.oack.emplace_back(name, value);
    } else if (name == "tsize") {
      // In a read request the client sends 0 and the server answers the
      // size; any number is accepted as a question.
      auto n = parse_option_number(name, value, 0, 0xFFFFFFFFull);
      if (auto* e = std::get_if<ParseError>(&n)) {
        result.ignored.push_back(e->message);
        continue;
      }
      result.oack.emplace_back(name, std::to_string(file_size));
    } else {
      result.ignored.push_back(name + ": unknown option");
    }
  }
  return result;
}

const char* error_code_name(uint16_t code) {
  switch (code) {
    case 0: return "not defined";
    case 1: return "file not found";
    case 2: return "access violation";
    case 3: return "disk full";
    case 4: return "illegal operation";
    case 5: return "unknown transfer ID";
    case 6: return "file already exists";
    case 7: return "no such user";
    case 8: return "option refused";
    default: return "unknown error code";
  }
}

}  // namespace bootfleet::tftp
