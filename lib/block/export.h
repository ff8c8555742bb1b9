// What a block protocol opens: a device and what to say about it. Every
// block protocol (nbd/, iscsi/) takes export names from the same resolver,
// so an NBD client and an iSCSI initiator that name the same session see one
// write cache.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "block/device.h"

namespace bootfleet::block {

// What to do once when a holder is done with an export (detach from the
// session, drop the read-only lease). Move-only and self-running: it runs
// when destroyed, when assigned over, or when called, and never twice, so
// every path out of a connection (error replies, NBD_OPT_INFO probes,
// iSCSI sessions kept for reinstatement and later expired) releases exactly
// once without a hand-written call on each path.
class ReleaseOnce {
 public:
  ReleaseOnce() = default;
  ReleaseOnce(std::nullptr_t) {}  // NOLINT: `{device, description, nullptr}`: nothing to release
  template <class F>
    requires std::is_invocable_v<F&>
  ReleaseOnce(F fn) : fn_(std::move(fn)) {}  // NOLINT: implicit, so `out.release = [..] {..}` reads as before
  ReleaseOnce(ReleaseOnce&& other) noexcept : fn_(std::exchange(other.fn_, nullptr)) {}
  ReleaseOnce& operator=(ReleaseOnce&& other) noexcept {
    if (this != &other) {
      (*this)();
      fn_ = std::exchange(other.fn_, nullptr);
    }
    return *this;
  }
  ReleaseOnce(const ReleaseOnce&) = delete;
  ReleaseOnce& operator=(const ReleaseOnce&) = delete;
  ~ReleaseOnce() { (*this)(); }

  // Releases now (the destructor then does nothing).
  void operator()() {
    if (auto fn = std::exchange(fn_, nullptr)) fn();
  }
  explicit operator bool() const { return static_cast<bool>(fn_); }

 private:
  std::function<void()> fn_;
};

// Move-only: whoever holds it holds the export, and dropping it releases.
struct OpenedExport {
  std::shared_ptr<Device> device;
  std::string description;  // for NBD_INFO_DESCRIPTION and logs
  ReleaseOnce release;      // runs once when the holder is done with it
};

// Maps export names to devices. Implemented by serve::StoreExports (bootsrv:
// sessions over the store) and by guest::DiskServer (imgtool build: one
// write cache).
class ExportResolver {
 public:
  virtual ~ExportResolver() = default;
  // Throws util::Error whose message tells the client what is wrong and what
  // exists (e.g. "no image 'x'; images: lab, office").
  virtual OpenedExport open(const std::string& name) = 0;
  // What NBD_OPT_INFO and the meta-context options need: the export's size
  // and flags, without what opening it for I/O does (bootsrv: an anonymous
  // session, its lease and two log lines for every `nbdinfo --list` entry).
  // Same errors as open(). Default: open().
  virtual OpenedExport describe(const std::string& name) { return open(name); }
  // (name, description) of exports a client may list.
  virtual std::vector<std::pair<std::string, std::string>> list() = 0;
};

}  // namespace bootfleet::block
