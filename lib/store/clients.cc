// Clients (MAC, name, image, boot mode, quota, group, pin) and the rules
// for their names and fields; boot modes of images.
#include "store/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "util/bytes.h"
#include "util/error.h"
#include "util/file.h"
#include "util/lock.h"
#include "util/log.h"
#include "util/mac.h"
#include "util/size.h"
#include "vhd/chain.h"
#include "vhd/check.h"
#include "vhd/convert.h"

#include "store/store_internal.h"

namespace bootfleet::store {

namespace fs = std::filesystem;
using util::Error;
using namespace internal;

// Clients.

const char* boot_mode_name(BootMode mode) { return mode == BootMode::kSanboot ? "sanboot" : "linux"; }

BootMode parse_boot_mode(const std::string& text, const std::string& what) {
  if (text == "linux") return BootMode::kLinux;
  if (text == "sanboot") return BootMode::kSanboot;
  throw Error(what + ": '" + text + "' is not a boot mode; use 'linux' (kernel over HTTP, root over NBD) or "
              "'sanboot' (the disk over iSCSI, booted by its own loader)");
}

void Store::set_image_boot_mode(const std::string& image, BootMode mode) {
  Transaction tx(*db_);
  this->image(image);  // throws, listing the images
  db_->prepare("UPDATE images SET boot_mode = ? WHERE name = ?").bind(1, std::string(boot_mode_name(mode))).bind(2, image).run();
  tx.commit();
}

void validate_client_name(const std::string& name) {
  if (name.empty() || name.size() > 64) {
    throw Error("client name '" + name.substr(0, 80) + "': a client name is 1 to 64 characters");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) {
      throw Error("client name '" + name + "': '" + std::string(1, c) +
                  "' is not allowed; use letters, digits, '.', '_' and '-' (it becomes part of the export name "
                  "IMAGE/CLIENT)");
    }
  }
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) {
    throw Error("client name '" + name + "': must start with a letter or a digit");
  }
}

std::string default_client_name(const std::string& mac) { return util::mac_with_hyphens(util::normalize_mac(mac)); }

namespace {
const char* kClientColumns = "mac, name, image, cmdline, created_at, cache_quota, boot_mode, group_name, pin";
ClientInfo read_client_row(Statement& st) {
  auto quota = st.opt_int64(5);
  ClientInfo c{st.text(0), st.text(1), st.text(2), st.opt_text(3), st.int64(4),
               quota ? std::optional<uint64_t>(static_cast<uint64_t>(*quota)) : std::nullopt, std::nullopt, std::nullopt, std::nullopt};
  if (auto mode = st.opt_text(6)) c.boot_mode = parse_boot_mode(*mode, "clients.boot_mode of '" + c.name + "'");
  c.group = st.opt_text(7);
  c.pin = st.opt_int64(8);
  return c;
}
std::optional<std::string> boot_mode_column(std::optional<BootMode> mode) {
  if (!mode) return std::nullopt;
  return std::string(boot_mode_name(*mode));
}
}  // namespace

void Store::check_client_fields(const std::string& what, const std::optional<std::string>& name,
                                const std::optional<std::string>& image, const std::optional<std::string>& cmdline,
                                const std::string& own_mac) {
  if (name) {
    validate_client_name(*name);
    // A name that reads as a MAC would make "MAC|NAME" ambiguous, unless it
    // is the client's own MAC.
    if (auto as_mac = util::parse_mac(*name); as_mac && *as_mac != own_mac) {
      throw Error(what + ": name '" + *name + "' reads as the MAC address " + *as_mac +
                  "; choose a name that is not a MAC address");
    }
  }
  if (image) {
    try {
      this->image(*image);  // throws, listing the images
    } catch (const Error& e) {
      throw Error(what + ": " + e.what());
    }
  }
  if (cmdline) {
    for (char c : *cmdline) {
      // The command line goes into an iPXE script line: no line breaks, and
      // nothing iPXE would expand or treat as a command separator.
      if (c == '\n' || c == '\r' || c == '$' || c == '\0' || c == '|' || c == '&' || c == '#') {
        throw Error(what + ": kernel command line '" + *cmdline + "': '" + std::string(1, c == '\n' ? 'n' : c) +
                    "' is not allowed (no line breaks, '$', '|', '&', '#')");
      }
    }
    if (cmdline->size() > 1024) throw Error(what + ": kernel command line is longer than 1024 characters");
  }
}

