// bootsrv: the boot server. Serves the store's images over NBD: each client
// reads the version it pinned at boot and writes to its own write cache.
// Optionally serves the iPXE loaders over TFTP (read-only).
// docs/bootsrv.md describes every option, the configuration file and the
// export names.
#include <arpa/inet.h>
#include <signal.h>

#include <algorithm>
#include <cctype>

#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>
#include <thread>

#include "config.h"
#include "exports.h"
#include "http.h"
#include "http/server.h"
#include "nbd/server.h"
#include "store/store.h"
#include "tftp/server.h"
#include "util/error.h"
#include "util/log.h"
#include "util/size.h"

#ifndef BOOTFLEET_VERSION
#define BOOTFLEET_VERSION "0"
#endif

namespace po = boost::program_options;
using namespace bootfleet;

namespace {

const char* kUsage =
    "Usage: bootsrv serve [--store DIR] [--config FILE] [--listen ADDR:PORT]... [--cache-dir DIR]\n"
    "                     [--cache-ram SIZE] [--idle-timeout DURATION]\n"
    "                     [--tftp-listen ADDR:PORT] [--tftp-root DIR]\n"
    "                     [--http-listen ADDR:PORT] [--default-image IMAGE]\n"
    "       bootsrv dhcp-config --server-ip IP [--interface IF] [--http-port P]\n"
    "       bootsrv --help | --version\n\n"
    "Serve the store's images to network-booted clients over NBD; with\n"
    "--http-listen the iPXE boot scripts and kernels over HTTP, with --tftp-listen\n"
    "the iPXE loaders over TFTP (read-only). dhcp-config prints a dnsmasq\n"
    "proxy-DHCP configuration that points PCs at them (docs/network-boot.md).\n\n"
    "Export names: IMAGE (a fresh session on the active version for one connection),\n"
    "IMAGE/CLIENT (CLIENT's session: one write cache shared by its connections, kept\n"
    "across reconnects), IMAGE@N or IMAGE@active (read-only).\n\n"
    "Signals: SIGTERM or SIGINT stops accepting, finishes the requests in flight,\n"
    "flushes every cache and exits 0; SIGHUP reloads the configuration file.\n"
    "See docs/bootsrv.md.\n";

int serve(const std::vector<std::string>& args) {
  po::options_description options("Options");
  std::string config_file, store_dir, cache_dir, idle, cache_ram, tftp_listen, tftp_root, http_listen, default_image;
  std::vector<std::string> listen;
  options.add_options()
      ("help,h", "show this help")
      ("store", po::value(&store_dir), "the store (default: config, $BOOTFLEET_STORE, /var/lib/bootfleet)")
      ("config,c", po::value(&config_file), "a YAML configuration file")
      ("listen,l", po::value(&listen)->composing(), "NBD address: 127.0.0.1:10809, [::1]:10809, :10809, unix:PATH (repeatable; default 127.0.0.1:10809)")
      ("cache-dir", po::value(&cache_dir), "directory for write caches (default STORE/cache; put it on a fast local disk)")
      ("cache-ram", po::value(&cache_ram), "RAM all write caches share before spilling to --cache-dir, e.g. 512M (default 0)")
      ("idle-timeout", po::value(&idle), "end a named session this long after its last connection closed (default 1h)")
      ("tftp-listen", po::value(&tftp_listen), "serve TFTP (read-only) on this address: 127.0.0.1:69, [::1]:69, :69 (default: no TFTP)")
      ("tftp-root", po::value(&tftp_root), "the directory TFTP serves (default /usr/lib/ipxe)")
      ("http-listen", po::value(&http_listen), "serve boot scripts and kernels over HTTP on this address, e.g. :8080 (default: no HTTP)")
      ("default-image", po::value(&default_image), "the image unknown MACs boot (default: none; they are told to register)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "bootsrv serve: " << e.what() << "\n" << kUsage;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << kUsage << "\n" << options << "\n";
    return 0;
  }

  auto build_config = [&]() {
    bootsrv::Config c;
    c.store = store::Store::default_dir();
    if (!config_file.empty()) bootsrv::load_config_file(config_file, c);
    if (!store_dir.empty()) c.store = store_dir;
    if (!listen.empty()) c.listen = listen;
    if (c.listen.empty()) c.listen = {"127.0.0.1:10809"};
    if (!cache_dir.empty()) c.cache_dir = cache_dir;
    if (c.cache_dir.empty()) c.cache_dir = c.store + "/cache";
    if (!cache_ram.empty()) c.cache_ram = util::parse_size(cache_ram, "--cache-ram");
    if (!idle.empty()) c.idle_timeout = bootsrv::parse_duration(idle, "--idle-timeout");
    if (!tftp_listen.empty()) c.tftp_listen = tftp_listen;
    if (!tftp_root.empty()) c.tftp_root = tftp_root;
    if (!http_listen.empty()) c.http_listen = http_listen;
    if (!default_image.empty()) c.default_image = default_image;
    if (!c.default_image.empty()) store::validate_image_name(c.default_image);
    return c;
  };
  bootsrv::Config config = build_config();

  // Signals are taken synchronously by this thread; every other thread
  // inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto s = store::Store::open(config.store);
  for (const auto& line : s->cleanup_report()) util::log_line("store: " + line);
  std::filesystem::create_directories(config.cache_dir);
  bootsrv::StoreExports exports(*s, {config.cache_dir, config.idle_timeout, config.cache_ram});
  nbd::Server server(exports);
  uint16_t nbd_port = 0;  // the port boot scripts send clients to
  for (const auto& address : config.listen) {
    uint16_t port = server.listen(address);
    if (!nbd_port) nbd_port = port;
    util::log_line("listening for NBD on " + address + (port ? " (port " + std::to_string(port) + ")" : ""));
  }
  server.start();
  // HTTP after NBD: boot scripts point at the NBD port just bound.
  std::unique_ptr<bootsrv::BootHttp> boot_http;
  std::unique_ptr<http::Server> http_server;
  uint16_t http_port = 0;
  if (!config.http_listen.empty()) {
    if (!nbd_port) throw util::Error("--http-listen needs an NBD listen address on TCP for the clients' root disks");
    boot_http = std::make_unique<bootsrv::BootHttp>(
        exports, bootsrv::BootOptions{nbd_port, config.default_image, config.kernel_cmdline});
    http_server = std::make_unique<http::Server>(
        [&](const http::Request& r, const http::Connection& c) { return boot_http->handle(r, c); });
    http_port = http_server->listen(config.http_listen);
    http_server->start();
    util::log_line("listening for HTTP on " + config.http_listen + " (port " + std::to_string(http_port) +
                   "): boot scripts, kernels" +
                   (config.default_image.empty() ? "" : "; unknown MACs boot " + config.default_image));
  }
  // TFTP starts after NBD, so a bad TFTP address or root stops bootsrv
  // before any client could depend on it.
  std::unique_ptr<tftp::Server> tftp_server;
  if (!config.tftp_listen.empty()) {
    tftp::ServerOptions tftp_options;
    tftp_options.listen = config.tftp_listen;
    tftp_options.root = config.tftp_root;
    if (http_server) {
      // boot.ipxe over TFTP hands over to HTTP: to the HTTP address when it
      // is a specific one, else to the server the PC got its loader from.
      std::string host = http::host_without_port(config.http_listen);
      if (host.empty() || host == "0.0.0.0" || host == "[::]") host = "${next-server}";
      std::string script = bootsrv::BootHttp::chain_script("http://" + host + ":" + std::to_string(http_port));
      tftp_options.virtual_files = [script](const std::string& name) -> std::optional<std::string> {
        if (name == "boot.ipxe") return script;
        return std::nullopt;
      };
    }
    tftp_server = std::make_unique<tftp::Server>(tftp_options);
    uint16_t port = tftp_server->start();
    util::log_line("listening for TFTP on " + config.tftp_listen + " (port " + std::to_string(port) + "), serving " +
                   config.tftp_root + " read-only");
  }
  util::log_line("serving store " + config.store + ", write caches in " + config.cache_dir +
                 (config.cache_ram ? " after " + util::format_size(config.cache_ram) + " of RAM" : ""));

  std::atomic<bool> done{false};
  std::thread housekeeping([&] {
    auto next = std::chrono::steady_clock::now();
    while (!done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (std::chrono::steady_clock::now() < next) continue;
      exports.housekeeping();
      next = std::chrono::steady_clock::now() + std::min(config.heartbeat, std::chrono::seconds(10));
    }
  });
  while (true) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      try {
        bootsrv::Config fresh = build_config();
        exports.sessions().set_idle_timeout(fresh.idle_timeout);
        config.idle_timeout = fresh.idle_timeout;
        config.heartbeat = fresh.heartbeat;
        util::log_line("configuration reloaded (listen addresses, TFTP, HTTP, default image, kernel command line, store and cache directory change only on restart)");
      } catch (const util::Error& e) {
        util::log_line(std::string("configuration not reloaded: ") + e.what());
      }
      continue;
    }
    util::log_line(std::string("stopping on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
                   ": finishing requests in flight");
    break;
  }
  if (tftp_server) tftp_server->stop();
  if (http_server) {
    http_server->stop();
    http_server->wait();
  }
  server.stop();
  server.wait();
  done = true;
  housekeeping.join();
  util::log_line("stopped");
  return 0;
}

