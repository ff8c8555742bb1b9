// Recipe parsing: every step's fields, every kind of mistake with its
// position, variables, the canonical form and the input file list.
#include <stdlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "recipe/recipe.h"
#include "util/error.h"

using namespace bootfleet::recipe;
namespace fs = std::filesystem;

namespace {

// A recipe directory with a few host files, removed at the end of a test.
struct HostDir {
  fs::path dir;
  HostDir() {
    std::string tmpl = (fs::temp_directory_path() / "recipe_test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()));
    dir = tmpl;
    fs::create_directories(dir / "files/sub");
    fs::create_directories(dir / "out");
    write("files/motd", "hello\n");
    write("files/sub/b.conf", "b\n");
    write("base.tar.gz", "not really");
    write("disk.vhd", "not really");
  }
  ~HostDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  void write(const std::string& rel, const std::string& text) const { std::ofstream(dir / rel) << text; }
  std::string path(const std::string& rel) const { return (dir / rel).string(); }
};

ParseOptions quiet_options() {
  ParseOptions o;
  o.use_environment = false;
  o.check_host_files = false;
  return o;
}

Recipe parse_ok(const std::string& text, const ParseOptions& options = quiet_options(),
                const std::string& base_dir = "/recipes") {
  try {
    return parse_string(text, "r.yaml", base_dir, options);
  } catch (const RecipeError& e) {
    FAIL("unexpected problems:\n" << e.what());
  }
  return {};
}

std::vector<Problem> problems_of(const std::string& text, const ParseOptions& options = quiet_options(),
                                 const std::string& base_dir = "/recipes") {
  try {
    parse_string(text, "r.yaml", base_dir, options);
  } catch (const RecipeError& e) {
    REQUIRE_FALSE(e.problems().empty());
    return e.problems();
  }
  FAIL("the recipe was accepted:\n" << text);
  return {};
}

// The one problem a recipe has; fails the test if there are more or none.
Problem only_problem(const std::string& text, const ParseOptions& options = quiet_options()) {
  auto problems = problems_of(text, options);
  INFO(RecipeError(problems).what());
  REQUIRE(problems.size() == 1);
  return problems[0];
}

const std::string kHead = "image: lab\nbase: lab@1\nsteps:\n";

}  // namespace

TEST_CASE("recipe: top level, base forms and message", "[recipe]") {
  Recipe r = parse_ok("image: lab-2.x_y\nbase: lab@7\nmessage: hi\n");
  CHECK(r.file == "r.yaml");
  CHECK(r.image == "lab-2.x_y");
  CHECK(r.base.kind == Base::Kind::kVersion);
  CHECK(r.base.version == "lab@7");
  CHECK(r.base.where.line == 2);
  CHECK(r.base.where.column == 7);
  CHECK(r.message == "hi");
  CHECK(r.steps.empty());

  CHECK(parse_ok("image: a\nbase: {version: lab@active}\n").base.version == "lab@active");

  Recipe imp = parse_ok("image: a\nbase: {import: images/../disk.vhd}\n");
  CHECK(imp.base.kind == Base::Kind::kImport);
  CHECK(imp.base.import_path == "/recipes/disk.vhd");
  CHECK(imp.input_files == std::vector<std::string>{"/recipes/disk.vhd"});

  Recipe c = parse_ok(
      "image: a\n"
      "base:\n"
      "  create:\n"
      "    size: 64M\n"
      "    partition_table: gpt\n"
      "    partitions:\n"
      "      - {size: 16M, type: efi, filesystem: vfat, label: ESP, bootable: true}\n"
      "      - {type: linux, filesystem: ext4, label: root}\n");
  CHECK(c.base.kind == Base::Kind::kCreate);
  CHECK(c.base.size == 64ull << 20);
  CHECK(c.base.partition_table == "gpt");
  REQUIRE(c.base.partitions.size() == 2);
  CHECK(c.base.partitions[0].size == 16ull << 20);
  CHECK(c.base.partitions[0].type == "efi");
  CHECK(c.base.partitions[0].filesystem == "vfat");
  CHECK(c.base.partitions[0].label == "ESP");
  CHECK(c.base.partitions[0].bootable);
  CHECK(c.base.partitions[0].where.line == 7);
  CHECK(c.base.partitions[1].size == 0);
  CHECK_FALSE(c.base.partitions[1].bootable);
  CHECK(parse_ok("image: a\nbase: {create: {size: 1G}}\n").base.partition_table == "mbr");
}

TEST_CASE("recipe: every step parses into its fields", "[recipe]") {
  HostDir host;
  ParseOptions options;
  options.use_environment = false;
  const std::string text = kHead +
                           "  - mkdir: /etc/lab\n"                                                      // 0
                           "  - mkdir: {path: /srv/x, mode: 0750}\n"                                    // 1
                           "  - copy-in: {from: files, to: /etc/lab}\n"                                 // 2
                           "  - write:\n"                                                               // 3
                           "      path: /etc/motd\n"
                           "      content: |\n"
                           "        Welcome\n"
                           "      mode: \"0644\"\n"
                           "  - delete: /tmp/junk\n"                                                    // 4
                           "  - delete: {path: /var/cache/apt, recursive: true}\n"                      // 5
                           "  - chmod: {path: /etc/motd, mode: 600}\n"                                  // 6
                           "  - chown: {path: /srv/x, uid: 1000, gid: 0x3e8}\n"                         // 7
                           "  - symlink: {link: /etc/localtime, target: ../usr/share/zoneinfo/UTC}\n"   // 8
                           "  - tar-in: {from: base.tar.gz, to: /opt}\n"                                // 9
                           "  - edit: {path: /etc/ssh/sshd_config, replace: 'Root yes', with: 'Root no'}\n"  // 10
                           "  - run: apt-get clean\n"                                                   // 11
                           "  - run: {command: update-initramfs -u}\n"                                  // 12
                           "  - registry:\n"                                                            // 13
                           "      hive: /Windows/System32/config/SOFTWARE\n"
                           "      set:\n"
                           "        - {key: 'Lab\\Settings', value: Name, data: lab}\n"
                           "        - {key: 'Lab\\Settings', value: '', type: expand-string, data: '%X%'}\n"
                           "        - {key: 'Lab\\Settings', value: Count, type: dword, data: 0xffffffff}\n"
                           "        - {key: 'Lab\\Settings', value: Big, type: qword, data: 18446744073709551615}\n"
                           "        - {key: 'Lab\\Settings', value: Paths, type: multi-string, data: [a, b]}\n"
                           "        - {key: 'Lab\\Settings', value: Blob, type: binary, data: 'de ad BEef'}\n"
                           "        - {key: 'Lab\\Settings', value: Blob2, type: binary, data: [1, 0x02, 255]}\n"
                           "      delete:\n"
                           "        - {key: 'Lab\\Old'}\n"
                           "        - {key: 'Lab\\Settings', value: Stale}\n"
                           "  - bootloader: {kernel: /vmlinuz, initrd: /initrd.img, append: root=/dev/sda1 ro}\n"  // 14
                           "  - copy-out: {from: /etc/os-release, to: out}\n"                           // 15
                           "  - copy-out: {from: /etc/hostname, to: out/hostname}\n";                   // 16
  Recipe r = parse_ok(text, options, host.dir.string());
  REQUIRE(r.steps.size() == 17);
  const auto& s = r.steps;

  CHECK(s[0].kind == Step::Kind::kMkdir);
  CHECK(s[0].path == "/etc/lab");
  CHECK_FALSE(s[0].mode);
  CHECK(s[0].where.line == 4);
  CHECK(s[0].where.column == 5);
  CHECK(s[1].mode == 0750u);
  CHECK(s[2].kind == Step::Kind::kCopyIn);
  CHECK(s[2].host_path == host.path("files"));
  CHECK(s[2].path == "/etc/lab");
  CHECK(s[3].kind == Step::Kind::kWrite);
  CHECK(s[3].content == "Welcome\n");
  CHECK(s[3].mode == 0644u);
  CHECK(s[4].kind == Step::Kind::kDelete);
  CHECK(s[4].path == "/tmp/junk");
  CHECK_FALSE(s[4].recursive);
  CHECK(s[5].recursive);
  CHECK(s[6].kind == Step::Kind::kChmod);
  CHECK(s[6].mode == 0600u);  // octal, as chmod(1) reads it, leading 0 or not
  CHECK(s[7].kind == Step::Kind::kChown);
  CHECK(s[7].uid == 1000);
  CHECK(s[7].gid == 1000);
  CHECK(s[8].kind == Step::Kind::kSymlink);
  CHECK(s[8].path == "/etc/localtime");
  CHECK(s[8].target == "../usr/share/zoneinfo/UTC");
  CHECK(s[9].kind == Step::Kind::kTarIn);
  CHECK(s[9].host_path == host.path("base.tar.gz"));
  CHECK(s[9].path == "/opt");
  CHECK(s[10].kind == Step::Kind::kEdit);
  CHECK(s[10].search == "Root yes");
  CHECK(s[10].replace == "Root no");
  CHECK(s[11].command == "apt-get clean");
  CHECK(s[12].command == "update-initramfs -u");

  CHECK(s[13].kind == Step::Kind::kRegistry);
  CHECK(s[13].path == "/Windows/System32/config/SOFTWARE");
  const auto& reg = s[13].registry;
  REQUIRE(reg.size() == 9);
  CHECK(reg[0].action == RegistryChange::Action::kSet);
  CHECK(reg[0].key == "Lab\\Settings");
  CHECK(reg[0].value == "Name");
  CHECK(reg[0].type == RegistryChange::Type::kString);
  CHECK(reg[0].string_data == "lab");
  CHECK(reg[1].value.empty());
  CHECK(reg[1].type == RegistryChange::Type::kExpandString);
  CHECK(reg[2].type == RegistryChange::Type::kDword);
  CHECK(reg[2].number_data == 0xffffffffu);
  CHECK(reg[3].type == RegistryChange::Type::kQword);
  CHECK(reg[3].number_data == UINT64_MAX);
  CHECK(reg[4].multi_data == std::vector<std::string>{"a", "b"});
  CHECK(reg[5].binary_data == std::vector<uint8_t>{0xde, 0xad, 0xbe, 0xef});
  CHECK(reg[6].binary_data == std::vector<uint8_t>{1, 2, 255});
  CHECK(reg[7].action == RegistryChange::Action::kDelete);
  CHECK(reg[7].key == "Lab\\Old");
  CHECK(reg[7].value.empty());
  CHECK(reg[8].value == "Stale");

  CHECK(s[14].kind == Step::Kind::kBootloader);
  CHECK(s[14].path == "/boot/extlinux");
  CHECK(s[14].kernel == "/vmlinuz");
  CHECK(s[14].initrd == "/initrd.img");
  CHECK(s[14].append == "root=/dev/sda1 ro");
  CHECK(s[15].kind == Step::Kind::kCopyOut);
  CHECK(s[15].path == "/etc/os-release");
  CHECK(s[15].host_path == host.path("out"));
  CHECK(s[16].host_path == host.path("out/hostname"));

  // copy-in's directory is expanded to its files, with the tar, sorted.
  CHECK(r.input_files ==
        std::vector<std::string>{host.path("base.tar.gz"), host.path("files/motd"), host.path("files/sub/b.conf")});

  CHECK(s[2].name() == "copy-in");
  CHECK(s[6].summary() == "chmod 0600 /etc/motd");
  CHECK(s[7].summary() == "chown 1000:1000 /srv/x");
  CHECK(s[13].summary() == "registry /Windows/System32/config/SOFTWARE (9 changes)");
}

TEST_CASE("recipe: the canonical form ignores comments and layout and parses to itself", "[recipe]") {
  const std::string a = kHead + "  - write: {path: /x, content: 'a ${V} $${HOME}', mode: 0644}\n"
                                "  - copy-in: {from: files, to: /etc}\n";
  const std::string b = "# same recipe, other layout\n"
                        "steps:\n"
                        "- copy-in:\n"
                        "    to: /etc       # keys in another order\n"
                        "    from: ./files/\n"
                        "- write:\n"
                        "    mode: '644'\n"
                        "    content: \"a ${V} $${HOME}\"\n"
                        "    path: /x\n";
  ParseOptions options = quiet_options();
  options.variables["V"] = "one";
  Recipe ra = parse_ok(a, options);
  Recipe rb = parse_ok("base: {version: lab@1}\nimage: lab\n" + b, options);
  // Different step order is a different recipe; compare like with like.
  Recipe rb2 = parse_ok(kHead + "  - write: {path: /x, content: \"a ${V} $${HOME}\", mode: '644'}\n"
                                "  - copy-in: {from: ./files/, to: /etc}\n",
                        options);
  CHECK(ra.steps[0].content == "a one ${HOME}");
  CHECK(rb.canonical != ra.canonical);
  CHECK(rb2.canonical == ra.canonical);
  // Host paths are relative to the recipe's directory, so moving a checkout keeps the form.
  CHECK(parse_ok(a, options, "/elsewhere").canonical == ra.canonical);
  CHECK(ra.canonical.find("/recipes") == std::string::npos);
  // A different value is a different recipe.
  options.variables["V"] = "two";
  CHECK(parse_ok(a, options).canonical != ra.canonical);
  // Parsing the canonical form gives it back, "$${" and all.
  Recipe again = parse_ok(ra.canonical, quiet_options());
  CHECK(again.canonical == ra.canonical);
  CHECK(again.steps[0].content == "a one ${HOME}");
}

TEST_CASE("recipe: variables come from options, then the environment", "[recipe]") {
  ParseOptions options = quiet_options();
  options.variables["TAG"] = "v2";
  CHECK(parse_ok(kHead + "  - run: echo ${TAG}-${TAG} $${TAG} $ {x} $x\n", options).steps[0].command ==
        "echo v2-v2 ${TAG} $ {x} $x");
  ::setenv("RECIPE_TEST_VAR", "from-env", 1);
  options.use_environment = true;
  CHECK(parse_ok(kHead + "  - run: echo ${RECIPE_TEST_VAR}\n", options).steps[0].command == "echo from-env");
  options.variables["RECIPE_TEST_VAR"] = "from-set";
  CHECK(parse_ok(kHead + "  - run: echo ${RECIPE_TEST_VAR}\n", options).steps[0].command == "echo from-set");
  options.use_environment = false;
  options.variables.clear();
  Problem p = only_problem(kHead + "  - run: echo ${RECIPE_TEST_VAR}\n", options);
  CHECK(p.field == "steps[0].run");
  CHECK(p.where.line == 4);
  CHECK(p.where.column == 10);
  CHECK_THAT(p.message, Catch::Contains("unknown variable ${RECIPE_TEST_VAR}"));
  ::unsetenv("RECIPE_TEST_VAR");
  CHECK_THAT(only_problem(kHead + "  - run: echo ${oops\n").message, Catch::Contains("closing '}'"));
  CHECK_THAT(only_problem(kHead + "  - run: echo ${1x}\n").message, Catch::Contains("does not name a variable"));
}

TEST_CASE("recipe: bad YAML is one problem at yaml-cpp's position", "[recipe]") {
  Problem p = only_problem("image: lab\nbase: [lab@1}\n");
  CHECK(p.where.file == "r.yaml");
  CHECK(p.where.line == 2);
  CHECK(p.where.column == 13);
  CHECK(p.field.empty());
  CHECK(p.text() == "r.yaml:2:13: YAML syntax: illegal flow end");
  // Only the syntax error is reported, even though other mistakes precede it.
  Problem indent = only_problem("image: Bad\nbase: lab@1\nsteps:\n  - run: x\n - run: y\n");
  CHECK(indent.where.line == 5);
  CHECK(indent.where.column == 2);
  CHECK_THAT(indent.message, Catch::StartsWith("YAML syntax"));
  CHECK_THAT(only_problem("").message, Catch::Contains("empty"));
  CHECK_THAT(only_problem("- a\n- b\n").message, Catch::Contains("expected a map"));
  Problem second = only_problem("image: lab\nbase: lab@1\n---\nimage: b\n");
  CHECK(second.where.line == 3);
  CHECK_THAT(second.message, Catch::Contains("one YAML document"));
  // yaml-cpp's LoadAll would never return on these (a ',' after the first node).
  CHECK_THAT(problems_of("{image: lab, base: lab@1},").back().message, Catch::Contains("one YAML document"));
  CHECK_FALSE(problems_of(",").empty());
}

TEST_CASE("recipe: unknown steps and keys name what is allowed", "[recipe]") {
  Problem step = only_problem(kHead + "  - cpy-in: {from: a, to: /b}\n");
  CHECK(step.field == "steps[0]");
  CHECK(step.where.line == 4);
  CHECK(step.where.column == 5);
  CHECK_THAT(step.message, Catch::Contains("unknown step 'cpy-in'") && Catch::Contains("did you mean 'copy-in'") &&
                               Catch::Contains("bootloader, copy-out"));

  auto problems = problems_of(kHead + "  - copy-in: {form: a, to: /b}\n");
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].field == "steps[0].copy-in.from");
  CHECK_THAT(problems[0].message, Catch::Contains("missing"));
  CHECK(problems[1].field == "steps[0].copy-in.form");
  CHECK(problems[1].where.column == 15);
  CHECK_THAT(problems[1].message, Catch::Contains("unknown key") && Catch::Contains("allowed keys: from, to"));

  Problem top = only_problem("image: lab\nbase: lab@1\nstep: []\n");
  CHECK(top.field == "step");
  CHECK(top.where.line == 3);
  CHECK_THAT(top.message, Catch::Contains("did you mean 'steps'") && Catch::Contains("image, base, steps, message"));

  CHECK_THAT(only_problem(kHead + "  - {mkdir: /a, run: b}\n").message, Catch::Contains("exactly one key"));
  CHECK_THAT(only_problem(kHead + "  - run\n").message, Catch::Contains("a step is a map"));
  CHECK_THAT(only_problem("image: lab\nimage: lab\nbase: lab@1\n").message, Catch::Contains("given twice"));
}

