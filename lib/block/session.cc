#include "block/session.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "block/io_error.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"

namespace bootfleet::block {

namespace fs = std::filesystem;

namespace {
// A session name as a file name: letters, digits, '.', '_', '-' as they
// are, anything else (the '/' of IMAGE/CLIENT, ':' of a MAC) as %XX.
std::string escape_name(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == '-') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

int64_t to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string sessions_dir(const std::string& cache_dir) { return cache_dir + "/sessions"; }
std::string ended_dir(const std::string& cache_dir) { return cache_dir + "/ended"; }
// Where the tombstone of an ended named session is kept.
std::string tombstone_path(const std::string& cache_dir, const std::string& name) {
  return ended_dir(cache_dir) + "/" + escape_name(name);
}

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    throw util::errno_error(path + ": cannot create the directory (the cache directory must be writable)");
  }
}

// The `session` file: "key value" lines, the format's name first.
constexpr const char* kMetaHeader = "bootfleet-session 1";

void write_meta(const std::string& dir, const std::string& name, const Pin& pin,
                std::chrono::system_clock::time_point started) {
  std::ostringstream text;
  text << kMetaHeader << "\nname " << name << "\nimage " << pin.image << "\nversion " << pin.version << "\npath "
       << pin.path << "\nstarted_ms " << to_ms(started) << "\n";
  if (!pin.keep.empty()) text << "keep " << pin.keep << "\n";  // optional: older files lack it
  std::string bytes = text.str();
  util::AtomicOutput out(dir + "/session");
  {
    auto fd = util::open_file(out.path(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    util::pwrite_full(fd.get(), bytes.data(), bytes.size(), 0, out.path());
    util::fsync_file(fd.get(), out.path());
  }
  out.commit();
}

struct Meta {
  std::string name;
  Pin pin;
  int64_t started_ms = 0;
};

std::optional<Meta> read_meta(const std::string& dir) {
  std::ifstream in(dir + "/session");
  if (!in) return std::nullopt;
  std::string line;
  if (!std::getline(in, line) || line != kMetaHeader) return std::nullopt;
  Meta m;
  int fields = 0;
  while (std::getline(in, line)) {
    auto sp = line.find(' ');
    if (sp == std::string::npos) return std::nullopt;
    std::string key = line.substr(0, sp), value = line.substr(sp + 1);
    try {
      if (key == "name") m.name = value, ++fields;
      else if (key == "image") m.pin.image = value, ++fields;
      else if (key == "version") m.pin.version = std::stoll(value), ++fields;
      else if (key == "path") m.pin.path = value, ++fields;
      else if (key == "started_ms") m.started_ms = std::stoll(value), ++fields;
      else if (key == "keep") m.pin.keep = value;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  if (fields != 5 || m.name.empty()) return std::nullopt;
  return m;
}
}  // namespace

std::shared_ptr<const vhd::Chain> ChainRegistry::open(const std::string& path) {
  std::lock_guard lock(mutex_);
  if (auto existing = chains_[path].lock()) return existing;
  std::shared_ptr<const vhd::Chain> chain = vhd::Chain::open(path);
  chains_[path] = chain;
  return chain;
}

size_t ChainRegistry::open_count() {
  std::lock_guard lock(mutex_);
  size_t n = 0;
  for (auto it = chains_.begin(); it != chains_.end();) {
    if (it->second.expired()) it = chains_.erase(it);
    else ++n, ++it;
  }
  return n;
}

std::string VersionDevice::describe() const {
  return pin_.image + "@" + std::to_string(pin_.version) + " (" + pin_.path + ")";
}

int VersionDevice::read(uint64_t offset, uint32_t length, uint8_t* buf) {
  try {
    chain_->read(offset, buf, length);
  } catch (const util::Error& e) {
    return io_error(describe(), "read", offset, length, e);
  }
  return 0;
}

int VersionDevice::try_read(uint64_t offset, uint32_t length, uint8_t* buf) {
  try {
    return chain_->try_read(offset, buf, length) ? 0 : EAGAIN;
  } catch (const util::Error& e) {
    return io_error(describe(), "read", offset, length, e);
  }
}

int VersionDevice::extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) {
  for (const auto& e : chain_->extents(offset, length)) vhd::append_extent(out, e);
  return 0;
}

Session::Session(std::string name, Pin pin, std::shared_ptr<const vhd::Chain> chain, const std::string& cache_dir,
                 bool named, std::shared_ptr<RamBudget> ram, CacheStorage storage,
                 std::chrono::system_clock::time_point started)
    : CacheDevice(std::move(chain), cache_dir, std::move(ram), std::move(storage)),
      name_(std::move(name)),
      pin_(std::move(pin)),
      named_(named),
      started_(started) {}

int Session::report_full(int rc) {
  if (rc != ENOSPC || full_reported_.exchange(true)) return rc;
  uint64_t quota = cache_.quota();
  if (quota && cache_.file_bytes() + WriteCache::kCluster > quota) {
    util::log_line("session " + name_ + ": its write cache quota of " + std::to_string(quota) +
                   " bytes is used up; its writes of new data get ENOSPC (rewrites of what it holds work; "
                   "raise it with cache_quota or the client's --cache-quota). Logged once per session");
  } else {
    util::log_line("session " + name_ + ": the cache disk is full (" + cache_.persist_dir() +
                   "); its writes of new data get ENOSPC. Logged once per session");
  }
  return rc;
}

int Session::write(uint64_t offset, uint32_t length, const uint8_t* buf, bool fua) {
  return report_full(cache_.write(offset, length, buf, fua));
}

int Session::write_zeroes(uint64_t offset, uint32_t length, bool fua) {
  return report_full(cache_.write_zeroes(offset, length, fua));
}

std::chrono::steady_clock::time_point Session::last_detach() const {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(last_detach_ns_.load()));
}

std::optional<std::chrono::system_clock::time_point> Session::connected_since() const {
  int64_t ms = connected_since_ms_.load();
  if (ms == 0) return std::nullopt;
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

void Session::connected() {
  if (connections_.fetch_add(1) == 0) {
    connected_since_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  }
}

void Session::disconnected() {
  if (connections_.fetch_sub(1) == 1) connected_since_ms_ = 0;
}

SessionManager::SessionManager(Options options, Hooks hooks) : options_(std::move(options)), hooks_(std::move(hooks)) {
  if (options_.cache_ram > 0) ram_ = std::make_shared<RamBudget>(options_.cache_ram);
  if (!options_.persist) return;
  make_dir(sessions_dir(options_.cache_dir));
  make_dir(ended_dir(options_.cache_dir));
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(ended_dir(options_.cache_dir), ec)) {
    std::ifstream in(e.path());
    std::string name, reason;
    if (std::getline(in, name) && std::getline(in, reason) && !name.empty()) tombstones_[name] = reason;
  }
}

SessionManager::~SessionManager() {
  std::vector<std::shared_ptr<Session>> ending;
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, s] : named_) ending.push_back(s);
    named_.clear();
  }
  // Persistent sessions stay for the next server: their caches commit
  // what they hold when the last reference goes. Others end here.
  if (!options_.persist && hooks_.ended)
    for (auto& s : ending) hooks_.ended(*s);
}

