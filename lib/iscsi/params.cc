#include "iscsi/params.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace bootfleet::iscsi {

std::string parse_text(const uint8_t* data, size_t length, std::vector<KeyValue>& out) {
  constexpr size_t kMaxKeys = 512, kMaxKey = 63, kMaxValue = 8192;
  size_t pos = 0;
  while (pos < length) {
    // Padding after the last NUL is zeros; an empty string ends the list.
    if (data[pos] == 0) {
      ++pos;
      continue;
    }
    const auto* nul = static_cast<const uint8_t*>(std::memchr(data + pos, 0, length - pos));
    if (nul == nullptr) return "a key=value pair is not terminated by a NUL byte";
    std::string pair(reinterpret_cast<const char*>(data + pos), static_cast<size_t>(nul - (data + pos)));
    pos = static_cast<size_t>(nul - data) + 1;
    auto eq = pair.find('=');
    if (eq == std::string::npos) return "'" + pair.substr(0, 64) + "' has no '='";
    if (eq == 0 || eq > kMaxKey) return "a key must be 1 to 63 bytes";
    if (pair.size() - eq - 1 > kMaxValue) return "key " + pair.substr(0, eq) + ": value longer than 8192 bytes";
    if (out.size() >= kMaxKeys) return "more than 512 keys";
    out.push_back({pair.substr(0, eq), pair.substr(eq + 1)});
  }
  return {};
}

void append_text(std::vector<uint8_t>& out, const std::string& key, const std::string& value) {
  out.insert(out.end(), key.begin(), key.end());
  out.push_back('=');
  out.insert(out.end(), value.begin(), value.end());
  out.push_back(0);
}

std::optional<bool> parse_bool(const std::string& v) {
  if (v == "Yes") return true;
  if (v == "No") return false;
  return std::nullopt;
}

std::optional<uint64_t> parse_number(const std::string& v, uint64_t lo, uint64_t hi) {
  if (v.empty() || v.size() > 20) return std::nullopt;
  int base = 10;
  std::string digits = v;
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
    base = 16;
    digits = v.substr(2);
  }
  for (char c : digits) {
    if (base == 10 ? !std::isdigit(static_cast<unsigned char>(c)) : !std::isxdigit(static_cast<unsigned char>(c)))
      return std::nullopt;
  }
  errno = 0;
  unsigned long long n = std::strtoull(digits.c_str(), nullptr, base);
  if (errno != 0 || n < lo || n > hi) return std::nullopt;
  return n;
}

bool Negotiator::seen(const std::string& key) const { return std::find(seen_.begin(), seen_.end(), key) != seen_.end(); }

std::optional<std::string> Negotiator::answer(const std::string& key, const std::string& value) {
  seen_.push_back(key);
  Params& p = params_;
  auto number = [&](uint64_t lo, uint64_t hi) { return parse_number(value, lo, hi); };
  auto boolean = [&]() { return parse_bool(value); };
  constexpr uint64_t kMaxSegment = (1u << 24) - 1;

  if (key == "HeaderDigest" || key == "DataDigest") {
    // A list in the initiator's order of preference; we take both.
    size_t start = 0;
    while (start <= value.size()) {
      size_t comma = value.find(',', start);
      std::string choice = value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (choice == "None" || choice == "CRC32C") {
        (key == "HeaderDigest" ? p.header_digest : p.data_digest) = choice == "CRC32C";
        return choice;
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return "Reject";
  }
  if (key == "MaxRecvDataSegmentLength") {
    // Declarative: the initiator says what it accepts; we declare ours.
    auto n = number(512, kMaxSegment);
    if (!n) return "Reject";
    p.initiator_max_recv = static_cast<uint32_t>(*n);
    declared_mrdsl_ = true;
    p.target_max_recv = limits_.max_recv_data_segment_length;
    return std::to_string(limits_.max_recv_data_segment_length);
  }
  if (key == "MaxBurstLength") {
    auto n = number(512, kMaxSegment);
    if (!n) return "Reject";
    p.max_burst_length = static_cast<uint32_t>(std::min<uint64_t>(*n, limits_.max_burst_length));
    p.first_burst_length = std::min(p.first_burst_length, p.max_burst_length);
    return std::to_string(p.max_burst_length);
  }
  if (key == "FirstBurstLength") {
    auto n = number(512, kMaxSegment);
    if (!n) return "Reject";
    p.first_burst_length = static_cast<uint32_t>(std::min<uint64_t>({*n, limits_.first_burst_length, p.max_burst_length}));
    return std::to_string(p.first_burst_length);
  }
  if (key == "InitialR2T") {
    // OR: we ask for R2T before any data beyond the immediate data, so every
    // Data-Out we get was solicited and counted.
    auto b = boolean();
    if (!b) return "Reject";
    p.initial_r2t = true;
    return "Yes";
  }
  if (key == "ImmediateData") {
    auto b = boolean();
    if (!b) return "Reject";
    p.immediate_data = *b;  // AND with our Yes
    return *b ? "Yes" : "No";
  }
  if (key == "MaxOutstandingR2T") {
    auto n = number(1, 65535);
    if (!n) return "Reject";
    p.max_outstanding_r2t = 1;  // min with ours: one R2T at a time per task
    return "1";
  }
  if (key == "DefaultTime2Wait") {
    auto n = number(0, 3600);
    if (!n) return "Reject";
    p.default_time2wait = static_cast<uint32_t>(std::max<uint64_t>(*n, 2));
    return std::to_string(p.default_time2wait);
  }
  if (key == "DefaultTime2Retain") {
    auto n = number(0, 3600);
    if (!n) return "Reject";
    p.default_time2retain = static_cast<uint32_t>(std::min<uint64_t>(*n, 20));
    return std::to_string(p.default_time2retain);
  }
  if (key == "DataPDUInOrder" || key == "DataSequenceInOrder") {
    auto b = boolean();
    if (!b) return "Reject";
    return "Yes";  // OR with our Yes
  }
  if (key == "ErrorRecoveryLevel") {
    auto n = number(0, 2);
    if (!n) return "Reject";
    p.error_recovery_level = 0;
    return "0";
  }
  if (key == "MaxConnections") {
    auto n = number(1, 65535);
    if (!n) return "Reject";
    p.max_connections = 1;
    return "1";
  }
  if (key == "IFMarker" || key == "OFMarker") return "No";  // obsolete (RFC 7143 §13.25); AND
  if (key == "IFMarkInt" || key == "OFMarkInt") return "Irrelevant";
  if (key == "TargetAlias" || key == "TargetAddress" || key == "TargetPortalGroupTag") return "Irrelevant";
  if (key == "InitiatorAlias") return std::nullopt;  // declarative
  return "NotUnderstood";
}

std::vector<KeyValue> Negotiator::declarations() {
  std::vector<KeyValue> out;
  if (!declared_mrdsl_) {
    declared_mrdsl_ = true;
    params_.target_max_recv = limits_.max_recv_data_segment_length;
    out.push_back({"MaxRecvDataSegmentLength", std::to_string(limits_.max_recv_data_segment_length)});
  }
  return out;
}

}  // namespace bootfleet::iscsi
