#include "boot_events.h"

#include "util/error.h"
#include "util/mac.h"
#include "util/metrics.h"

namespace bootfleet::bootsrv {

using nlohmann::json;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* kind_name(serve::BootEvent::Kind kind) {
  switch (kind) {
    case serve::BootEvent::Kind::kChainScript: return "chain";
    case serve::BootEvent::Kind::kBootScript: return "script";
    case serve::BootEvent::Kind::kKernel: return "kernel";
    case serve::BootEvent::Kind::kInitrd: return "initrd";
    case serve::BootEvent::Kind::kRootAttached: return "root";
  }
  return "?";
}

// A boot takes seconds (iPXE under KVM) to minutes (TCG, a slow disk).
const std::vector<double> kStageBounds = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600};

}  // namespace

BootEvents::BootEvents(serve::StoreExports& exports, std::string default_image)
    : exports_(exports), default_image_(std::move(default_image)) {
  // Every stage's series exists from the start, so dashboards see zeros
  // rather than no data.
  for (const char* s : kStages) {
    util::metrics::registry().histogram("bootfleet_boot_stage_seconds",
                                        "Duration of each boot stage as bootsrv sees it (docs/status.md)",
                                        kStageBounds, {{"stage", s}});
  }
}

bool BootEvents::is_error_line(const std::string& line) {
  for (const char* word : {"cannot ", "failed", "refused", "unknown export", "error", "ENOSPC", "full",
                           "not booted", "evicted", "damaged", "lost"}) {
    if (line.find(word) != std::string::npos) return true;
  }
  return false;
}

void BootEvents::on_log_line(const std::string& line) {
  // HTTP access lines name every request; their errors are counted by
  // bootfleet_protocol_errors_total, not listed.
  if (line.rfind("http ", 0) == 0 || line.rfind("https ", 0) == 0 || !is_error_line(line)) return;
  std::lock_guard lock(errors_mutex_);
  errors_.push_front({{"at_ms", now_ms()}, {"message", line.substr(0, 400)}});
  if (errors_.size() > kMaxEvents) errors_.pop_back();
}

std::optional<std::string> BootEvents::session_of_mac(const std::string& mac_text) {
  auto mac = util::parse_mac(mac_text);
  if (!mac) return std::nullopt;
  try {
    auto client = exports_.with_store([&](store::Store& s) { return s.find_client(*mac); });
    if (client) return client->image + "/" + client->name;
  } catch (const util::Error&) {
    return std::nullopt;
  }
  if (default_image_.empty()) return std::nullopt;
  return default_image_ + "/" + util::mac_with_hyphens(*mac);
}

void BootEvents::stage(Boot& boot, const char* name, int64_t from_ms, int64_t to_ms) {
  if (from_ms <= 0 || to_ms < from_ms) return;
  double seconds = double(to_ms - from_ms) / 1000.0;
  boot.stages[name] = seconds;
  util::metrics::registry()
      .histogram("bootfleet_boot_stage_seconds", "", kStageBounds, {{"stage", name}})
      .observe(seconds);
}

void BootEvents::forget_old(int64_t now) {
  const int64_t window = std::chrono::duration_cast<std::chrono::milliseconds>(kBootWindow).count();
  for (auto* times : {&loader_at_, &chain_at_}) {
    for (auto it = times->begin(); it != times->end();) {
      it = now - it->second > window ? times->erase(it) : std::next(it);
    }
  }
  for (auto it = by_peer_.begin(); it != by_peer_.end();) {
    auto b = boots_.find(it->second);
    bool stale = b == boots_.end() || b->second.complete || now - b->second.last_ms > window;
    it = stale ? by_peer_.erase(it) : std::next(it);
  }
  // Finished boots stay (the page shows each client's last one), but not
  // more of them than the ring of events holds for sessions nobody knows.
  while (boots_.size() > 4096) {
    auto oldest = boots_.begin();
    for (auto it = boots_.begin(); it != boots_.end(); ++it) {
      if (it->second.last_ms < oldest->second.last_ms) oldest = it;
    }
    boots_.erase(oldest);
  }
}

void BootEvents::on_tftp(const std::string& name, const std::string& peer) {
  const int64_t now = now_ms();
  std::lock_guard lock(mutex_);
  forget_old(now);
  bool chain_script = name == "boot.ipxe" || name.ends_with("/boot.ipxe");
  if (chain_script) {
    chain_at_[peer] = now;
  } else if (!loader_at_.count(peer) || chain_at_.count(peer)) {
    // The first loader of a boot (PXE may fetch more than one file); after
    // a chain script, a loader is the start of another boot.
    loader_at_[peer] = now;
    chain_at_.erase(peer);
  }
  events_.push_front({{"at_ms", now},
                      {"kind", chain_script ? "chain" : "tftp"},
                      {"session", nullptr},
                      {"peer", peer},
                      {"protocol", "tftp"},
                      {"detail", name.substr(0, 200)}});
  if (events_.size() > kMaxEvents) events_.pop_back();
}