// A dnsmasq configuration in proxy-DHCP mode: the site's DHCP server keeps
// handing out addresses; dnsmasq only adds the boot information. Plain PXE
// firmware gets an iPXE loader over TFTP (BIOS: undionly.kpxe, UEFI:
// ipxe.efi); iPXE itself (user class "iPXE") gets the HTTP boot script.
std::string dnsmasq_config(const std::string& ip, const std::string& interface, uint16_t http_port) {
  std::string url = "http://" + ip + ":" + std::to_string(http_port) + "/boot.ipxe";
  std::string out =
      "# dnsmasq proxy-DHCP for bootfleet, made by 'bootsrv dhcp-config'.\n"
      "# Install as /etc/dnsmasq.d/bootfleet.conf and restart dnsmasq. The site's DHCP\n"
      "# server keeps giving out addresses; this only adds where to boot from.\n"
      "# bootsrv serves TFTP (--tftp-listen :69 --tftp-root DIR with undionly.kpxe and\n"
      "# ipxe.efi) and HTTP (--http-listen :" + std::to_string(http_port) + "); see docs/network-boot.md.\n"
      "port=0\n"
      "log-dhcp\n";
  if (!interface.empty()) out += "interface=" + interface + "\nbind-interfaces\n";
  out +=
      "dhcp-range=" + ip + ",proxy\n"
      "\n"
      "# iPXE announces itself with user class \"iPXE\": give it the boot script.\n"
      "dhcp-userclass=set:ipxe,iPXE\n"
      "# Firmware architecture (option 93): 0 BIOS, 7 and 9 x86-64 UEFI.\n"
      "dhcp-match=set:bios,option:client-arch,0\n"
      "dhcp-match=set:efi64,option:client-arch,7\n"
      "dhcp-match=set:efi64,option:client-arch,9\n"
      "\n"
      "# In proxy mode PXE firmware takes the loader from the PXE menu (pxe-service);\n"
      "# dhcp-boot covers clients that read the plain boot file name.\n"
      "pxe-prompt=\"bootfleet\",0\n"
      "pxe-service=tag:!ipxe,x86PC,\"bootfleet (BIOS)\",undionly.kpxe," + ip + "\n"
      "pxe-service=tag:!ipxe,X86-64_EFI,\"bootfleet (UEFI)\",ipxe.efi," + ip + "\n"
      "pxe-service=tag:!ipxe,BC_EFI,\"bootfleet (UEFI)\",ipxe.efi," + ip + "\n"
      "pxe-service=tag:ipxe,x86PC,\"bootfleet\"," + url + "\n"
      "pxe-service=tag:ipxe,X86-64_EFI,\"bootfleet\"," + url + "\n"
      "dhcp-boot=tag:!ipxe,tag:bios,undionly.kpxe,," + ip + "\n"
      "dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi,," + ip + "\n"
      "dhcp-boot=tag:ipxe," + url + "\n"
      "\n"
      "# bootsrv serves TFTP itself: dnsmasq's own TFTP server stays off.\n"
      "# enable-tftp\n";
  return out;
}

