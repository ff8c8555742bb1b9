#include "iscsi/pdu.h"

#include <cstdio>

namespace bootfleet::iscsi {

std::string opcode_name(uint8_t opcode) {
  switch (opcode) {
    case kOpNopOut: return "NOP-Out";
    case kOpScsiCommand: return "SCSI Command";
    case kOpTaskRequest: return "Task Management Request";
    case kOpLoginRequest: return "Login Request";
    case kOpTextRequest: return "Text Request";
    case kOpDataOut: return "SCSI Data-Out";
    case kOpLogoutRequest: return "Logout Request";
    case kOpSnack: return "SNACK";
    default: {
      char b[24];
      std::snprintf(b, sizeof b, "opcode 0x%02x", opcode);
      return b;
    }
  }
}

int64_t decode_lun(uint64_t lun) {
  const uint8_t method = static_cast<uint8_t>(lun >> 62);
  // Only single-level LUNs: the other six bytes are zero.
  if ((lun & 0x0000ffffffffffffULL) != 0) return -1;
  const auto first = static_cast<uint8_t>(lun >> 56), second = static_cast<uint8_t>(lun >> 48);
  if (method == 0) return first == 0 ? second : -1;  // peripheral device addressing, bus 0
  if (method == 1) return (int64_t{first & 0x3f} << 8) | second;  // flat space
  return -1;
}

}  // namespace bootfleet::iscsi
