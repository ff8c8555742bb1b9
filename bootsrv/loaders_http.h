// GET /loaders/NAME: the iPXE loaders of bootsrv's TFTP root, over HTTP, for
// firmware that boots from a URL itself (UEFI HTTP boot: the DHCP server
// sends vendor class "HTTPClient" and a URL as the boot file, and the
// firmware downloads and starts that EFI program; `bootsrv dhcp-config
// --http-boot` prints the lines). It is the same directory TFTP serves, with
// the same rules (tftp/root.h: nothing outside the root unless root put the
// symlink there, as Debian's ipxe.efi is), so HTTP shows nothing TFTP does
// not. Only plain names one level deep: loaders are files in the root.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "http/server.h"
#include "tftp/root.h"

namespace bootfleet::bootsrv {

class LoaderRoute {
 public:
  // Throws util::Error naming `root` when it cannot be opened.
  explicit LoaderRoute(const std::string& root) : root_(root) {}

  static bool owns(const std::string& target);
  // GET and HEAD; 404 naming the file, 405 for other methods.
  http::Response handle(const http::Request& request) const;

  // Loaders bigger than this are refused (they are read into memory; iPXE's are ~1 MiB).
  static constexpr uint64_t kMaxBytes = uint64_t{32} << 20;

 private:
  tftp::Root root_;
};

}  // namespace bootfleet::bootsrv
