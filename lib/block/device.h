// A Device is what a block protocol serves: a session (a version chain under
// a write cache) or a read-only version. Protocol code (nbd/, later iscsi/)
// talks only to this interface. Errors are errno values, because that is what
// every block protocol carries back to the client.
#pragma once

#include <cerrno>
#include <cstdint>
#include <vector>

#include "vhd/disk.h"

namespace bootfleet::block {

class Device {
 public:
  virtual ~Device() = default;
  virtual uint64_t size() const = 0;
  virtual bool read_only() const = 0;
  // True when every connection to this device sees the same data, so a
  // client may spread requests over several connections (NBD CAN_MULTI_CONN).
  virtual bool shared_between_connections() const = 0;

  // Each returns 0 or an errno (EIO, ENOSPC, EPERM, EINVAL …). Ranges are
  // inside the device (the protocol layer checks that).
  virtual int read(uint64_t offset, uint32_t length, uint8_t* buf) = 0;
  // The read, done only if nothing has to wait for a disk; EAGAIN when it
  // would (then call read() where waiting is fine). The default never tries.
  virtual int try_read(uint64_t /*offset*/, uint32_t /*length*/, uint8_t* /*buf*/) { return EAGAIN; }
  // The read as spans to send without copying (util/file_send.h), done
  // (like try_read) only if nothing has to wait for a disk: 0 when the
  // whole range maps to files that never change, or to zeros, and their
  // pages seem cached (util::spans_cached); EAGAIN when it maps but would
  // wait; ENOTSUP when some of it does not map (a write cache's own
  // clusters, whose slots may be rewritten or reused while the kernel reads
  // them). On anything but 0, read() instead. `out` is appended to, and
  // undefined after an error. The default maps nothing.
  virtual int map_read(uint64_t /*offset*/, uint32_t /*length*/, std::vector<util::FileSpan>& /*out*/) { return ENOTSUP; }
  virtual int write(uint64_t offset, uint32_t length, const uint8_t* buf, bool fua) = 0;
  virtual int flush() = 0;
  virtual int trim(uint64_t offset, uint32_t length, bool fua) = 0;
  virtual int write_zeroes(uint64_t offset, uint32_t length, bool fua) = 0;
  // Allocation of [offset, offset+length): `data` false means the range
  // reads as zeros (and holds no data of its own).
  virtual int extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) = 0;
};

}  // namespace bootfleet::block
