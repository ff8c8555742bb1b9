// The SCSI block device one iSCSI LUN presents (SPC-4, SBC-3), over any
// block::Device: the commands Windows, iPXE, Linux and libiscsi's test suite
// send, with 512-byte logical blocks. Transport-free: the connection hands
// in a CDB and the data the initiator sent, and gets back status, sense and
// the data to return, so everything here is unit-tested without sockets.
//
// Design note. A command is looked at twice. prepare() decides, before any
// data moves, whether it can run at all (opcode, fields, LBA range, write
// protection) and how many bytes of Data-Out it needs: a write that would
// fail is answered at once, without soliciting its data. execute() then
// runs it. Reads fill a buffer the connection owns and reuses; they try the
// page cache first (Device::try_read) and wait on the disk only when they
// must. What the initiator flushed (SYNCHRONIZE CACHE, FUA) is on stable
// storage before the status goes out, exactly as NBD's FLUSH and FUA.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "block/device.h"

namespace bootfleet::iscsi {

constexpr uint32_t kBlockSize = 512;

// SCSI status codes.
enum : uint8_t { kStatusGood = 0x00, kStatusCheckCondition = 0x02, kStatusConditionMet = 0x04,
                 kStatusReservationConflict = 0x18 };

// Sense keys and the additional sense codes we use.
enum SenseKey : uint8_t {
  kNoSense = 0x0, kNotReady = 0x2, kMediumError = 0x3, kHardwareError = 0x4, kIllegalRequest = 0x5,
  kUnitAttention = 0x6, kDataProtect = 0x7, kAbortedCommand = 0xb, kMiscompare = 0xe,
};
struct Asc {
  uint8_t asc, ascq;
};
constexpr Asc kInvalidOpcode{0x20, 0x00};
constexpr Asc kInvalidFieldInCdb{0x24, 0x00};
constexpr Asc kLbaOutOfRange{0x21, 0x00};
constexpr Asc kInvalidFieldInParameterList{0x26, 0x00};
constexpr Asc kParameterListLengthError{0x1a, 0x00};
constexpr Asc kLunNotSupported{0x25, 0x00};
constexpr Asc kWriteProtected{0x27, 0x00};
constexpr Asc kSpaceAllocationFailed{0x27, 0x07};
constexpr Asc kUnrecoveredReadError{0x11, 0x00};
constexpr Asc kWriteError{0x0c, 0x00};
constexpr Asc kMiscompareDuringVerify{0x1d, 0x00};
constexpr Asc kSavingParametersNotSupported{0x39, 0x00};
constexpr Asc kDataPhaseError{0x4b, 0x00};
constexpr Asc kNoAsc{0x00, 0x00};

// What the disk says about itself: stable for one image and client, so
// Windows sees the same disk (the same NAA identifier) at every boot.
struct DiskIdentity {
  std::string vendor = "BOOTFLT";             // T10 vendor, 8 bytes padded
  std::string product = "bootfleet disk";     // 16 bytes padded
  std::string revision = "0001";              // 4 bytes
  std::string serial;                         // VPD 0x80
  uint64_t naa = 0;                           // VPD 0x83 NAA (locally assigned, type 3)
  std::string target_name;                    // VPD 0x83 SCSI name string of the target device
};
// An identity derived from a stable key (e.g. "lab/pc01"): serial and NAA
// from its SHA-256, so the same key always gives the same disk.
DiskIdentity identity_for(const std::string& key, const std::string& target_name);

struct Status {
  uint8_t status = kStatusGood;
  std::vector<uint8_t> sense;  // fixed or descriptor format, as the control mode page says
  bool good() const { return status == kStatusGood || status == kStatusConditionMet; }
};

// A buffer reused across commands: grows, never shrinks below what the
// largest recent command needed, and is never zero-filled for nothing.
class DataBuffer {
 public:
  uint8_t* prepare(size_t n);  // room for n bytes; size() becomes n
  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }
  void resize_down(size_t n) { size_ = n < size_ ? n : size_; }
  void release_if_larger_than(size_t n);

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t capacity_ = 0, size_ = 0;
};

