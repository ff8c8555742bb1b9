// Sessions: one boot of one client, or one anonymous connection.
//
// A session pins the chain of one version (opened once and shared by every
// session on that version, so a hundred clients hold one set of file
// descriptors) and owns one write cache. An anonymous session ends with its
// connection and keeps nothing on disk beyond an unnamed file.
//
// Named sessions ("IMAGE/CLIENT") outlive their connections *and the
// server*. Each lives in its own directory under CACHE_DIR/sessions/: the
// cache's `data` and `map` (see block/write_cache.h for why they are
// crash-consistent) and a `session` file (name, image, version, version
// file, start time) written last, atomically, so a directory without it is
// a creation cut short and is removed at the next start. A server that
// stops (or dies) leaves them there; the next one calls recover(), which
// reopens every session with the version it pinned, before any protocol
// listens. So a client that reconnects finds the same disk.
//
// How a session ends, and what a client then gets:
//   - reset (the control API), or no connection for the idle timeout: the
//     session ends and a *tombstone* (CACHE_DIR/ended/NAME) remembers that
//     it did. attach() of that name then throws SessionGone instead of
//     making a new, empty disk: a client that reconnects after its session
//     was dropped must not find another disk under its mounted filesystem.
//   - start() (a boot: the boot script was fetched) supersedes the session
//     only if it has no connection: a PC that really rebooted has dropped
//     its NBD connection when it reset. While a connection is open, start()
//     returns the running session unchanged, so no request from the network
//     can pull a disk from under a running PC. start() clears the tombstone.
//
// How a block protocol attaches (NBD today, iSCSI next): it resolves its
// target name to a session name and calls attach(name, pin) on every
// connection or login, detach() when it goes. The same name gives the same
// Session object (the same cache) whether it was made by this process, by a
// boot script, or reopened by recover() after a restart: "session
// reinstatement" is just attach() again. SessionGone is the protocol's cue
// for a clean refusal (NBD: an error reply to the export name; iSCSI: a
// login reject), never a fresh session.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "block/cache_device.h"
#include "block/device.h"
#include "block/write_cache.h"
#include "util/error.h"
#include "util/lock.h"
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
  // Non-empty: the session is kept (a maintenance session, store/maintenance.h):
  // a boot asking for the same `keep` continues it instead of starting afresh,
  // and idling does not end it while Options::kept says so. Persisted with it.
  std::string keep;
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
  int map_read(uint64_t offset, uint32_t length, std::vector<util::FileSpan>& out) override {
    if (!chain_->map(offset, length, out)) return ENOTSUP;
    return util::spans_cached(out) ? 0 : EAGAIN;
  }
  int write(uint64_t, uint32_t, const uint8_t*, bool) override { return EPERM; }
  int flush() override { return 0; }
  int trim(uint64_t, uint32_t, bool) override { return EPERM; }
  int write_zeroes(uint64_t, uint32_t, bool) override { return EPERM; }
  int extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) override;

 private:
  std::string describe() const;  // for log lines: "IMAGE@N (FILE)"
  Pin pin_;
  std::shared_ptr<const vhd::Chain> chain_;
};

// attach() of a named session that has ended (see the note at the top).
class SessionGone : public util::Error {
 public:
  using util::Error::Error;
};

class Session : public CacheDevice {
 public:
  Session(std::string name, Pin pin, std::shared_ptr<const vhd::Chain> chain, const std::string& cache_dir,
          bool named, std::shared_ptr<RamBudget> ram = nullptr, CacheStorage storage = {},
          std::chrono::system_clock::time_point started = std::chrono::system_clock::now());
  const std::string& name() const { return name_; }
  const Pin& pin() const { return pin_; }
  bool named() const { return named_; }
  std::chrono::system_clock::time_point started() const { return started_; }
  int connections() const { return connections_.load(); }
  std::chrono::steady_clock::time_point last_detach() const;
  // Being committed as a version (SessionManager::freeze): attaches are refused.
  bool frozen() const { return frozen_.load(); }
  // Since when it has had at least one connection; nullopt while it has none.
  std::optional<std::chrono::system_clock::time_point> connected_since() const;

  // All connections of a named session share its cache; an anonymous
  // session is one connection's alone.
  bool shared_between_connections() const override { return named_; }
  // True when it was reopened from the cache directory at server start.
  bool recovered() const { return recovered_; }
  // The first ENOSPC of a session is logged (once: a full client retries).
  int write(uint64_t offset, uint32_t length, const uint8_t* buf, bool fua) override;
  int write_zeroes(uint64_t offset, uint32_t length, bool fua) override;
  int trim(uint64_t offset, uint32_t length, bool fua) override { return write_zeroes(offset, length, fua); }

 private:
  friend class SessionManager;
  std::string name_;
  Pin pin_;
  bool named_;
  std::chrono::system_clock::time_point started_;
  std::atomic<int> connections_{0};
  std::atomic<int64_t> last_detach_ns_{0};
  std::atomic<int64_t> connected_since_ms_{0};  // 0: no connection
  bool recovered_ = false;
  std::atomic<bool> frozen_{false};
  std::atomic<bool> full_reported_{false};
  int report_full(int rc);
  void connected();
  void disconnected();
};

