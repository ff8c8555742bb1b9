// Sessions: one boot of one client, or one anonymous connection.
//
// A session pins the chain of one version (opened once and shared by every
// session on that version, so a hundred clients hold one set of file
// descriptors) and owns one write cache. A named session ("IMAGE/CLIENT")
// outlives its connections: a client that reconnects, or opens several
// connections, finds the same cache. It ends when reset, or when it has had
// no connection for the idle timeout; the next start makes a new, empty one
// on whatever version is active then. An anonymous session ends with its
// connection.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "block/cache_device.h"
#include "block/device.h"
#include "block/write_cache.h"
#include "vhd/chain.h"

namespace bootfleet::block {

// Open chains, shared between sessions of the same version file.
class ChainRegistry {
 public:
  std::shared_ptr<const vhd::Chain> open(const std::string& path);
  size_t open_count();

 private:
  std::mutex mutex_;
  std::map<std::string, std::weak_ptr<const vhd::Chain>> chains_;
};

// What a session runs on: a version of an image and its file.
struct Pin {
  std::string image;
  int64_t version = 0;
  std::string path;  // the version's VHD file
};

// A read-only view of one version (export "IMAGE@N"): writes get EPERM.
class VersionDevice : public Device {
 public:
  VersionDevice(Pin pin, std::shared_ptr<const vhd::Chain> chain) : pin_(std::move(pin)), chain_(std::move(chain)) {}
  const Pin& pin() const { return pin_; }
  uint64_t size() const override { return chain_->size(); }
  bool read_only() const override { return true; }
  bool shared_between_connections() const override { return true; }
  int read(uint64_t offset, uint32_t length, uint8_t* buf) override;
  int try_read(uint64_t offset, uint32_t length, uint8_t* buf) override;
  int write(uint64_t, uint32_t, const uint8_t*, bool) override { return EPERM; }
  int flush() override { return 0; }
  int trim(uint64_t, uint32_t, bool) override { return EPERM; }
  int write_zeroes(uint64_t, uint32_t, bool) override { return EPERM; }
  int extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) override;

 private:
  Pin pin_;
  std::shared_ptr<const vhd::Chain> chain_;
};

class Session : public CacheDevice {
 public:
  Session(std::string name, Pin pin, std::shared_ptr<const vhd::Chain> chain, const std::string& cache_dir,
          bool named, std::shared_ptr<RamBudget> ram = nullptr);
  const std::string& name() const { return name_; }
  const Pin& pin() const { return pin_; }
  bool named() const { return named_; }
  std::chrono::system_clock::time_point started() const { return started_; }
  int connections() const { return connections_.load(); }
  std::chrono::steady_clock::time_point last_detach() const;
  // Since when it has had at least one connection; nullopt while it has none.
  std::optional<std::chrono::system_clock::time_point> connected_since() const;

  // All connections of a named session share its cache; an anonymous
  // session is one connection's alone.
  bool shared_between_connections() const override { return named_; }

 private:
  friend class SessionManager;
  std::string name_;
  Pin pin_;
  bool named_;
  std::chrono::system_clock::time_point started_;
  std::atomic<int> connections_{0};
  std::atomic<int64_t> last_detach_ns_{0};
  std::atomic<int64_t> connected_since_ms_{0};  // 0: no connection
  void connected();
  void disconnected();
};

class SessionManager {
 public:
  struct Options {
    std::string cache_dir;
    std::chrono::seconds idle_timeout{std::chrono::hours(1)};
    uint64_t cache_ram = 0;  // bytes of RAM all write caches may share (0: none)
  };
  // Called when a session starts (to record a lease) and when it ends.
  struct Hooks {
    std::function<void(const Session&)> started;
    std::function<void(const Session&)> ended;
  };

  SessionManager(Options options, Hooks hooks = {});
  ~SessionManager();

  // Attaches a connection to the named session, creating it on `pin()` (the
  // version active now) if there is none. Pair with detach().
  std::shared_ptr<Session> attach(const std::string& name, const std::function<Pin()>& pin);
  // Starts the named session afresh on `pin`: any session of that name ends
  // first (its connections keep the old cache until they close), then a new
  // one with an empty cache begins, counted as idle from now. This is how a
  // boot pins its version before the client has connected at all: a publish
  // between the boot script and the block attach does not change it.
  std::shared_ptr<Session> start(const std::string& name, const Pin& pin);
  // A session for one connection only.
  std::shared_ptr<Session> attach_anonymous(const Pin& pin);
  void detach(const std::shared_ptr<Session>& session);
  // Forgets a named session: its next attach starts a fresh cache. Existing
  // connections keep the old one until they close. False if there was none.
  bool reset(const std::string& name);
  // Ends named sessions without connections idle for longer than the
  // timeout; returns their names.
  std::vector<std::string> expire_idle();
  // Every session, named and anonymous; their counters (connections,
  // cache bytes, connected_since) are atomics, safe to read meanwhile.
  std::vector<std::shared_ptr<Session>> sessions();
  void set_idle_timeout(std::chrono::seconds timeout);
  std::shared_ptr<const vhd::Chain> open_chain(const std::string& path) { return chains_.open(path); }

 private:
  std::shared_ptr<Session> make(const std::string& name, const Pin& pin, bool named);

  Options options_;
  Hooks hooks_;
  std::shared_ptr<RamBudget> ram_;
  ChainRegistry chains_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Session>> named_;
  std::map<Session*, std::weak_ptr<Session>> anonymous_;
  uint64_t anonymous_counter_ = 0;
};

}  // namespace bootfleet::block
