// Text keys (RFC 7143 §6, §13): the key=value lists of Login and Text PDUs,
// and the negotiation of a connection's operational parameters.
//
// Design note. The initiator offers; we answer each key it sent with the
// value the key's result function gives (min, max, AND, OR, or the first of
// its list we support), so both sides compute the same result from the
// same pair. Keys we do not know get NotUnderstood (as the RFC asks, so an
// initiator can go on), values we cannot take get Reject and leave the
// default in force. A key sent twice in one negotiation is a protocol error:
// the caller ends the login. Our own declarative value,
// MaxRecvDataSegmentLength, is sent whether asked or not.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bootfleet::iscsi {

struct KeyValue {
  std::string key, value;
};

// Splits a data segment of NUL-terminated "key=value" strings. Returns an
// error message (empty on success): a missing '=', a key longer than 63
// bytes, a value longer than 8192, more than 512 keys, or no final NUL.
std::string parse_text(const uint8_t* data, size_t length, std::vector<KeyValue>& out);
void append_text(std::vector<uint8_t>& out, const std::string& key, const std::string& value);

// What this target offers.
struct TargetLimits {
  uint32_t max_recv_data_segment_length = 256 * 1024;  // what we accept in one PDU
  uint32_t max_burst_length = 1024 * 1024;
  uint32_t first_burst_length = 256 * 1024;
};

// The operational parameters of one connection, defaults as RFC 7143 §13.
struct Params {
  bool header_digest = false;
  bool data_digest = false;
  uint32_t initiator_max_recv = 8192;  // the largest data segment we may send
  uint32_t target_max_recv = 8192;     // the largest the initiator may send us (what we declared)
  uint32_t max_burst_length = 262144;
  uint32_t first_burst_length = 65536;
  bool initial_r2t = true;
  bool immediate_data = true;
  uint32_t max_outstanding_r2t = 1;
  uint32_t default_time2wait = 2;
  uint32_t default_time2retain = 20;
  bool data_pdu_in_order = true;
  bool data_sequence_in_order = true;
  uint32_t error_recovery_level = 0;
  uint32_t max_connections = 1;
};

class Negotiator {
 public:
  explicit Negotiator(TargetLimits limits) : limits_(limits) {}
  const Params& params() const { return params_; }
  Params& params() { return params_; }

  // The answer to one operational key the initiator offered, or nullopt
  // when the key needs none (a declaration). Keys of the login itself
  // (InitiatorName, TargetName, SessionType, AuthMethod, CHAP_*) are the
  // caller's and are never passed here.
  std::optional<std::string> answer(const std::string& key, const std::string& value);
  // Called once the operational stage ends: keys we must declare that the
  // initiator did not ask about (our MaxRecvDataSegmentLength).
  std::vector<KeyValue> declarations();
  // A key seen before in this negotiation (a protocol error for the caller).
  bool seen(const std::string& key) const;

 private:
  TargetLimits limits_;
  Params params_;
  std::vector<std::string> seen_;
  bool declared_mrdsl_ = false;
};

// "Yes"/"No" -> bool; nullopt for anything else.
std::optional<bool> parse_bool(const std::string& v);
// A decimal or 0x-hex number within [lo, hi]; nullopt otherwise.
std::optional<uint64_t> parse_number(const std::string& v, uint64_t lo, uint64_t hi);

}  // namespace bootfleet::iscsi
