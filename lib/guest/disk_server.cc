#include "guest/disk_server.h"

#include <cstdlib>
#include <filesystem>

#include "nbd/server.h"
#include "util/error.h"
#include "util/log.h"

namespace bootfleet::guest {

namespace fs = std::filesystem;

namespace {

class SingleExport : public nbd::ExportResolver {
 public:
  SingleExport(std::shared_ptr<block::Device> device, std::string name)
      : device_(std::move(device)), name_(std::move(name)) {}
  nbd::OpenedExport open(const std::string&) override { return {device_, name_, {}}; }
  std::vector<std::pair<std::string, std::string>> list() override { return {{name_, name_}}; }

 private:
  std::shared_ptr<block::Device> device_;
  std::string name_;
};

}  // namespace

struct DiskServer::Impl {
  Impl(std::shared_ptr<block::Device> device, const std::string& name) : exports(std::move(device), name), server(exports) {}
  SingleExport exports;
  nbd::Server server;
};

DiskServer::DiskServer(std::shared_ptr<block::Device> device, const std::string& dir, const std::string& name)
    : impl_(std::make_unique<Impl>(std::move(device), name)), socket_(dir + "/" + name + ".sock"), name_(name) {
  util::set_log_enabled(false);  // the appliance's connection is not news
  impl_->server.listen("unix:" + socket_);
  impl_->server.start();
}

DiskServer::~DiskServer() {
  impl_->server.stop();
  impl_->server.wait();
}

WorkDir::WorkDir(const std::string& parent) {
  std::string base = parent;
  if (base.empty()) {
    const char* t = std::getenv("TMPDIR");
    base = t && *t ? t : "/var/tmp";
  }
  fs::create_directories(base);
  std::string tmpl = base + "/bootfleet-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw util::errno_error("create a work directory in " + base);
  path_ = tmpl;
}

WorkDir::~WorkDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace bootfleet::guest
