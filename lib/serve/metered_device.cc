#include "serve/metered_device.h"

namespace bootfleet::serve {

namespace {
util::metrics::Counter& export_counter(const char* name, const char* help, const std::string& label) {
  return util::metrics::registry().counter(name, help, {{"export", label}});
}
}  // namespace

util::metrics::Counter& protocol_errors(const std::string& protocol) {
  return util::metrics::ProtocolMetrics(protocol).errors;
}

namespace {
util::metrics::Counter& block_bytes(const char* direction, const std::string& protocol) {
  std::string name = std::string("bootfleet_block_") + direction + "_bytes_total";
  std::string help = std::string("Bytes ") + (direction[0] == 'r' ? "read" : "written") +
                     " over a block protocol, by protocol";
  return util::metrics::registry().counter(name, help, {{"protocol", protocol}});
}
}  // namespace

void register_protocol_metrics(const std::string& protocol) {
  block_bytes("read", protocol);
  block_bytes("write", protocol);
  protocol_errors(protocol);
}

ExportCounters::ExportCounters(const std::string& label, const std::string& protocol)
    : read_bytes(export_counter("bootfleet_client_read_bytes_total", "Bytes read by block clients, by export", label)),
      read_requests(export_counter("bootfleet_client_read_requests_total", "Read requests of block clients, by export", label)),
      write_bytes(export_counter("bootfleet_client_write_bytes_total",
                                 "Bytes written by block clients, by export (zeroing and trim excluded)", label)),
      write_requests(export_counter("bootfleet_client_write_requests_total",
                                    "Write, write-zeroes and trim requests of block clients, by export", label)),
      protocol_read_bytes(block_bytes("read", protocol)),
      protocol_write_bytes(block_bytes("write", protocol)),
      errors(protocol_errors(protocol)) {}

int MeteredDevice::counted_read(int rc, uint32_t length) {
  if (rc == 0) {
    counters_.read_bytes.add(length);
    counters_.read_requests.add();
    counters_.protocol_read_bytes.add(length);
  }
  return count_error(rc);
}

int MeteredDevice::read(uint64_t offset, uint32_t length, uint8_t* buf) {
  return counted_read(inner_->read(offset, length, buf), length);
}

int MeteredDevice::try_read(uint64_t offset, uint32_t length, uint8_t* buf) {
  return counted_read(inner_->try_read(offset, length, buf), length);
}

// A mapped read is a read: it is sent from the files the spans name.
int MeteredDevice::map_read(uint64_t offset, uint32_t length, std::vector<util::FileSpan>& out) {
  return counted_read(inner_->map_read(offset, length, out), length);
}

int MeteredDevice::write(uint64_t offset, uint32_t length, const uint8_t* buf, bool fua) {
  int rc = inner_->write(offset, length, buf, fua);
  if (rc == 0) {
    counters_.write_bytes.add(length);
    counters_.write_requests.add();
    counters_.protocol_write_bytes.add(length);
  }
  return count_error(rc);
}

int MeteredDevice::trim(uint64_t offset, uint32_t length, bool fua) {
  int rc = inner_->trim(offset, length, fua);
  if (rc == 0) counters_.write_requests.add();
  return count_error(rc);
}

int MeteredDevice::write_zeroes(uint64_t offset, uint32_t length, bool fua) {
  int rc = inner_->write_zeroes(offset, length, fua);
  if (rc == 0) counters_.write_requests.add();
  return count_error(rc);
}

}  // namespace bootfleet::serve
