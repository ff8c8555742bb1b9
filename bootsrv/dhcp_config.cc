// bootsrv dhcp-config: prints a dnsmasq proxy-DHCP configuration that sends
// PXE firmware to bootsrv's TFTP and iPXE to its HTTP boot script.
#include <arpa/inet.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <iostream>

#include "commands.h"
#include "util/error.h"
#include "util/net.h"

namespace po = boost::program_options;

namespace bootfleet::bootsrv {

namespace {

// A dnsmasq configuration in proxy-DHCP mode: the site's DHCP server keeps
// handing out addresses; dnsmasq only adds the boot information. Plain PXE
// firmware gets an iPXE loader over TFTP, chosen by the client architecture
// it sends (option 93; BIOS: undionly.kpxe, x86-64 UEFI: snponly.efi or
// ipxe.efi); iPXE itself (user class "iPXE") gets the HTTP boot script.
// The iPXE match is what ends the loop: a loaded iPXE asks DHCP again with
// the same architecture, and only the user class tells it from the firmware.
// snponly.efi drives the NIC through the firmware's own driver (SNP), so it
// works on any NIC the UEFI firmware supports; ipxe.efi brings iPXE's drivers.
std::string dnsmasq_config(const std::string& ip, const std::string& interface, uint16_t http_port,
                           const std::string& efi_loader) {
  std::string url = "http://" + ip + ":" + std::to_string(http_port) + "/boot.ipxe";
  std::string out =
      "# dnsmasq proxy-DHCP for bootfleet, made by 'bootsrv dhcp-config'.\n"
      "# Install as /etc/dnsmasq.d/bootfleet.conf and restart dnsmasq. The site's DHCP\n"
      "# server keeps giving out addresses; this only adds where to boot from.\n"
      "# bootsrv serves TFTP (--tftp-listen :69; its default root /usr/lib/ipxe holds\n"
      "# Debian's undionly.kpxe, snponly.efi and ipxe.efi) and HTTP (--http-listen :" + std::to_string(http_port) + ");\n"
      "# see docs/network-boot.md.\n"
      "port=0\n"
      "log-dhcp\n";
  if (!interface.empty()) out += "interface=" + interface + "\nbind-interfaces\n";
  out +=
      "dhcp-range=" + ip + ",proxy\n"
      "\n"
      "# iPXE announces itself with user class \"iPXE\": give it the boot script.\n"
      "dhcp-userclass=set:ipxe,iPXE\n"
      "# Firmware architecture (option 93): 0 BIOS, 7 and 9 x86-64 UEFI (RFC 4578,\n"
      "# as x86-64 firmware sends them); the UEFI loader is " + efi_loader + ".\n"
      "dhcp-match=set:bios,option:client-arch,0\n"
      "dhcp-match=set:efi64,option:client-arch,7\n"
      "dhcp-match=set:efi64,option:client-arch,9\n"
      "\n"
      "# In proxy mode PXE firmware takes the loader from the PXE menu (pxe-service);\n"
      "# dhcp-boot covers clients that read the plain boot file name.\n"
      "pxe-prompt=\"bootfleet\",0\n"
      "pxe-service=tag:!ipxe,x86PC,\"bootfleet (BIOS)\",undionly.kpxe," + ip + "\n"
      "pxe-service=tag:!ipxe,X86-64_EFI,\"bootfleet (UEFI)\"," + efi_loader + "," + ip + "\n"
      "pxe-service=tag:!ipxe,BC_EFI,\"bootfleet (UEFI)\"," + efi_loader + "," + ip + "\n"
      "pxe-service=tag:ipxe,x86PC,\"bootfleet\"," + url + "\n"
      "pxe-service=tag:ipxe,X86-64_EFI,\"bootfleet\"," + url + "\n"
      "pxe-service=tag:ipxe,BC_EFI,\"bootfleet\"," + url + "\n"
      "dhcp-boot=tag:!ipxe,tag:bios,undionly.kpxe,," + ip + "\n"
      "dhcp-boot=tag:!ipxe,tag:efi64," + efi_loader + ",," + ip + "\n"
      "dhcp-boot=tag:ipxe," + url + "\n"
      "\n"
      "# bootsrv serves TFTP itself: dnsmasq's own TFTP server stays off.\n"
      "# enable-tftp\n"
      "\n"
      "# UEFI HTTP boot (firmware that loads a URL itself) needs lines in the DHCP\n"
      "# server that gives addresses, not here: 'bootsrv dhcp-config --http-boot'.\n";
  return out;
}

// UEFI HTTP boot: the firmware asks DHCP with vendor class "HTTPClient"
// (client architecture 16 on x86-64) and wants an offer that says
// "HTTPClient" back (option 60) and names a URL as the boot file; it then
// downloads that EFI program itself, no TFTP. Proxy DHCP cannot answer it:
// dnsmasq in proxy mode answers only PXEClient requests (and the UEFI spec's
// HTTP boot takes the URL from the offer that gives the address), so these
// lines are for the dnsmasq that hands out the addresses. The URL is
// bootsrv's /loaders/ route (loaders_http.h), the TFTP root over HTTP; the
// iPXE it starts asks DHCP again with user class "iPXE" and the proxy sends
// it to the boot script, as after a PXE start.
std::string http_boot_config(const std::string& ip, uint16_t http_port, const std::string& efi_loader) {
  std::string url = "http://" + ip + ":" + std::to_string(http_port) + "/loaders/" + efi_loader;
  return "# UEFI HTTP boot for bootfleet, made by 'bootsrv dhcp-config --http-boot'.\n"
         "# For the dnsmasq that GIVES ADDRESSES on the PCs' network (HTTP boot firmware\n"
         "# takes its URL from that offer; proxy DHCP does not answer it), beside the\n"
         "# proxy configuration 'bootsrv dhcp-config' prints. Firmware sends vendor\n"
         "# class \"HTTPClient\" (client architecture 16, x86-64 UEFI HTTP) and starts\n"
         "# the EFI program at the URL; bootsrv serves its TFTP root's loaders at\n"
         "# /loaders/. See docs/network-boot.md.\n"
         "dhcp-vendorclass=set:httpboot,HTTPClient\n"
         "dhcp-match=set:efi64http,option:client-arch,16\n"
         "dhcp-option-force=tag:httpboot,tag:efi64http,60,HTTPClient\n"
         "dhcp-boot=tag:httpboot,tag:efi64http," + url + "\n";
}

}  // namespace

int dhcp_config_command(const std::vector<std::string>& args) {
  po::options_description options("Options");
  std::string ip, interface, http_port_text = "8080", efi_loader = "snponly.efi";
  options.add_options()
      ("help,h", "show this help")
      ("server-ip", po::value(&ip)->required(), "the address PCs reach bootsrv at (TFTP and HTTP), e.g. 192.168.1.5")
      ("interface", po::value(&interface), "the network interface dnsmasq answers on (default: all)")
      ("http-port", po::value(&http_port_text), "bootsrv's HTTP port, 1 to 65535 (default 8080)")
      ("efi-loader", po::value(&efi_loader), "what x86-64 UEFI PCs load over TFTP (or HTTP): snponly.efi (default; the firmware's NIC driver) or ipxe.efi (iPXE's own drivers)")
      ("http-boot", "print instead the lines for UEFI HTTP boot, for the dnsmasq that gives addresses (not the proxy): vendor class HTTPClient gets http://SERVER-IP:HTTP-PORT/loaders/EFI-LOADER");
  po::variables_map vm;
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    std::cout << "Usage: bootsrv dhcp-config --server-ip IP [--interface IF] [--http-port P] [--efi-loader F]\n"
                 "       bootsrv dhcp-config --http-boot --server-ip IP [--http-port P] [--efi-loader F]\n\n"
                 "Print a dnsmasq configuration for proxy DHCP that sends PXE firmware to\n"
                 "bootsrv's TFTP for iPXE (BIOS: undionly.kpxe; x86-64 UEFI, client\n"
                 "architecture 7 or 9: snponly.efi or ipxe.efi), and iPXE to bootsrv's boot\n"
                 "script over HTTP. With --http-boot, print instead what the DHCP server\n"
                 "that gives addresses (dnsmasq) needs for UEFI HTTP boot: firmware with\n"
                 "vendor class HTTPClient gets the EFI loader's URL on bootsrv's HTTP.\n\n"
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
  if (efi_loader != "snponly.efi" && efi_loader != "ipxe.efi") {
    std::cerr << "bootsrv dhcp-config: --efi-loader '" << efi_loader
              << "': use snponly.efi or ipxe.efi (Debian's ipxe package ships both)\n";
    return 2;
  }
  uint16_t http_port = 0;
  try {
    http_port = util::parse_port(http_port_text, "--http-port", /*allow_zero=*/false);  // PCs need the real one
  } catch (const util::Error& e) {
    std::cerr << "bootsrv dhcp-config: " << e.what() << "\n";
    return 2;
  }
  if (vm.count("http-boot")) {
    if (!interface.empty()) {
      std::cerr << "bootsrv dhcp-config: --interface is for the proxy configuration; with --http-boot the lines go "
                   "into the configuration of the DHCP server that gives addresses, which has its own\n";
      return 2;
    }
    std::cout << http_boot_config(ip, http_port, efi_loader);
    return 0;
  }
  std::cout << dnsmasq_config(ip, interface, http_port, efi_loader);
  return 0;
}


}  // namespace bootfleet::bootsrv
