// imgtool convert IN OUT [--to FORMAT] [--parent P] [--from FORMAT]
#include <iostream>

#include "cli.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/size.h"
#include "vhd/convert.h"
#include "vhd/open_disk.h"

namespace bootfleet::imgtool {

int cmd_convert(const std::vector<std::string>& args) {
  CommandSpec spec{"convert", "IN OUT [--to raw|vhd-fixed|vhd-dynamic|vhd-diff] [--parent P] [--from FORMAT]",
                   "Convert a disk between raw, VHD and VHDX.",
                   "IN may be raw, any VHD (a differencing one is read through its whole chain and\n"
                   "flattened) or VHDX (read with libvhdi, differencing parents included); its\n"
                   "format is detected from its bytes unless --from says. All-zero blocks are not\n"
                   "stored. --to vhd-diff writes a differencing VHD on PARENT that holds only the\n"
                   "sectors where IN differs from PARENT. OUT is written under a temporary name\n"
                   "and renamed into place when complete; an existing OUT is kept unless --force.\n"
                   "Progress is shown on a terminal."};
  auto options = base_options();
  std::string in, out, to = "vhd-dynamic", from = "auto", parent, block_text = "2M";
  bool force = false;
  options.add_options()
      ("in", po::value(&in)->required(), "input disk file")
      ("out", po::value(&out)->required(), "output file")
      ("to,O", po::value(&to)->default_value(to), "raw, vhd-fixed, vhd-dynamic or vhd-diff")
      ("from,f", po::value(&from)->default_value(from), "input format: auto, raw, vhd or vhdx")
      ("parent,p", po::value(&parent), "parent VHD for --to vhd-diff")
      ("block-size,b", po::value(&block_text)->default_value(block_text), "block size of a VHD output")
      ("force", po::bool_switch(&force), "replace OUT if it exists");
  po::positional_options_description pos;
  pos.add("in", 1).add("out", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;

  vhd::ConvertOptions co;
  co.to = vhd::parse_output_format(to);
  co.parent = parent;
  co.replace = force;
  co.block_size = static_cast<uint32_t>(std::min<uint64_t>(util::parse_size(block_text, "--block-size"), UINT32_MAX));
  if (!parent.empty() && co.to != vhd::OutputFormat::kVhdDiff) {
    throw util::Error("--parent is only for --to vhd-diff");
  }
  auto disk = vhd::open_disk(in, vhd::parse_input_format(from));
  auto progress = util::Progress::for_terminal("convert", disk->size());
  co.progress = [&](uint64_t done, uint64_t) { progress.update(done); };
  vhd::ConvertResult r = vhd::convert(*disk, out, co);
  progress.finish();
  std::cout << "converted " << in << " (" << disk->format_name() << ", " << util::format_size(disk->size())
            << ") to " << out << " (" << vhd::output_format_name(co.to) << ", "
            << util::format_size(r.size) << ", " << util::format_size(r.stored_bytes) << " of data stored)\n";
  return kExitOk;
}

}  // namespace bootfleet::imgtool