TEST_CASE("recipe: missing fields and wrong types", "[recipe]") {
  Problem missing = only_problem(kHead + "  - write: {path: /x}\n");
  CHECK(missing.field == "steps[0].write.content");
  CHECK(missing.where.line == 4);
  CHECK(missing.where.column == 12);
  CHECK_THAT(missing.message, Catch::Contains("missing"));

  CHECK(only_problem("base: lab@1\n").field == "image");
  CHECK(only_problem("image: lab\n").field == "base");

  Problem list = only_problem(kHead + "  - run: [a, b]\n");
  CHECK(list.field == "steps[0].run");
  CHECK_THAT(list.message, Catch::Contains("found a list"));

  Problem map = only_problem(kHead + "  - chmod: {path: {a: b}, mode: 0644}\n");
  CHECK(map.field == "steps[0].chmod.path");
  CHECK_THAT(map.message, Catch::Contains("expected a string, found a map"));

  // `key:` with nothing is located at its key, not at the next line.
  Problem empty = only_problem(kHead + "  - write:\n      path:\n      content: x\n");
  CHECK(empty.field == "steps[0].write.path");
  CHECK(empty.where.line == 5);
  CHECK(empty.where.column == 7);
  CHECK_THAT(empty.message, Catch::Contains("found nothing"));

  CHECK_THAT(only_problem(kHead + "  - delete: {path: /x, recursive: maybe}\n").message,
             Catch::Contains("true or false"));
  CHECK_THAT(only_problem(kHead + "  - chown: {path: /x, uid: root}\n").message, Catch::Contains("whole number"));
  CHECK_THAT(only_problem(kHead + "  - chown: {path: /x}\n").message, Catch::Contains("uid, gid or both"));
  CHECK_THAT(only_problem("image: lab\nbase: lab@1\nsteps: {run: x}\n").message, Catch::Contains("a list of steps"));
}

