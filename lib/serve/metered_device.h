// A Device that counts what passes through it into the metrics registry
// (util/metrics.h): bytes and requests read and written per export, and
// I/O errors per protocol. The boot server wraps every export a block
// protocol opens in one (serve/boot_server.cc), so NBD and iSCSI are
// counted in one place, above their connection code and below nothing.
//
// Design note. The label is the export, not the connection or session id:
// a client's counters then run on across its reconnects, reboots and
// bootsrv restarts of its session (Prometheus handles the reset at a
// restart of bootsrv itself), and their number is bounded by the catalog:
// IMAGE/CLIENT for named sessions, IMAGE for all anonymous sessions of an
// image together, IMAGE@N for read-only views. The registry's per-family
// cap (Registry::kDefaultMaxSeries) bounds it against names a peer makes up.
// try_read's EAGAIN is neither a read nor an error: the read() that follows
// is counted.
#pragma once

#include <memory>
#include <string>

#include "block/device.h"
#include "util/metrics.h"

namespace bootfleet::serve {

// The counters of one export, labelled with its name as the client gave
// it ("lab/pc01", "lab", "lab@3"; looked up once, at open).
struct ExportCounters {
  ExportCounters(const std::string& export_label, const std::string& protocol);
  util::metrics::Counter& read_bytes;
  util::metrics::Counter& read_requests;
  util::metrics::Counter& write_bytes;
  util::metrics::Counter& write_requests;
  util::metrics::Counter& protocol_read_bytes;
  util::metrics::Counter& protocol_write_bytes;
  util::metrics::Counter& errors;
};

// bootfleet_protocol_errors_total{protocol}: also counts refused exports.
util::metrics::Counter& protocol_errors(const std::string& protocol);
// Makes the protocol's series (at 0) before its first client, so that
// dashboards and alerts see zeros rather than no data.
void register_protocol_metrics(const std::string& protocol);

class MeteredDevice : public block::Device {
 public:
  MeteredDevice(std::shared_ptr<block::Device> inner, const std::string& export_name, const std::string& protocol)
      : inner_(std::move(inner)), counters_(export_name, protocol) {}
  const std::shared_ptr<block::Device>& inner() const { return inner_; }

  uint64_t size() const override { return inner_->size(); }
  bool read_only() const override { return inner_->read_only(); }
  bool shared_between_connections() const override { return inner_->shared_between_connections(); }
  int read(uint64_t offset, uint32_t length, uint8_t* buf) override;
  int try_read(uint64_t offset, uint32_t length, uint8_t* buf) override;
  int map_read(uint64_t offset, uint32_t length, std::vector<util::FileSpan>& out) override;
  int write(uint64_t offset, uint32_t length, const uint8_t* buf, bool fua) override;
  int flush() override { return count_error(inner_->flush()); }
  int trim(uint64_t offset, uint32_t length, bool fua) override;
  int write_zeroes(uint64_t offset, uint32_t length, bool fua) override;
  int extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) override {
    return count_error(inner_->extents(offset, length, out));
  }

 private:
  int count_error(int rc) {
    if (rc != 0 && rc != EAGAIN && rc != ENOTSUP) counters_.errors.add();  // "read another way" is no error
    return rc;
  }
  int counted_read(int rc, uint32_t length);

  std::shared_ptr<block::Device> inner_;
  ExportCounters counters_;
};

}  // namespace bootfleet::serve
