// What every imgtool command shares: argument parsing with --help, the exit
// code convention, and printing. Exit codes follow diff(1) and grep(1):
//   0  success (for check and compare: clean / identical)
//   1  the answer is "no": check found problems, compare found a difference
//   2  an error: bad usage, a file that cannot be read, anything that failed
#pragma once

#include <boost/program_options.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "block/device.h"
#include "remote/client.h"
#include "store/store.h"

namespace bootfleet::imgtool {

namespace po = boost::program_options;

constexpr int kExitOk = 0;
constexpr int kExitNo = 1;
constexpr int kExitError = 2;

struct CommandSpec {
  std::string name;      // "convert"
  std::string synopsis;  // "IN OUT [--to FORMAT] [--parent P]"
  std::string summary;   // one line
  std::string details;   // paragraphs after the options in --help
};

// Parses `args` (the words after the command name). Prints help and returns
// false for --help. Throws util::Error for bad usage, naming the option.
bool parse_command_line(const CommandSpec& spec, po::options_description& options,
                        const po::positional_options_description& positional,
                        const std::vector<std::string>& args, po::variables_map& vm);

// Adds --help to an options description.
po::options_description base_options();

// --set NAME=VALUE options (recipe variables) as a map; throws util::Error
// naming a malformed one.
std::map<std::string, std::string> parse_set_options(const std::vector<std::string>& sets);

// A version as a read-only block device (to attach it to an appliance).
std::shared_ptr<block::Device> open_version_device(store::Store& store, const store::VersionInfo& v);

// Adds --store DIR. The store is --store, else $BOOTFLEET_STORE, else
// /var/lib/bootfleet.
void add_store_option(po::options_description& options, std::string& dir);
// Opens the store and tells stderr what crash leftovers it removed.
std::unique_ptr<store::Store> open_store(const std::string& dir);

// --server URL, --token-file F, --ca-file F: a bootsrv's control API
// (else $BOOTFLEET_SERVER, $BOOTFLEET_TOKEN_FILE, $BOOTFLEET_CA_FILE).
struct ServerFlags {
  std::string server, token_file, ca_file;
  // Whether the command should act on a server rather than the local store:
  // --server given, or $BOOTFLEET_SERVER set without an explicit --store.
  bool wanted(bool store_given) const;
};
void add_server_options(po::options_description& options, ServerFlags& flags);
std::unique_ptr<remote::Client> connect_server(const ServerFlags& flags);
// Prints a publish, promote or rollback (store::activation_result_json, or
// the API's same answer): "lab: active @1 -> @2", "lab: channel test @2 -> @3".
// `where` is "" or " on SERVER".
void print_channel_activation(const nlohmann::json& answer, const std::string& where, const std::string& suffix);

using CommandFn = int (*)(const std::vector<std::string>& args);
struct Command {
  const char* name;
  const char* summary;
  CommandFn run;
};
const std::vector<Command>& all_commands();

int cmd_create(const std::vector<std::string>& args);
int cmd_info(const std::vector<std::string>& args);
int cmd_convert(const std::vector<std::string>& args);
int cmd_check(const std::vector<std::string>& args);
int cmd_compare(const std::vector<std::string>& args);
int cmd_init(const std::vector<std::string>& args);
int cmd_images(const std::vector<std::string>& args);
int cmd_image(const std::vector<std::string>& args);
int cmd_versions(const std::vector<std::string>& args);
int cmd_history(const std::vector<std::string>& args);
int cmd_import(const std::vector<std::string>& args);
int cmd_export(const std::vector<std::string>& args);
int cmd_diff(const std::vector<std::string>& args);
int cmd_verify(const std::vector<std::string>& args);
int cmd_publish(const std::vector<std::string>& args);
int cmd_rollback(const std::vector<std::string>& args);
int cmd_prune(const std::vector<std::string>& args);
int cmd_squash(const std::vector<std::string>& args);
int cmd_gc(const std::vector<std::string>& args);
int cmd_lint(const std::vector<std::string>& args);
int cmd_build(const std::vector<std::string>& args);
int cmd_inspect(const std::vector<std::string>& args);
int cmd_client(const std::vector<std::string>& args);
int cmd_maintenance(const std::vector<std::string>& args);
int cmd_push(const std::vector<std::string>& args);
int cmd_status(const std::vector<std::string>& args);
int cmd_boot_test(const std::vector<std::string>& args);
int cmd_promote(const std::vector<std::string>& args);
int cmd_channels(const std::vector<std::string>& args);
int cmd_schedule(const std::vector<std::string>& args);
// imgtool client group … (group.cc), and client set's --group/--pin on a server.
int cmd_client_group(const std::vector<std::string>& args);
void set_client_placement_remote(const ServerFlags& flags, const std::string& key, const std::optional<std::string>& group,
                                 bool set_group, std::optional<int64_t> pin, bool set_pin);

}  // namespace bootfleet::imgtool