TEST_CASE("recipe: modes are octal up to 07777", "[recipe]") {
  auto mode_of = [](const std::string& m) {
    return parse_ok(kHead + "  - chmod: {path: /x, mode: " + m + "}\n").steps[0].mode.value();
  };
  CHECK(mode_of("0755") == 0755u);
  CHECK(mode_of("755") == 0755u);
  CHECK(mode_of("'0644'") == 0644u);
  CHECK(mode_of("0o600") == 0600u);
  CHECK(mode_of("4755") == 04755u);
  for (const char* bad : {"0855", "rwx", "10000", "-1", "0x1ff", "''"}) {
    Problem p = only_problem(kHead + "  - chmod: {path: /x, mode: " + bad + "}\n");
    CHECK(p.field == "steps[0].chmod.mode");
    CHECK(p.where.column == 29);
  }
}

TEST_CASE("recipe: guest paths are absolute, without '..' or NUL", "[recipe]") {
  Problem rel = only_problem(kHead + "  - mkdir: etc/x\n");
  CHECK(rel.field == "steps[0].mkdir");
  CHECK(rel.where.column == 12);
  CHECK_THAT(rel.message, Catch::Contains("not an absolute guest path"));
  for (const char* bad : {"/etc/../x", "/..", "/a/..", "'/a/../'"}) {
    CHECK_THAT(only_problem(kHead + "  - delete: " + bad + "\n").message, Catch::Contains("'..'"));
  }
  CHECK(parse_ok(kHead + "  - delete: /a/..b/c..\n").steps[0].path == "/a/..b/c..");
  CHECK_THAT(only_problem(kHead + "  - mkdir: \"/a\\0b\"\n").message, Catch::Contains("NUL"));
  CHECK_THAT(only_problem(kHead + "  - copy-out: {from: x, to: /tmp/y}\n").message, Catch::Contains("absolute"));
}

