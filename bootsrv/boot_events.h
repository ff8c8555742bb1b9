// What the status page and /metrics know about boots: the boot server's
// events (serve::BootEvent) turned into per-client boot stages, a ring of
// recent events, and a ring of recent error lines from the log.
//
// Design note. bootsrv sees a Linux boot only as four requests from
// different places: the chain script and the boot script over HTTP (the
// latter names the MAC), kernel and initrd over HTTP (naming only the
// version), and the root export over NBD (naming IMAGE/CLIENT, but no
// address). So a boot is followed by the HTTP peer's address from the boot
// script on, and the NBD attach is matched by its session name, which the
// boot script's MAC resolved to (the client table, else the default image
// and the MAC as name, as serve/boot_http.cc does). The stages are the
// gaps between those requests:
//   loader  a file over TFTP (the iPXE loader) -> /boot.ipxe  (iPXE starting
//           and asking DHCP again; only for PCs that PXE-boot over TFTP)
//   script  /boot.ipxe (over HTTP or TFTP) -> /boot/MAC.ipxe  (iPXE chaining)
//   kernel  boot script -> kernel request
//   initrd  kernel request -> initrd request (≈ the kernel's download)
//   root    initrd request (sanboot: the boot script) -> the block protocol
//           opening IMAGE/CLIENT (the initrd's download and the kernel's
//           start, or the SAN loader)
//   total   first request seen -> root
// TFTP and HTTP requests of one PC are matched by its address (PXE and
// iPXE both get it from DHCP, and get the same one).
// A request is seen when it is answered, not when its body has been sent:
// the download of a file falls into the stage after it. Only the first
// root attach after a boot script ends a boot; reconnects do not. State is
// bounded: the rings hold kMaxEvents, and boots in progress older than
// kBootWindow are forgotten (a PC that never attached its root).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "serve/boot_server.h"
#include "serve/exports.h"

namespace bootfleet::bootsrv {

class BootEvents {
 public:
  static constexpr size_t kMaxEvents = 200;
  static constexpr std::chrono::minutes kBootWindow{30};
  // Stage names, in order (bootfleet_boot_stage_seconds{stage}).
  static constexpr const char* kStages[] = {"loader", "script", "kernel", "initrd", "root", "total"};

  // `default_image`: what unknown MACs boot (config's), to name their sessions.
  BootEvents(serve::StoreExports& exports, std::string default_image);

  // From server threads (BootServerOptions::on_event).
  void on_event(const serve::BootEvent& event);
  // From the TFTP server: `name` was sent whole to `peer` (an address).
  // boot.ipxe is the chain script; any other file is a loader.
  void on_tftp(const std::string& name, const std::string& peer);
  // From util::set_log_observer (under the log's lock: must not log).
  void on_log_line(const std::string& line);

  // The last boot of each session that had one, keyed by session name:
  // {"mac", "started_ms", "stages": {"script": s, ...}, "complete", "last_ms"}.
  nlohmann::json boots();
  // Newest first: {"at_ms", "kind" (tftp, chain, script, kernel, initrd,
  // root), "session", "peer", "protocol", "detail"}.
  nlohmann::json recent_events();
  // Newest first: {"at_ms", "message"}.
  nlohmann::json recent_errors();
  // A boot script was served for `session` less than kBootWindow ago and
  // its root has not been attached since.
  bool booting(const std::string& session);

  // Whether a log line reports an error (cannot boot, refused, failed …).
  static bool is_error_line(const std::string& line);

 private:
  using Clock = std::chrono::system_clock;
  struct Boot {
    std::string mac, peer;
    int64_t first_ms = 0, script_ms = 0, kernel_ms = 0, initrd_ms = 0, last_ms = 0;
    std::map<std::string, double> stages;
    bool complete = false;
  };
  std::optional<std::string> session_of_mac(const std::string& mac);
  void stage(Boot& boot, const char* name, int64_t from_ms, int64_t to_ms);
  void forget_old(int64_t now_ms);

  serve::StoreExports& exports_;
  std::string default_image_;
  std::mutex mutex_;
  std::map<std::string, int64_t> loader_at_;     // peer -> when it got a loader over TFTP
  std::map<std::string, int64_t> chain_at_;      // peer -> when it fetched /boot.ipxe
  std::map<std::string, std::string> by_peer_;   // peer -> session it booted
  std::map<std::string, Boot> boots_;            // session -> its last boot
  std::deque<nlohmann::json> events_;
  std::mutex errors_mutex_;  // apart: on_log_line runs under the log's lock
  std::deque<nlohmann::json> errors_;
};

}  // namespace bootfleet::bootsrv
