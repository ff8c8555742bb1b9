// bootsrv serve: the boot server's main loop. Listeners (NBD, HTTP, HTTPS,
// TFTP), housekeeping, and signals: SIGTERM/SIGINT stop, SIGHUP reloads.
// HTTP and HTTPS are one http::Server: /healthz and /api/ go to the control
// API (api.h), everything else to the boot side (GET and HEAD only, no
// bodies), which needs an NBD port to send clients to.
//
// Under systemd (Type=notify, packaging/bootsrv.service) it says READY=1
// once every listener is bound, RELOADING=1/READY=1 around a SIGHUP reload
// and STOPPING=1 on the way out. WATCHDOG=1 goes out at half of
// WATCHDOG_USEC, but only while the housekeeping thread (lease heartbeats,
// session expiry: the store and the session table) has run recently, so a
// wedged catalog or session lock gets bootsrv restarted, not just a hung
// main thread.
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>

#include "api.h"
#include "boot_events.h"
#include "commands.h"
#include "config.h"
#include "loaders_http.h"
#include "status_page.h"
#include "http/server.h"
#include "serve/boot_http.h"
#include "serve/boot_server.h"
#include "serve/iscsi_targets.h"
#include "iscsi/chap.h"
#include "store/store.h"
#include "tftp/server.h"
#include "util/error.h"
#include "util/log.h"
#include "util/net.h"
#include "util/sd_notify.h"
#include "util/size.h"
#include "util/version.h"

namespace po = boost::program_options;

