#include "block/session.h"

#include "util/error.h"

namespace bootfleet::block {

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

int VersionDevice::read(uint64_t offset, uint32_t length, uint8_t* buf) {
  try {
    chain_->read(offset, buf, length);
  } catch (const util::Error&) {
    return EIO;
  }
  return 0;
}

int VersionDevice::try_read(uint64_t offset, uint32_t length, uint8_t* buf) {
  try {
    return chain_->try_read(offset, buf, length) ? 0 : EAGAIN;
  } catch (const util::Error&) {
    return EIO;
  }
}

int VersionDevice::extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) {
  for (const auto& e : chain_->extents(offset, length)) vhd::append_extent(out, e);
  return 0;
}

Session::Session(std::string name, Pin pin, std::shared_ptr<const vhd::Chain> chain, const std::string& cache_dir,
                 bool named, std::shared_ptr<RamBudget> ram)
    : CacheDevice(std::move(chain), cache_dir, std::move(ram)),
      name_(std::move(name)),
      pin_(std::move(pin)),
      named_(named),
      started_(std::chrono::system_clock::now()) {}

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
}

SessionManager::~SessionManager() {
  std::vector<std::shared_ptr<Session>> ending;
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, s] : named_) ending.push_back(s);
    named_.clear();
  }
  if (hooks_.ended)
    for (auto& s : ending) hooks_.ended(*s);
}

std::shared_ptr<Session> SessionManager::make(const std::string& name, const Pin& pin, bool named) {
  auto session = std::make_shared<Session>(name, pin, chains_.open(pin.path), options_.cache_dir, named, ram_);
  if (hooks_.started) hooks_.started(*session);
  return session;
}

std::shared_ptr<Session> SessionManager::attach(const std::string& name, const std::function<Pin()>& pin) {
  std::lock_guard lock(mutex_);
  auto& slot = named_[name];
  if (!slot) {
    try {
      slot = make(name, pin(), true);
    } catch (...) {
      named_.erase(name);
      throw;
    }
  }
  slot->connected();
  return slot;
}

std::shared_ptr<Session> SessionManager::start(const std::string& name, const Pin& pin) {
  // All under the lock, and the old session's end before the new one's
  // start: the hooks record leases by session name, so the old end must
  // not release what the new start recorded.
  std::lock_guard lock(mutex_);
  auto it = named_.find(name);
  if (it != named_.end()) {
    std::shared_ptr<Session> old = it->second;
    named_.erase(it);
    if (hooks_.ended) hooks_.ended(*old);
  }
  auto session = make(name, pin, true);
  session->last_detach_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
  named_[name] = session;
  return session;
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

bool SessionManager::reset(const std::string& name) {
  std::shared_ptr<Session> old;
  {
    std::lock_guard lock(mutex_);
    auto it = named_.find(name);
    if (it == named_.end()) return false;
    old = it->second;
    named_.erase(it);
  }
  if (hooks_.ended) hooks_.ended(*old);
  return true;
}

std::vector<std::string> SessionManager::expire_idle() {
  std::vector<std::shared_ptr<Session>> expired;
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    for (auto it = named_.begin(); it != named_.end();) {
      const auto& s = it->second;
      if (s->connections() == 0 && now - s->last_detach() > options_.idle_timeout) {
        expired.push_back(s);
        it = named_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::vector<std::string> names;
  for (auto& s : expired) {
    if (hooks_.ended) hooks_.ended(*s);
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
