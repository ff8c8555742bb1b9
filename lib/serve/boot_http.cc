#include "serve/boot_http.h"

#include <algorithm>

#include "serve/iscsi_targets.h"
#include "util/error.h"
#include "util/log.h"
#include "util/mac.h"

namespace bootfleet::serve {

using util::Error;

namespace {

http::Response ipxe(const std::string& script) {
  http::Response r;
  r.content_type = "text/plain; charset=utf-8";
  r.body = script;
  r.headers.emplace_back("Cache-Control", "no-store");  // every boot must ask again
  return r;
}

// A script for a PC that cannot boot yet: says why, waits, starts over.
// `sleep` is missing from some iPXE builds; `prompt --timeout` then waits.
std::string wait_script(const std::string& message, const std::string& base) {
  // The message goes on an iPXE command line: printable ASCII only, and no
  // '$', which iPXE would expand.
  std::string text;
  for (char c : message) {
    text += (c >= 0x20 && c < 0x7f && c != '$') ? c : '?';
  }
  return "#!ipxe\n"
         "echo bootfleet: " + text + "\n"
         "echo bootfleet: trying again in 30 seconds\n"
         "sleep 30 || prompt --timeout 30000 Press any key to try again now || echo\n"
         "chain " + base + "/boot.ipxe\n";
}

}  // namespace

void check_boot_artifacts(store::Store& store, const store::VersionInfo& v) {
  auto names = store.artifacts(v);
  for (const char* needed : {"vmlinuz", "initrd.img"}) {
    if (std::find(names.begin(), names.end(), needed) == names.end()) {
      throw Error(v.image + "@" + std::to_string(v.number) + " has no artifact '" + needed +
                  "' (a recipe keeps it with 'copy-out: {from: /boot/..., artifact: " + needed + "}')");
    }
  }
}

std::string BootHttp::initiator_name(const std::string& prefix, const std::string& client) {
  return prefix + ":initiator:" + iqn_part(client);
}

std::string BootHttp::chain_script(const std::string& base) {
  return "#!ipxe\n"
         "# bootfleet: ask the boot server what this PC boots, by its MAC address\n"
         "chain " + base + "/boot/${mac:hexhyp}.ipxe\n";
}

http::Response BootHttp::handle(const http::Request& request, const http::Connection& connection) {
  auto segments = http::split_path(request.target);
  if (!segments) return http::Response::text(400, "bad path");
  // URLs we hand out use the host the client used to reach us.
  std::string host;
  if (const std::string* h = request.header("host"); h && !h->empty()) {
    if (!http::valid_host(*h)) return http::Response::text(400, "bad Host header");
    host = *h;
    if (host.find(':', host.front() == '[' ? host.find(']') : 0) == std::string::npos) {
      host += ":" + std::to_string(connection.local_port);  // iPXE omits a default port; keep ours explicit
    }
  } else {
    host = connection.local_host + ":" + std::to_string(connection.local_port);
  }
  std::string base = "http://" + host;
  const auto& s = *segments;
  if (s.size() == 1 && s[0] == "boot.ipxe") return ipxe(chain_script(base));
  if (s.size() == 2 && s[0] == "boot") {
    // HEAD shows the script a GET would get, without starting a session.
    return boot_script(s[1], base, http::host_without_port(host), request.method == "GET");
  }
  if (s.size() == 3 && s[0] == "artifacts") return artifact(s[1], s[2]);
  return http::Response::text(404, "not found; bootsrv serves /boot.ipxe, /boot/MAC.ipxe and /artifacts/IMAGE@N/FILE");
}

http::Response BootHttp::boot_script(const std::string& file_name, const std::string& base,
                                     const std::string& nbd_host, bool start) {
  const std::string suffix = ".ipxe";
  if (file_name.size() <= suffix.size() || file_name.compare(file_name.size() - suffix.size(), suffix.size(), suffix)) {
    return http::Response::text(404, "not found; boot scripts are /boot/MAC.ipxe");
  }
  auto mac = util::parse_mac(std::string_view(file_name).substr(0, file_name.size() - suffix.size()));
  if (!mac) return http::Response::text(400, "not a MAC address: /boot/MAC.ipxe takes aa-bb-cc-dd-ee-ff");

  std::string image, name;
  std::optional<std::string> extra;
  std::optional<int64_t> pinned_version;  // else the active version
  std::optional<store::ClientInfo> client;
  store::BootMode mode = store::BootMode::kLinux;
  if (!options_.pinned) client = exports_.with_store([&](store::Store& s) { return s.find_client(*mac); });
  if (options_.pinned) {
    // Any MAC: a throwaway client of a test, never looked up or registered.
    image = options_.pinned->image;
    name = options_.pinned->client;
    pinned_version = options_.pinned->version;
    mode = options_.pinned->mode;
  } else if (client) {
    image = client->image;
    name = client->name;
    extra = client->cmdline;
  } else if (!options_.default_image.empty()) {
    image = options_.default_image;
    name = util::mac_with_hyphens(*mac);
  } else {
    util::log_line("boot " + *mac + ": unknown MAC, not booted (no default_image)");
    return ipxe(wait_script("this PC (MAC " + *mac + ") is not registered; register it with: imgtool client add " +
                                *mac + " --image IMAGE",
                            base));
  }

  // A client in a maintenance session boots its image and base version,
  // continuing its kept write cache (store/maintenance.h).
  std::optional<store::MaintenanceInfo> maintenance;
  if (client) maintenance = exports_.with_store([&](store::Store& s) { return s.maintenance_of_client(client->name); });
  if (maintenance) {
    image = maintenance->image;
    pinned_version = maintenance->base;
  }
  int64_t version = 0;
  std::string why;  // how the version was chosen (channels.h), for the log
  try {
    version = exports_.with_store([&](store::Store& s) {
      if (maintenance) {
        // The maintenance session's base, whatever channel or pin says.
        mode = client->boot_mode ? *client->boot_mode : s.image(image).boot_mode;
        why = "maintenance";
      } else if (!options_.pinned) {
        // client pin -> group pin -> group channel -> production
        store::BootResolution r = client ? s.resolve_boot(*client) : s.resolve_image(image);
        image = r.image;
        pinned_version = r.version;
        why = r.describe();
        mode = client ? s.effective_boot_mode(*client) : s.image(image).boot_mode;
      }
      store::VersionInfo v = s.version({image, pinned_version, false});
      // A sanboot disk brings its own loader; only the linux path needs the kernel beside the version.
      if (mode == store::BootMode::kLinux) check_boot_artifacts(s, v);
      return v.number;
    });
    if (mode == store::BootMode::kSanboot && options_.iscsi_port == 0) {
      throw Error("it boots by sanboot, but bootsrv serves no iSCSI (start it with --iscsi-listen, or set the "
                  "client's boot mode to linux)");
    }
    // A PC whose session still has a connection keeps it (and so its
    // version): its script names that version's kernel and initrd.
    if (start) {
      auto session = exports_.start_session(image, name, version, maintenance ? maintenance->token : "");
      version = session->pin().version;
      // A session from before the maintenance start still has its
      // connection: this boot goes on in it, not in maintenance.
      if (maintenance && session->pin().keep != maintenance->token) maintenance.reset();
    }
  } catch (const Error& e) {
    util::log_line("boot " + *mac + " (" + name + "): cannot boot: " + e.what());
    return ipxe(wait_script("cannot boot " + name + " (MAC " + *mac + "): " + e.what(), base));
  }
  std::string ref = image + "@" + std::to_string(version);
  if (start) {
    util::log_line("boot " + *mac + " as " + name + ": " + ref + ", session " + image + "/" + name + ", " +
                   store::boot_mode_name(mode) + (why.empty() ? "" : ", by " + why));
  }
  // Said on the console, and (linux path) on the kernel command line, so
  // the image can show it.
  const std::string in_maintenance =
      maintenance ? "echo bootfleet: MAINTENANCE: writes are kept across reboots until 'imgtool maintenance commit "
                    "or discard " + image + "'\n"
                  : std::string();
  if (mode == store::BootMode::kSanboot) {
    // iPXE's URI is iscsi:SERVER:PROTOCOL:PORT:LUN:TARGET; the protocol is
    // empty (TCP) and LUN 0 is the only one a target has.
    std::string target = target_name(options_.iqn_prefix, image + "/" + name);
    return ipxe("#!ipxe\n"
                "echo bootfleet: booting " + ref + " as " + name + " by sanboot\n" + in_maintenance +
                "set initiator-iqn " + initiator_name(options_.iqn_prefix, name) + "\n"
                "sanboot iscsi:" + nbd_host + "::" + std::to_string(options_.iscsi_port) + ":0:" + target +
                " || goto failed\n"
                ":failed\n"
                "echo bootfleet: the iSCSI disk " + target + " did not boot\n"
                "echo bootfleet: trying again in 30 seconds\n"
                "sleep 30 || prompt --timeout 30000 Press any key to try again now || echo\n"
                "chain " + base + "/boot.ipxe\n");
  }
  std::string cmdline = "initrd=initrd.img ip=dhcp root=/dev/nbd0p1 nbdroot=" + nbd_host + ":" +
                        std::to_string(options_.nbd_port) + "/" + image + "/" + name +
                        " rw init=/sbin/init " + options_.kernel_cmdline + " bootfleet.image=" + image +
                        " bootfleet.version=" + std::to_string(version) + " bootfleet.client=" + name +
                        (maintenance ? " bootfleet.mode=maintenance" : "");
  if (extra) cmdline += " " + *extra;
  return ipxe("#!ipxe\n"
              "echo bootfleet: booting " + ref + " as " + name + "\n" + in_maintenance +
              "kernel " + base + "/artifacts/" + ref + "/vmlinuz " + cmdline + "\n"
              "initrd " + base + "/artifacts/" + ref + "/initrd.img\n"
              "boot\n");
}

http::Response BootHttp::artifact(const std::string& version_text, const std::string& name) {
  store::VersionRef ref;
  try {
    ref = store::parse_version_ref(version_text, /*version_required=*/true);
    if (!ref.number) throw Error("a version number is needed");
  } catch (const Error&) {
    return http::Response::text(400, "artifacts are /artifacts/IMAGE@N/FILE");
  }
  std::optional<std::string> path;
  try {
    path = exports_.with_store([&](store::Store& s) -> std::optional<std::string> {
      store::VersionInfo v = s.version(ref);
      auto names = s.artifacts(v);
      if (std::find(names.begin(), names.end(), name) == names.end()) return std::nullopt;
      return s.artifact_path(v, name);
    });
  } catch (const store::NotFound&) {
    return http::Response::text(404, "no such version");
  }
  if (!path) return http::Response::text(404, "no such artifact");
  http::Response r;
  r.file = *path;
  return r;
}

}  // namespace bootfleet::serve
