// imgtool export IMAGE[@N|@active] OUT [--to raw|vhd-dynamic|vhd-fixed] [--diff-from M]
#include <iostream>

#include "cli.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/size.h"
#include "vhd/convert.h"

namespace bootfleet::imgtool {

int cmd_export(const std::vector<std::string>& args) {
  CommandSpec spec{"export", "IMAGE[@N|@active] OUT [--to raw|vhd-dynamic|vhd-fixed] [--diff-from M] [--force]",
                   "Write a version out as one flat file, usable anywhere (Hyper-V, qemu, libvhdi).",
                   "Without @N the active version is exported. The chain is flattened: OUT has no\n"
                   "parent. With --diff-from M, OUT is instead a differencing VHD over version M\n"
                   "holding only the blocks whose digests differ (what 'imgtool push' uploads).\n"
                   "OUT (also -o OUT) is kept if it exists, unless --force."};
  auto options = base_options();
  std::string store_dir, ref_text, out, to = "vhd-dynamic";
  bool force = false;
  int64_t diff_from = 0;
  add_store_option(options, store_dir);
  options.add_options()
      ("version", po::value(&ref_text)->required(), "IMAGE, IMAGE@N or IMAGE@active")
      ("out,o", po::value(&out)->required(), "output file")
      ("diff-from", po::value(&diff_from), "write a differencing VHD over this earlier version of the image")
      ("to,O", po::value(&to)->default_value(to), "raw, vhd-dynamic or vhd-fixed")
      ("force", po::bool_switch(&force), "replace OUT if it exists");
  po::positional_options_description pos;
  pos.add("version", 1).add("out", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  if (vm.count("diff-from")) {
    if (!vm["to"].defaulted()) throw util::Error("--diff-from writes a differencing VHD; leave out --to");
    auto s = open_store(store_dir);
    auto v = s->version(store::parse_version_ref(ref_text));
    auto r = s->write_patch({v.image, v.number, false}, diff_from, out, force);
    std::cout << "exported " << v.image << "@" << v.number << " over @" << diff_from << " to " << out
              << " (vhd-diff, " << r.changed_blocks << " changed blocks, " << util::format_size(r.file_size) << ")\n";
    return kExitOk;
  }
  vhd::ConvertOptions co;
  co.to = vhd::parse_output_format(to);
  if (co.to == vhd::OutputFormat::kVhdDiff) throw util::Error("--to: export writes a flat file: raw, vhd-dynamic or vhd-fixed");
  co.replace = force;
  auto s = open_store(store_dir);
  auto v = s->version(store::parse_version_ref(ref_text));
  auto disk = s->open_version(v);
  auto progress = util::Progress::for_terminal("export", disk->size());
  co.progress = [&](uint64_t done, uint64_t) { progress.update(done); };
  auto r = vhd::convert(*disk, out, co);
  progress.finish();
  std::cout << "exported " << v.image << "@" << v.number << " to " << out << " (" << vhd::output_format_name(co.to)
            << ", " << util::format_size(r.size)
            << (r.size % (1u << 20) ? ": " + std::to_string(r.size) +
                                          " bytes, the image's size in whole CHS cylinders (docs/formats.md)"
                                    : std::string())
            << ")\n";
  return kExitOk;
}

}  // namespace bootfleet::imgtool
