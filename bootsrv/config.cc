#include "config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <iterator>
#include <functional>
#include <map>

#include "util/error.h"
#include "util/net.h"
#include "util/size.h"
#include "util/text.h"

namespace bootfleet::bootsrv {

using util::Error;

namespace {

// Top-level keys, for "did you mean" and the list in the message. A key
// added to load_config_file goes here too.
const std::vector<std::string> kKnownKeys = {
    "store",        "listen",      "nbd_busy_poll_us", "cache_dir", "cache_ram",      "cache_quota", "cache_reserve", "idle_timeout",
    "heartbeat",    "tftp",        "tftp.listen",      "tftp.root", "http",           "http.listen",
    "default_image", "kernel_cmdline", "api_tokens",   "tls_cert",  "tls_key",        "https_listen",
    "api_plain_http", "upload_dir", "upload_ttl",      "max_uploads", "limits", "iscsi", "iscsi.listen", "iscsi.iqn_prefix",
    "iscsi.chap_secrets", "iscsi.read_workers", "status_tokens"};

std::string known_keys_text() {
  std::string out;
  for (const auto& k : kKnownKeys) {
    if (k.find('.') != std::string::npos) continue;  // the dotted spellings are listed under tftp, http and iscsi
    out += (out.empty() ? "" : ", ") + k;
  }
  return out;
}

}  // namespace

std::chrono::seconds parse_duration(const std::string& text, const std::string& what) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit = text.substr(i);
  if (i == 0 || i > 9) throw Error(what + ": '" + text + "' is not a duration; use e.g. 90, 90s, 15m, 2h or 1d");
  long long n = std::stoll(text.substr(0, i));
  if (unit.empty() || unit == "s") return std::chrono::seconds(n);
  if (unit == "m") return std::chrono::seconds(n * 60);
  if (unit == "h") return std::chrono::seconds(n * 3600);
  if (unit == "d") return std::chrono::seconds(n * 86400);
  throw Error(what + ": '" + text + "' has an unknown unit '" + unit + "'; use s, m, h or d");
}

namespace {

// The `limits:` mapping; errors name the file, line and key, and the range.
void load_limits(const YAML::Node& v, Limits& limits,
                 const std::function<std::string(const YAML::Node&, const std::string&)>& where) {
  if (!v.IsMap()) throw Error(where(v, "limits") + ": expected a mapping, e.g. limits: {nbd_per_peer: 16}");
  for (const auto& sub : v) {
    const std::string name = sub.first.as<std::string>();
    const std::string at = where(sub.second, "limits." + name);
    auto count = [&](size_t& out, long long most) {
      long long n = 0;
      if (!YAML::convert<long long>::decode(sub.second, n) || n < 1 || n > most) {
        throw Error(at + ": expected a number from 1 to " + std::to_string(most));
      }
      out = static_cast<size_t>(n);
    };
    auto seconds = [&](std::chrono::seconds& out, long long most) {
      out = parse_duration(sub.second.as<std::string>(), at);
      if (out.count() < 1 || out.count() > most) {
        throw Error(at + ": expected 1s to " + std::to_string(most) + "s");
      }
    };
    if (name == "nbd_connections") count(limits.nbd_connections, 100000);
    else if (name == "nbd_per_peer") count(limits.nbd_per_peer, 100000);
    else if (name == "nbd_handshake_timeout") seconds(limits.nbd_handshake_timeout, 3600);
    else if (name == "iscsi_connections") count(limits.iscsi_connections, 100000);
    else if (name == "iscsi_per_peer") count(limits.iscsi_per_peer, 100000);
    else if (name == "iscsi_login_timeout") seconds(limits.iscsi_login_timeout, 3600);
    else if (name == "http_connections") count(limits.http_connections, 100000);
    else if (name == "http_per_peer") count(limits.http_per_peer, 100000);
    else if (name == "http_request_timeout") seconds(limits.http_request_timeout, 3600);
    else if (name == "tftp_transfers") count(limits.tftp_transfers, 10000);
    else if (name == "tftp_per_peer") count(limits.tftp_per_peer, 10000);
    else if (name == "tftp_give_up") seconds(limits.tftp_give_up, 3600);
    else if (name == "tftp_max_timeout") {
      size_t n = 0;
      count(n, 255);
      limits.tftp_max_timeout = static_cast<unsigned>(n);
    } else {
      throw Error(where(sub.first, "limits." + name) +
                  ": unknown; known keys are nbd_connections, nbd_per_peer, nbd_handshake_timeout, iscsi_connections, "
                  "iscsi_per_peer, iscsi_login_timeout, http_connections, "
                  "http_per_peer, http_request_timeout, tftp_transfers, tftp_per_peer, tftp_max_timeout, tftp_give_up");
    }
  }
}

}  // namespace

