// imgtool squash IMAGE@N [-m MESSAGE]
#include <iostream>

#include "cli.h"
#include "util/progress.h"
#include "util/size.h"

namespace bootfleet::imgtool {

int cmd_squash(const std::vector<std::string>& args) {
  CommandSpec spec{"squash", "IMAGE@N [-m MESSAGE] [--publish]",
                   "Store version N again as a new version that is a dynamic base (chain depth 1).",
                   "The new version has the same content and digests as N. Later versions build on\n"
                   "it, so older chains can be pruned. Depth policy: import starts a new base by\n"
                   "itself when a chain would exceed 32 files; squash does it when you choose."};
  auto options = base_options();
  std::string store_dir, ref_text, message;
  bool publish = false;
  add_store_option(options, store_dir);
  options.add_options()
      ("version", po::value(&ref_text)->required(), "IMAGE@N")
      ("message,m", po::value(&message), "what this version is")
      ("publish", po::bool_switch(&publish), "make the new version active");
  po::positional_options_description pos;
  pos.add("version", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  auto s = open_store(store_dir);
  auto ref = store::parse_version_ref(ref_text, /*version_required=*/true);
  auto source = s->version(ref);
  auto progress = util::Progress::for_terminal("squash", source.size);
  store::ImportOptions o;
  o.message = message;
  o.publish = publish;
  o.progress = [&](uint64_t done, uint64_t) { progress.update(done); };
  auto r = s->squash(ref, o);
  progress.finish();
  std::cout << "squashed " << ref.text() << " (depth " << source.depth << ") into " << ref.image << "@"
            << r.version.number << " (a new base, " << util::format_size(r.version.stored_bytes) << " stored)"
            << (publish ? ", published" : "") << "\n";
  return kExitOk;
}

}  // namespace bootfleet::imgtool