int dhcp_config(const std::vector<std::string>& args) {
  po::options_description options("Options");
  std::string ip, interface;
  uint16_t http_port = 8080;
  options.add_options()
      ("help,h", "show this help")
      ("server-ip", po::value(&ip)->required(), "the address PCs reach bootsrv at (TFTP and HTTP), e.g. 192.168.1.5")
      ("interface", po::value(&interface), "the network interface dnsmasq answers on (default: all)")
      ("http-port", po::value(&http_port), "bootsrv's HTTP port (default 8080)");
  po::variables_map vm;
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    std::cout << "Usage: bootsrv dhcp-config --server-ip IP [--interface IF] [--http-port P]\n\n"
                 "Print a dnsmasq configuration for proxy DHCP that sends PXE firmware to\n"
                 "bootsrv's TFTP for iPXE, and iPXE to bootsrv's boot script over HTTP.\n\n"
              << options << "\n";
    return 0;
  }
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "bootsrv dhcp-config: " << e.what() << "\n";
    return 2;
  }
  in_addr v4{};
  if (::inet_pton(AF_INET, ip.c_str(), &v4) != 1) {
    std::cerr << "bootsrv dhcp-config: --server-ip '" << ip
              << "' is not an IPv4 address (PXE and proxy DHCP are IPv4), e.g. 192.168.1.5\n";
    return 2;
  }
  for (char c : interface) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' && c != '@') {
      std::cerr << "bootsrv dhcp-config: --interface '" << interface << "' is not an interface name\n";
      return 2;
    }
  }
  if (http_port == 0) {
    std::cerr << "bootsrv dhcp-config: --http-port must be 1 to 65535\n";
    return 2;
  }
  std::cout << dnsmasq_config(ip, interface, http_port);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  util::set_log_program("bootsrv");
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "bootsrv (bootfleet) " << BOOTFLEET_VERSION << "\n";
    return 0;
  }
  if (args[0] == "dhcp-config") return dhcp_config({args.begin() + 1, args.end()});
  if (args[0] != "serve") {
    std::cerr << "bootsrv: '" << args[0] << "' is not a command.\n\n" << kUsage;
    return 2;
  }
  try {
    return serve({args.begin() + 1, args.end()});
  } catch (const util::Error& e) {
    std::cerr << "bootsrv serve: " << e.what() << "\n";
    return 2;
  }
}
