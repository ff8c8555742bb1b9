// Numbers of the NBD protocol (fixed newstyle), as the upstream protocol
// document defines them (github.com/NetworkBlockDevice/nbd, doc/proto.md).
#pragma once

#include <cstddef>
#include <cstdint>

namespace bootfleet::nbd {

constexpr uint64_t kNbdMagic = 0x4e42444d41474943ull;  // "NBDMAGIC"
constexpr uint64_t kOptMagic = 0x49484156454F5054ull;  // "IHAVEOPT"
constexpr uint64_t kOptReplyMagic = 0x0003e889045565a9ull;
constexpr uint32_t kRequestMagic = 0x25609513u;
constexpr uint32_t kSimpleReplyMagic = 0x67446698u;
constexpr uint32_t kStructuredReplyMagic = 0x668e33efu;

// Handshake flags (server) and client flags.
constexpr uint16_t kFlagFixedNewstyle = 1 << 0;
constexpr uint16_t kFlagNoZeroes = 1 << 1;
constexpr uint32_t kClientFixedNewstyle = 1 << 0;
constexpr uint32_t kClientNoZeroes = 1 << 1;

// Options.
enum : uint32_t {
  kOptExportName = 1,
  kOptAbort = 2,
  kOptList = 3,
  kOptStartTls = 5,
  kOptInfo = 6,
  kOptGo = 7,
  kOptStructuredReply = 8,
  kOptListMetaContext = 9,
  kOptSetMetaContext = 10,
};

// Option replies.
enum : uint32_t {
  kRepAck = 1,
  kRepServer = 2,
  kRepInfo = 3,
  kRepMetaContext = 4,
  kRepErrUnsup = 0x80000001u,
  kRepErrPolicy = 0x80000002u,
  kRepErrInvalid = 0x80000003u,
  kRepErrPlatform = 0x80000004u,
  kRepErrTlsReqd = 0x80000005u,
  kRepErrUnknown = 0x80000006u,
  kRepErrShutdown = 0x80000007u,
  kRepErrBlockSizeReqd = 0x80000008u,
  kRepErrTooBig = 0x80000009u,
};

// NBD_INFO_* in NBD_REP_INFO.
enum : uint16_t { kInfoExport = 0, kInfoName = 1, kInfoDescription = 2, kInfoBlockSize = 3 };

// Transmission flags.
enum : uint16_t {
  kTxHasFlags = 1 << 0,
  kTxReadOnly = 1 << 1,
  kTxSendFlush = 1 << 2,
  kTxSendFua = 1 << 3,
  kTxRotational = 1 << 4,
  kTxSendTrim = 1 << 5,
  kTxSendWriteZeroes = 1 << 6,
  kTxSendDf = 1 << 7,
  kTxCanMultiConn = 1 << 8,
  kTxSendResize = 1 << 9,
  kTxSendCache = 1 << 10,
  kTxSendFastZero = 1 << 11,
};

// Commands and their flags.
enum : uint16_t {
  kCmdRead = 0,
  kCmdWrite = 1,
  kCmdDisc = 2,
  kCmdFlush = 3,
  kCmdTrim = 4,
  kCmdCache = 5,
  kCmdWriteZeroes = 6,
  kCmdBlockStatus = 7,
};
enum : uint16_t {
  kCmdFlagFua = 1 << 0,
  kCmdFlagNoHole = 1 << 1,
  kCmdFlagDf = 1 << 2,
  kCmdFlagReqOne = 1 << 3,
  kCmdFlagFastZero = 1 << 4,
};

// Structured reply chunks.
constexpr uint16_t kReplyFlagDone = 1 << 0;
enum : uint16_t {
  kReplyNone = 0,
  kReplyOffsetData = 1,
  kReplyOffsetHole = 2,
  kReplyBlockStatus = 5,
  kReplyError = (1 << 15) + 1,
};

// Errors carried in replies (Linux errno values, by the protocol's choice).
enum : uint32_t {
  kErrPerm = 1,
  kErrIo = 5,
  kErrNoMem = 12,
  kErrInval = 22,
  kErrNoSpc = 28,
  kErrOverflow = 75,
  kErrNotSup = 95,
  kErrShutdown = 108,
};

// base:allocation status bits.
constexpr uint32_t kStateHole = 1 << 0;
constexpr uint32_t kStateZero = 1 << 1;

// Our limits, advertised with NBD_INFO_BLOCK_SIZE.
constexpr uint32_t kMinBlockSize = 512;
constexpr uint32_t kPreferredBlockSize = 4096;
constexpr uint32_t kMaxPayload = 32u << 20;  // qemu caps its requests here too
constexpr uint32_t kMaxOptionLength = 64u << 10;
constexpr uint32_t kBaseAllocationContextId = 1;

// A request header, decoded.
struct Request {
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t cookie = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
};
constexpr size_t kRequestSize = 28;
// False when the magic is wrong (the connection must be dropped).
bool parse_request(const uint8_t* bytes, Request& out);
// The errno a block::Device returned, as the protocol's error number.
uint32_t to_nbd_error(int err);

}  // namespace bootfleet::nbd
