#include "recipe/execute.h"

#include <chrono>
#include <cstdio>

#include "recipe/steps.h"
#include "util/error.h"

namespace bootfleet::recipe {

using util::Error;

StepFailed::StepFailed(const Step& step, size_t index, size_t count, const std::string& error)
    : Error(step.where.text() + ": step " + std::to_string(index + 1) + " of " + std::to_string(count) + " (" +
            step.summary() + ") failed: " + error),
      index_(index) {}

namespace {
constexpr uint64_t kSector = 512;
constexpr int64_t kFirstSector = 2048;  // 1 MiB: what every partitioner aligns to
}  // namespace

void prepare_blank_disk(guest::Guest& guest, const Base& base, const ExecuteOptions& options) {
  std::string disk = guest.devices().at(0);
  bool gpt = base.partition_table == "gpt";
  guest.part_init(disk, gpt ? "gpt" : "msdos");
  int64_t total = guest.sectors(disk);
  int64_t last_usable = total - (gpt ? 34 : 1);  // GPT keeps its backup table at the end
  int64_t start = kFirstSector;
  for (size_t i = 0; i < base.partitions.size(); ++i) {
    const Partition& p = base.partitions[i];
    int64_t end = p.size ? start + static_cast<int64_t>(p.size / kSector) - 1 : last_usable;
    if (end > last_usable) {
      throw Error(p.where.text() + ": partition " + std::to_string(i + 1) + " does not fit on the " +
                  std::to_string(base.size) + "-byte disk");
    }
    guest.part_add(disk, start, end);
    int n = static_cast<int>(i + 1);
    const guest::PartitionType* type = guest::find_partition_type(p.type);
    if (!type) throw Error(p.where.text() + ": unknown partition type '" + p.type + "'");
    if (gpt) guest.part_set_gpt_type(disk, n, type->gpt_guid);
    else guest.part_set_mbr_id(disk, n, type->mbr_id);
    if (p.bootable && !gpt) guest.part_set_bootable(disk, n, true);
    std::string dev = disk + std::to_string(n);
    if (p.type == "swap") {
      guest.mkswap(dev, p.label);
    } else if (!p.filesystem.empty()) {
      guest.mkfs(p.filesystem, dev);
      if (!p.label.empty()) guest.set_label(dev, p.label);
    }
    if (options.say) {
      options.say("      " + dev + ": " + p.type + (p.filesystem.empty() ? "" : ", " + p.filesystem) +
                  (p.label.empty() ? "" : ", label " + p.label) + ", " +
                  std::to_string((end - start + 1) * static_cast<int64_t>(kSector) >> 20) + " MiB");
    }
    start = end + 1;
  }
}

void run_steps(guest::Guest& guest, const Recipe& recipe, const ExecuteOptions& options) {
  const StepRun run{guest, options};
  const size_t count = recipe.steps.size();
  for (size_t i = 0; i < count; ++i) {
    const Step& s = recipe.steps[i];
    if (options.say) options.say("[" + std::to_string(i + 1) + "/" + std::to_string(count) + "] " + s.summary());
    auto t0 = std::chrono::steady_clock::now();
    try {
      step_kind(s.kind).run(run, s);
    } catch (const StepFailed&) {
      throw;
    } catch (const std::exception& e) {
      throw StepFailed(s, i, count, e.what());
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (options.say && secs >= 0.05) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f s", secs);
      options.say(std::string("      done in ") + buf);
    }
  }
}

}  // namespace bootfleet::recipe
