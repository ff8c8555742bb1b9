#include "serve/exports.h"

#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"

namespace bootfleet::serve {

using util::Error;

namespace {
// The store owns what a client name is (store::validate_client_name); an
// export name only adds which export carried it.
void validate_client_name(const std::string& name, const std::string& export_name) {
  try {
    store::validate_client_name(name);
  } catch (const Error& e) {
    throw Error("export '" + export_name + "': " + e.what());
  }
}
}  // namespace

StoreExports::StoreExports(store::Store& store, block::SessionManager::Options options) : store_(store) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  holder_ = "bootsrv@" + std::string(host) + ":" + std::to_string(::getpid());
  block::SessionManager::Hooks hooks;
  hooks.started = [this](const block::Session& s) {
    lease(s.pin(), s.name());
    util::log_line("session " + s.name() + " started on " + s.pin().image + "@" + std::to_string(s.pin().version));
  };
  hooks.ended = [this](const block::Session& s) {
    release(s.name());
    util::log_line("session " + s.name() + " ended (" + std::to_string(s.cache().data_bytes()) + " bytes written)");
  };
  cache_dir_ = options.cache_dir;
  hooks.reopened = [this](const block::Session& s) { lease(s.pin(), s.name()); };
  if (!options.quota) {
    // A registered client's own quota (imgtool client set --cache-quota).
    options.quota = [this](const std::string& session) -> std::optional<uint64_t> {
      auto slash = session.find('/');
      if (slash == std::string::npos) return std::nullopt;
      std::lock_guard lock(store_mutex_);
      try {
        auto c = store_.find_client(session.substr(slash + 1));
        if (c) return c->cache_quota;
      } catch (const Error& e) {
        util::log_line("cannot read the quota of " + session + ": " + e.what());
      }
      return std::nullopt;
    };
  }
  if (!options.kept) {
    // A maintenance session's cache is kept while its catalog record is
    // there; after a commit or discard it idles out like any other.
    options.kept = [this](const block::Pin& p) {
      std::lock_guard lock(store_mutex_);
      try {
        auto m = store_.find_maintenance(p.image);
        return m && m->token == p.keep;
      } catch (const Error& e) {
        util::log_line("cannot read the maintenance session of " + p.image + ": " + e.what());
        return true;  // in doubt, keep the admin's work
      }
    };
  }
  sessions_ = std::make_unique<block::SessionManager>(std::move(options), std::move(hooks));
}

void StoreExports::reopen_sessions() {
  remove_dead_leases();
  // The version's file as the store knows it now; throws if it is gone.
  auto check = [this](const block::Pin& old) {
    block::Pin now = pin({old.image, old.version, false});
    now.keep = old.keep;
    return now;
  };
  for (const auto& line : sessions_->recover(check)) util::log_line(line);
}

void StoreExports::remove_dead_leases() {
  // Holders are "bootsrv@HOST:PID". Leases of this host whose process is
  // gone are left by a killed server: nobody else will delete them.
  std::string prefix = holder_.substr(0, holder_.rfind(':') + 1);
  std::lock_guard lock(store_mutex_);
  try {
    int removed = 0;
    for (const auto& l : store_.all_leases()) {
      if (l.holder == holder_ || l.holder.compare(0, prefix.size(), prefix) != 0) continue;
      char* end = nullptr;
      long pid = std::strtol(l.holder.c_str() + prefix.size(), &end, 10);
      if (!end || *end != '\0' || pid <= 0) continue;
      if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // still running
      store_.release_lease(l.id);
      ++removed;
    }
    if (removed) util::log_line("removed " + std::to_string(removed) + " leases of bootsrv processes of this host that are gone");
  } catch (const Error& e) {
    util::log_line(std::string("cannot clean up old leases: ") + e.what());
  }
}

StoreExports::~StoreExports() { sessions_.reset(); }

std::optional<int64_t> StoreExports::resolve_client(const std::string& image, const std::string& client) {
  std::lock_guard lock(store_mutex_);
  auto c = store_.find_client(client);
  if (!c) return std::nullopt;
  store::BootResolution r = store_.resolve_boot(*c);
  if (r.image != image) return std::nullopt;
  return r.version;
}

block::Pin StoreExports::pin(const store::VersionRef& ref) {
  std::lock_guard lock(store_mutex_);
  store::VersionInfo v = store_.version(ref);
  return {v.image, v.number, store_.path_of(v), ""};
}

std::string StoreExports::lease(const block::Pin& pin, const std::string& session) {
  std::lock_guard lock(store_mutex_);
  try {
    leases_[session] = store_.add_lease({pin.image, pin.version, false}, holder_, session);
  } catch (const Error& e) {
    util::log_line("cannot record the lease of " + session + ": " + e.what());
  }
  return session;
}

