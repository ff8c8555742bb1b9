// iSCSI target names for the store's exports: what a Windows PC (or iPXE,
// or any initiator) logs in to, and the same three kinds of export NBD has.
//
//   PREFIX:IMAGE                  an anonymous session on the active version
//                                 (its own write cache, gone with the session)
//   PREFIX:IMAGE:CLIENT           CLIENT's named session: the one its boot
//                                 script pinned, shared with NBD IMAGE/CLIENT
//   PREFIX:IMAGE:version:N        version N, read-only (writes get DATA PROTECT)
//   PREFIX:IMAGE:version:active   the active version, read-only
//
// PREFIX defaults to iqn.2026-11.org.bootfleet. iSCSI names are lower case
// a-z 0-9 . - : (RFC 3720 §3.2.6.2), so a name is written lower-cased with
// '_' as '-'; a target name is matched against the images and registered
// clients written that way, and a match that is not unique is refused naming
// both. A client that is not registered is taken as written.
//
// LUN 0 of a target has a SCSI identity (VPD 0x80, 0x83) derived from the
// export name (IMAGE/CLIENT, IMAGE, IMAGE@N) alone: Windows sees the same
// disk at every boot, whatever version is behind it.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "iscsi/target.h"
#include "serve/exports.h"

namespace bootfleet::serve {

constexpr const char* kDefaultIqnPrefix = "iqn.2026-11.org.bootfleet";

// Throws util::Error naming `what` unless `prefix` is a usable iSCSI name
// prefix (iqn.YYYY-MM.reversed.domain, eui.…, naa.…; lower case, no ':' at the end).
void validate_iqn_prefix(const std::string& prefix, const std::string& what);
// A store name as it appears in a target name.
std::string iqn_part(const std::string& name);
// The target name of an export ("lab", "lab/pc01", "lab@3").
std::string target_name(const std::string& prefix, const std::string& export_name);

class IscsiTargets : public iscsi::Targets {
 public:
  // Exports are opened through `resolver` (so boot events see iSCSI roots
  // as NBD ones); names are checked against `exports`' store.
  IscsiTargets(StoreExports& exports, block::ExportResolver& resolver, std::string prefix);

  // CHAP secrets (iscsi/chap.h); replaced as a whole on reload.
  void set_chap(std::shared_ptr<const iscsi::ChapSecrets> secrets);
  // The export a target name means; throws iscsi::TargetError (not found).
  std::string export_for(const std::string& target, std::string* client = nullptr);

  std::optional<iscsi::ChapCredentials> authentication(const std::string& target) override;
  iscsi::OpenedTarget open(const std::string& target, const std::string& initiator) override;
  std::vector<std::string> list() override;
  const std::string& prefix() const { return prefix_; }

 private:
  StoreExports& exports_;
  block::ExportResolver& resolver_;
  std::string prefix_;
  std::mutex mutex_;
  std::shared_ptr<const iscsi::ChapSecrets> chap_;
};

}  // namespace bootfleet::serve