ClientInfo Store::add_client(const std::string& mac_text, const std::optional<std::string>& name_given,
                             const std::string& image, const std::optional<std::string>& cmdline,
                             std::optional<BootMode> boot_mode) {
  std::string mac = util::normalize_mac(mac_text);
  std::string name = name_given.value_or(util::mac_with_hyphens(mac));
  std::optional<std::string> line = cmdline && !cmdline->empty() ? cmdline : std::nullopt;
  std::string what = "client " + mac;
  Transaction tx(*db_);
  check_client_fields(what, name, image, line, mac);
  if (auto existing = find_client(mac)) {
    throw Error(what + " already exists (named '" + existing->name + "'); change it with 'imgtool client set " +
                existing->name + " …'");
  }
  auto same_name = db_->prepare("SELECT mac FROM clients WHERE name = ?");
  same_name.bind(1, name);
  if (same_name.step()) throw Error(what + ": the name '" + name + "' is taken by " + same_name.text(0));
  int64_t now = now_seconds();
  db_->prepare("INSERT INTO clients (mac, name, image, cmdline, created_at, boot_mode) VALUES (?, ?, ?, ?, ?, ?)")
      .bind(1, mac).bind(2, name).bind(3, image).bind(4, line).bind(5, now).bind(6, boot_mode_column(boot_mode)).run();
  tx.commit();
  return {mac, name, image, line, now, std::nullopt, boot_mode, std::nullopt, std::nullopt};
}

std::vector<ClientInfo> Store::clients() {
  auto st = db_->prepare(std::string("SELECT ") + kClientColumns + " FROM clients ORDER BY name");
  std::vector<ClientInfo> out;
  while (st.step()) out.push_back(read_client_row(st));
  return out;
}

std::optional<ClientInfo> Store::find_client(const std::string& key) {
  auto st = db_->prepare(std::string("SELECT ") + kClientColumns + " FROM clients WHERE mac = ? OR name = ?");
  st.bind(1, util::parse_mac(key).value_or("")).bind(2, key);
  if (st.step()) return read_client_row(st);
  return std::nullopt;
}

ClientInfo Store::client(const std::string& key) {
  if (auto c = find_client(key)) return *c;
  std::string known;
  int shown = 0;
  auto all = clients();
  for (const auto& c : all) {
    if (shown++ == 10) {
      known += ", …";
      break;
    }
    known += (known.empty() ? "" : ", ") + c.name + " (" + c.mac + ")";
  }
  throw NotFound("no client '" + key + "' (by MAC or name)" +
                 (all.empty() ? std::string("; no client is registered yet ('imgtool client add')")
                              : "; clients: " + known));
}

ClientInfo Store::set_client(const std::string& key, const ClientChange& change) {
  Transaction tx(*db_);
  ClientInfo c = client(key);
  std::optional<std::string> line = change.cmdline;
  check_client_fields("client " + c.mac, change.name, change.image, line && !line->empty() ? line : std::nullopt,
                      c.mac);
  if (change.name && *change.name != c.name) {
    if (auto m = maintenance_of_client(c.name)) {
      throw Error("client " + c.name + " is in a maintenance session of " + m->image +
                  " (its session is named after it); commit or discard it before renaming the client");
    }
    auto same_name = db_->prepare("SELECT mac FROM clients WHERE name = ?");
    same_name.bind(1, *change.name);
    if (same_name.step()) {
      throw Error("client " + c.mac + ": the name '" + *change.name + "' is taken by " + same_name.text(0));
    }
    c.name = *change.name;
  }
  if (change.image && *change.image != c.image) {
    if (c.group) {
      throw Error("client " + c.name + " is in group '" + *c.group + "', which decides its image; change the group's "
                  "('imgtool client group set " + *c.group + " --image …') or take the client out ('--group none')");
    }
    c.image = *change.image;
    c.pin.reset();  // a version number of the old image means nothing for the new one
  }
  if (line) c.cmdline = line->empty() ? std::nullopt : line;
  if (change.cache_quota) c.cache_quota = *change.cache_quota ? change.cache_quota : std::nullopt;
  std::optional<int64_t> quota;
  if (c.cache_quota) quota = static_cast<int64_t>(*c.cache_quota);
  if (change.boot_mode) c.boot_mode = *change.boot_mode;
  db_->prepare("UPDATE clients SET name = ?, image = ?, cmdline = ?, cache_quota = ?, boot_mode = ?, pin = ? WHERE mac = ?")
      .bind(1, c.name).bind(2, c.image).bind(3, c.cmdline).bind(4, quota).bind(5, boot_mode_column(c.boot_mode))
      .bind(6, c.pin).bind(7, c.mac).run();
  tx.commit();
  return c;
}

void Store::remove_client(const std::string& key) {
  Transaction tx(*db_);
  ClientInfo c = client(key);
  if (auto m = maintenance_of_client(c.name)) {
    throw Error("client " + c.name + " is in a maintenance session of " + m->image +
                "; commit or discard it ('imgtool maintenance discard " + m->image + "') before removing the client");
  }
  db_->prepare("DELETE FROM clients WHERE mac = ?").bind(1, c.mac).run();
  tx.commit();
}

}  // namespace bootfleet::store