TEST_CASE("recipe: host files must exist when checked", "[recipe]") {
  HostDir host;
  ParseOptions options;
  options.use_environment = false;
  auto problems = problems_of(kHead +
                                  "  - copy-in: {from: files/nothere, to: /etc}\n"
                                  "  - tar-in: {from: files, to: /opt}\n"
                                  "  - tar-in: {from: files/motd, to: /opt}\n"
                                  "  - copy-out: {from: /etc/x, to: nodir/x}\n",
                              options, host.dir.string());
  REQUIRE(problems.size() == 4);
  CHECK(problems[0].field == "steps[0].copy-in.from");
  CHECK(problems[0].where.line == 4);
  CHECK(problems[0].where.column == 21);
  CHECK_THAT(problems[0].message, Catch::Contains("files/nothere") && Catch::Contains("does not exist"));
  CHECK_THAT(problems[1].message, Catch::Contains("not a regular file"));
  CHECK_THAT(problems[2].message, Catch::Contains(".tar"));
  CHECK(problems[3].field == "steps[3].copy-out.to");
  CHECK_THAT(problems[3].message, Catch::Contains("does not exist"));

  Problem import = only_problem("image: a\nbase: {import: missing.vhd}\n", options);
  CHECK(import.field == "base.import");
  // Without the check the same recipes pass, and nothing is looked at.
  ParseOptions unchecked = quiet_options();
  CHECK(parse_ok("image: a\nbase: {import: missing.vhd}\n", unchecked, host.dir.string()).base.import_path ==
        host.path("missing.vhd"));
}