void StoreExports::release(const std::string& session) {
  std::lock_guard lock(store_mutex_);
  auto it = leases_.find(session);
  if (it == leases_.end()) return;
  try {
    store_.release_lease(it->second);
  } catch (const Error& e) {
    util::log_line("cannot release the lease of " + session + ": " + e.what());
  }
  leases_.erase(it);
}

std::shared_ptr<block::Session> StoreExports::start_session(const std::string& image, const std::string& client,
                                                           int64_t version, const std::string& keep) {
  std::string name = image + "/" + client;
  validate_client_name(client, name);
  block::Pin p = pin({image, version, false});
  p.keep = keep;
  auto session = sessions_->start(name, p);
  if (session->connections() > 0) {  // start() kept the running session
    util::log_line("boot of " + name + " while its session has " + std::to_string(session->connections()) +
                   " connections: the running session is kept (" + session->pin().image + "@" +
                   std::to_string(session->pin().version) + "); a new one starts at a boot after they close");
  }
  return session;
}

nbd::OpenedExport StoreExports::open(const std::string& name) {
  nbd::OpenedExport out;
  auto at = name.find('@');
  auto slash = name.find('/');
  if (at != std::string::npos) {
    store::VersionRef ref = store::parse_version_ref(name);
    block::Pin p = pin(ref);
    std::string session;
    {
      std::lock_guard lock(store_mutex_);
      session = "ro#" + std::to_string(++read_only_counter_);
    }
    lease(p, session);
    out.device = std::make_shared<block::VersionDevice>(p, sessions_->open_chain(p.path));
    out.description = p.image + "@" + std::to_string(p.version) + " (read-only)";
    out.release = [this, session] { release(session); };
    return out;
  }
  std::string image = name.substr(0, slash);
  try {
    store::validate_image_name(image);
  } catch (const Error& e) {
    throw Error("export '" + name + "': " + e.what() + "; exports are IMAGE, IMAGE/CLIENT or IMAGE@N");
  }
  if (slash == std::string::npos) {
    auto session = sessions_->attach_anonymous(pin({image, std::nullopt, false}));
    out.device = session;
    out.description = image + "@" + std::to_string(session->pin().version) + ", anonymous session " + session->name();
    out.release = [this, session] { sessions_->detach(session); };
    return out;
  }
  std::string client = name.substr(slash + 1);
  validate_client_name(client, name);
  // A session made by an attach (no boot script before it) is the client's
  // maintenance session when it has one on this image; else the version its
  // boot script would have named, when it is a known client of this image;
  // else production.
  auto session = sessions_->attach(name, [&] {
    std::optional<store::MaintenanceInfo> m;
    {
      std::lock_guard lock(store_mutex_);
      m = store_.maintenance_of_client(client);
    }
    if (m && m->image == image) {
      block::Pin p = pin({image, m->base, false});
      p.keep = m->token;
      return p;
    }
    return pin({image, resolve_client(image, client), false});
  });
  out.device = session;
  out.description = image + "@" + std::to_string(session->pin().version) + ", session " + name + " (" +
                    std::to_string(session->connections()) + " connections)";
  out.release = [this, session] { sessions_->detach(session); };
  return out;
}

nbd::OpenedExport StoreExports::describe(const std::string& name) {
  if (name.find('@') != std::string::npos || name.find('/') != std::string::npos) return open(name);
  try {
    store::validate_image_name(name);
  } catch (const Error& e) {
    throw Error("export '" + name + "': " + e.what() + "; exports are IMAGE, IMAGE/CLIENT or IMAGE@N");
  }
  block::Pin p = pin({name, std::nullopt, false});
  nbd::OpenedExport out;
  // The anonymous session a connection would get (same size and flags,
  // multi-conn off), made outside the manager: no hooks, so no lease and no
  // log line; its write cache is an unnamed file never written.
  out.device = std::make_shared<block::Session>("(info)", p, sessions_->open_chain(p.path), cache_dir_,
                                                /*named=*/false, nullptr);
  out.description = p.image + "@" + std::to_string(p.version) + " (a fresh session per connection)";
  return out;
}

std::vector<std::pair<std::string, std::string>> StoreExports::list() {
  std::lock_guard lock(store_mutex_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& i : store_.images()) {
    if (i.active) out.emplace_back(i.name, "active version " + std::to_string(*i.active) + " (a fresh session per connection)");
  }
  return out;
}

void StoreExports::housekeeping() {
  for (const auto& name : sessions_->expire_idle()) util::log_line("session " + name + " expired after idling");
  std::lock_guard lock(store_mutex_);
  try {
    store_.heartbeat(holder_);
  } catch (const Error& e) {
    util::log_line(std::string("lease heartbeat failed: ") + e.what());
  }
}

}  // namespace bootfleet::serve
