#include "config.h"

#include <yaml-cpp/yaml.h>

#include <map>

#include "util/error.h"
#include "util/size.h"

namespace bootfleet::bootsrv {

using util::Error;

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

void load_config_file(const std::string& path, Config& config) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw Error(path + ": cannot read the configuration file");
  } catch (const YAML::ParserException& e) {
    throw Error(path + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (root.IsNull()) return;
  auto where = [&](const YAML::Node& n, const std::string& key) {
    return path + ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1) + ": key '" + key + "'";
  };
  if (!root.IsMap()) throw Error(path + ": the configuration must be a mapping of keys to values");
  std::map<std::string, std::string> place;  // key -> "FILE:LINE:COL: key 'k'", for checks across keys
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
          for (const auto& a : v) config.listen.push_back(a.as<std::string>());
        } else {
          config.listen.push_back(v.as<std::string>());
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
        config.tftp_listen = v.as<std::string>();
      } else if (key == "tftp.root") {
        config.tftp_root = v.as<std::string>();
      } else if (key == "http.listen") {
        config.http_listen = v.as<std::string>();
      } else if (key == "http") {
        if (!v.IsMap()) throw Error(where(v, key) + ": expected a mapping with listen");
        for (const auto& sub : v) {
          std::string name = sub.first.as<std::string>();
          if (name != "listen") throw Error(where(sub.first, "http." + name) + ": unknown; the known key is http.listen");
          config.http_listen = sub.second.as<std::string>();
        }
      } else if (key == "default_image") {
        config.default_image = v.as<std::string>();
      } else if (key == "kernel_cmdline") {
        config.kernel_cmdline = v.as<std::string>();
      } else if (key == "api_tokens") {
        config.api_tokens = v.as<std::string>();
      } else if (key == "tls_cert") {
        config.tls_cert = v.as<std::string>();
      } else if (key == "tls_key") {
        config.tls_key = v.as<std::string>();
      } else if (key == "https_listen") {
        config.https_listen = v.as<std::string>();
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
      } else if (key == "tftp") {
        if (!v.IsMap()) throw Error(where(v, key) + ": expected a mapping with listen and root");
        for (const auto& sub : v) {
          std::string name = sub.first.as<std::string>();
          if (name == "listen") {
            config.tftp_listen = sub.second.as<std::string>();
          } else if (name == "root") {
            config.tftp_root = sub.second.as<std::string>();
          } else {
            throw Error(where(sub.first, "tftp." + name) + ": unknown; known keys are tftp.listen, tftp.root");
          }
        }
      } else {
        throw Error(where(item.first, key) +
                    ": unknown; known keys are store, listen, nbd_busy_poll_us, cache_dir, cache_ram, cache_quota, cache_reserve, idle_timeout, heartbeat, tftp, http, "
                    "default_image, kernel_cmdline, api_tokens, tls_cert, tls_key, https_listen, api_plain_http, "
                    "upload_dir, upload_ttl, max_uploads");
      }
    } catch (const YAML::Exception&) {
      throw Error(where(v, key) + ": expected " +
                  std::string(key == "listen" ? "an address or a list of addresses"
                              : key == "tftp" ? "a mapping of listen and root to single values"
                              : key == "http" ? "a mapping of listen to an address"
                                              : "a single value"));
    }
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
