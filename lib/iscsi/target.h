// What an iSCSI login can reach: the seam between the protocol (this
// folder) and whoever names the disks (serve::IscsiTargets over the store's
// exports, or a test's single disk). The protocol never learns what an
// image or a client is; it asks for a target by name and gets LUN 0.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "block/export.h"
#include "iscsi/chap.h"
#include "iscsi/pdu.h"
#include "iscsi/scsi.h"

namespace bootfleet::iscsi {

// A refused target: the login status class it earns and a message for the
// log (never for the wire: login rejects carry no text).
struct TargetError : std::runtime_error {
  TargetError(uint16_t status, const std::string& message) : std::runtime_error(message), login_status(status) {}
  uint16_t login_status;  // a LoginStatus
};

struct OpenedTarget {
  block::OpenedExport lun0;
  DiskIdentity identity;
};

class Targets {
 public:
  virtual ~Targets() = default;
  // Checks that `target` exists (TargetError kLoginNotFound otherwise) and
  // returns the CHAP credentials its logins need, if any. `target` empty:
  // a discovery session.
  virtual std::optional<ChapCredentials> authentication(const std::string& target) = 0;
  // Opens LUN 0 for a session of `initiator` on `target`, at the end of a
  // successful login. Throws TargetError.
  virtual OpenedTarget open(const std::string& target, const std::string& initiator) = 0;
  // The target names SendTargets lists.
  virtual std::vector<std::string> list() = 0;
};

}  // namespace bootfleet::iscsi