std::vector<std::string> SessionManager::recover(const std::function<Pin(const Pin&)>& check) {
  std::vector<std::string> report;
  if (!options_.persist) return report;
  dir_lock_ = util::FileLock::try_acquire(options_.cache_dir + "/sessions.lock");
  if (!dir_lock_.held()) {
    throw util::Error(options_.cache_dir + ": another bootsrv uses this cache directory (sessions.lock is held); "
                      "give each server its own cache_dir");
  }
  std::map<std::string, std::vector<std::pair<Meta, std::string>>> found;  // name -> (meta, dir)
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(sessions_dir(options_.cache_dir), ec)) {
    std::string dir = e.path().string();
    auto meta = read_meta(dir);
    if (!meta) {
      fs::remove_all(dir, ec);
      report.push_back("removed " + dir + ": a session whose creation was cut short");
      continue;
    }
    found[meta->name].emplace_back(*meta, dir);
  }
  for (auto& [name, list] : found) {
    // Two directories of one name: a crash between a boot's new session and
    // the old one's removal. The newer one is the session.
    std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.first.started_ms > b.first.started_ms; });
    for (size_t i = 1; i < list.size(); ++i) fs::remove_all(list[i].second, ec);
    const auto& [meta, dir] = list.front();
    auto started = std::chrono::system_clock::time_point(std::chrono::milliseconds(meta.started_ms));
    std::shared_ptr<Session> session;
    try {
      Pin pin = check(meta.pin);
      CacheStorage storage{dir, false, quota_of(name), reserve_for(name)};
      session = std::make_shared<Session>(name, pin, chains_.open(pin.path), options_.cache_dir, true, ram_,
                                          std::move(storage), started);
    } catch (const util::Error& e) {
      std::string why = std::string("could not be reopened after a restart: ") + e.what();
      fs::remove_all(dir, ec);
      write_tombstone(name, why);
      report.push_back("session " + name + " " + why);
      continue;
    }
    session->recovered_ = true;
    session->last_detach_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count();
    {
      std::lock_guard lock(mutex_);
      named_[name] = session;
    }
    if (hooks_.reopened) hooks_.reopened(*session);
    report.push_back("session " + name + " reopened on " + session->pin().image + "@" +
                     std::to_string(session->pin().version) + " (" + std::to_string(session->cache().data_bytes()) +
                     " bytes in its cache)");
  }
  return report;
}

