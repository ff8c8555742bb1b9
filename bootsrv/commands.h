// bootsrv's commands, one file each (serve.cc, dhcp_config.cc).
#pragma once

#include <string>
#include <vector>

namespace bootfleet::bootsrv {

// The usage text every command's --help and errors show.
extern const char* const kUsage;

int serve_command(const std::vector<std::string>& args);
int dhcp_config_command(const std::vector<std::string>& args);

}  // namespace bootfleet::bootsrv
