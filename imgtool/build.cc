// imgtool build RECIPE: the next version of an image, from a recipe.
//
// Design note (DESIGN.md §4 "Build"). The recipe is parsed and checked
// whole before anything slow starts. The base (a version's chain, an
// imported file, or a blank disk) goes under a fresh write cache, which an
// in-process NBD server offers on a private unix socket; the libguestfs
// appliance attaches to it, so everything the steps write lands in the cache
// and nothing else changes. After the appliance shut down (qemu has sent
// every write), the store imports the cache's view of the disk; on a
// version base it reads only the blocks the build touched, so a patch costs
// what it changed. A failure anywhere stores nothing: the cache lives in a
// private work directory that is removed on the way out.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "block/cache_device.h"
#include "cli.h"
#include "guest/disk_server.h"
#include "guest/guest.h"
#include "guest/stop.h"
#include "recipe/build_key.h"
#include "recipe/execute.h"
#include "recipe/recipe.h"
#include "store/version_json.h"
#include "util/error.h"
#include "util/sha256.h"
#include "util/size.h"
#include "vhd/format.h"
#include "vhd/open_disk.h"

namespace bootfleet::imgtool {

namespace {

namespace fs = std::filesystem;
using util::Error;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string secs(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

struct Base {
  std::shared_ptr<const vhd::Disk> disk;
  std::string identity;                   // for the build key
  std::optional<store::VersionInfo> version;  // a version base
  std::string description;
};

Base open_base(store::Store& s, const recipe::Recipe& r) {
  Base b;
  switch (r.base.kind) {
    case recipe::Base::Kind::kVersion: {
      store::VersionInfo v;
      try {
        v = s.version(store::parse_version_ref(r.base.version));
      } catch (const Error& e) {
        throw Error(r.base.where.text() + ": base: " + e.what());
      }
      b.disk = s.open_version(v);
      b.identity = "version " + v.disk_digest;
      b.description = v.image + "@" + std::to_string(v.number);
      b.version = v;
      break;
    }
    case recipe::Base::Kind::kImport:
      b.disk = vhd::open_disk(r.base.import_path);
      b.identity = "import " + util::file_sha256_hex(r.base.import_path);
      b.description = r.base.import_path + " (" + b.disk->format_name() + ")";
      break;
    case recipe::Base::Kind::kCreate: {
      uint64_t size = vhd::round_up_to_geometry(r.base.size);
      b.disk = std::make_shared<vhd::ZeroDisk>(size);
      b.identity = "create " + std::to_string(size);
      b.description = "a blank " + util::format_size(size) + " disk";
      break;
    }
  }
  return b;
}

// The version an identical build made before, if any.
std::optional<store::VersionInfo> cached_build(store::Store& s, const std::string& image, const std::string& key) {
  bool exists = false;
  for (const auto& i : s.images()) exists |= i.name == image;
  if (!exists) return std::nullopt;
  auto versions = s.versions(image);
  for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
    if (it->recipe_hash == key) return *it;
  }
  return std::nullopt;
}

// The catalog record, plus "version" (= number), the name build --json
// has always used and the pipeline reads.
nlohmann::json build_version_json(const store::VersionInfo& v) {
  nlohmann::json j = store::version_json(v);
  j["version"] = v.number;
  return j;
}

// The build proper, once the recipe is parsed and its base open: appliance,
// steps, storing the version. cmd_build runs it under StopSignals.
int build_and_store(store::Store& store, const recipe::Recipe& r, Base& base, const std::string& key,
                    const std::string& file, const std::string& work_parent, bool publish, bool as_json,
                    const std::function<void(const std::string&)>& say,
                    std::chrono::steady_clock::time_point started);

}  // namespace

int cmd_build(const std::vector<std::string>& args) {
  CommandSpec spec{
      "build", "RECIPE [--set NAME=VALUE]... [--dry-run] [--no-cache] [--publish] [--json] [--store DIR]",
      "Build the next version of an image from a recipe (docs/recipes.md).",
      "The recipe is checked whole first (as 'imgtool lint' does). Then a libguestfs\n"
      "appliance runs its steps on a write cache over the base, and what they wrote\n"
      "becomes the image's next version, recording the recipe and its hash. Each step\n"
      "is printed as it runs, with its time. On failure, the step, its place in the\n"
      "recipe and the guest's error are shown, and nothing is stored.\n\n"
      "Build cache: when a version of the image was built from the same base content,\n"
      "the same recipe (after variables) and the same input files, it is reused and\n"
      "nothing is built (--no-cache builds anyway).\n\n"
      "The appliance runs with KVM when it can; if KVM fails (the launch fails, or has\n"
      "not finished after 60 s) it is retried with TCG (slower) and a note says so.\n"
      "BOOTFLEET_GUEST_ACCEL=kvm|tcg|auto overrides.\n"
      "The write cache and NBD socket live in a private directory under --work-dir\n"
      "(default $TMPDIR, else /var/tmp), removed afterwards."};
  auto options = base_options();
  std::string file, store_dir, work_parent;
  std::vector<std::string> sets;
  bool dry_run = false, no_cache = false, publish = false, as_json = false;
  options.add_options()("recipe", po::value(&file)->required(), "the recipe file")(
      "set", po::value(&sets)->composing(), "NAME=VALUE for ${NAME} in the recipe (repeatable)")(
      "dry-run", po::bool_switch(&dry_run), "check the recipe and show the plan; build nothing")(
      "no-cache", po::bool_switch(&no_cache), "build even if an identical build made a version")(
      "publish", po::bool_switch(&publish), "publish the new version")(
      "work-dir", po::value(&work_parent), "where the build's write cache goes (a local disk)")(
      "json", po::bool_switch(&as_json), "print the result as JSON on stdout");
  add_store_option(options, store_dir);
  po::positional_options_description pos;
  pos.add("recipe", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;

  auto say = [&](const std::string& line) { (as_json ? std::cerr : std::cout) << line << std::endl; };
  auto started = std::chrono::steady_clock::now();

  recipe::ParseOptions parse_options;
  parse_options.variables = parse_set_options(sets);
  recipe::Recipe r;
  try {
    r = recipe::parse_file(file, parse_options);
  } catch (const recipe::RecipeError& e) {
    for (const auto& p : e.problems()) std::cerr << p.text() << "\n";
    throw Error(file + ": " + std::to_string(e.problems().size()) + " problem" +
                (e.problems().size() == 1 ? "" : "s") + "; nothing was built");
  }

  auto s = open_store(store_dir);
  Base base = open_base(*s, r);
  std::string key = recipe::build_key(r, base.identity);
  say("build " + r.image + " from " + base.description + ": " + std::to_string(r.steps.size()) + " steps");

  if (!no_cache) {
    if (auto hit = cached_build(*s, r.image, key)) {
      say("build cache: " + r.image + "@" + std::to_string(hit->number) +
          " was built from the same base, recipe and inputs; nothing to do (--no-cache builds anyway)");
      if (publish) {
        auto a = s->publish({r.image, hit->number, false}, "imgtool build");
        say(a.changed ? "published " + r.image + "@" + std::to_string(hit->number)
                      : r.image + "@" + std::to_string(hit->number) + " is already active");
      }
      if (as_json) {
        std::cout << nlohmann::json{{"cached", true}, {"version", build_version_json(*hit)}}.dump(2) << "\n";
      }
      return kExitOk;
    }
  }
  if (dry_run) {
    if (r.base.kind == recipe::Base::Kind::kCreate) {
      say("partition the disk (" + r.base.partition_table + ", " + std::to_string(r.base.partitions.size()) +
          " partitions)");
    }
    for (size_t i = 0; i < r.steps.size(); ++i) {
      say("[" + std::to_string(i + 1) + "/" + std::to_string(r.steps.size()) + "] " + r.steps[i].summary());
    }
    say("dry run: nothing built (build key " + key.substr(0, 16) + "…)");
    if (as_json) std::cout << nlohmann::json{{"dry_run", true}, {"build_key", key}}.dump(2) << "\n";
    return kExitOk;
  }

  // From here on a guest runs: SIGINT and SIGTERM stop it and unwind, so
  // the work directory, the NBD socket and every temporary file of
  // libguestfs and QEMU go as on any error (guest/stop.h).
  guest::PrivateTmpdir tmpdir;  // first: no thread runs yet (it sets TMPDIR)
  guest::StopSignals stop(/*kill_children=*/true);
  try {
    return build_and_store(*s, r, base, key, file, work_parent, publish, as_json, say, started);
  } catch (const std::exception& e) {
    if (int sig = guest::StopSignals::received()) {
      throw Error("interrupted by " + guest::StopSignals::name(sig) + " (" + e.what() +
                  "); nothing was stored, the appliance and the build's temporary files are removed");
    }
    throw;
  }
}

namespace {

int build_and_store(store::Store& store, const recipe::Recipe& r, Base& base, const std::string& key,
                    const std::string& file, const std::string& work_parent, bool publish, bool as_json,
                    const std::function<void(const std::string&)>& say,
                    std::chrono::steady_clock::time_point started) {
  auto* s = &store;
  guest::WorkDir work(work_parent);
  auto device = std::make_shared<block::CacheDevice>(base.disk, work.path());
  guest::DiskServer disk(device, work.path(), "build");

  guest::LaunchOptions lo;
  lo.nbd_socket = disk.socket();
  lo.export_name = disk.export_name();
  lo.accel = guest::accel_from_environment();
  lo.note = [&](const std::string& note) { std::cerr << "imgtool build: note: " << note << std::endl; };
  say("launching the appliance…");
  auto g = guest::Guest::launch(lo);
  say("      ready in " + secs(g->launch_seconds()) + (g->tcg() ? " (TCG)" : ""));

  recipe::ExecuteOptions eo;
  eo.say = say;
  eo.artifacts_dir = work.path() + "/artifacts";
  if (r.base.kind == recipe::Base::Kind::kCreate) {
    say("[0/" + std::to_string(r.steps.size()) + "] partition and format the blank disk");
    recipe::prepare_blank_disk(*g, r.base, eo);
  }
  say("      mounted " + g->mount_root());
  recipe::run_steps(*g, r, eo);
  g->shutdown();
  g.reset();
  if (int sig = guest::StopSignals::received()) throw Error(guest::StopSignals::name(sig) + " before storing");

  store::ImportOptions io;
  io.message = r.message.empty() ? "built from " + fs::path(file).filename().string() : r.message;
  io.source = "build of " + fs::path(file).filename().string() + " on " + base.description;
  io.recipe = r.canonical;
  io.recipe_hash = key;
  io.publish = publish;
  // A version built on another keeps the base's artifacts the recipe did not
  // copy out anew: a patch that leaves the kernel alone must still boot over
  // the network, with the kernel its disk holds.
  if (base.version) {
    for (const auto& name : s->artifacts(*base.version)) {
      std::string dest = eo.artifacts_dir + "/" + name;
      if (fs::exists(dest)) continue;
      fs::create_directories(eo.artifacts_dir);
      fs::copy_file(s->artifact_path(*base.version, name), dest);
      say("      artifact " + name + " kept from " + base.version->image + "@" +
          std::to_string(base.version->number) + " (the recipe does not copy it out)");
    }
  }
  if (fs::is_directory(eo.artifacts_dir)) io.artifacts_dir = eo.artifacts_dir;
  if (base.version && base.version->image == r.image) {
    io.changed_since = {base.version->number, device->cache().touched_blocks(store::kDigestBlockSize)};
  }
  block::CacheDisk built(device->cache());
  say("storing " + util::format_size(device->cache().data_bytes()) + " written by the build…");
  auto result = s->import_disk(r.image, built, io);
  const auto& v = result.version;
  say("built " + v.image + "@" + std::to_string(v.number) +
      (v.parent ? " on @" + std::to_string(*v.parent) + ": " + std::to_string(result.changed_blocks) + " changed blocks"
                : " (a new base): " + std::to_string(result.changed_blocks) + " blocks with data") +
      ", file " + util::format_size(v.file_size) + ", in " +
      secs(seconds_since(started)) + (publish ? "; published" : ""));
  if (as_json) {
    std::cout << nlohmann::json{{"cached", false},
                                {"version", build_version_json(v)},
                                {"changed_blocks", result.changed_blocks},
                                {"seconds", seconds_since(started)}}
                     .dump(2)
              << "\n";
  }
  return kExitOk;
}

}  // namespace

}  // namespace bootfleet::imgtool