TEST_CASE("recipe: base takes exactly one kind", "[recipe]") {
  Problem two = only_problem("image: lab\nbase: {version: lab@1, import: x.vhd}\n");
  CHECK(two.field == "base");
  CHECK(two.where.line == 2);
  CHECK(two.where.column == 7);
  CHECK_THAT(two.message, Catch::Contains("version and import") && Catch::Contains("exactly one"));
  CHECK_THAT(only_problem("image: lab\nbase: {}\n").message, Catch::Contains("no base given"));
  CHECK_THAT(only_problem("image: lab\nbase: lab\n").message, Catch::Contains("IMAGE@N"));
  CHECK_THAT(only_problem("image: lab\nbase: lab@x\n").message, Catch::Contains("column 5"));
  CHECK_THAT(only_problem("image: Lab\nbase: lab@1\n").message, Catch::Contains("'L' is not allowed"));
}

TEST_CASE("recipe: create checks sizes, types and labels", "[recipe]") {
  auto create = [](const std::string& body) { return "image: a\nbase:\n  create:\n" + body; };
  CHECK_THAT(only_problem(create("    size: 0\n")).message, Catch::Contains("not a disk size"));
  CHECK_THAT(only_problem(create("    size: 3000G\n")).message, Catch::Contains("2040G"));
  CHECK_THAT(only_problem(create("    size: lots\n")).message, Catch::Contains("not a size"));
  CHECK_THAT(only_problem(create("    size: 1G\n    partition_table: dos\n")).message, Catch::Contains("mbr, gpt"));
  Problem fs = only_problem(create("    size: 1G\n    partitions: [{type: efi, filesystem: ext4}]\n"));
  CHECK(fs.field == "base.create.partitions[0].filesystem");
  CHECK_THAT(fs.message, Catch::Contains("use vfat"));
  CHECK_THAT(only_problem(create("    size: 1G\n    partitions: [{type: linux}, {type: swap}]\n")).message,
             Catch::Contains("only the last partition"));
  CHECK_THAT(only_problem(create("    size: 64M\n    partitions: [{type: linux, size: 64M}]\n")).message,
             Catch::Contains("do not fit"));
  CHECK_THAT(only_problem(create("    size: 1G\n    partitions: [{type: linux, filesystem: vfat}]\n")).message,
             Catch::Contains("ext4 or xfs"));
  CHECK_THAT(
      only_problem(create("    size: 1G\n    partitions: [{type: fat32, filesystem: vfat, label: TOOLONGLABEL}]\n"))
          .message,
      Catch::Contains("at most 11"));
  CHECK_THAT(
      only_problem(create("    size: 1G\n    partitions: [{type: linux, size: 1M}, {type: linux, size: 1M}, "
                          "{type: linux, size: 1M}, {type: linux, size: 1M}, {type: linux}]\n"))
          .message,
      Catch::Contains("at most 4"));
}

