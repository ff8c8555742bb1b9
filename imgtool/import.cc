// imgtool import IMAGE FILE [-m MESSAGE] [--publish]
#include <iostream>

#include "cli.h"
#include "util/progress.h"
#include "util/size.h"
#include "vhd/open_disk.h"

namespace bootfleet::imgtool {

int cmd_import(const std::vector<std::string>& args) {
  CommandSpec spec{"import", "IMAGE FILE [-m MESSAGE] [--publish] [--from FORMAT] [--resize]",
                   "Import a disk file as the next version of IMAGE (created if new).",
                   "FILE may be raw, any VHD (chains are read whole) or VHDX. Version 1 is stored\n"
                   "as a dynamic VHD; each later version as a differencing VHD on the one before\n"
                   "that holds only the sectors that differ, found by comparing block digests and\n"
                   "then sectors, so a full disk that changed 10 MiB stores about 10 MiB. When the\n"
                   "chain would get deeper than 32 files the version is stored as a new base.\n"
                   "FILE must have the image's size (a raw file of its nominal size, before the\n"
                   "rounding up to whole CHS cylinders, counts as the same): another size is\n"
                   "refused with both sizes unless --resize, which stores a new base of FILE's size.\n"
                   "An empty file is never a disk.\n"
                   "The file is written under tmp/, fsynced and renamed before the catalog row is\n"
                   "committed: an interrupted import leaves nothing behind. A FILE that reads\n"
                   "exactly as the latest version stores nothing (it says so; with --publish it\n"
                   "publishes that version): running an import again is safe."};
  auto options = base_options();
  std::string store_dir, image, file, message, from = "auto";
  bool publish = false, resize = false;
  add_store_option(options, store_dir);
  options.add_options()
      ("image", po::value(&image)->required(), "the image")
      ("file", po::value(&file)->required(), "the disk file to import")
      ("message,m", po::value(&message), "what this version is")
      ("publish", po::bool_switch(&publish), "make the new version active")
      ("resize", po::bool_switch(&resize), "accept a disk of another size than the version before (stored as a new base)")
      ("from,f", po::value(&from)->default_value(from), "input format: auto, raw, vhd or vhdx");
  po::positional_options_description pos;
  pos.add("image", 1).add("file", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  auto s = open_store(store_dir);
  auto disk = vhd::open_disk(file, vhd::parse_input_format(from));
  auto progress = util::Progress::for_terminal("import", disk->size());
  store::ImportOptions o;
  o.message = message;
  o.source = file;
  o.publish = publish;
  o.resize = resize;
  o.unless_same = true;
  o.progress = [&](uint64_t done, uint64_t) { progress.update(done); };
  auto r = s->import_disk(image, *disk, o);
  progress.finish();
  const auto& v = r.version;
  if (r.unchanged) {
    std::cout << file << " is the same disk as " << image << "@" << v.number << " (its latest version): nothing stored"
              << (publish ? "; " + image + "@" + std::to_string(v.number) + " published" : std::string()) << "\n";
    return kExitOk;
  }
  std::cout << "imported " << file << " as " << image << "@" << v.number << ": "
            << (v.parent ? "differencing on @" + std::to_string(*v.parent) + ", " + std::to_string(r.changed_blocks) +
                               " blocks changed"
                         : "new base, " + std::to_string(r.changed_blocks) + " blocks with data")
            << ", " << util::format_size(v.stored_bytes) << " stored" << (publish ? ", published" : "") << "\n";
  if (v.size != disk->size()) {
    std::cout << "the disk is " << v.size << " bytes (" << util::format_size(v.size) << "): "
              << (v.number == 1 || !v.parent ? "rounded up from " + std::to_string(disk->size()) +
                                                   " bytes to whole CHS cylinders (docs/formats.md)"
                                             : "the image's size; " + file + " is " + std::to_string(disk->size()) +
                                                   " bytes, its nominal size")
            << "\n";
  }
  return kExitOk;
}

}  // namespace bootfleet::imgtool
