// bootsrv's configuration: a YAML file (docs/bootsrv.md) overridden by
// command-line flags. Errors name the file, line and key.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace bootfleet::bootsrv {

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
};

// Reads `path` into `config`: only keys present in the file change it.
// Throws util::Error "FILE:LINE:COL: key 'x': …" on a bad value or an
// unknown key, and "FILE: key 'x': …" when keys that go together do not
// (tls_cert without tls_key, https_listen without both).
void load_config_file(const std::string& path, Config& config);

// "90", "90s", "15m", "2h", "1d" -> seconds; throws naming `what`.
std::chrono::seconds parse_duration(const std::string& text, const std::string& what);

}  // namespace bootfleet::bootsrv
