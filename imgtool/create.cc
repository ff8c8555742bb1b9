// imgtool create FILE --size SIZE [--type dynamic|fixed] [--parent P] [--block-size B]
#include <iostream>

#include "cli.h"
#include "util/error.h"
#include "util/file.h"
#include "util/size.h"
#include "vhd/chain.h"
#include "vhd/writer.h"

namespace bootfleet::imgtool {

int cmd_create(const std::vector<std::string>& args) {
  CommandSpec spec{"create", "FILE --size SIZE [--type dynamic|fixed] [--block-size SIZE] [--force]\n"
                   "       imgtool create FILE --parent PARENT.vhd",
                   "Create an empty VHD: dynamic (the default), fixed, or differencing on PARENT.",
                   "Sizes are rounded up to whole CHS cylinders, as Hyper-V, Virtual PC and\n"
                   "qemu-img do, so every reader sees the same disk size; the size created is\n"
                   "printed. A differencing disk takes its parent's size and records the parent's\n"
                   "unique id, its name, and its path (relative W2ru and absolute W2ku locators).\n"
                   "FILE must not exist unless --force is given."};
  auto options = base_options();
  std::string file, size_text, type_text, parent, block_text;
  bool force = false;
  options.add_options()
      ("file", po::value(&file)->required(), "the VHD to create")
      ("size,s", po::value(&size_text), "virtual disk size, e.g. 20G")
      ("type,t", po::value(&type_text)->default_value("dynamic"), "dynamic or fixed")
      ("parent,p", po::value(&parent), "make a differencing disk on this VHD")
      ("block-size,b", po::value(&block_text)->default_value("2M"), "block size of a dynamic or differencing disk")
      ("force,f", po::bool_switch(&force), "replace FILE if it exists");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;

  vhd::WriterOptions wo;
  wo.block_size = static_cast<uint32_t>(std::min<uint64_t>(util::parse_size(block_text, "--block-size"), UINT32_MAX));
  std::unique_ptr<vhd::Chain> parent_chain;
  if (!parent.empty()) {
    if (vm.count("type") && !vm["type"].defaulted()) {
      throw util::Error("--type and --parent exclude each other: a disk with a parent is differencing");
    }
    parent_chain = vhd::Chain::open(parent);
    wo.type = vhd::DiskType::kDifferencing;
    wo.parent = parent_chain->layers().front().get();
    if (!size_text.empty() && util::parse_size(size_text, "--size") != parent_chain->size()) {
      throw util::Error("--size " + size_text + " differs from the parent's size " +
                        std::to_string(parent_chain->size()) + "; a differencing disk has its parent's size");
    }
  } else {
    if (size_text.empty()) throw util::Error("--size is required (or --parent for a differencing disk)");
    wo.size = util::parse_size(size_text, "--size");
    if (type_text == "dynamic") wo.type = vhd::DiskType::kDynamic;
    else if (type_text == "fixed") wo.type = vhd::DiskType::kFixed;
    else throw util::Error("--type: '" + type_text + "' is not a type; use dynamic or fixed "
                           "(or --parent for differencing)");
    if (wo.size == 0) throw util::Error("--size must be more than 0");
    if (wo.size > vhd::kMaxDiskSize) {
      throw util::Error("--size " + size_text + " exceeds the VHD limit of 2040 GiB");
    }
  }

  util::AtomicOutput out(file);
  vhd::Writer writer(out.path(), wo);
  writer.finish();
  out.commit(force);

  std::cout << "created " << file << ": " << vhd::disk_type_name(wo.type) << " VHD, "
            << util::format_size(writer.size()) << " (" << writer.size() << " bytes)";
  if (wo.type != vhd::DiskType::kFixed) std::cout << ", block size " << util::format_size(writer.block_size());
  if (parent_chain) std::cout << ", parent " << parent;
  if (!parent_chain && writer.size() != wo.size) {
    std::cout << "; rounded up from " << wo.size << " bytes to whole CHS cylinders";
  }
  std::cout << "\n";
  return kExitOk;
}

}  // namespace bootfleet::imgtool
