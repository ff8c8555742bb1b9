#include "serve/iscsi_targets.h"

#include <cctype>

#include "iscsi/pdu.h"
#include "util/error.h"

namespace bootfleet::serve {

using iscsi::TargetError;

void validate_iqn_prefix(const std::string& prefix, const std::string& what) {
  auto fail = [&](const std::string& why) {
    throw util::Error(what + ": '" + prefix + "' " + why + "; use e.g. " + kDefaultIqnPrefix);
  };
  if (prefix.size() < 5 || prefix.size() > 160) fail("must be 5 to 160 characters");
  if (prefix.rfind("iqn.", 0) != 0 && prefix.rfind("eui.", 0) != 0 && prefix.rfind("naa.", 0) != 0) {
    fail("must start with iqn., eui. or naa.");
  }
  for (char c : prefix) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':')) {
      fail("has '" + std::string(1, c) + "'; iSCSI names are lower case a-z, 0-9, '.', '-' and ':'");
    }
  }
  if (prefix.back() == ':' || prefix.back() == '.') fail("must not end with ':' or '.'");
  if (prefix.rfind("iqn.", 0) == 0) {
    // iqn.YYYY-MM.
    if (prefix.size() < 12 || !std::isdigit(static_cast<unsigned char>(prefix[4])) || prefix[8] != '-' || prefix[11] != '.') {
      fail("must name a date and a domain: iqn.YYYY-MM.reversed.domain");
    }
  }
}

std::string iqn_part(const std::string& name) {
  std::string s = name;
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (c == '_') c = '-';
  }
  return s;
}

std::string target_name(const std::string& prefix, const std::string& export_name) {
  auto at = export_name.find('@');
  if (at != std::string::npos) {
    return prefix + ":" + iqn_part(export_name.substr(0, at)) + ":version:" + export_name.substr(at + 1);
  }
  auto slash = export_name.find('/');
  if (slash != std::string::npos) {
    return prefix + ":" + iqn_part(export_name.substr(0, slash)) + ":" + iqn_part(export_name.substr(slash + 1));
  }
  return prefix + ":" + iqn_part(export_name);
}

IscsiTargets::IscsiTargets(StoreExports& exports, block::ExportResolver& resolver, std::string prefix)
    : exports_(exports), resolver_(resolver), prefix_(std::move(prefix)) {}

void IscsiTargets::set_chap(std::shared_ptr<const iscsi::ChapSecrets> secrets) {
  std::lock_guard lock(mutex_);
  chap_ = std::move(secrets);
}

std::string IscsiTargets::export_for(const std::string& target, std::string* client_out) {
  // Initiators compare names case-insensitively (RFC 3722 folds case).
  const std::string name = iqn_part(target);
  if (name.size() <= prefix_.size() + 1 || name.compare(0, prefix_.size(), prefix_) != 0 || name[prefix_.size()] != ':') {
    throw TargetError(iscsi::kLoginNotFound, "no target '" + target.substr(0, 223) + "': target names start with " +
                                                 prefix_ + ": (PREFIX:IMAGE, PREFIX:IMAGE:CLIENT, PREFIX:IMAGE:version:N)");
  }
  std::vector<std::string> parts;
  size_t start = prefix_.size() + 1;
  while (true) {
    size_t colon = name.find(':', start);
    parts.push_back(name.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() > 3 || (parts.size() == 3 && parts[1] != "version") ||
      std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); })) {
    throw TargetError(iscsi::kLoginNotFound, "no target '" + target.substr(0, 223) +
                                                 "': expected PREFIX:IMAGE, PREFIX:IMAGE:CLIENT or PREFIX:IMAGE:version:N");
  }
  auto [image, client] = exports_.with_store([&](store::Store& s) {
    std::vector<std::string> images, clients;
    for (const auto& i : s.images())
      if (iqn_part(i.name) == parts[0]) images.push_back(i.name);
    if (parts.size() == 2) {
      for (const auto& c : s.clients())
        if (iqn_part(c.name) == parts[1]) clients.push_back(c.name);
    }
    if (images.empty()) {
      std::string known;
      for (const auto& i : s.images()) known += (known.empty() ? "" : ", ") + i.name;
      throw TargetError(iscsi::kLoginNotFound, "no image '" + parts[0] + "' for target '" + target.substr(0, 223) +
                                                   "'" + (known.empty() ? " (the store is empty)" : "; images: " + known));
    }
    if (images.size() > 1) {
      throw TargetError(iscsi::kLoginNotFound, "target '" + target.substr(0, 223) + "' matches images " + images[0] +
                                                   " and " + images[1] + "; rename one");
    }
    if (clients.size() > 1) {
      throw TargetError(iscsi::kLoginNotFound, "target '" + target.substr(0, 223) + "' matches clients " + clients[0] +
                                                   " and " + clients[1] + "; rename one");
    }
    return std::pair{images[0], parts.size() == 2 ? (clients.empty() ? parts[1] : clients[0]) : std::string()};
  });
  if (client_out) *client_out = client;
  if (parts.size() == 3) return image + "@" + parts[2];
  if (parts.size() == 2) return image + "/" + client;
  return image;
}

std::optional<iscsi::ChapCredentials> IscsiTargets::authentication(const std::string& target) {
  std::string client;
  if (!target.empty()) export_for(target, &client);
  std::lock_guard lock(mutex_);
  if (!chap_) return std::nullopt;
  return chap_->find(client);
}

iscsi::OpenedTarget IscsiTargets::open(const std::string& target, const std::string& initiator) {
  (void)initiator;
  std::string name = export_for(target);
  iscsi::OpenedTarget out;
  try {
    out.lun0 = resolver_.open(name);
  } catch (const util::Error& e) {
    throw TargetError(iscsi::kLoginNotFound, e.what());
  }
  out.lun0.description = "export " + name + ": " + out.lun0.description;
  out.identity = iscsi::identity_for(name, target_name(prefix_, name));
  return out;
}

std::vector<std::string> IscsiTargets::list() {
  return exports_.with_store([&](store::Store& s) {
    std::vector<std::string> out;
    for (const auto& i : s.images()) {
      if (!i.active) continue;
      out.push_back(target_name(prefix_, i.name));
      for (const auto& c : s.clients())
        if (c.image == i.name) out.push_back(target_name(prefix_, i.name + "/" + c.name));
    }
    return out;
  });
}

}  // namespace bootfleet::serve
