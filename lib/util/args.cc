#include "util/args.h"

#include <algorithm>

#include "util/error.h"

namespace bootfleet::util {

std::vector<std::string> move_global_options(const std::vector<std::string>& args,
                                             const std::vector<std::string>& global) {
  std::vector<std::string> moved;
  size_t i = 0;
  while (i < args.size()) {
    const std::string& a = args[i];
    std::string name = a.substr(0, a.find('='));
    if (std::find(global.begin(), global.end(), name) == global.end()) break;
    if (name != a) {  // --store=DIR
      moved.push_back(a);
      ++i;
      continue;
    }
    if (i + 1 >= args.size()) throw Error(a + " needs a value before the command, e.g. " + a + " VALUE COMMAND");
    moved.push_back(a);
    moved.push_back(args[i + 1]);
    i += 2;
  }
  if (moved.empty()) return args;
  if (i >= args.size()) {
    throw Error("no command after " + moved.front() + "; global options go before a command, e.g. " + moved.front() +
                " VALUE COMMAND");
  }
  std::vector<std::string> out{args[i]};
  out.insert(out.end(), moved.begin(), moved.end());
  out.insert(out.end(), args.begin() + static_cast<long>(i) + 1, args.end());
  return out;
}

}  // namespace bootfleet::util
