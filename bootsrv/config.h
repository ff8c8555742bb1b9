// bootsrv's configuration: a YAML file (docs/bootsrv.md) overridden by
// command-line flags. Errors name the file, line and key.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace bootfleet::bootsrv {

// What one LAN peer may hold (docs/bootsrv.md, "What a LAN peer can and
// cannot do"): the `limits:` mapping of the configuration file.
struct Limits {
  size_t nbd_connections = 512;                  // NBD connections in all
  size_t nbd_per_peer = 16;                      // ... from one address
  std::chrono::seconds nbd_handshake_timeout{10};  // connect to export chosen
  size_t iscsi_connections = 512;                // iSCSI connections in all
  size_t iscsi_per_peer = 8;                     // ... from one address (a PC has 1 or 2)
  std::chrono::seconds iscsi_login_timeout{30};  // connect to the end of the login (CHAP included)
  size_t http_connections = 256;                 // HTTP and HTTPS connections in all
  size_t http_per_peer = 32;                     // ... from one address
  std::chrono::seconds http_request_timeout{10};  // connect (TLS included) to a whole request head
  size_t tftp_transfers = 64;                    // TFTP transfers in all
  size_t tftp_per_peer = 8;                      // ... to one address
  unsigned tftp_max_timeout = 5;                 // largest RFC 2349 timeout granted, seconds
  std::chrono::seconds tftp_give_up{15};         // a transfer without progress this long ends
};

struct Config {
  std::string store;                     // the store directory
  std::vector<std::string> listen;       // NBD listen addresses
  std::chrono::microseconds nbd_busy_poll{50};  // how long a busy NBD connection polls before it sleeps
  std::string cache_dir;                 // write caches; default STORE/cache
  uint64_t cache_ram = 0;                // RAM the write caches share before using cache_dir
  uint64_t cache_quota = 0;              // write cache bytes per session unless its client has its own (0: none)
  uint64_t cache_reserve = 0;            // cache disk set aside for each named session when it starts
  std::chrono::seconds idle_timeout{3600};  // named sessions without connections
  std::chrono::seconds heartbeat{30};    // lease heartbeat
  std::string tftp_listen;               // TFTP address; empty: no TFTP
  std::string tftp_root = "/usr/lib/ipxe";  // what TFTP serves (Debian's ipxe package)
  std::string http_listen;               // HTTP address (boot scripts, artifacts); empty: no HTTP
  std::vector<std::string> iscsi_listen;  // iSCSI addresses; empty: no iSCSI
  std::string iscsi_iqn_prefix = "iqn.2026-11.org.bootfleet";  // target names PREFIX:IMAGE[:CLIENT]
  std::string iscsi_chap_secrets;        // CHAP secrets file (docs/iscsi.md); empty: no CHAP
  size_t iscsi_read_workers = 4;         // threads per iSCSI connection for large and uncached reads; 0: none
  std::string default_image;             // what unknown MACs boot; empty: they are told to register
  std::string kernel_cmdline = "console=tty0 console=ttyS0 panic=-1";  // added to every Linux client's

  // The control API (docs/api.md).
  std::string api_tokens;                // token file; empty: the API is off
  std::string tls_cert, tls_key;         // PEM files; both or neither
  std::string https_listen;              // HTTPS address (needs tls_cert and tls_key); empty: none
  bool api_plain_http = false;           // allow the API over plain HTTP from peers other than loopback
  std::string upload_dir;                // uploads in progress; default CACHE_DIR/uploads
  std::chrono::seconds upload_ttl{3600};  // an upload untouched this long is removed
  size_t max_uploads = 4;                // uploads open at once
  // The status page and /metrics (docs/status.md): read-only tokens, same
  // file format as api_tokens; empty: only loopback and API tokens see them.
  std::string status_tokens;
  Limits limits;
};

// Reads `path` into `config`: only keys present in the file change it.
// Throws util::Error "FILE:LINE:COL: key 'x': …" on a bad value or an
// unknown key, and "FILE: key 'x': …" when keys that go together do not
// (tls_cert without tls_key, https_listen without both).
void load_config_file(const std::string& path, Config& config);

// "90", "90s", "15m", "2h", "1d" -> seconds; throws naming `what`.
std::chrono::seconds parse_duration(const std::string& text, const std::string& what);

}  // namespace bootfleet::bootsrv
