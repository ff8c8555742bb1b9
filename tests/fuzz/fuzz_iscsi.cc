// libFuzzer target for the iSCSI target side: the input is everything an
// initiator sends (login PDUs and their keys, CHAP, text, SCSI commands with
// their CDBs, Data-Out, task management, logout), fed through a socketpair
// to serve_connection with a 1 MiB in-memory disk. The seeds log in (with
// and without CHAP) and then send commands, so mutations reach the full
// feature phase. The target must never crash, hang or read out of bounds.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <thread>

#include "iscsi/connection.h"
#include "support/feed_server.h"
#include "support/memory_device.h"
#include "util/log.h"

using namespace bootfleet;

namespace {

class FuzzTargets : public iscsi::Targets {
 public:
  std::optional<iscsi::ChapCredentials> authentication(const std::string& target) override {
    if (target == "iqn.2026-11.org.bootfleet:chap") return iscsi::ChapCredentials{"user", "fuzz-secret-123", "", ""};
    if (target.empty() || target == "iqn.2026-11.org.bootfleet:mem" || target == "iqn.2026-11.org.bootfleet:ro") return std::nullopt;
    throw iscsi::TargetError(iscsi::kLoginNotFound, "no target");
  }
  iscsi::OpenedTarget open(const std::string& target, const std::string&) override {
    bool ro = target == "iqn.2026-11.org.bootfleet:ro";
    return {{std::make_shared<test::MemoryDevice>(1u << 20, ro, true), "memory", nullptr},
            iscsi::identity_for(target, target)};
  }
  std::vector<std::string> list() override { return {"iqn.2026-11.org.bootfleet:mem", "iqn.2026-11.org.bootfleet:ro"}; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  util::set_log_enabled(false);
  FuzzTargets targets;
  iscsi::SessionTable sessions;
  test::feed_server(data, size, [&](int fd) { iscsi::serve_connection(fd, targets, sessions, "fuzz"); });
  return 0;
}
