// imgtool compare A B [--json]
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "util/progress.h"
#include "vhd/compare.h"
#include "vhd/open_disk.h"

namespace bootfleet::imgtool {

int cmd_compare(const std::vector<std::string>& args) {
  CommandSpec spec{"compare", "A B [--json]",
                   "Compare the guest-visible content of two disk files.",
                   "A and B may each be raw, VHD (chains are read whole) or VHDX. Disks of different\n"
                   "sizes are identical when the longer one's extra part reads as zeros (as\n"
                   "qemu-img compare does without --strict).\n"
                   "Exit status: 0 identical, 1 different (the first differing offset is printed),\n"
                   "2 an error."};
  auto options = base_options();
  std::string a, b;
  bool as_json = false;
  options.add_options()("a", po::value(&a)->required(), "first disk")(
      "b", po::value(&b)->required(), "second disk")("json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  pos.add("a", 1).add("b", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;

  auto da = vhd::open_disk(a);
  auto db = vhd::open_disk(b);
  auto progress = util::Progress::for_terminal("compare", std::max(da->size(), db->size()));
  vhd::CompareResult r = vhd::compare(*da, *db, [&](uint64_t done, uint64_t) { progress.update(done); });
  progress.finish();
  if (as_json) {
    nlohmann::json j = {{"a", a}, {"b", b}, {"identical", r.identical},
                        {"size_a", da->size()}, {"size_b", db->size()}};
    if (r.first_difference) j["first_difference"] = *r.first_difference;
    std::cout << j.dump(2) << "\n";
  } else if (r.identical) {
    std::cout << "identical";
    if (da->size() != db->size()) {
      std::cout << " (sizes differ: " << da->size() << " and " << db->size()
                << " bytes; the longer one's extra part is zeros)";
    }
    std::cout << "\n";
  } else {
    std::cout << "different: first difference at byte offset " << *r.first_difference << " (sector "
              << *r.first_difference / 512 << ")\n";
  }
  return r.identical ? kExitOk : kExitNo;
}

}  // namespace bootfleet::imgtool