class SessionManager {
 public:
  struct Options {
    std::string cache_dir;
    std::chrono::seconds idle_timeout{std::chrono::hours(1)};
    uint64_t cache_ram = 0;  // bytes of RAM all write caches may share (0: none)
    // Named sessions live on in cache_dir (see the note at the top); false:
    // they end with the manager, as anonymous ones do.
    bool persist = true;
    // Bytes of write cache a named session may hold (0: no limit): what
    // `quota` says for its name (asked when it starts or is reopened), else
    // quota_default.
    uint64_t quota_default = 0;
    std::function<std::optional<uint64_t>(const std::string&)> quota;
    // Bytes of cache disk set aside for each named session when it starts
    // (see CacheStorage::reserve): what it can write even on a full disk.
    uint64_t reserve = 0;
    // Whether a kept session (Pin::keep) is still wanted; unset: always.
    // Asked by expire_idle: one no longer wanted idles out as others do.
    std::function<bool(const Pin&)> kept;
  };
  // Called when a session starts (to record a lease), when one is reopened
  // at start (the same), and when it ends.
  struct Hooks {
    std::function<void(const Session&)> started;
    std::function<void(const Session&)> ended;
    std::function<void(const Session&)> reopened;
  };

  SessionManager(Options options, Hooks hooks = {});
  ~SessionManager();

  // Reopens the named sessions found in cache_dir (call once, before any
  // attach); takes the cache directory's lock first, throwing util::Error
  // if another server holds it. `check` gets each one's pin and returns the pin to use (the
  // same, with the version's file as the store knows it now) or throws
  // util::Error when the version is gone; such a session, and one whose
  // files are damaged, ends with a tombstone. Returns a line per session
  // for the log.
  std::vector<std::string> recover(const std::function<Pin(const Pin&)>& check);
  // Attaches a connection to the named session, creating it on `pin()` (the
  // version active now) if there is none and it never ended; throws
  // SessionGone if it ended. Pair with detach().
  std::shared_ptr<Session> attach(const std::string& name, const std::function<Pin()>& pin);
  // A boot: starts the named session afresh on `pin` unless it has a
  // connection now. Any session of that name without connections ends
  // first, then a new one with an empty cache begins, counted as idle from
  // now (a publish between the boot script and the block attach does not
  // change its version). With a connection open, the running session is
  // returned as it is: compare its pin with the one asked for.
  std::shared_ptr<Session> start(const std::string& name, const Pin& pin);
  // A session for one connection only.
  std::shared_ptr<Session> attach_anonymous(const Pin& pin);
  void detach(const std::shared_ptr<Session>& session);
  // Ends a named session: its next attach is refused until a boot starts
  // a new one. Existing connections keep the old cache until they close.
  // False if there was none.
  bool reset(const std::string& name, const std::string& reason = "reset");
  // The named session, or null.
  std::shared_ptr<Session> find(const std::string& name);
  // Takes the named session out of service while it is read whole (a
  // maintenance commit): attaches are refused with SessionGone and boots
  // leave it alone until thaw() or its end (reset). Null if there is none
  // or it is frozen already.
  std::shared_ptr<Session> freeze(const std::string& name);
  void thaw(const std::shared_ptr<Session>& session) { session->frozen_ = false; }
  // Why the named session ended, if it did and no boot started it again.
  std::optional<std::string> ended_reason(const std::string& name);
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
  // Ends a named session already taken out of named_: hooks, tombstone
  // (unless `tombstone` is empty), files.
  void end(const std::shared_ptr<Session>& session, const std::string& tombstone);
  void write_tombstone(const std::string& name, const std::string& reason);
  // Sessions start and end by the filesystem (directories made and
  // removed, files fsynced) and the catalog (a lease each): milliseconds
  // each, and under a boot storm hundreds in a row. Done under mutex_, they
  // held every other PC's boot and attach (200 boots: the last boot script
  // after 3.5 to 10 s, and every kernel's attach behind them). So the work
  // on one name runs outside mutex_ with the name in changing_; anything
  // else on that name waits for it (wait_settled), other names go on.
  // `work` runs without the lock; the lock is held again on return.
  std::shared_ptr<Session> changing(std::unique_lock<std::mutex>& lock, const std::string& name,
                                    const std::function<std::shared_ptr<Session>()>& work);
  void wait_settled(std::unique_lock<std::mutex>& lock, const std::string& name);
  uint64_t quota_of(const std::string& name) const {
    auto own = options_.quota ? options_.quota(name) : std::nullopt;
    return own.value_or(options_.quota_default);
  }
  // The reserve, never more than the quota (what could it be used for?).
  uint64_t reserve_for(const std::string& name) const {
    uint64_t q = quota_of(name);
    return q ? std::min(q, options_.reserve) : options_.reserve;
  }

  Options options_;
  Hooks hooks_;
  std::shared_ptr<RamBudget> ram_;
  ChainRegistry chains_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Session>> named_;
  std::map<Session*, std::weak_ptr<Session>> anonymous_;
  std::map<std::string, std::string> tombstones_;  // name -> why it ended
  std::set<std::string> changing_;                  // names being started or made (changing())
  std::condition_variable settled_;                 // a name left changing_
  util::FileLock dir_lock_;                         // one server per cache directory
  uint64_t anonymous_counter_ = 0;
};

}  // namespace bootfleet::block
