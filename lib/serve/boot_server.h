// The boot server proper: NBD and iSCSI (export names over the store's
// sessions) and HTTP (iPXE scripts, kernels, initrds) on one store, started
// and stopped as one thing. bootsrv runs one for the whole site; imgtool boot-test runs a
// private one on loopback ports the kernel picks, in-process, for one test.
//
// Design note. HTTP is bound after NBD because boot scripts name the NBD
// port (the first TCP NBD address's). What a boot does is reported as
// BootEvents (script served, kernel and initrd fetched, root attached) from
// the server threads: boot-test turns them into progress lines without
// parsing logs. Housekeeping (lease heartbeats, idle sessions) runs on its
// own thread while the server does.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http/server.h"
#include "iscsi/server.h"
#include "nbd/server.h"
#include "serve/boot_http.h"
#include "serve/exports.h"
#include "serve/iscsi_targets.h"

namespace bootfleet::serve {

struct BootEvent {
  enum class Kind {
    kChainScript,   // GET /boot.ipxe: iPXE is up and asks what to boot
    kBootScript,    // GET /boot/MAC.ipxe answered: a session started
    kKernel,        // GET of the version's vmlinuz
    kInitrd,        // GET of the version's initrd.img
    kRootAttached,  // an NBD client opened a client session's export
  };
  Kind kind;
  std::string detail;  // the URL path, or the export name
  std::string peer;      // HTTP events: the client's address ("10.0.2.15")
  std::string protocol;  // kRootAttached: "nbd" or "iscsi"
};

struct BootServerOptions {
  std::vector<std::string> nbd_listen{"127.0.0.1:0"};  // see nbd::Server::listen
  std::chrono::microseconds nbd_busy_poll{50};         // NBD and iSCSI readers (util/socket_reader.h)
  std::vector<std::string> iscsi_listen;               // empty: no iSCSI (see iscsi::Server::listen)
  std::string iscsi_prefix = kDefaultIqnPrefix;        // target names (serve/iscsi_targets.h)
  std::shared_ptr<const iscsi::ChapSecrets> iscsi_chap;  // null: no CHAP
  size_t iscsi_read_workers = 4;                       // see iscsi::ConnectionOptions
  util::PeerLimits::Options nbd_limits = nbd::Server::default_limits();  // see nbd::Server
  util::PeerLimits::Options iscsi_limits = iscsi::Server::default_limits();  // see iscsi::Server
  size_t http_max_connections = 256, http_per_peer = 32;  // see http::ServerOptions
  std::chrono::seconds http_request_timeout{10};
  std::string http_listen = "127.0.0.1:0";             // empty: no HTTP
  std::string https_listen;                            // empty: no HTTPS
  std::shared_ptr<const http::TlsContext> tls;         // the certificate for https_listen
  // Routes answered before the boot routes, on both listeners (bootsrv's
  // control API): a response, or nullopt to fall through to the boot
  // routes. Only these may take request bodies (up to max_body_bytes).
  std::function<std::optional<http::Response>(const http::Request&, const http::Connection&, http::Body&)>
      extra_routes;
  uint64_t max_body_bytes = 0;
  std::function<void()> on_housekeeping;  // also run on the housekeeping thread
  block::SessionManager::Options sessions;
  BootOptions boot;  // its nbd_port and iscsi_port are set to the first TCP ports, iqn_prefix to iscsi_prefix
  std::chrono::seconds housekeeping_interval{10};
  // Called on server threads, any time between start() and stop().
  std::function<void(const BootEvent&)> on_event;
};

class BootServer {
 public:
  BootServer(store::Store& store, BootServerOptions options);
  ~BootServer();  // stop()
  BootServer(const BootServer&) = delete;
  BootServer& operator=(const BootServer&) = delete;

  // Binds every listener and starts serving. Throws util::Error naming a
  // bad address, or when HTTP is asked for without a TCP NBD address.
  void start();
  // Stops HTTP, then NBD (each finishes what is in flight), then
  // housekeeping. Sessions stay until the server is destroyed.
  void stop();

  // The port bound for each of nbd_listen (0 for a unix socket).
  const std::vector<uint16_t>& nbd_ports() const { return nbd_ports_; }
  uint16_t nbd_port() const { return options_.boot.nbd_port; }  // what boot scripts name
  // The port bound for each of iscsi_listen.
  const std::vector<uint16_t>& iscsi_ports() const { return iscsi_ports_; }
  uint16_t http_port() const { return http_port_; }
  uint16_t https_port() const { return https_port_; }
  StoreExports& exports() { return *exports_; }
  // Null unless iscsi_listen was given.
  IscsiTargets* iscsi_targets() { return iscsi_targets_.get(); }
  void set_housekeeping_interval(std::chrono::seconds interval) { housekeeping_seconds_ = interval.count(); }

 private:
  class Resolver;
  http::Response handle(const http::Request& request, const http::Connection& connection, http::Body& body);
  void event(BootEvent::Kind kind, const std::string& detail, const std::string& peer,
             const std::string& protocol = "");

  BootServerOptions options_;
  std::unique_ptr<StoreExports> exports_;
  std::unique_ptr<Resolver> resolver_, iscsi_resolver_;  // NBD's and iSCSI's (each counts under its protocol)
  std::unique_ptr<nbd::Server> nbd_;
  std::unique_ptr<IscsiTargets> iscsi_targets_;
  std::unique_ptr<iscsi::Server> iscsi_;
  std::vector<uint16_t> iscsi_ports_;
  std::unique_ptr<BootHttp> boot_http_;
  std::unique_ptr<http::Server> http_;
  std::vector<uint16_t> nbd_ports_;
  uint16_t http_port_ = 0, https_port_ = 0;
  std::atomic<int64_t> housekeeping_seconds_;
  std::atomic<bool> stopping_{false};
  std::thread housekeeping_;
  bool started_ = false, stopped_ = false;
};

}  // namespace bootfleet::serve