namespace bootfleet::bootsrv {

int serve_command(const std::vector<std::string>& args) {
  po::options_description options("Options");
  std::string cache_quota, cache_reserve;
  std::string config_file, store_dir, cache_dir, idle, cache_ram, tftp_listen, tftp_root, http_listen, default_image;
  std::vector<std::string> listen, iscsi_listen;
  options.add_options()
      ("help,h", "show this help")
      ("store", po::value(&store_dir), "the store (default: config, $BOOTFLEET_STORE, /var/lib/bootfleet)")
      ("config,c", po::value(&config_file), "a YAML configuration file (see bootsrv.yaml(5); its limits: mapping sets what one peer may hold)")
      ("listen,l", po::value(&listen)->composing(), "NBD address: 127.0.0.1:10809, [::1]:10809, :10809, unix:PATH (repeatable; default 127.0.0.1:10809)")
      ("cache-dir", po::value(&cache_dir), "directory for write caches (default STORE/cache; put it on a fast local disk)")
      ("cache-ram", po::value(&cache_ram), "RAM all write caches share before spilling to --cache-dir, e.g. 512M (default 0)")
      ("cache-quota", po::value(&cache_quota), "write cache per session, e.g. 20G (default 0: none); a client's own quota wins")
      ("cache-reserve", po::value(&cache_reserve), "cache disk set aside for each named session at its start, e.g. 1G (default 0)")
      ("idle-timeout", po::value(&idle), "end a named session this long after its last connection closed (default 1h)")
      ("iscsi-listen", po::value(&iscsi_listen)->composing(), "serve iSCSI on this address: :3260, 127.0.0.1:3260 (repeatable; default: no iSCSI)")
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
    Config c;
    c.store = store::Store::default_dir();
    if (!config_file.empty()) load_config_file(config_file, c);
    if (!store_dir.empty()) c.store = store_dir;
    for (const auto& a : listen) {
      if (a.rfind("unix:", 0) != 0) util::parse_listen_address(a, "--listen");
    }
    if (!tftp_listen.empty()) util::parse_listen_address(tftp_listen, "--tftp-listen");
    if (!http_listen.empty()) util::parse_listen_address(http_listen, "--http-listen");
    for (const auto& a : iscsi_listen) util::parse_listen_address(a, "--iscsi-listen");
    if (!listen.empty()) c.listen = listen;
    if (c.listen.empty()) c.listen = {"127.0.0.1:10809"};
    if (!cache_dir.empty()) c.cache_dir = cache_dir;
    if (c.cache_dir.empty()) c.cache_dir = c.store + "/cache";
    if (!cache_ram.empty()) c.cache_ram = util::parse_size(cache_ram, "--cache-ram");
    if (!cache_quota.empty()) c.cache_quota = util::parse_size(cache_quota, "--cache-quota");
    if (!cache_reserve.empty()) c.cache_reserve = util::parse_size(cache_reserve, "--cache-reserve");
    if (!idle.empty()) c.idle_timeout = parse_duration(idle, "--idle-timeout");
    if (!iscsi_listen.empty()) c.iscsi_listen = iscsi_listen;
    if (!c.iscsi_listen.empty()) serve::validate_iqn_prefix(c.iscsi_iqn_prefix, config_file.empty() ? "iscsi.iqn_prefix" : config_file + ": iscsi.iqn_prefix");
    if (!tftp_listen.empty()) c.tftp_listen = tftp_listen;
    if (!tftp_root.empty()) c.tftp_root = tftp_root;
    if (!http_listen.empty()) c.http_listen = http_listen;
    if (!default_image.empty()) c.default_image = default_image;
    if (!c.default_image.empty()) store::validate_image_name(c.default_image);
    return c;
  };
  Config config = build_config();

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
  if (!config.api_tokens.empty() && config.http_listen.empty() && config.https_listen.empty()) {
    throw util::Error("api_tokens: the control API is served on http_listen or https_listen; set one");
  }
  if (!config.tls_cert.empty() && config.https_listen.empty()) {
    throw util::Error("tls_cert and tls_key are used by https_listen; set it (e.g. https_listen: :8443)");
  }
  std::unique_ptr<Api> api;  // made once the server's exports exist, before it starts
  std::unique_ptr<BootEvents> boot_events;   // the same (the status page and /metrics)
  std::unique_ptr<StatusPage> status;
  serve::StoreExports* exports_for_schedules = nullptr;  // set with the server, before it starts
  serve::BootServerOptions server_options;
  server_options.nbd_listen = config.listen;
  server_options.nbd_busy_poll = config.nbd_busy_poll;
  server_options.iscsi_listen = config.iscsi_listen;
  server_options.iscsi_prefix = config.iscsi_iqn_prefix;
  server_options.iscsi_read_workers = config.iscsi_read_workers;
  if (!config.iscsi_chap_secrets.empty()) {
    server_options.iscsi_chap = std::make_shared<iscsi::ChapSecrets>(iscsi::ChapSecrets::load(config.iscsi_chap_secrets));
  }
  const Limits& limits = config.limits;
  server_options.nbd_limits = {limits.nbd_per_peer, limits.nbd_connections,
                               std::chrono::duration_cast<std::chrono::milliseconds>(limits.nbd_handshake_timeout), "NBD"};
  server_options.iscsi_limits = {limits.iscsi_per_peer, limits.iscsi_connections,
                                 std::chrono::duration_cast<std::chrono::milliseconds>(limits.iscsi_login_timeout), "iSCSI"};
  server_options.http_max_connections = limits.http_connections;
  server_options.http_per_peer = limits.http_per_peer;
  server_options.http_request_timeout = limits.http_request_timeout;
  server_options.http_listen = config.http_listen;
  server_options.https_listen = config.https_listen;
  if (!config.https_listen.empty()) {
    server_options.tls = std::make_shared<http::TlsContext>(config.tls_cert, config.tls_key);
  }
  server_options.sessions.cache_dir = config.cache_dir;
  server_options.sessions.idle_timeout = config.idle_timeout;
  server_options.sessions.cache_ram = config.cache_ram;
  server_options.sessions.reserve = config.cache_reserve;
  server_options.sessions.quota_default = config.cache_quota;
  server_options.boot.default_image = config.default_image;
  server_options.boot.kernel_cmdline = config.kernel_cmdline;
  server_options.housekeeping_interval = std::min(config.heartbeat, std::chrono::seconds(10));
  // The TFTP root's loaders over HTTP too, for UEFI HTTP boot (loaders_http.h),
  // whenever that directory exists; without TFTP a missing one is no error.
  std::unique_ptr<LoaderRoute> loaders;
  try {
    loaders = std::make_unique<LoaderRoute>(config.tftp_root);
  } catch (const util::Error&) {
    if (!config.tftp_listen.empty()) throw;
  }
  server_options.extra_routes = [&api, &status, &loaders](const http::Request& r, const http::Connection& c,
                                       http::Body& body) -> std::optional<http::Response> {
    if (loaders && LoaderRoute::owns(r.target)) return loaders->handle(r);
    if (api && Api::owns(r.target)) return api->handle(r, c, body);
    if (status && StatusPage::owns(r.target)) return status->handle(r, c);
    return std::nullopt;
  };
  server_options.max_body_bytes = uint64_t{4} << 40;  // uploads; each API route sets its own limit
  std::atomic<int64_t> housekeeping_done{std::chrono::steady_clock::now().time_since_epoch().count()};
  server_options.on_housekeeping = [&api, &housekeeping_done, &server_exports = exports_for_schedules] {
    if (api) api->housekeeping();
    if (server_exports) apply_due_schedules(*server_exports);
    housekeeping_done = std::chrono::steady_clock::now().time_since_epoch().count();
  };
  server_options.on_event = [&boot_events](const serve::BootEvent& e) {
    if (boot_events) boot_events->on_event(e);
  };
  serve::BootServer server(*s, server_options);
  exports_for_schedules = &server.exports();
  apply_due_schedules(server.exports());  // what fell due while no bootsrv ran
  ApiOptions api_options;
  api_options.tokens_file = config.api_tokens;
  api_options.plain_http = config.api_plain_http;
  api_options.version = util::version();
  api_options.uploads = {config.upload_dir.empty() ? config.cache_dir + "/uploads" : config.upload_dir, config.store,
                         config.upload_ttl, config.max_uploads};
  api = std::make_unique<Api>(server.exports(), api_options);
  boot_events = std::make_unique<BootEvents>(server.exports(), config.default_image);
  util::set_log_observer([events = boot_events.get()](const std::string& line) { events->on_log_line(line); });
  StatusOptions status_options;
  status_options.api_tokens_file = config.api_tokens;
  status_options.status_tokens_file = config.status_tokens;
  status_options.plain_http = config.api_plain_http;
  status_options.version = BOOTFLEET_VERSION;
  status_options.store_dir = config.store;
  status_options.cache_dir = config.cache_dir;
  status = std::make_unique<StatusPage>(server.exports(), *boot_events, status_options);
  server.start();
  const bool http = !config.http_listen.empty();
  const uint16_t http_port = server.http_port();
  // TFTP starts after NBD and HTTP (boot.ipxe names the HTTP port).
  std::unique_ptr<tftp::Server> tftp_server;
  uint16_t tftp_port = 0;
  if (!config.tftp_listen.empty()) {
    tftp::ServerOptions tftp_options;
    tftp_options.listen = config.tftp_listen;
    tftp_options.root = config.tftp_root;
    tftp_options.max_transfers = config.limits.tftp_transfers;
    tftp_options.max_per_peer = config.limits.tftp_per_peer;
    tftp_options.limits.max_timeout = static_cast<uint8_t>(config.limits.tftp_max_timeout);
    tftp_options.give_up = config.limits.tftp_give_up;
    if (http) {
      // boot.ipxe over TFTP hands over to HTTP: to the HTTP address when it
      // is a specific one, else to the server the PC got its loader from.
      std::string host = http::host_without_port(config.http_listen);
      if (host.empty() || host == "0.0.0.0" || host == "[::]") host = "${next-server}";
      std::string script = serve::BootHttp::chain_script("http://" + host + ":" + std::to_string(http_port));
      tftp_options.virtual_files = [script](const std::string& name) -> std::optional<std::string> {
        if (name == "boot.ipxe") return script;
        return std::nullopt;
      };
    }
    tftp_options.on_served = [events = boot_events.get()](const std::string& name, const std::string& peer) {
      events->on_tftp(name, peer);
    };
    tftp_server = std::make_unique<tftp::Server>(tftp_options);
    tftp_port = tftp_server->start();
  }
  // Every listener is bound before the first "listening" line, so a
  // failing one (a TFTP root that does not exist, a port in use) stops
  // bootsrv before anything says it is serving.
  for (size_t i = 0; i < config.listen.size(); ++i) {
    uint16_t port = server.nbd_ports()[i];
    util::log_line("listening for NBD on " + config.listen[i] + (port ? " (port " + std::to_string(port) + ")" : ""));
  }
  for (size_t i = 0; i < config.iscsi_listen.size(); ++i) {
    util::log_line("listening for iSCSI on " + config.iscsi_listen[i] + " (port " + std::to_string(server.iscsi_ports()[i]) +
                   "): targets " + config.iscsi_iqn_prefix + ":IMAGE[:CLIENT]" +
                   (config.iscsi_chap_secrets.empty() ? "" : ", CHAP secrets from " + config.iscsi_chap_secrets));
  }
  if (http) {
    util::log_line("listening for HTTP on " + config.http_listen + " (port " + std::to_string(http_port) +
                   "): boot scripts, kernels" +
                   (config.default_image.empty() ? "" : "; unknown MACs boot " + config.default_image) +
                   (config.api_tokens.empty() ? "" : "; the control API") + "; the status page /status, /metrics");
  }
  if (!config.https_listen.empty()) {
    util::log_line("listening for HTTPS on " + config.https_listen + " (port " + std::to_string(server.https_port()) +
                   ")" + (config.api_tokens.empty() ? "" : ": the control API"));
  }
  if (tftp_server) {
    util::log_line("listening for TFTP on " + config.tftp_listen + " (port " + std::to_string(tftp_port) +
                   "), serving " + config.tftp_root + " read-only");
  }
  util::log_line("serving store " + config.store + ", write caches in " + config.cache_dir +
                 (config.cache_ram ? " after " + util::format_size(config.cache_ram) + " of RAM" : ""));