void load_config_file(const std::string& path, Config& config) {
  std::ifstream in(path);
  if (!in) throw util::errno_error(path + ": cannot read the configuration file");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw util::errno_error(path + ": cannot read the configuration file");
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw Error(path + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) + ": " + e.msg +
                util::yaml_tab_hint(text, e.mark.line + 1));
  }
  if (root.IsNull()) return;
  auto where = [&](const YAML::Node& n, const std::string& key) {
    return path + ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1) + ": key '" + key + "'";
  };
  if (!root.IsMap()) throw Error(path + ": the configuration must be a mapping of keys to values");
  std::map<std::string, std::string> place;  // key -> "FILE:LINE:COL: key 'k'", for checks across keys
  // Every unknown key is reported at once, each with its likely meaning, as
  // recipes do: a file with two typos should not take two restarts.
  std::vector<std::string> unknown;
  auto listen_address = [&](const YAML::Node& n, const std::string& key) {
    std::string address = n.as<std::string>();
    if (key != "listen" || address.rfind("unix:", 0) != 0) util::parse_listen_address(address, where(n, key));
    return address;
  };
  for (const auto& item : root) {
    std::string key = item.first.as<std::string>();
    const YAML::Node& v = item.second;
    place[key] = where(item.first, key);
    try {
      if (key == "store") {
        config.store = v.as<std::string>();
      } else if (key == "listen") {
        config.listen.clear();
        if (v.IsSequence()) {
          for (const auto& a : v) config.listen.push_back(listen_address(a, key));
        } else {
          config.listen.push_back(listen_address(v, key));
        }
      } else if (key == "cache_dir") {
        config.cache_dir = v.as<std::string>();
      } else if (key == "cache_ram") {
        config.cache_ram = util::parse_size(v.as<std::string>(), where(v, key));
      } else if (key == "cache_quota") {
        config.cache_quota = util::parse_size(v.as<std::string>(), where(v, key));
      } else if (key == "cache_reserve") {
        config.cache_reserve = util::parse_size(v.as<std::string>(), where(v, key));
      } else if (key == "idle_timeout") {
        config.idle_timeout = parse_duration(v.as<std::string>(), where(v, key));
      } else if (key == "heartbeat") {
        config.heartbeat = parse_duration(v.as<std::string>(), where(v, key));
      } else if (key == "tftp.listen") {  // the dotted spelling of tftp: {listen: ...}
        config.tftp_listen = listen_address(v, key);
      } else if (key == "tftp.root") {
        config.tftp_root = v.as<std::string>();
      } else if (key == "http.listen") {
        config.http_listen = listen_address(v, key);
      } else if (key == "http") {
        if (!v.IsMap()) throw Error(where(v, key) + ": expected a mapping with listen");
        for (const auto& sub : v) {
          std::string name = sub.first.as<std::string>();
          if (name != "listen") {
            unknown.push_back(where(sub.first, "http." + name) + ": unknown" + util::did_you_mean(name, {"listen"}) +
                              "; the known key is http.listen");
            continue;
          }
          config.http_listen = listen_address(sub.second, "http.listen");
        }
      } else if (key == "iscsi.listen" || key == "iscsi.iqn_prefix" || key == "iscsi.chap_secrets" ||
                 key == "iscsi.read_workers" || key == "iscsi") {
        // iscsi: {listen: ADDRESS or [ADDRESSES], iqn_prefix: …, chap_secrets: FILE}, or dotted keys.
        auto take = [&](const std::string& name, const YAML::Node& value, const YAML::Node& at) {
          if (name == "listen") {
            config.iscsi_listen.clear();
            if (value.IsSequence()) {
              for (const auto& a : value) config.iscsi_listen.push_back(listen_address(a, "iscsi.listen"));
            } else {
              config.iscsi_listen.push_back(listen_address(value, "iscsi.listen"));
            }
          } else if (name == "iqn_prefix") {
            config.iscsi_iqn_prefix = value.as<std::string>();
          } else if (name == "chap_secrets") {
            config.iscsi_chap_secrets = value.as<std::string>();
          } else if (name == "read_workers") {
            long long n = -1;
            if (!YAML::convert<long long>::decode(value, n) || n < 0 || n > 16) {
              throw Error(where(value, "iscsi.read_workers") +
                          ": expected threads per connection from 0 (answer every read on the connection's thread) to 16");
            }
            config.iscsi_read_workers = static_cast<size_t>(n);
          } else {
            unknown.push_back(where(at, "iscsi." + name) + ": unknown" +
                              util::did_you_mean(name, {"listen", "iqn_prefix", "chap_secrets", "read_workers"}) +
                              "; known keys are iscsi.listen, iscsi.iqn_prefix, iscsi.chap_secrets, iscsi.read_workers");
          }
        };
        if (key == "iscsi") {
          if (!v.IsMap()) throw Error(where(v, key) + ": expected a mapping with listen, iqn_prefix, chap_secrets");
          for (const auto& sub : v) take(sub.first.as<std::string>(), sub.second, sub.first);
        } else {
          take(key.substr(6), v, item.first);
        }
      } else if (key == "default_image") {
        config.default_image = v.as<std::string>();
      } else if (key == "kernel_cmdline") {
        config.kernel_cmdline = v.as<std::string>();
      } else if (key == "api_tokens") {
        config.api_tokens = v.as<std::string>();
      } else if (key == "status_tokens") {
        config.status_tokens = v.as<std::string>();
      } else if (key == "tls_cert") {
        config.tls_cert = v.as<std::string>();
      } else if (key == "tls_key") {
        config.tls_key = v.as<std::string>();
      } else if (key == "https_listen") {
        config.https_listen = listen_address(v, key);
      } else if (key == "api_plain_http") {
        bool value = false;
        if (!YAML::convert<bool>::decode(v, value)) throw Error(where(v, key) + ": expected true or false");
        config.api_plain_http = value;
      } else if (key == "upload_dir") {
        config.upload_dir = v.as<std::string>();
      } else if (key == "upload_ttl") {
        config.upload_ttl = parse_duration(v.as<std::string>(), where(v, key));
        if (config.upload_ttl.count() == 0) throw Error(where(v, key) + ": must be at least 1 second");
      } else if (key == "nbd_busy_poll_us") {
        long long n = -1;
        if (!YAML::convert<long long>::decode(v, n) || n < 0 || n > 10000) {
          throw Error(where(v, key) + ": expected microseconds from 0 (never poll) to 10000");
        }
        config.nbd_busy_poll = std::chrono::microseconds(n);
      } else if (key == "max_uploads") {
        long long n = 0;
        if (!YAML::convert<long long>::decode(v, n) || n < 1 || n > 1000) {
          throw Error(where(v, key) + ": expected a number of uploads from 1 to 1000");
        }
        config.max_uploads = static_cast<size_t>(n);
      } else if (key == "limits") {
        load_limits(v, config.limits, where);
      } else if (key == "tftp") {
        if (!v.IsMap()) throw Error(where(v, key) + ": expected a mapping with listen and root");
        for (const auto& sub : v) {
          std::string name = sub.first.as<std::string>();
          if (name == "listen") {
            config.tftp_listen = listen_address(sub.second, "tftp.listen");
          } else if (name == "root") {
            config.tftp_root = sub.second.as<std::string>();
          } else {
            unknown.push_back(where(sub.first, "tftp." + name) + ": unknown" +
                              util::did_you_mean(name, {"listen", "root"}) + "; known keys are tftp.listen, tftp.root");
          }
        }
      } else {
        unknown.push_back(where(item.first, key) + ": unknown" + util::did_you_mean(key, kKnownKeys) +
                          "; known keys are " + known_keys_text());
      }
    } catch (const YAML::Exception&) {
      throw Error(where(v, key) + ": expected " +
                  std::string(key == "listen" ? "an address or a list of addresses"
                              : key == "tftp" ? "a mapping of listen and root to single values"
                              : key == "http" ? "a mapping of listen to an address"
                                              : "a single value"));
    }
  }
  if (!unknown.empty()) {
    std::string all;
    for (const auto& u : unknown) all += (all.empty() ? "" : "\n") + u;
    throw Error(all);
  }
  auto at = [&](const std::string& key) { return place.count(key) ? place[key] : path + ": key '" + key + "'"; };
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    bool has_cert = !config.tls_cert.empty();
    throw Error(at(has_cert ? "tls_cert" : "tls_key") + ": needs '" + (has_cert ? "tls_key" : "tls_cert") +
                "' too: TLS takes a certificate and its private key");
  }
  if (!config.https_listen.empty() && config.tls_cert.empty()) {
    throw Error(at("https_listen") + ": needs 'tls_cert' and 'tls_key' (PEM files)");
  }
}

}  // namespace bootfleet::bootsrv
