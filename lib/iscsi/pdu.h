// iSCSI PDUs (RFC 7143 §11): the 48-byte basic header segment, opcodes,
// flags and the framing of a PDU on the wire (header, AHS, header digest,
// data segment padded to 4 bytes, data digest). Parsing here never trusts a
// length: a frame is checked against the limits negotiated for the
// connection before anything is allocated.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "util/bytes.h"

namespace bootfleet::iscsi {

constexpr size_t kBhsSize = 48;

// Initiator opcodes (RFC 7143 §11.1.1).
enum : uint8_t {
  kOpNopOut = 0x00,
  kOpScsiCommand = 0x01,
  kOpTaskRequest = 0x02,
  kOpLoginRequest = 0x03,
  kOpTextRequest = 0x04,
  kOpDataOut = 0x05,
  kOpLogoutRequest = 0x06,
  kOpSnack = 0x10,
};
// Target opcodes.
enum : uint8_t {
  kOpNopIn = 0x20,
  kOpScsiResponse = 0x21,
  kOpTaskResponse = 0x22,
  kOpLoginResponse = 0x23,
  kOpTextResponse = 0x24,
  kOpDataIn = 0x25,
  kOpLogoutResponse = 0x26,
  kOpR2t = 0x31,
  kOpAsyncMessage = 0x32,
  kOpReject = 0x3f,
};

constexpr uint8_t kImmediateBit = 0x40;  // byte 0 of initiator PDUs
constexpr uint8_t kFinalBit = 0x80;      // byte 1
constexpr uint32_t kReservedTag = 0xffffffff;

// SCSI Command flags (byte 1).
constexpr uint8_t kCmdRead = 0x40, kCmdWrite = 0x20;
// SCSI Response / Data-In flags (byte 1).
constexpr uint8_t kResidualOverflow = 0x04, kResidualUnderflow = 0x02, kDataInStatus = 0x01;
// Login (byte 1).
constexpr uint8_t kLoginTransit = 0x80, kLoginContinue = 0x40;
// Text (byte 1).
constexpr uint8_t kTextContinue = 0x40;

// Login stages (CSG/NSG).
enum Stage : uint8_t { kSecurityStage = 0, kOperationalStage = 1, kFullFeaturePhase = 3 };

// Login status (class << 8 | detail), RFC 7143 §11.13.5.
enum LoginStatus : uint16_t {
  kLoginSuccess = 0x0000,
  kLoginInitiatorError = 0x0200,
  kLoginAuthFailed = 0x0201,
  kLoginForbidden = 0x0202,
  kLoginNotFound = 0x0203,
  kLoginUnsupportedVersion = 0x0205,
  kLoginTooManyConnections = 0x0206,
  kLoginMissingParameter = 0x0207,
  kLoginSessionTypeUnsupported = 0x0209,
  kLoginNoSession = 0x020a,
  kLoginInvalidDuringLogin = 0x020b,
  kLoginTargetError = 0x0300,
  kLoginServiceUnavailable = 0x0301,
  kLoginOutOfResources = 0x0302,
};

// Reject reasons (RFC 7143 §11.17.1).
enum RejectReason : uint8_t {
  kRejectDataDigest = 0x02,
  kRejectSnack = 0x03,
  kRejectProtocolError = 0x04,
  kRejectNotSupported = 0x05,
  kRejectImmediate = 0x06,
  kRejectTaskInProgress = 0x07,
  kRejectInvalidField = 0x09,
  kRejectOutOfResources = 0x0a,
  kRejectWaitingForLogout = 0x0c,
};

// Task management functions and responses (§11.5, §11.6).
enum : uint8_t {
  kTmfAbortTask = 1,
  kTmfAbortTaskSet = 2,
  kTmfClearAca = 3,
  kTmfClearTaskSet = 4,
  kTmfLunReset = 5,
  kTmfTargetWarmReset = 6,
  kTmfTargetColdReset = 7,
  kTmfTaskReassign = 8,
};
enum : uint8_t {
  kTmfComplete = 0,
  kTmfNoTask = 1,
  kTmfNoLun = 2,
  kTmfNotSupported = 5,
  kTmfRejected = 255,
};

// A PDU: its header (with any AHS) and its data segment, unpadded.
struct Pdu {
  uint8_t bhs[kBhsSize] = {};
  std::vector<uint8_t> ahs;
  std::vector<uint8_t> data;

  uint8_t opcode() const { return bhs[0] & 0x3f; }
  bool immediate() const { return bhs[0] & kImmediateBit; }
  uint8_t flags() const { return bhs[1]; }
  bool final() const { return bhs[1] & kFinalBit; }
  uint32_t ahs_length() const { return uint32_t{bhs[4]} * 4; }
  uint32_t data_length() const { return (uint32_t{bhs[5]} << 16) | (uint32_t{bhs[6]} << 8) | bhs[7]; }
  uint64_t lun() const { return util::load_be64(bhs + 8); }
  uint32_t itt() const { return util::load_be32(bhs + 16); }
  uint32_t u32(size_t at) const { return util::load_be32(bhs + at); }

  void set_opcode(uint8_t op) { bhs[0] = op; }
  void set_data_length(uint32_t n) {
    bhs[5] = static_cast<uint8_t>(n >> 16);
    bhs[6] = static_cast<uint8_t>(n >> 8);
    bhs[7] = static_cast<uint8_t>(n);
  }
  void set_u32(size_t at, uint32_t v) { util::store_be32(bhs + at, v); }
  void set_u64(size_t at, uint64_t v) { util::store_be64(bhs + at, v); }
};

constexpr uint32_t padded(uint32_t n) { return (n + 3) & ~uint32_t{3}; }

// A short name for an opcode, for logs ("SCSI Command", "opcode 0x1c").
std::string opcode_name(uint8_t opcode);

// LUN 0 in the flat (SAM) encoding initiators send: 8 bytes, the first two
// holding the LUN. Returns the LUN number, or -1 for a form we do not serve.
int64_t decode_lun(uint64_t lun);

}  // namespace bootfleet::iscsi
