// What a block protocol opens: a device and what to say about it. Every
// block protocol (nbd/, iscsi/) takes export names from the same resolver,
// so an NBD client and an iSCSI initiator that name the same session see one
// write cache.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "block/device.h"

namespace bootfleet::block {

struct OpenedExport {
  std::shared_ptr<Device> device;
  std::string description;        // for NBD_INFO_DESCRIPTION and logs
  std::function<void()> release;  // called once when the connection is done with it
};

// Maps export names to devices. Implemented by serve::StoreExports (bootsrv:
// sessions over the store) and by guest::DiskServer (imgtool build: one
// write cache).
class ExportResolver {
 public:
  virtual ~ExportResolver() = default;
  // Throws util::Error whose message tells the client what is wrong and what
  // exists (e.g. "no image 'x'; images: lab, office").
  virtual OpenedExport open(const std::string& name) = 0;
  // What NBD_OPT_INFO and the meta-context options need: the export's size
  // and flags, without what opening it for I/O does (bootsrv: an anonymous
  // session, its lease and two log lines for every `nbdinfo --list` entry).
  // Same errors as open(). Default: open().
  virtual OpenedExport describe(const std::string& name) { return open(name); }
  // (name, description) of exports a client may list.
  virtual std::vector<std::pair<std::string, std::string>> list() = 0;
};

}  // namespace bootfleet::block
