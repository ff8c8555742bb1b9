// TFTP packets: parsing and building, pure functions on bytes (no sockets),
// so that the parser can be unit-tested and fuzzed on its own.
//
// RFC 1350 (the protocol), RFC 2347 (option extension, OACK), RFC 2348
// (blksize), RFC 2349 (timeout, tsize), RFC 7440 (windowsize).
//
// Parsing never throws: a malformed packet yields a ParseError whose message
// says what was wrong, which the server can send back in an ERROR packet.
// Option *values* are judged separately by negotiate(), because an
// acceptable request may carry options the server ignores (RFC 2347: the
// server simply leaves them out of its OACK).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace bootfleet::tftp {

enum class Opcode : uint16_t { rrq = 1, wrq = 2, data = 3, ack = 4, error = 5, oack = 6 };

// RFC 1350 error codes, plus 8 from RFC 2347.
enum class ErrorCode : uint16_t {
  not_defined = 0,
  file_not_found = 1,
  access_violation = 2,
  disk_full = 3,
  illegal_operation = 4,
  unknown_tid = 5,
  file_exists = 6,
  no_such_user = 7,
  option_refused = 8,
};

// Option names are lower-cased by the parser (RFC 2347: case-insensitive);
// values are kept as sent.
using OptionList = std::vector<std::pair<std::string, std::string>>;

struct Request {  // RRQ or WRQ
  Opcode opcode = Opcode::rrq;
  std::string filename;
  std::string mode;  // lower-cased: "octet", "netascii", "mail", ...
  OptionList options;
};

struct Data {
  uint16_t block = 0;
  std::vector<uint8_t> payload;
};

struct Ack {
  uint16_t block = 0;
};

struct ErrorPacket {
  uint16_t code = 0;  // not an ErrorCode: peers send any number
  std::string message;
};

struct OptionAck {
  OptionList options;
};

struct ParseError {
  std::string message;
};

using Packet = std::variant<ParseError, Request, Data, Ack, ErrorPacket, OptionAck>;

// The largest TFTP packet: a DATA packet of the largest blksize (RFC 2348).
constexpr size_t kMaxPacketSize = 4 + 65464;
constexpr uint16_t kMinBlksize = 8;
constexpr uint16_t kMaxBlksize = 65464;
constexpr uint16_t kDefaultBlksize = 512;

Packet parse_packet(std::span<const uint8_t> bytes);

std::vector<uint8_t> build_request(const Request& request);
std::vector<uint8_t> build_data(uint16_t block, std::span<const uint8_t> payload);
std::vector<uint8_t> build_ack(uint16_t block);
std::vector<uint8_t> build_error(ErrorCode code, const std::string& message);
std::vector<uint8_t> build_oack(const OptionList& options);

// The server's limits for option negotiation.
struct Limits {
  uint16_t max_blksize = 1468;   // 1500-byte MTU - 20 (IPv4) - 8 (UDP) - 4 (TFTP header)
  uint16_t max_windowsize = 64;  // RFC 7440 allows 65535; a bound keeps bursts sane
  uint8_t max_timeout = 5;       // seconds; RFC 2349 allows 255; larger asks are ignored
};

// What a transfer uses after negotiation.
struct TransferParams {
  uint16_t blksize = kDefaultBlksize;
  uint16_t windowsize = 1;
  uint8_t timeout_seconds = 0;  // 0: the server's own default
};

struct Negotiation {
  TransferParams params;
  OptionList oack;                   // empty: no OACK, the transfer starts with DATA 1
  std::vector<std::string> ignored;  // one reason per option left out, for the log
};

// Applies RFC 2348/2349/7440 to a request's options against `limits`.
// Unknown options, duplicates and invalid values are left out of the OACK
// with a reason; values above a limit are lowered to it (the RFCs let the
// server answer with a smaller blksize/windowsize). tsize is answered with
// `file_size`. Never throws.
Negotiation negotiate(const OptionList& options, const Limits& limits, uint64_t file_size);

// Parses one option value as a decimal number in [min, max]; the error
// names the option and the range. Exposed for the tests.
std::variant<ParseError, uint64_t> parse_option_number(const std::string& name, const std::string& value,
                                                       uint64_t min, uint64_t max);

const char* error_code_name(uint16_t code);

}  // namespace bootfleet::tftp
