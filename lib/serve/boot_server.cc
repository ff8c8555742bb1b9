#include "serve/boot_server.h"

#include "serve/metered_device.h"
#include "util/error.h"

namespace bootfleet::serve {

// StoreExports as one block protocol sees it, telling the events when a
// client session's export is opened (the kernel attaching its root), and
// counting what each export's clients read and write (metered_device.h).
class BootServer::Resolver : public nbd::ExportResolver {
 public:
  Resolver(BootServer& server, std::string protocol) : server_(server), protocol_(std::move(protocol)) {
    register_protocol_metrics(protocol_);
  }
  nbd::OpenedExport open(const std::string& name) override {
    nbd::OpenedExport opened;
    try {
      opened = server_.exports().open(name);
    } catch (const util::Error&) {
      protocol_errors(protocol_).add();
      throw;
    }
    opened.device = std::make_shared<MeteredDevice>(std::move(opened.device), name, protocol_);
    if (name.find('/') != std::string::npos) server_.event(BootEvent::Kind::kRootAttached, name, "", protocol_);
    return opened;
  }
  nbd::OpenedExport describe(const std::string& name) override { return server_.exports().describe(name); }
  std::vector<std::pair<std::string, std::string>> list() override { return server_.exports().list(); }

 private:
  BootServer& server_;
  std::string protocol_;  // the metrics' protocol label
};

BootServer::BootServer(store::Store& store, BootServerOptions options)
    : options_(std::move(options)), housekeeping_seconds_(options_.housekeeping_interval.count()) {
  exports_ = std::make_unique<StoreExports>(store, options_.sessions);
  resolver_ = std::make_unique<Resolver>(*this, "nbd");
  iscsi_resolver_ = std::make_unique<Resolver>(*this, "iscsi");
}

BootServer::~BootServer() {
  stop();
  // Sessions end (and release their leases) before the store can go away.
  http_.reset();
  iscsi_.reset();
  nbd_.reset();
  exports_.reset();
}

void BootServer::event(BootEvent::Kind kind, const std::string& detail, const std::string& peer,
                       const std::string& protocol) {
  if (options_.on_event) options_.on_event({kind, detail, peer, protocol});
}

http::Response BootServer::handle(const http::Request& request, const http::Connection& connection,
                                  http::Body& body) {
  if (options_.extra_routes) {
    if (auto answer = options_.extra_routes(request, connection, body)) return std::move(*answer);
  }
  if (request.method != "GET" && request.method != "HEAD") {
    http::Response no = http::Response::text(405, "only GET and HEAD are served here");
    no.headers.emplace_back("Allow", "GET, HEAD");
    return no;
  }
  if (body.length() > 0) return http::Response::text(413, "request bodies are not accepted here");
  if (!boot_http_) return http::Response::text(404, "not found; this server has no NBD address to boot from");
  http::Response r = boot_http_->handle(request, connection);
  if (request.method != "GET" || r.status != 200) return r;
  auto segments = http::split_path(request.target);
  if (!segments) return r;
  const auto& s = *segments;
  if (s.size() == 1 && s[0] == "boot.ipxe") event(BootEvent::Kind::kChainScript, request.target, connection.peer_host);
  if (s.size() == 2 && s[0] == "boot") event(BootEvent::Kind::kBootScript, request.target, connection.peer_host);
  if (s.size() == 3 && s[0] == "artifacts" && s[2] == "vmlinuz") event(BootEvent::Kind::kKernel, request.target, connection.peer_host);
  if (s.size() == 3 && s[0] == "artifacts" && s[2] == "initrd.img") event(BootEvent::Kind::kInitrd, request.target, connection.peer_host);
  return r;
}

void BootServer::start() {
  if (started_) throw util::Error("the boot server was already started");
  exports_->reopen_sessions();  // before any listener: a client reconnects to its own disk
  started_ = true;
  nbd::ConnectionOptions connection_options;
  connection_options.busy_poll = options_.nbd_busy_poll;
  nbd_ = std::make_unique<nbd::Server>(*resolver_, connection_options, options_.nbd_limits);
  for (const auto& address : options_.nbd_listen) {
    uint16_t port = nbd_->listen(address);
    nbd_ports_.push_back(port);
  }
  nbd_->start();
  if (!options_.iscsi_listen.empty()) {
    iscsi_targets_ = std::make_unique<IscsiTargets>(*exports_, *iscsi_resolver_, options_.iscsi_prefix);
    iscsi_targets_->set_chap(options_.iscsi_chap);
    iscsi::ConnectionOptions iscsi_options;
    iscsi_options.login_timeout = std::chrono::duration_cast<std::chrono::seconds>(options_.iscsi_limits.handshake);
    iscsi_options.busy_poll = options_.nbd_busy_poll;
    iscsi_options.read_workers = options_.iscsi_read_workers;
    iscsi_ = std::make_unique<iscsi::Server>(*iscsi_targets_, iscsi_options, options_.iscsi_limits);
    for (const auto& address : options_.iscsi_listen) iscsi_ports_.push_back(iscsi_->listen(address));
    iscsi_->start();
  }
  uint16_t first_tcp = 0;  // the port boot scripts send clients to
  for (uint16_t p : nbd_ports_) {
    if (p && !first_tcp) first_tcp = p;
  }
  options_.boot.nbd_port = first_tcp;
  // Sanboot scripts send clients to the first iSCSI port on TCP, by the
  // same host name they reached HTTP by.
  options_.boot.iscsi_port = 0;
  for (uint16_t p : iscsi_ports_) {
    if (p && !options_.boot.iscsi_port) options_.boot.iscsi_port = p;
  }
  options_.boot.iqn_prefix = options_.iscsi_prefix;
  if (!options_.http_listen.empty() && !first_tcp) {
    throw util::Error("--http-listen needs an NBD listen address on TCP for the clients' root disks");
  }
  if (!options_.https_listen.empty() && !options_.tls) {
    throw util::Error("https_listen needs a certificate and key (tls_cert, tls_key)");
  }
  if (!options_.http_listen.empty() || !options_.https_listen.empty()) {
    if (first_tcp) boot_http_ = std::make_unique<BootHttp>(*exports_, options_.boot);
    http::ServerOptions http_options;
    http_options.max_connections = options_.http_max_connections;
    http_options.max_connections_per_peer = options_.http_per_peer;
    http_options.request_timeout = options_.http_request_timeout;
    if (options_.extra_routes) {
      http_options.methods = {"GET", "HEAD", "POST", "PUT", "DELETE"};
      http_options.max_body_bytes = options_.max_body_bytes;
    }
    http_ = std::make_unique<http::Server>(
        [this](const http::Request& r, const http::Connection& c, http::Body& b) { return handle(r, c, b); },
        http_options);
    if (!options_.http_listen.empty()) http_port_ = http_->listen(options_.http_listen);
    if (!options_.https_listen.empty()) https_port_ = http_->listen_tls(options_.https_listen, options_.tls);
    http_->start();
  }
  housekeeping_ = std::thread([this] {
    auto next = std::chrono::steady_clock::now();
    while (!stopping_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (std::chrono::steady_clock::now() < next) continue;
      exports_->housekeeping();
      if (options_.on_housekeeping) options_.on_housekeeping();
      next = std::chrono::steady_clock::now() + std::chrono::seconds(housekeeping_seconds_.load());
    }
  });
}

void BootServer::stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  if (http_) {
    http_->stop();
    http_->wait();
  }
  if (iscsi_) iscsi_->stop();
  nbd_->stop();
  if (iscsi_) iscsi_->wait();
  nbd_->wait();
  stopping_ = true;
  if (housekeeping_.joinable()) housekeeping_.join();
}

}  // namespace bootfleet::serve
