// libFuzzer target for the VHD parser: the input is a whole VHD file. It is
// opened strictly (VhdFile, Chain: parents are not found, which is an error
// like any other), inspected leniently (check), and read through when it
// opens. Errors are expected; crashes, hangs, leaks and UB are not.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "util/error.h"
#include "util/file.h"
#include "vhd/chain.h"
#include "vhd/check.h"
#include "vhd/vhd_file.h"

using namespace bootfleet;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = ::memfd_create("fuzz.vhd", MFD_CLOEXEC);
  if (fd < 0) return 0;
  util::UniqueFd owner(fd);
  if (size && ::write(fd, data, size) != static_cast<ssize_t>(size)) return 0;
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    auto file = vhd::VhdFile::open(path);
    auto chain = vhd::Chain::from_file(file);
    // Read the first and last few MiB: enough to walk every run the map
    // holds near either end, bounded whatever size the footer claims.
    std::vector<uint8_t> buf(1 << 20);
    uint64_t disk = chain->size();
    for (uint64_t off : {uint64_t{0}, disk > (4u << 20) ? disk - (4u << 20) : 0}) {
      for (uint64_t at = off; at < disk && at < off + (4u << 20); at += buf.size()) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), disk - at));
        chain->read(at, buf.data(), n);
      }
    }
    (void)chain->extents(0, disk);
  } catch (const util::Error&) {
  }
  vhd::CheckReport report = vhd::check(path);
  (void)report.clean();
  return 0;
}
