// The web side of network boot: what iPXE asks for while a PC boots.
//
//   GET /boot.ipxe                  chains /boot/${mac:hexhyp}.ipxe (iPXE fills in the MAC)
//   GET /boot/MAC.ipxe              starts the PC's session and returns its boot script
//   GET|HEAD /artifacts/IMAGE@N/F   artifact F (kernel, initrd) of version N, with Range
//
// Design note. A boot pins its version when the script is made, not when
// the kernel later attaches over NBD: the script names the version's own
// kernel and initrd (/artifacts/IMAGE@N/…), and the session IMAGE/CLIENT is
// started right then on N (StoreExports::start_session), so a publish in
// between cannot give a client the kernel of one version and the disk of
// another. URLs in scripts are absolute and use the host the client itself
// used (its Host header, else the address it connected to), so one server
// with several addresses answers each network with its own. Nothing from the
// URL is joined into a path: MACs are parsed, versions looked up in the
// catalog and artifact names matched against the version's artifact list.
//
// A client in sanboot mode (store::BootMode) gets no kernel: its script
// names the initiator (PREFIX:initiator:CLIENT) and `sanboot`s the target
// of its named session, PREFIX:IMAGE:CLIENT, which is the session started
// here on the pinned version, so the iSCSI login that follows lands on that
// version whatever is published meanwhile. The iBFT iPXE writes is kept (no
// --no-describe): the OS's own initiator finds its disk through it, and its
// login lands on the same session.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "serve/exports.h"
#include "http/server.h"

namespace bootfleet::serve {

// A throwaway boot (imgtool boot-test): every MAC boots this version as
// this client, whatever the client table says, and nothing is registered.
struct PinnedBoot {
  std::string image;
  int64_t version = 0;
  std::string client;  // the session is IMAGE/CLIENT, e.g. boot-test-4242
  store::BootMode mode = store::BootMode::kLinux;
};

struct BootOptions {
  uint16_t nbd_port = 10809;  // where clients attach their root (same host as HTTP)
  uint16_t iscsi_port = 0;    // where sanboot clients log in (same host); 0: no iSCSI, sanboot refused
  std::string iqn_prefix = "iqn.2026-11.org.bootfleet";  // of target and initiator names
  std::string default_image;  // unknown MACs boot this; empty: they are told to register
  // Appended after what bootsrv always passes (ip=dhcp root=/dev/nbd0p1
  // nbdroot=… rw init=/sbin/init bootfleet.*=…) and before the client's own.
  std::string kernel_cmdline = "console=tty0 console=ttyS0 panic=-1";
  std::optional<PinnedBoot> pinned;
};

// Throws util::Error unless version `v` has the artifacts a network boot
// needs (vmlinuz, initrd.img), naming the missing one and how a recipe keeps it.
void check_boot_artifacts(store::Store& store, const store::VersionInfo& v);

class BootHttp {
 public:
  BootHttp(StoreExports& exports, BootOptions options) : exports_(exports), options_(std::move(options)) {}
  http::Response handle(const http::Request& request, const http::Connection& connection);

  // The chain script for the URL base `base` ("http://10.0.0.5:8080").
  static std::string chain_script(const std::string& base);
  // The initiator name a sanboot client's iPXE (and then its OS) uses.
  static std::string initiator_name(const std::string& prefix, const std::string& client);

 private:
  // `start`: begin the client's session (GET); HEAD only shows the script.
  http::Response boot_script(const std::string& file_name, const std::string& base, const std::string& nbd_host,
                             bool start);
  http::Response artifact(const std::string& version_text, const std::string& name);

  StoreExports& exports_;
  BootOptions options_;
};

}  // namespace bootfleet::serve
