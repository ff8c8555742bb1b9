// util::SdNotifier against a real AF_UNIX datagram socket, the way systemd
// listens: path and abstract names, what it refuses (relative paths, names
// too long, nobody listening), and $WATCHDOG_USEC parsing.
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>

#include "util/file.h"
#include "util/sd_notify.h"

using namespace bootfleet::util;
using namespace std::chrono_literals;

namespace {

// A bound datagram socket, like systemd's notify socket; `name` is a path or
// "@abstract".
struct Listener {
  UniqueFd fd;
  explicit Listener(const std::string& name) {
    fd.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd.get() >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    if (name[0] == '@') addr.sun_path[0] = '\0'; else length += 1;
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), length) == 0);
    timeval tv{2, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  std::string receive() {
    char buf[4096];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    REQUIRE(n >= 0);
    return std::string(buf, static_cast<size_t>(n));
  }
};

std::string temp_dir() {
  char tmpl[] = "/tmp/sd-notify-test-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  return tmpl;
}

}  // namespace

TEST_CASE("SdNotifier sends one datagram per notification to a path socket", "[util][sd_notify]") {
  std::string dir = temp_dir();
  Listener systemd(dir + "/notify");
  SdNotifier n(dir + "/notify", 0us);
  CHECK(n.enabled());
  CHECK_FALSE(n.notify("READY=1\nSTATUS=serving").has_value());
  CHECK(systemd.receive() == "READY=1\nSTATUS=serving");
  CHECK_FALSE(n.notify("STOPPING=1").has_value());
  CHECK(systemd.receive() == "STOPPING=1");
  std::filesystem::remove_all(dir);
}

TEST_CASE("SdNotifier reaches an abstract socket named with @", "[util][sd_notify]") {
  std::string name = "@bootfleet-sd-notify-test-" + std::to_string(::getpid());
  Listener systemd(name);
  SdNotifier n(name, 0us);
  CHECK_FALSE(n.notify("WATCHDOG=1").has_value());
  CHECK(systemd.receive() == "WATCHDOG=1");
}

TEST_CASE("SdNotifier without a socket does nothing and says nothing", "[util][sd_notify]") {
  SdNotifier n;
  CHECK_FALSE(n.enabled());
  CHECK_FALSE(n.notify("READY=1").has_value());
  CHECK(n.watchdog_interval() == 0us);
}

TEST_CASE("SdNotifier reports bad sockets as values naming them", "[util][sd_notify]") {
  auto relative = SdNotifier("run/notify", 0us).notify("READY=1");
  REQUIRE(relative.has_value());
  CHECK(relative->find("NOTIFY_SOCKET 'run/notify': not an absolute path") != std::string::npos);

  auto long_name = SdNotifier("/" + std::string(200, 'x'), 0us).notify("READY=1");
  REQUIRE(long_name.has_value());
  CHECK(long_name->find("longer than the 107 bytes") != std::string::npos);

  std::string dir = temp_dir();
  auto nobody = SdNotifier(dir + "/absent", 0us).notify("READY=1");
  REQUIRE(nobody.has_value());
  CHECK(nobody->find(dir + "/absent': No such file or directory") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("SdNotifier::from_environment reads NOTIFY_SOCKET and WATCHDOG_USEC for this process only",
          "[util][sd_notify]") {
  ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
  ::setenv("WATCHDOG_USEC", "30000000", 1);
  ::unsetenv("WATCHDOG_PID");
  SdNotifier mine = SdNotifier::from_environment();
  CHECK(mine.socket() == "/run/systemd/notify");
  CHECK(mine.watchdog_interval() == 30s);

  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  CHECK(SdNotifier::from_environment().watchdog_interval() == 30s);
  // Another process's watchdog (we inherited its environment): not ours.
  ::setenv("WATCHDOG_PID", "1", 1);
  CHECK(SdNotifier::from_environment().watchdog_interval() == 0us);
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  CHECK_FALSE(SdNotifier::from_environment().enabled());
}

TEST_CASE("parse_watchdog_usec takes positive decimal microseconds only", "[util][sd_notify]") {
  CHECK(parse_watchdog_usec("1") == std::chrono::microseconds(1));
  CHECK(parse_watchdog_usec("60000000") == 60s);
  for (const char* bad : {"", "0", "-5", "+5", "5s", " 5", "12345678901234567890", "9999999999999999999", "0x10"}) {
    INFO(bad);
    CHECK_FALSE(parse_watchdog_usec(bad).has_value());
  }
}