class LogicalUnit {
 public:
  LogicalUnit(std::shared_ptr<block::Device> device, DiskIdentity identity);

  // The largest VERIFY with data and the largest read execute() returns in
  // one buffer. READ and WRITE have no limit: the connection streams them
  // (block_io()), holding one burst at a time.
  static constexpr uint32_t kMaxTransferBlocks = 16384;  // 8 MiB

  // A READ or WRITE (or WRITE AND VERIFY) of blocks, as the CDB says.
  struct BlockIo {
    bool write = false;
    uint64_t lba = 0;
    uint32_t count = 0;
    bool fua = false;
  };
  // Set for the commands the connection streams itself (after prepare()
  // said they can run).
  std::optional<BlockIo> block_io(const uint8_t* cdb) const;
  // Byte ranges inside the disk: a read tries the page cache first.
  Status read_at(uint64_t offset, uint32_t length, uint8_t* out);
  Status write_at(uint64_t offset, std::span<const uint8_t> data, bool fua);

  struct Prepared {
    Status early;               // not good: answer this now, move no data
    uint32_t data_out = 0;      // bytes of Data-Out the command takes
    bool is_read_write = false; // a READ/WRITE of blocks (for statistics)
  };
  // `lun` is the LUN decoded from the PDU (only 0 exists).
  Prepared prepare(const uint8_t* cdb, int64_t lun) const;
  // Runs the command. `data_out` is what the initiator sent (exactly
  // prepare()'s data_out bytes); `data_in` receives what goes back, and
  // `produced` says how much the command would return (for residuals;
  // `data_in` holds at most `max_in` bytes of it).
  Status execute(const uint8_t* cdb, int64_t lun, std::span<const uint8_t> data_out, DataBuffer& data_in,
                 uint32_t max_in, uint32_t& produced);

  uint64_t blocks() const { return blocks_; }
  block::Device& device() { return *device_; }
  // Task management: LUN RESET and TARGET WARM RESET clear PREVENT.
  void reset();

  // Sense data for `key`/`asc`, in the format the control page selects.
  std::vector<uint8_t> sense(SenseKey key, Asc asc, std::optional<uint64_t> information = {}) const;
  Status check(SenseKey key, Asc asc, std::optional<uint64_t> information = {}) const {
    return {kStatusCheckCondition, sense(key, asc, information)};
  }
  // The sense a failed device call (an errno) becomes.
  Status device_error(int err, bool writing) const;

 private:
  struct Decoded;
  Status inquiry(const uint8_t* cdb, int64_t lun, DataBuffer& out, uint32_t& produced) const;
  Status mode_sense(const uint8_t* cdb, DataBuffer& out, uint32_t& produced) const;
  Status report_opcodes(const uint8_t* cdb, DataBuffer& out, uint32_t& produced) const;
  Status read_blocks(uint64_t lba, uint32_t count, DataBuffer& out, uint32_t max_in, uint32_t& produced);
  Status write_blocks(uint64_t lba, uint32_t count, std::span<const uint8_t> data, bool fua);
  Status write_same(const uint8_t* cdb, std::span<const uint8_t> data);
  Status unmap(const uint8_t* cdb, std::span<const uint8_t> data);
  Status verify(uint64_t lba, uint32_t count, int bytchk, std::span<const uint8_t> data);
  Status compare_and_write(uint64_t lba, uint32_t count, std::span<const uint8_t> data, bool fua);
  Status get_lba_status(const uint8_t* cdb, DataBuffer& out, uint32_t& produced);
  Status discard(uint64_t lba, uint64_t count);

  std::shared_ptr<block::Device> device_;
  DiskIdentity identity_;
  uint64_t blocks_;
  bool read_only_;
  bool descriptor_sense_ = false;  // D_SENSE in the control mode page
  bool prevent_ = false;           // PREVENT ALLOW MEDIUM REMOVAL state
  std::mutex compare_mutex_;       // COMPARE AND WRITE is atomic against itself
};

}  // namespace bootfleet::iscsi