  const util::SdNotifier systemd = util::SdNotifier::from_environment();
  bool systemd_failed = false;  // say it once, not at every watchdog ping
  auto tell_systemd = [&](const std::string& state) {
    auto error = systemd.notify(state);
    if (error && !systemd_failed) util::log_line("systemd notification failed: " + *error);
    systemd_failed = systemd_failed || error.has_value();
  };
  tell_systemd("READY=1\nSTATUS=serving store " + config.store);
  const auto watchdog = systemd.watchdog_interval();
  if (watchdog.count() > 0) {
    util::log_line("systemd watchdog: WATCHDOG=1 every " + std::to_string(watchdog.count() / 2000) + " ms");
  }
  bool watchdog_withheld = false;

  while (true) {
    int sig = 0;
    if (watchdog.count() > 0) {
      const auto half = watchdog / 2;
      timespec wait{static_cast<time_t>(half.count() / 1000000), static_cast<long>(half.count() % 1000000 * 1000)};
      sig = sigtimedwait(&signals, nullptr, &wait);
      if (sig < 0) {
        if (errno != EAGAIN) continue;  // EINTR
        // Three housekeeping rounds missed: something holds the store or
        // the session table; let systemd's watchdog restart us.
        auto since = std::chrono::steady_clock::now() -
                     std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(housekeeping_done.load()));
        auto allowed = 3 * std::min(config.heartbeat, std::chrono::seconds(10)) + std::chrono::seconds(1);
        if (since <= allowed) {
          tell_systemd("WATCHDOG=1");
          watchdog_withheld = false;
        } else if (!watchdog_withheld) {
          watchdog_withheld = true;
          util::log_line("systemd watchdog: housekeeping has not run for " +
                         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(since).count()) +
                         " s; not sending WATCHDOG=1 until it does");
        }
        continue;
      }
    } else {
      sigwait(&signals, &sig);
    }
    if (sig == SIGHUP) {
      if (config_file.empty()) {
        util::log_line("SIGHUP: nothing to reload (bootsrv was started without --config); nothing changed");
        continue;
      }
      tell_systemd("RELOADING=1");
      try {
        Config fresh = build_config();
        server.exports().sessions().set_idle_timeout(fresh.idle_timeout);
        if (api) api->reload_tokens();
        if (status) status->reload_tokens();
        if (server.iscsi_targets() && !fresh.iscsi_chap_secrets.empty()) {
          server.iscsi_targets()->set_chap(
              std::make_shared<iscsi::ChapSecrets>(iscsi::ChapSecrets::load(fresh.iscsi_chap_secrets)));
        }
        config.idle_timeout = fresh.idle_timeout;
        config.heartbeat = fresh.heartbeat;
        server.set_housekeeping_interval(std::min(config.heartbeat, std::chrono::seconds(10)));
        util::log_line("configuration reloaded, API tokens and iSCSI CHAP secrets re-read (listen addresses, TFTP, HTTP, TLS, default image, kernel command line, store, cache, upload settings and limits change only on restart)");
      } catch (const util::Error& e) {
        util::log_line(std::string("configuration not reloaded: ") + e.what());
      }
      tell_systemd("READY=1");
      continue;
    }
    util::log_line(std::string("stopping on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
                   ": finishing requests in flight");
    tell_systemd("STOPPING=1");
    break;
  }
  if (tftp_server) tftp_server->stop();
  server.stop();
  util::set_log_observer(nullptr);
  util::log_line("stopped");
  return 0;
}

}  // namespace bootfleet::bootsrv