TEST_CASE("recipe: registry data is checked per type", "[recipe]") {
  auto set = [](const std::string& item) {
    return kHead + "  - registry:\n      hive: /h\n      set:\n        - " + item + "\n";
  };
  CHECK_THAT(only_problem(set("{key: k, value: v, type: dword, data: 0x100000000}")).message,
             Catch::Contains("at most 4294967295"));
  CHECK_THAT(only_problem(set("{key: k, value: v, type: binary, data: 'abc'}")).message,
             Catch::Contains("pairs of hex digits"));
  CHECK_THAT(only_problem(set("{key: k, value: v, type: binary, data: [256]}")).message, Catch::Contains("at most 255"));
  CHECK_THAT(only_problem(set("{key: k, value: v, type: multi-string, data: x}")).message,
             Catch::Contains("a list of strings"));
  CHECK_THAT(only_problem(set("{key: k, value: v, type: sz, data: x}")).message, Catch::Contains("multi-string"));
  CHECK_THAT(only_problem(set("{key: '\\k', value: v, data: x}")).message, Catch::Contains("not a registry key"));
  CHECK_THAT(only_problem(kHead + "  - registry: {hive: /h, set: []}\n").message, Catch::Contains("nothing to change"));
}

TEST_CASE("recipe: several errors at once are all reported, in order, with positions", "[recipe]") {
  const std::string text =
      "image: lab\n"                               // 1
      "base: lab@1\n"                              // 2
      "steps:\n"                                   // 3
      "  - mkdir: etc\n"                           // 4  relative path, column 12
      "  - chmod: {path: /x, mode: 9}\n"           // 5  bad mode, column 29
      "  - run: ${NOPE}\n"                         // 6  unknown variable, column 10
      "  - bogus: 1\n"                             // 7  unknown step, column 5
      "  - copy-in: {from: a, to: /b, extra: 1}\n";  // 8  unknown key, column 32
  auto problems = problems_of(text);
  REQUIRE(problems.size() == 5);
  struct Want {
    int line, column;
    const char* field;
  };
  const Want want[] = {{4, 12, "steps[0].mkdir"},
                       {5, 29, "steps[1].chmod.mode"},
                       {6, 10, "steps[2].run"},
                       {7, 5, "steps[3]"},
                       {8, 32, "steps[4].copy-in.extra"}};
  for (size_t i = 0; i < 5; ++i) {
    INFO(problems[i].text());
    CHECK(problems[i].where.line == want[i].line);
    CHECK(problems[i].where.column == want[i].column);
    CHECK(problems[i].field == want[i].field);
  }
  CHECK_THAT(problems[1].text(), Catch::StartsWith("r.yaml:5:29: steps[1].chmod.mode: '9' is not a file mode"));
  try {
    parse_string(text, "r.yaml", "/recipes", quiet_options());
    FAIL("accepted");
  } catch (const bootfleet::util::Error& e) {
    // RecipeError is a util::Error whose message lists every problem.
    CHECK_THAT(std::string(e.what()), Catch::Contains("r.yaml:4:12") && Catch::Contains("r.yaml:8:32"));
  }
}

