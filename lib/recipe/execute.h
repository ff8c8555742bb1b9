// Running a recipe's steps on a launched appliance (lib/guest).
//
// Design note. Everything here acts on the guest through the named
// operations of lib/guest (never libguestfs directly); what each step does
// is its row of the step table (steps.h). The host is only read (copy-in,
// tar-in, the extlinux MBR code) or written at the paths the recipe names
// (copy-out). A step that fails throws
// StepFailed naming the step (its position in the recipe file, its number
// and a summary) and the guest's own error; the caller then stores nothing.
#pragma once

#include <functional>
#include <string>

#include "guest/guest.h"
#include "recipe/recipe.h"
#include "util/error.h"

namespace bootfleet::recipe {

class StepFailed : public util::Error {
 public:
  StepFailed(const Step& step, size_t index, size_t count, const std::string& error);
  size_t index() const { return index_; }

 private:
  size_t index_;
};

struct ExecuteOptions {
  // One line per event: each step as it starts and how long it took, the
  // output of `run` steps.
  std::function<void(const std::string&)> say;
  // Where copy-out steps with `artifact` put their files (the caller hands
  // them to the store with the new version).
  std::string artifacts_dir;
};

// For a `create` base: partitions and formats the blank first disk.
void prepare_blank_disk(guest::Guest& guest, const Base& base, const ExecuteOptions& options);

// Runs every step in order on the guest, whose filesystems are mounted.
void run_steps(guest::Guest& guest, const Recipe& recipe, const ExecuteOptions& options);

}  // namespace bootfleet::recipe