std::shared_ptr<Session> SessionManager::make(const std::string& name, const Pin& pin, bool named) {
  auto chain = chains_.open(pin.path);
  std::shared_ptr<Session> session;
  if (named && options_.persist) {
    auto started = std::chrono::system_clock::now();
    std::string dir = sessions_dir(options_.cache_dir) + "/" + escape_name(name) + "~" + std::to_string(to_ms(started));
    make_dir(dir);
    try {
      session = std::make_shared<Session>(name, pin, chain, options_.cache_dir, named, ram_,
                                          CacheStorage{dir, true, quota_of(name), reserve_for(name)}, started);
      write_meta(dir, name, pin, started);  // last: the session exists from here
      util::fsync_parent_dir(dir);
    } catch (...) {
      std::error_code ec;
      session.reset();
      fs::remove_all(dir, ec);
      throw;
    }
  } else {
    session = std::make_shared<Session>(name, pin, chain, options_.cache_dir, named, ram_,
                                        CacheStorage{"", true, named ? quota_of(name) : 0, named ? reserve_for(name) : 0});
  }
  if (hooks_.started) hooks_.started(*session);
  return session;
}

void SessionManager::write_tombstone(const std::string& name, const std::string& reason) {
  tombstones_[name] = reason;
  if (!options_.persist) return;
  std::string path = tombstone_path(options_.cache_dir, name);
  try {
    std::string bytes = name + "\n" + reason + "\n";
    util::AtomicOutput out(path);
    {
      auto fd = util::open_file(out.path(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      util::pwrite_full(fd.get(), bytes.data(), bytes.size(), 0, out.path());
      util::fsync_file(fd.get(), out.path());
    }
    out.commit();
  } catch (const util::Error& e) {
    util::log_line(std::string("cannot record that session ") + name + " ended: " + e.what());
  }
}

void SessionManager::end(const std::shared_ptr<Session>& session, const std::string& tombstone) {
  // The tombstone first: a crash between the two leaves a dead session's
  // files (removed at the next start) rather than a live-looking one.
  if (!tombstone.empty()) write_tombstone(session->name(), tombstone);
  if (hooks_.ended) hooks_.ended(*session);
  const std::string& dir = session->cache().persist_dir();
  if (!dir.empty()) {
    session->cache().discard();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

std::optional<std::string> SessionManager::ended_reason(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = tombstones_.find(name);
  if (it == tombstones_.end()) return std::nullopt;
  return it->second;
}

std::shared_ptr<Session> SessionManager::attach(const std::string& name, const std::function<Pin()>& pin) {
  std::unique_lock lock(mutex_);
  wait_settled(lock, name);
  auto found = named_.find(name);
  if (found != named_.end() && found->second->frozen()) {
    throw SessionGone("session " + name + " is being committed as a version; it can be attached again when the "
                      "commit is over");
  }
  if (found == named_.end()) {
    if (auto t = tombstones_.find(name); t != tombstones_.end()) {
      throw SessionGone("session " + name + " has ended (" + t->second +
                        "); its disk is gone, and a new one starts only when the client boots again");
    }
    std::shared_ptr<Session> made = changing(lock, name, [&] { return make(name, pin(), true); });
    found = named_.emplace(name, std::move(made)).first;
  }
  found->second->connected();
  return found->second;
}

std::shared_ptr<Session> SessionManager::start(const std::string& name, const Pin& pin) {
  // The old session's end before the new one's start (the hooks record
  // leases by session name, so the old end must not release what the new
  // start recorded), both with the name marked as changing: see changing().
  std::unique_lock lock(mutex_);
  wait_settled(lock, name);
  std::shared_ptr<Session> old;
  auto it = named_.find(name);
  if (it != named_.end()) {
    old = it->second;
    if (old->connections() > 0) return old;  // a running PC keeps its disk
    // A kept session continues across boots; one being committed is not
    // pulled away from under the commit.
    if (old->frozen() || (!pin.keep.empty() && old->pin().keep == pin.keep)) return old;
    named_.erase(it);
  }
  const bool had_tombstone = tombstones_.erase(name) > 0;
  auto session = changing(lock, name, [&] {
    if (old) end(old, "");
    if (had_tombstone && options_.persist) ::unlink(tombstone_path(options_.cache_dir, name).c_str());
    return make(name, pin, true);
  });
  session->last_detach_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
  named_[name] = session;
  return session;
}

void SessionManager::wait_settled(std::unique_lock<std::mutex>& lock, const std::string& name) {
  settled_.wait(lock, [&] { return changing_.count(name) == 0; });
}

std::shared_ptr<Session> SessionManager::changing(std::unique_lock<std::mutex>& lock, const std::string& name,
                                                  const std::function<std::shared_ptr<Session>()>& work) {
  changing_.insert(name);
  lock.unlock();
  // However `work` ends, the name is settled again under the lock.
  struct Settle {
    SessionManager& manager;
    std::unique_lock<std::mutex>& lock;
    const std::string& name;
    ~Settle() {
      lock.lock();
      manager.changing_.erase(name);
      manager.settled_.notify_all();
    }
  } settle{*this, lock, name};
  return work();
}

std::shared_ptr<Session> SessionManager::attach_anonymous(const Pin& pin) {
  std::string name;
  {
    std::lock_guard lock(mutex_);
    name = pin.image + "#" + std::to_string(++anonymous_counter_);
  }
  auto s = make(name, pin, false);
  s->connected();
  std::lock_guard lock(mutex_);
  anonymous_[s.get()] = s;
  return s;
}

void SessionManager::detach(const std::shared_ptr<Session>& session) {
  session->disconnected();
  session->last_detach_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
  if (!session->named()) {
    {
      std::lock_guard lock(mutex_);
      anonymous_.erase(session.get());
    }
    if (hooks_.ended) hooks_.ended(*session);
  }
}

bool SessionManager::reset(const std::string& name, const std::string& reason) {
  std::unique_lock lock(mutex_);
  wait_settled(lock, name);
  auto it = named_.find(name);
  if (it == named_.end()) return false;
  std::shared_ptr<Session> old = it->second;
  named_.erase(it);
  end(old, reason);
  return true;
}

std::shared_ptr<Session> SessionManager::find(const std::string& name) {
  std::unique_lock lock(mutex_);
  wait_settled(lock, name);
  auto it = named_.find(name);
  return it == named_.end() ? nullptr : it->second;
}

std::shared_ptr<Session> SessionManager::freeze(const std::string& name) {
  std::unique_lock lock(mutex_);
  wait_settled(lock, name);
  auto it = named_.find(name);
  if (it == named_.end() || it->second->frozen_.exchange(true)) return nullptr;
  return it->second;
}

std::vector<std::string> SessionManager::expire_idle() {
  std::vector<std::shared_ptr<Session>> expired;
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    for (auto it = named_.begin(); it != named_.end();) {
      const auto& s = it->second;
      bool kept = !s->pin().keep.empty() && (!options_.kept || options_.kept(s->pin()));
      if (!kept && !s->frozen() && s->connections() == 0 && now - s->last_detach() > options_.idle_timeout) {
        expired.push_back(s);
        it = named_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::vector<std::string> names;
  std::lock_guard lock(mutex_);
  for (auto& s : expired) {
    end(s, "idle for longer than the idle timeout");
    names.push_back(s->name());
  }
  return names;
}

std::vector<std::shared_ptr<Session>> SessionManager::sessions() {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<Session>> out;
  for (auto& [n, s] : named_) out.push_back(s);
  for (auto& [p, w] : anonymous_)
    if (auto s = w.lock()) out.push_back(s);
  return out;
}

void SessionManager::set_idle_timeout(std::chrono::seconds timeout) {
  std::lock_guard lock(mutex_);
  options_.idle_timeout = timeout;
}

}  // namespace bootfleet::block