void BootEvents::on_event(const serve::BootEvent& e) {
  using Kind = serve::BootEvent::Kind;
  const int64_t now = now_ms();
  // Resolved before the lock: it reads the catalog.
  std::optional<std::string> script_session;
  std::string mac;
  if (e.kind == Kind::kBootScript) {
    // detail: /boot/aa-bb-cc-dd-ee-ff.ipxe
    std::string file = e.detail.substr(e.detail.rfind('/') + 1);
    mac = file.substr(0, file.find('.'));
    script_session = session_of_mac(mac);
  }
  std::lock_guard lock(mutex_);
  forget_old(now);
  std::string session;
  switch (e.kind) {
    case Kind::kChainScript:
      chain_at_[e.peer] = now;
      break;
    case Kind::kBootScript: {
      if (!script_session) break;  // an unknown MAC told to register: no boot
      session = *script_session;
      Boot boot;
      boot.mac = mac;
      boot.peer = e.peer;
      boot.script_ms = boot.last_ms = now;
      auto chained = chain_at_.find(e.peer);
      auto loader = loader_at_.find(e.peer);
      boot.first_ms = now;
      if (chained != chain_at_.end()) {
        boot.first_ms = chained->second;
        if (loader != loader_at_.end()) {
          boot.first_ms = loader->second;
          stage(boot, "loader", loader->second, chained->second);
        }
        stage(boot, "script", chained->second, now);
        chain_at_.erase(chained);
      }
      if (loader != loader_at_.end()) loader_at_.erase(loader);
      boots_[session] = boot;
      by_peer_[e.peer] = session;
      break;
    }
    case Kind::kKernel:
    case Kind::kInitrd: {
      auto p = by_peer_.find(e.peer);
      if (p == by_peer_.end()) break;
      session = p->second;
      Boot& boot = boots_[session];
      if (e.kind == Kind::kKernel && !boot.kernel_ms) {
        boot.kernel_ms = now;
        stage(boot, "kernel", boot.script_ms, now);
      } else if (e.kind == Kind::kInitrd && !boot.initrd_ms) {
        boot.initrd_ms = now;
        stage(boot, "initrd", boot.kernel_ms ? boot.kernel_ms : boot.script_ms, now);
      }
      boot.last_ms = now;
      break;
    }
    case Kind::kRootAttached: {
      session = e.detail;
      auto b = boots_.find(session);
      if (b == boots_.end() || b->second.complete) break;
      Boot& boot = b->second;
      int64_t from = boot.initrd_ms ? boot.initrd_ms : boot.kernel_ms ? boot.kernel_ms : boot.script_ms;
      stage(boot, "root", from, now);
      stage(boot, "total", boot.first_ms, now);
      boot.complete = true;
      boot.last_ms = now;
      by_peer_.erase(boot.peer);
      break;
    }
  }
  events_.push_front({{"at_ms", now},
                      {"kind", kind_name(e.kind)},
                      {"session", session.empty() ? json(nullptr) : json(session)},
                      {"peer", e.peer.empty() ? json(nullptr) : json(e.peer)},
                      {"protocol", e.protocol.empty() ? json(nullptr) : json(e.protocol)},
                      {"detail", e.detail.substr(0, 200)}});
  if (events_.size() > kMaxEvents) events_.pop_back();
}

json BootEvents::boots() {
  std::lock_guard lock(mutex_);
  json out = json::object();
  for (const auto& [session, b] : boots_) {
    json stages = json::object();
    for (const auto& [k, v] : b.stages) stages[k] = v;
    out[session] = {{"mac", b.mac}, {"started_ms", b.first_ms}, {"last_ms", b.last_ms}, {"stages", stages},
                    {"complete", b.complete}};
  }
  return out;
}

bool BootEvents::booting(const std::string& session) {
  std::lock_guard lock(mutex_);
  auto b = boots_.find(session);
  if (b == boots_.end() || b->second.complete) return false;
  return now_ms() - b->second.last_ms < std::chrono::duration_cast<std::chrono::milliseconds>(kBootWindow).count();
}

json BootEvents::recent_events() {
  std::lock_guard lock(mutex_);
  return json(std::vector<json>(events_.begin(), events_.end()));
}

json BootEvents::recent_errors() {
  std::lock_guard lock(errors_mutex_);
  return json(std::vector<json>(errors_.begin(), errors_.end()));
}

}  // namespace bootfleet::bootsrv
