// bootsrv: the boot server. Serves the store's images over NBD: each client
// reads the version it pinned at boot and writes to its own write cache;
// boot scripts and kernels over HTTP, the iPXE loaders over TFTP.
// docs/bootsrv.md describes every option, the configuration file and the
// export names.
#include <iostream>

#include "commands.h"
#include "util/args.h"
#include "util/error.h"
#include "util/version.h"
#include "util/log.h"

using namespace bootfleet;

namespace bootfleet::bootsrv {

const char* const kUsage =
    "Usage: bootsrv serve [--store DIR] [--config FILE] [--listen ADDR:PORT]... [--cache-dir DIR]\n"
    "                     [--cache-ram SIZE] [--cache-quota SIZE] [--cache-reserve SIZE] [--idle-timeout DURATION]\n"
    "                     [--iscsi-listen ADDR:PORT]... [--tftp-listen ADDR:PORT] [--tftp-root DIR]\n"
    "                     [--http-listen ADDR:PORT] [--default-image IMAGE]\n"
    "       bootsrv dhcp-config --server-ip IP [--interface IF] [--http-port P]\n"
    "       bootsrv [--config FILE] [--store DIR] serve [OPTIONS]   (the same)\n"
    "       bootsrv --help | --version\n\n"
    "Serve the store's images to network-booted clients over NBD (and iSCSI with\n"
    "--iscsi-listen, for Windows PCs: docs/iscsi.md); with\n"
    "--http-listen the iPXE boot scripts and kernels over HTTP, with --tftp-listen\n"
    "the iPXE loaders over TFTP (read-only). dhcp-config prints a dnsmasq\n"
    "proxy-DHCP configuration that points PCs at them (docs/network-boot.md).\n\n"
    "Export names: IMAGE (a fresh session on the active version for one connection),\n"
    "IMAGE/CLIENT (CLIENT's session: one write cache shared by its connections, kept\n"
    "across reconnects), IMAGE@N or IMAGE@active (read-only). iSCSI targets name the\n"
    "same exports: PREFIX:IMAGE, PREFIX:IMAGE:CLIENT, PREFIX:IMAGE:version:N.\n\n"
    "Control API (docs/api.md): JSON under /api/v1/ on the HTTP listener, on when\n"
    "the configuration file names api_tokens; https_listen, tls_cert and tls_key add\n"
    "an HTTPS listener. imgtool push, publish --server and status use it.\n\n"
    "Signals: SIGTERM or SIGINT stops accepting, finishes the requests in flight,\n"
    "flushes every cache and exits 0; SIGHUP reloads the configuration file and\n"
    "re-reads the API tokens.\n"
    "See docs/bootsrv.md.\n";

}  // namespace bootfleet::bootsrv

int main(int argc, char** argv) {
  util::set_log_program("bootsrv");
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    args = util::move_global_options(args, {"--config", "-c", "--store"});
  } catch (const util::Error& e) {
    std::cerr << "bootsrv: " << e.what() << "\n";
    return 2;
  }
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << bootsrv::kUsage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "bootsrv (bootfleet) " << bootfleet::util::version() << "\n";
    return 0;
  }
  if (args[0] == "dhcp-config") return bootsrv::dhcp_config_command({args.begin() + 1, args.end()});
  if (args[0] != "serve") {
    std::cerr << "bootsrv: '" << args[0] << "' is not a command.\n\n" << bootsrv::kUsage;
    return 2;
  }
  try {
    return bootsrv::serve_command({args.begin() + 1, args.end()});
  } catch (const util::Error& e) {
    std::cerr << "bootsrv serve: " << e.what() << "\n";
    return 2;
  }
}
