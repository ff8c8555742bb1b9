// A disk offered to a libguestfs appliance: an NBD server on a private unix
// socket, in-process, serving one block::Device under any export name.
//
// Design note. The appliance's qemu is our only client, so the socket lives
// in a directory only this process knows (mode 0700, removed with it) and
// connection logging is off. Whatever the device is — a write cache over a
// chain for a build, a read-only version for inspection — the appliance
// sees a plain raw disk.
#pragma once

#include <memory>
#include <string>

#include "block/device.h"

namespace bootfleet::nbd {
class Server;
}

namespace bootfleet::guest {

class DiskServer {
 public:
  // Listens on `dir`/NAME.sock and starts serving. Throws util::Error.
  DiskServer(std::shared_ptr<block::Device> device, const std::string& dir, const std::string& name);
  ~DiskServer();  // stops the server and waits for its connection to end
  DiskServer(const DiskServer&) = delete;
  DiskServer& operator=(const DiskServer&) = delete;

  const std::string& socket() const { return socket_; }
  const std::string& export_name() const { return name_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string socket_, name_;
};

// A private directory (0700) for sockets and caches, removed with everything
// in it when this goes away. Created under `parent`, else $TMPDIR, else
// /var/tmp (a disk, not RAM: a build's cache may be large).
class WorkDir {
 public:
  explicit WorkDir(const std::string& parent = "");
  ~WorkDir();
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace bootfleet::guest
