#include "iscsi/scsi.h"

#include <algorithm>
#include <cstring>

#include "util/bytes.h"
#include "util/sha256.h"

namespace bootfleet::iscsi {

using util::load_be16;
using util::load_be32;
using util::load_be64;
using util::store_be16;
using util::store_be32;
using util::store_be64;

namespace {

// Opcodes (SPC-4, SBC-3).
enum : uint8_t {
  kTestUnitReady = 0x00, kRequestSense = 0x03, kRead6 = 0x08, kWrite6 = 0x0a, kInquiry = 0x12,
  kModeSelect6 = 0x15, kModeSense6 = 0x1a, kStartStopUnit = 0x1b, kPreventAllow = 0x1e,
  kReadCapacity10 = 0x25, kRead10 = 0x28, kWrite10 = 0x2a, kWriteVerify10 = 0x2e, kVerify10 = 0x2f,
  kPrefetch10 = 0x34, kSyncCache10 = 0x35, kWriteSame10 = 0x41, kUnmap = 0x42, kModeSense10 = 0x5a,
  kRead16 = 0x88, kCompareAndWrite = 0x89, kWrite16 = 0x8a, kWriteVerify16 = 0x8e, kVerify16 = 0x8f,
  kPrefetch16 = 0x90, kSyncCache16 = 0x91, kWriteSame16 = 0x93, kServiceActionIn16 = 0x9e,
  kReportLuns = 0xa0, kMaintenanceIn = 0xa3, kRead12 = 0xa8, kWrite12 = 0xaa, kWriteVerify12 = 0xae,
  kVerify12 = 0xaf,
};
enum : uint8_t { kSaReadCapacity16 = 0x10, kSaGetLbaStatus = 0x12, kSaReportOpcodes = 0x0c };

// Largest UNMAP/WRITE SAME range a device call takes at once (its lengths are 32-bit).
constexpr uint64_t kMaxDeviceRange = 1u << 30;
constexpr uint32_t kMaxUnmapDescriptors = 256;

size_t cdb_length(uint8_t opcode) {
  switch (opcode >> 5) {
    case 0: return 6;
    case 1: case 2: return 10;
    case 4: return 16;
    case 5: return 12;
    default: return 16;
  }
}

// The blocks a READ/WRITE/VERIFY/… CDB names.
struct Range {
  uint64_t lba = 0;
  uint32_t count = 0;
};
Range range_of(const uint8_t* cdb) {
  switch (cdb_length(cdb[0])) {
    case 6: {
      uint32_t count = cdb[4];
      if (count == 0 && (cdb[0] == kRead6 || cdb[0] == kWrite6)) count = 256;
      return {(uint64_t{cdb[1] & 0x1fu} << 16) | (uint64_t{cdb[2]} << 8) | cdb[3], count};
    }
    case 10: return {load_be32(cdb + 2), load_be16(cdb + 7)};
    case 12: return {load_be32(cdb + 2), load_be32(cdb + 6)};
    default: return {load_be64(cdb + 2), load_be32(cdb + 10)};
  }
}

bool is_read(uint8_t op) { return op == kRead6 || op == kRead10 || op == kRead12 || op == kRead16; }
bool is_write(uint8_t op) {
  return op == kWrite6 || op == kWrite10 || op == kWrite12 || op == kWrite16 || op == kWriteVerify10 ||
         op == kWriteVerify12 || op == kWriteVerify16;
}
bool is_verify(uint8_t op) { return op == kVerify10 || op == kVerify12 || op == kVerify16; }

// The commands we implement, for REPORT SUPPORTED OPERATION CODES: opcode,
// service action (or -1) and the CDB usage mask (bits an initiator may set).
struct OpcodeInfo {
  uint8_t opcode;
  int service_action;
  std::vector<uint8_t> usage;
};
const std::vector<OpcodeInfo>& supported_opcodes() {
  static const std::vector<OpcodeInfo> table = {
      {kTestUnitReady, -1, {0x00, 0x00, 0x00, 0x00, 0x00, 0x07}},
      {kRequestSense, -1, {0x03, 0x01, 0x00, 0x00, 0xff, 0x07}},
      {kRead6, -1, {0x08, 0x1f, 0xff, 0xff, 0xff, 0x07}},
      {kWrite6, -1, {0x0a, 0x1f, 0xff, 0xff, 0xff, 0x07}},
      {kInquiry, -1, {0x12, 0x01, 0xff, 0xff, 0xff, 0x07}},
      {kModeSense6, -1, {0x1a, 0x08, 0xff, 0xff, 0xff, 0x07}},
      {kStartStopUnit, -1, {0x1b, 0x01, 0x00, 0x0f, 0xf7, 0x07}},
      {kPreventAllow, -1, {0x1e, 0x00, 0x00, 0x00, 0x03, 0x07}},
      {kReadCapacity10, -1, {0x25, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0x07}},
      {kRead10, -1, {0x28, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07}},
      {kWrite10, -1, {0x2a, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07}},
      {kWriteVerify10, -1, {0x2e, 0x12, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07}},
      {kVerify10, -1, {0x2f, 0x12, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07}},
      {kPrefetch10, -1, {0x34, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07}},
      {kSyncCache10, -1, {0x35, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07}},
      {kWriteSame10, -1, {0x41, 0x08, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07}},
      {kUnmap, -1, {0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0xff, 0xff, 0x07}},
      {kModeSense10, -1, {0x5a, 0x18, 0xff, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0x07}},
      {kRead16, -1, {0x88, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
      {kCompareAndWrite, -1, {0x89, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0xff, 0x1f, 0x07}},
      {kWrite16, -1, {0x8a, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
      {kWriteVerify16, -1, {0x8e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
      {kVerify16, -1, {0x8f, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
      {kPrefetch16, -1, {0x90, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
      {kSyncCache16, -1, {0x91, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
      {kWriteSame16, -1, {0x93, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
      {kServiceActionIn16, kSaReadCapacity16, {0x9e, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07}},
      {kServiceActionIn16, kSaGetLbaStatus, {0x9e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07}},
      {kReportLuns, -1, {0xa0, 0x00, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07}},
      {kMaintenanceIn, kSaReportOpcodes, {0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07}},
      {kRead12, -1, {0xa8, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
      {kWrite12, -1, {0xaa, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
      {kWriteVerify12, -1, {0xae, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
      {kVerify12, -1, {0xaf, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07}},
  };
  return table;
}

void pad_copy(uint8_t* dst, const std::string& s, size_t n) {
  std::memset(dst, ' ', n);
  std::memcpy(dst, s.data(), std::min(n, s.size()));
}

// Returns `produced` bytes built in `bytes`, truncated to the allocation length.
Status reply_bytes(const std::vector<uint8_t>& bytes, uint32_t allocation, DataBuffer& out, uint32_t& produced) {
  produced = static_cast<uint32_t>(std::min<size_t>(bytes.size(), allocation));
  uint8_t* p = out.prepare(produced);
  if (produced) std::memcpy(p, bytes.data(), produced);
  return {};
}

}  // namespace

uint8_t* DataBuffer::prepare(size_t n) {
  if (n > capacity_) {
    data_ = std::make_unique_for_overwrite<uint8_t[]>(n);
    capacity_ = n;
  }
  size_ = n;
  return data_.get();
}

void DataBuffer::release_if_larger_than(size_t n) {
  if (capacity_ > n) {
    data_.reset();
    capacity_ = size_ = 0;
  }
}

DiskIdentity identity_for(const std::string& key, const std::string& target_name) {
  DiskIdentity id;
  util::Digest digest = util::sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(key.data()), key.size()));
  uint64_t h = load_be64(digest.data());
  id.naa = (uint64_t{3} << 60) | (h & 0x0fffffffffffffffULL);  // NAA 3: locally assigned
  id.serial = util::to_hex(std::span<const uint8_t>(digest.data(), 8));
  id.target_name = target_name;
  return id;
}

LogicalUnit::LogicalUnit(std::shared_ptr<block::Device> device, DiskIdentity identity)
    : device_(std::move(device)),
      identity_(std::move(identity)),
      blocks_(device_->size() / kBlockSize),
      read_only_(device_->read_only()) {}

void LogicalUnit::reset() { prevent_ = false; }

std::vector<uint8_t> LogicalUnit::sense(SenseKey key, Asc asc, std::optional<uint64_t> information) const {
  if (descriptor_sense_) {
    std::vector<uint8_t> s(8, 0);
    s[0] = 0x72;
    s[1] = key;
    s[2] = asc.asc;
    s[3] = asc.ascq;
    if (information) {
      uint8_t d[12] = {0x00, 0x0a, 0x80, 0};
      store_be64(d + 4, *information);
      s.insert(s.end(), d, d + sizeof d);
    }
    s[7] = static_cast<uint8_t>(s.size() - 8);
    return s;
  }
  std::vector<uint8_t> s(18, 0);
  s[0] = 0x70;
  s[2] = key;
  if (information) {
    s[0] |= 0x80;  // VALID
    store_be32(s.data() + 3, static_cast<uint32_t>(std::min<uint64_t>(*information, 0xffffffff)));
  }
  s[7] = 10;
  s[12] = asc.asc;
  s[13] = asc.ascq;
  return s;
}

Status LogicalUnit::device_error(int err, bool writing) const {
  if (err == EPERM || err == EROFS) return check(kDataProtect, kWriteProtected);
  if (err == ENOSPC || err == EDQUOT) return check(kDataProtect, kSpaceAllocationFailed);
  if (err == EINVAL) return check(kIllegalRequest, kLbaOutOfRange);
  return check(kMediumError, writing ? kWriteError : kUnrecoveredReadError);
}

LogicalUnit::Prepared LogicalUnit::prepare(const uint8_t* cdb, int64_t lun) const {
  Prepared p;
  const uint8_t op = cdb[0];
  if (lun != 0) {
    // Only LUN 0 exists; these three still answer for others (SPC-4 §4.6.4).
    if (op != kInquiry && op != kReportLuns && op != kRequestSense) p.early = check(kIllegalRequest, kLunNotSupported);
    return p;
  }
  auto in_range = [&](const Range& r) { return r.lba <= blocks_ && r.count <= blocks_ - r.lba; };
  if (is_read(op) || is_write(op) || is_verify(op)) {
    Range r = range_of(cdb);
    // RDPROTECT/WRPROTECT/VRPROTECT: we keep no protection information.
    if (op != kRead6 && op != kWrite6 && (cdb[1] & 0xe0)) {
      p.early = check(kIllegalRequest, kInvalidFieldInCdb);
      return p;
    }
    if (!in_range(r)) {
      p.early = check(kIllegalRequest, kLbaOutOfRange, r.lba);
      return p;
    }
    if (is_verify(op)) {
      int bytchk = (cdb[1] >> 1) & 3;
      if (bytchk == 2) p.early = check(kIllegalRequest, kInvalidFieldInCdb);
      else if (bytchk != 0 && r.count > kMaxTransferBlocks) p.early = check(kIllegalRequest, kInvalidFieldInCdb);
      else p.data_out = bytchk == 1 ? r.count * kBlockSize : bytchk == 3 ? (r.count ? kBlockSize : 0) : 0;
      return p;
    }
    p.is_read_write = true;
    if (is_write(op)) {
      if (read_only_) p.early = check(kDataProtect, kWriteProtected);
      else p.data_out = r.count * kBlockSize;
    }
    return p;
  }
  switch (op) {
    case kWriteSame10:
    case kWriteSame16: {
      Range r = range_of(cdb);
      bool ndob = op == kWriteSame16 && (cdb[1] & 0x01);
      if ((cdb[1] & 0xe0) || (cdb[1] & 0x10)) p.early = check(kIllegalRequest, kInvalidFieldInCdb);  // WRPROTECT, ANCHOR
      else if (r.lba > blocks_ || r.count > blocks_ - r.lba) p.early = check(kIllegalRequest, kLbaOutOfRange, r.lba);
      else if (read_only_) p.early = check(kDataProtect, kWriteProtected);
      else p.data_out = ndob ? 0 : kBlockSize;
      return p;
    }
    case kUnmap:
      if (cdb[1] & 0x01) p.early = check(kIllegalRequest, kInvalidFieldInCdb);  // ANCHOR
      else if (read_only_) p.early = check(kDataProtect, kWriteProtected);
      else p.data_out = load_be16(cdb + 7);
      return p;
    case kCompareAndWrite: {
      Range r{load_be64(cdb + 2), cdb[13]};
      if (cdb[1] & 0xe0) p.early = check(kIllegalRequest, kInvalidFieldInCdb);
      else if (!in_range(r)) p.early = check(kIllegalRequest, kLbaOutOfRange, r.lba);
      else if (r.count > 255) p.early = check(kIllegalRequest, kInvalidFieldInCdb);
      else if (read_only_) p.early = check(kDataProtect, kWriteProtected);
      else p.data_out = 2 * r.count * kBlockSize;
      return p;
    }
    case kPrefetch10:
    case kPrefetch16:
    case kSyncCache10:
    case kSyncCache16: {
      Range r = range_of(cdb);
      if (!in_range(r)) p.early = check(kIllegalRequest, kLbaOutOfRange, r.lba);
      return p;
    }
    default: {
      // Unknown opcodes are refused before their data is asked for.
      const auto& table = supported_opcodes();
      if (std::none_of(table.begin(), table.end(), [&](const OpcodeInfo& o) { return o.opcode == op; })) {
        p.early = check(kIllegalRequest, kInvalidOpcode);
      }
      return p;
    }
  }
}

Status LogicalUnit::execute(const uint8_t* cdb, int64_t lun, std::span<const uint8_t> data_out,
                            DataBuffer& data_in, uint32_t max_in, uint32_t& produced) {
  produced = 0;
  data_in.prepare(0);
  Prepared p = prepare(cdb, lun);
  if (!p.early.good()) return p.early;
  if (data_out.size() < p.data_out) return check(kIllegalRequest, kParameterListLengthError);
  const uint8_t op = cdb[0];
  if (lun != 0) {
    if (op == kInquiry) return inquiry(cdb, lun, data_in, produced);
    if (op == kRequestSense) {
      std::vector<uint8_t> s = sense(kIllegalRequest, kLunNotSupported);
      return reply_bytes(s, cdb[4], data_in, produced);
    }
  }
  if (is_read(op)) {
    Range r = range_of(cdb);
    return read_blocks(r.lba, r.count, data_in, max_in, produced);
  }
  if (is_write(op)) {
    Range r = range_of(cdb);
    bool fua = op != kWrite6 && ((cdb[1] & 0x08) || op == kWriteVerify10 || op == kWriteVerify12 || op == kWriteVerify16);
    return write_blocks(r.lba, r.count, data_out.first(p.data_out), fua);
  }
  if (is_verify(op)) {
    Range r = range_of(cdb);
    return verify(r.lba, r.count, (cdb[1] >> 1) & 3, data_out.first(p.data_out));
  }
  switch (op) {
    case kTestUnitReady:
      return {};
    case kRequestSense: {
      if (cdb[1] & 0x01) {  // DESC: descriptor format, no sense
        std::vector<uint8_t> s = {0x72, 0, 0, 0, 0, 0, 0, 0};
        return reply_bytes(s, cdb[4], data_in, produced);
      }
      std::vector<uint8_t> s(18, 0);
      s[0] = 0x70;
      s[7] = 10;
      return reply_bytes(s, cdb[4], data_in, produced);
    }
    case kInquiry:
      return inquiry(cdb, lun, data_in, produced);
    case kModeSense6:
    case kModeSense10:
      return mode_sense(cdb, data_in, produced);
    case kStartStopUnit: {
      // A fixed disk: power conditions and START are no-ops; ejecting it is not.
      bool loej = cdb[4] & 0x02, start = cdb[4] & 0x01;
      if ((cdb[4] >> 4) == 0 && loej && !start) {
        if (prevent_) return check(kIllegalRequest, {0x53, 0x02});  // MEDIUM REMOVAL PREVENTED
        return check(kIllegalRequest, kInvalidFieldInCdb);
      }
      return {};
    }
    case kPreventAllow:
      if (cdb[4] & 0x02) return check(kIllegalRequest, kInvalidFieldInCdb);  // PREVENT 2/3: obsolete
      prevent_ = cdb[4] & 0x01;
      return {};
    case kReadCapacity10: {
      if (!(cdb[8] & 0x01) && load_be32(cdb + 2) != 0) return check(kIllegalRequest, kInvalidFieldInCdb);
      std::vector<uint8_t> b(8);
      store_be32(b.data(), static_cast<uint32_t>(std::min<uint64_t>(blocks_ ? blocks_ - 1 : 0, 0xffffffff)));
      store_be32(b.data() + 4, kBlockSize);
      return reply_bytes(b, 8, data_in, produced);
    }
    case kServiceActionIn16: {
      uint8_t sa = cdb[1] & 0x1f;
      if (sa == kSaReadCapacity16) {
        std::vector<uint8_t> b(32, 0);
        store_be64(b.data(), blocks_ ? blocks_ - 1 : 0);
        store_be32(b.data() + 8, kBlockSize);
        b[14] = 0x80 | 0x40;  // LBPME (thin: UNMAP works), LBPRZ (unmapped blocks read as zeros)
        return reply_bytes(b, load_be32(cdb + 10), data_in, produced);
      }
      if (sa == kSaGetLbaStatus) return get_lba_status(cdb, data_in, produced);
      return check(kIllegalRequest, kInvalidFieldInCdb);
    }
    case kSyncCache10:
    case kSyncCache16:
      if (int rc = device_->flush(); rc != 0) return device_error(rc, true);
      return {};
    case kPrefetch10:
    case kPrefetch16:
      return {kStatusConditionMet, {}};  // the page cache will have it: nothing to wait for
    case kWriteSame10:
    case kWriteSame16:
      return write_same(cdb, data_out.first(p.data_out));
    case kUnmap:
      return unmap(cdb, data_out.first(p.data_out));
    case kCompareAndWrite:
      return compare_and_write(load_be64(cdb + 2), cdb[13], data_out.first(p.data_out), cdb[1] & 0x08);
    case kReportLuns: {
      uint32_t allocation = load_be32(cdb + 6);
      if (allocation < 16) return check(kIllegalRequest, kInvalidFieldInCdb);
      if (cdb[2] > 0x02 && cdb[2] != 0x10 && cdb[2] != 0x11 && cdb[2] != 0x12) return check(kIllegalRequest, kInvalidFieldInCdb);
      std::vector<uint8_t> b(16, 0);
      store_be32(b.data(), 8);  // one LUN: 0
      return reply_bytes(b, allocation, data_in, produced);
    }
    case kMaintenanceIn:
      if ((cdb[1] & 0x1f) == kSaReportOpcodes) return report_opcodes(cdb, data_in, produced);
      return check(kIllegalRequest, kInvalidFieldInCdb);
    default:
      return check(kIllegalRequest, kInvalidOpcode);
  }
}

Status LogicalUnit::inquiry(const uint8_t* cdb, int64_t lun, DataBuffer& out, uint32_t& produced) const {
  const bool evpd = cdb[1] & 0x01;
  const uint8_t page = cdb[2];
  const uint32_t allocation = load_be16(cdb + 3);
  if (!evpd && page != 0) return check(kIllegalRequest, kInvalidFieldInCdb);
  const uint8_t peripheral = lun == 0 ? 0x00 : 0x7f;  // direct access block device, or none at this LUN
  std::vector<uint8_t> b;
  if (!evpd) {
    b.assign(66, 0);
    b[0] = peripheral;
    b[2] = 0x06;  // SPC-4
    b[3] = 0x12;  // HISUP, response data format 2
    b[4] = static_cast<uint8_t>(b.size() - 5);
    b[7] = 0x02;  // CMDQUE
    pad_copy(b.data() + 8, identity_.vendor, 8);
    pad_copy(b.data() + 16, identity_.product, 16);
    pad_copy(b.data() + 32, identity_.revision, 4);
    const uint16_t versions[] = {0x00a0 /* SAM-5 */, 0x0960 /* iSCSI */, 0x0460 /* SPC-4 */, 0x04c0 /* SBC-3 */};
    for (size_t i = 0; i < 4; ++i) store_be16(b.data() + 58 + 2 * i, versions[i]);
    return reply_bytes(b, allocation, out, produced);
  }
  if (lun != 0) return check(kIllegalRequest, kInvalidFieldInCdb);
  auto page_header = [&](uint8_t code) {
    b = {peripheral, code, 0, 0};
  };
  auto finish = [&] { store_be16(b.data() + 2, static_cast<uint16_t>(b.size() - 4)); };
  switch (page) {
    case 0x00:
      page_header(0x00);
      for (uint8_t p : {0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}) b.push_back(p);
      break;
    case 0x80:
      page_header(0x80);
      b.insert(b.end(), identity_.serial.begin(), identity_.serial.end());
      break;
    case 0x83: {
      page_header(0x83);
      // NAA (binary), logical unit.
      b.insert(b.end(), {0x01, 0x03, 0x00, 0x08});
      for (int i = 7; i >= 0; --i) b.push_back(static_cast<uint8_t>(identity_.naa >> (8 * i)));
      // T10 vendor ID (ASCII), logical unit: vendor + serial.
      std::string t10(8, ' ');
      std::memcpy(t10.data(), identity_.vendor.data(), std::min<size_t>(8, identity_.vendor.size()));
      t10 += identity_.serial;
      b.insert(b.end(), {0x02, 0x01, 0x00, static_cast<uint8_t>(t10.size())});
      b.insert(b.end(), t10.begin(), t10.end());
      if (!identity_.target_name.empty()) {
        // SCSI name string (UTF-8), target device; NUL-terminated, padded to 4.
        std::string name = identity_.target_name;
        name.push_back(0);
        while (name.size() % 4) name.push_back(0);
        name.resize(std::min<size_t>(name.size(), 252));
        b.insert(b.end(), {0x53, 0x28, 0x00, static_cast<uint8_t>(name.size())});
        b.insert(b.end(), name.begin(), name.end());
      }
      break;
    }
    case 0xb0: {  // Block Limits
      page_header(0xb0);
      b.resize(64, 0);
      b[4] = 0x00;  // WSNZ 0: WRITE SAME of 0 blocks means to the end
      b[5] = 0xff;  // MAXIMUM COMPARE AND WRITE LENGTH
      store_be16(b.data() + 6, 8);                     // OPTIMAL TRANSFER LENGTH GRANULARITY: 4 KiB
      store_be32(b.data() + 8, 0);                     // MAXIMUM TRANSFER LENGTH: none (streamed)
      store_be32(b.data() + 12, 2048);                 // OPTIMAL TRANSFER LENGTH: 1 MiB
      store_be32(b.data() + 20, 0xffffffff);           // MAXIMUM UNMAP LBA COUNT
      store_be32(b.data() + 24, kMaxUnmapDescriptors); // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
      store_be32(b.data() + 28, 8);                    // OPTIMAL UNMAP GRANULARITY: 4 KiB
      store_be64(b.data() + 36, 0);                    // MAXIMUM WRITE SAME LENGTH: no limit
      break;
    }
    case 0xb1:  // Block Device Characteristics
      page_header(0xb1);
      b.resize(64, 0);
      store_be16(b.data() + 4, 1);  // non-rotating medium
      break;
    case 0xb2:  // Logical Block Provisioning
      page_header(0xb2);
      b.resize(8, 0);
      b[5] = 0x80 | 0x40 | 0x20 | 0x04;  // LBPU, LBPWS, LBPWS10, LBPRZ
      b[6] = 0x02;                       // thin provisioned
      break;
    default:
      return check(kIllegalRequest, kInvalidFieldInCdb);
  }
  finish();
  return reply_bytes(b, allocation, out, produced);
}

Status LogicalUnit::mode_sense(const uint8_t* cdb, DataBuffer& out, uint32_t& produced) const {
  const bool ten = cdb[0] == kModeSense10;
  const bool dbd = cdb[1] & 0x08;
  const uint8_t pc = cdb[2] >> 6, page = cdb[2] & 0x3f, subpage = cdb[3];
  const uint32_t allocation = ten ? load_be16(cdb + 7) : cdb[4];
  if (pc == 3) return check(kIllegalRequest, kSavingParametersNotSupported);
  if (subpage != 0 && subpage != 0xff) return check(kIllegalRequest, kInvalidFieldInCdb);
  const bool changeable = pc == 1;
  std::vector<uint8_t> pages;
  auto caching = [&] {
    uint8_t p[20] = {0x08, 0x12};
    if (!changeable) p[2] = 0x04;  // WCE: writes are cached until SYNCHRONIZE CACHE (or FUA)
    pages.insert(pages.end(), p, p + sizeof p);
  };
  auto control = [&] {
    uint8_t p[12] = {0x0a, 0x0a};
    if (!changeable) {
      p[2] = descriptor_sense_ ? 0x04 : 0x00;  // D_SENSE
      p[3] = 0x10;                             // queue algorithm modifier 1: unrestricted reordering
      store_be16(p + 8, 0xffff);               // BUSY TIMEOUT PERIOD: unlimited
    }
    pages.insert(pages.end(), p, p + sizeof p);
  };
  auto exceptions = [&] {
    uint8_t p[12] = {0x1c, 0x0a};
    pages.insert(pages.end(), p, p + sizeof p);
  };
  switch (page) {
    case 0x08: caching(); break;
    case 0x0a: control(); break;
    case 0x1c: exceptions(); break;
    case 0x3f: caching(); control(); exceptions(); break;
    default: return check(kIllegalRequest, kInvalidFieldInCdb);
  }
  std::vector<uint8_t> block_descriptor;
  if (!dbd) {
    block_descriptor.assign(8, 0);
    store_be32(block_descriptor.data(), static_cast<uint32_t>(std::min<uint64_t>(blocks_, 0xffffffff)));
    store_be32(block_descriptor.data() + 4, kBlockSize);  // byte 4 is reserved; block length in 5-7
  }
  const uint8_t device_specific = (read_only_ ? 0x80 : 0x00) | 0x10;  // WP, DPOFUA
  std::vector<uint8_t> b;
  if (ten) {
    b.assign(8, 0);
    b[3] = device_specific;
    store_be16(b.data() + 6, static_cast<uint16_t>(block_descriptor.size()));
  } else {
    b.assign(4, 0);
    b[2] = device_specific;
    b[3] = static_cast<uint8_t>(block_descriptor.size());
  }
  b.insert(b.end(), block_descriptor.begin(), block_descriptor.end());
  b.insert(b.end(), pages.begin(), pages.end());
  if (ten) store_be16(b.data(), static_cast<uint16_t>(b.size() - 2));
  else b[0] = static_cast<uint8_t>(b.size() - 1);
  return reply_bytes(b, allocation, out, produced);
}

Status LogicalUnit::report_opcodes(const uint8_t* cdb, DataBuffer& out, uint32_t& produced) const {
  const uint8_t options = cdb[2] & 0x07;
  const bool rctd = cdb[2] & 0x80;
  const uint8_t requested = cdb[3];
  const uint16_t requested_sa = load_be16(cdb + 4);
  const uint32_t allocation = load_be32(cdb + 6);
  const auto& table = supported_opcodes();
  std::vector<uint8_t> b;
  auto timeouts = [&](std::vector<uint8_t>& v) {
    uint8_t t[12] = {0x00, 0x0a};
    v.insert(v.end(), t, t + sizeof t);
  };
  if (options == 0) {
    b.assign(4, 0);
    for (const auto& op : table) {
      uint8_t d[8] = {op.opcode, 0};
      if (op.service_action >= 0) {
        store_be16(d + 2, static_cast<uint16_t>(op.service_action));
        d[5] = 0x01;  // SERVACTV
      }
      if (rctd) d[5] |= 0x02;  // CTDP
      store_be16(d + 6, static_cast<uint16_t>(op.usage.size()));
      b.insert(b.end(), d, d + sizeof d);
      if (rctd) timeouts(b);
    }
    store_be32(b.data(), static_cast<uint32_t>(b.size() - 4));
    return reply_bytes(b, allocation, out, produced);
  }
  // One command: options 1 (no service action), 2 (with one), 3 (either).
  if (options > 3) return check(kIllegalRequest, kInvalidFieldInCdb);
  const OpcodeInfo* found = nullptr;
  bool has_service_actions = false;
  for (const auto& op : table) {
    if (op.opcode != requested) continue;
    if (op.service_action >= 0) has_service_actions = true;
    if (options == 1 && op.service_action < 0) found = &op;
    if ((options == 2 || options == 3) && op.service_action == requested_sa) found = &op;
    if (options == 3 && op.service_action < 0) found = &op;
  }
  if (options == 1 && has_service_actions) return check(kIllegalRequest, kInvalidFieldInCdb);
  if (options == 2 && !has_service_actions && found == nullptr) {
    bool known = std::any_of(table.begin(), table.end(), [&](const OpcodeInfo& o) { return o.opcode == requested; });
    if (known) return check(kIllegalRequest, kInvalidFieldInCdb);
  }
  b.assign(4, 0);
  if (found == nullptr) {
    b[1] = 0x01;  // SUPPORT: not supported
  } else {
    b[1] = 0x03 | (rctd ? 0x80 : 0);  // supported as the standard says
    store_be16(b.data() + 2, static_cast<uint16_t>(found->usage.size()));
    b.insert(b.end(), found->usage.begin(), found->usage.end());
    if (rctd) timeouts(b);
  }
  return reply_bytes(b, allocation, out, produced);
}

std::optional<LogicalUnit::BlockIo> LogicalUnit::block_io(const uint8_t* cdb) const {
  const uint8_t op = cdb[0];
  if (!is_read(op) && !is_write(op)) return std::nullopt;
  Range r = range_of(cdb);
  BlockIo io;
  io.write = is_write(op);
  io.lba = r.lba;
  io.count = r.count;
  // FUA, and WRITE AND VERIFY, which must reach the medium to be verified.
  io.fua = op != kRead6 && op != kWrite6 && ((cdb[1] & 0x08) || op == kWriteVerify10 || op == kWriteVerify12 || op == kWriteVerify16);
  if (!io.write) io.fua = false;
  return io;
}

Status LogicalUnit::read_at(uint64_t offset, uint32_t length, uint8_t* out) {
  if (length == 0 || device_->try_read(offset, length, out) == 0) return {};
  if (int rc = device_->read(offset, length, out); rc != 0) return device_error(rc, false);
  return {};
}

Status LogicalUnit::write_at(uint64_t offset, std::span<const uint8_t> data, bool fua) {
  if (data.empty()) return {};
  if (int rc = device_->write(offset, static_cast<uint32_t>(data.size()), data.data(), fua); rc != 0) {
    return device_error(rc, true);
  }
  return {};
}

Status LogicalUnit::read_blocks(uint64_t lba, uint32_t count, DataBuffer& out, uint32_t max_in, uint32_t& produced) {
  produced = count * kBlockSize;
  // Whole blocks, enough to cover what fits (the initiator may take less).
  uint32_t n = std::min<uint64_t>(produced, (uint64_t{max_in} + kBlockSize - 1) / kBlockSize * kBlockSize);
  n = std::min(n, kMaxTransferBlocks * kBlockSize);
  Status s = read_at(lba * kBlockSize, n, out.prepare(n));
  if (!s.good()) out.prepare(0);
  return s;
}

Status LogicalUnit::write_blocks(uint64_t lba, uint32_t count, std::span<const uint8_t> data, bool fua) {
  return write_at(lba * kBlockSize, data.first(std::min<size_t>(data.size(), uint64_t{count} * kBlockSize)), fua);
}

Status LogicalUnit::discard(uint64_t lba, uint64_t count) {
  uint64_t offset = lba * kBlockSize, left = count * kBlockSize;
  while (left > 0) {
    uint32_t n = static_cast<uint32_t>(std::min(left, kMaxDeviceRange));
    if (int rc = device_->trim(offset, n, false); rc != 0) return device_error(rc, true);
    offset += n;
    left -= n;
  }
  return {};
}

Status LogicalUnit::write_same(const uint8_t* cdb, std::span<const uint8_t> data) {
  Range r = range_of(cdb);
  uint64_t count = r.count == 0 ? blocks_ - r.lba : r.count;  // WSNZ 0: zero means to the end
  const bool unmap_bit = cdb[1] & 0x08;
  const bool zero = data.empty() || util::is_all_zero(data.data(), data.size());
  // With UNMAP the blocks are deallocated whatever the data block holds
  // (SBC-3 §5.48), and LBPRZ says they then read as zeros.
  if (unmap_bit) return discard(r.lba, count);
  uint64_t offset = r.lba * kBlockSize, left = count * kBlockSize;
  if (zero) {
    while (left > 0) {
      uint32_t n = static_cast<uint32_t>(std::min(left, kMaxDeviceRange));
      if (int rc = device_->write_zeroes(offset, n, false); rc != 0) return device_error(rc, true);
      offset += n;
      left -= n;
    }
    return {};
  }
  // A pattern: written in 1 MiB pieces.
  constexpr uint32_t kPiece = 1u << 20;
  std::vector<uint8_t> piece(kPiece);
  for (uint32_t at = 0; at < kPiece; at += kBlockSize) std::memcpy(piece.data() + at, data.data(), kBlockSize);
  while (left > 0) {
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(left, kPiece));
    if (int rc = device_->write(offset, n, piece.data(), false); rc != 0) return device_error(rc, true);
    offset += n;
    left -= n;
  }
  return {};
}

Status LogicalUnit::unmap(const uint8_t* cdb, std::span<const uint8_t> data) {
  (void)cdb;
  if (data.empty()) return {};
  if (data.size() < 8) return check(kIllegalRequest, kParameterListLengthError);
  uint16_t descriptors_length = load_be16(data.data() + 2);
  if (descriptors_length % 16 || 8u + descriptors_length > data.size()) {
    return check(kIllegalRequest, kParameterListLengthError);
  }
  const size_t n = descriptors_length / 16;
  if (n > kMaxUnmapDescriptors) return check(kIllegalRequest, kInvalidFieldInParameterList);
  // Check every descriptor before unmapping any.
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* d = data.data() + 8 + 16 * i;
    uint64_t lba = load_be64(d);
    uint32_t count = load_be32(d + 8);
    if (lba > blocks_ || count > blocks_ - lba) return check(kIllegalRequest, kLbaOutOfRange, lba);
  }
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* d = data.data() + 8 + 16 * i;
    if (Status s = discard(load_be64(d), load_be32(d + 8)); !s.good()) return s;
  }
  return {};
}

Status LogicalUnit::verify(uint64_t lba, uint32_t count, int bytchk, std::span<const uint8_t> data) {
  if (bytchk == 0 || count == 0) return {};
  std::vector<uint8_t> medium(uint64_t{count} * kBlockSize);
  if (int rc = device_->read(lba * kBlockSize, static_cast<uint32_t>(medium.size()), medium.data()); rc != 0) {
    return device_error(rc, false);
  }
  for (uint32_t b = 0; b < count; ++b) {
    const uint8_t* expect = bytchk == 3 ? data.data() : data.data() + uint64_t{b} * kBlockSize;
    const uint8_t* got = medium.data() + uint64_t{b} * kBlockSize;
    if (std::memcmp(expect, got, kBlockSize) != 0) {
      uint32_t at = 0;
      while (at < kBlockSize && expect[at] == got[at]) ++at;
      return check(kMiscompare, kMiscompareDuringVerify, uint64_t{b} * kBlockSize + at);
    }
  }
  return {};
}

Status LogicalUnit::compare_and_write(uint64_t lba, uint32_t count, std::span<const uint8_t> data, bool fua) {
  if (count == 0) return {};
  const uint32_t bytes = count * kBlockSize;
  std::lock_guard lock(compare_mutex_);
  std::vector<uint8_t> medium(bytes);
  if (int rc = device_->read(lba * kBlockSize, bytes, medium.data()); rc != 0) return device_error(rc, false);
  if (std::memcmp(medium.data(), data.data(), bytes) != 0) {
    uint32_t at = 0;
    while (at < bytes && medium[at] == data[at]) ++at;
    return check(kMiscompare, kMiscompareDuringVerify, at);
  }
  return write_blocks(lba, count, data.subspan(bytes, bytes), fua);
}

Status LogicalUnit::get_lba_status(const uint8_t* cdb, DataBuffer& out, uint32_t& produced) {
  const uint64_t lba = load_be64(cdb + 2);
  const uint32_t allocation = load_be32(cdb + 10);
  if (lba >= blocks_) return check(kIllegalRequest, kLbaOutOfRange, lba);
  // Up to 64 descriptors from lba on, over at most 1 GiB.
  const uint64_t span = std::min<uint64_t>(blocks_ - lba, (uint64_t{1} << 30) / kBlockSize);
  std::vector<vhd::Extent> extents;
  if (int rc = device_->extents(lba * kBlockSize, static_cast<uint32_t>(span * kBlockSize), extents); rc != 0) {
    return device_error(rc, false);
  }
  std::vector<uint8_t> b(8, 0);
  uint64_t next = lba;
  for (const auto& e : extents) {
    uint64_t first = std::max<uint64_t>(e.offset / kBlockSize, next);
    uint64_t end = std::min<uint64_t>((e.offset + e.length + kBlockSize - 1) / kBlockSize, lba + span);
    if (end <= first) continue;
    uint8_t d[16] = {};
    store_be64(d, first);
    store_be32(d + 8, static_cast<uint32_t>(std::min<uint64_t>(end - first, 0xffffffff)));
    d[12] = e.data ? 0 : 1;  // mapped, or deallocated
    b.insert(b.end(), d, d + sizeof d);
    next = end;
    if (b.size() >= 8 + 64 * 16) break;
  }
  store_be32(b.data(), static_cast<uint32_t>(b.size() - 4));
  return reply_bytes(b, allocation, out, produced);
}

}  // namespace bootfleet::iscsi