TEST_CASE("recipe: parse_file reads relative to the recipe's directory", "[recipe]") {
  HostDir host;
  host.write("r.yaml", kHead + "  - copy-in: {from: files/motd, to: /etc}\n");
  ParseOptions options;
  options.use_environment = false;
  Recipe r = parse_file(host.path("r.yaml"), options);
  CHECK(r.steps[0].host_path == host.path("files/motd"));
  CHECK(r.input_files == std::vector<std::string>{host.path("files/motd")});
  CHECK_THROWS_AS(parse_file(host.path("nothere.yaml"), options), bootfleet::util::Error);
  CHECK_THROWS_WITH(parse_file(host.path("files"), options), Catch::Contains("is a directory"));
}

TEST_CASE("recipe: aliases and floods of mistakes are bounded", "[recipe]") {
  // 100 steps x 100 registry changes x 100 strings, in a few kilobytes.
  std::string strings = "strings: &strings [";
  for (int i = 0; i < 100; ++i) strings += std::string(i ? ", " : "") + "s";
  std::string text = "image: lab\nbase: lab@1\n" + strings +
                     "]\nchange: &change {key: k, value: v, type: multi-string, data: *strings}\n"
                     "changes: &changes [";
  for (int i = 0; i < 100; ++i) text += std::string(i ? ", " : "") + "*change";
  text += "]\nsteps:\n  - &step {registry: {hive: /h, set: *changes}}\n";
  for (int i = 0; i < 99; ++i) text += "  - *step\n";
  auto problems = problems_of(text);
  // Aliased values are located where they are defined, so the stop is not last.
  CHECK(std::count_if(problems.begin(), problems.end(), [](const Problem& p) {
          return p.message.find("values (with YAML aliases expanded)") != std::string::npos;
        }) == 1);
  CHECK(problems.size() == 4);  // and the three unknown top-level keys holding the anchors

  std::string bad = kHead;
  for (int i = 0; i < 600; ++i) bad += "  - mkdir: relative\n";
  auto many = problems_of(bad);
  CHECK(many.size() == 501);
  CHECK_THAT(many.back().message, Catch::Contains("too many problems"));
}

TEST_CASE("a tab-indented recipe is told that YAML forbids tabs", "[recipe]") {
  Problem p = only_problem("image: lab\nbase: lab@1\nsteps:\n  - mkdir:\n\t  path: /x\n");
  CHECK(p.message.find("YAML syntax: ") == 0);
  CHECK(p.message.find("YAML forbids tabs for indentation and line 5 is indented with one") != std::string::npos);
}
