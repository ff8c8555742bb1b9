// bootfleet-nbd-client: Debian's initramfs nbd hook with a root that rides
// through a restart of bootsrv.
//
// Design note. Debian 12's nbd-client (3.24) configures /dev/nbdX through
// the kernel's netlink interface and exits: its -persist, which the
// initramfs hook passes, only works in the old ioctl mode, and nothing asks
// the kernel to wait for a new connection. So when bootsrv restarts, the
// kernel fails every request to the root ("Dead connection, failed to find
// a fallback", I/O errors, ext4 aborts its journal) although bootsrv keeps
// the session and would take the client back (tests/e2e/boot_restart.sh
// shows both). nbd 3.27 does this itself; bookworm and trixie ship older.
//
// This program is what the hook runs instead ($NBDCLIENT, set by our
// initramfs-tools hook), with nbd-client's own arguments: it runs
// nbd-client unchanged for the first connection, then stays behind as a
// small daemon that
//   - tells the kernel, with NBD_CMD_RECONFIGURE, to hold requests for up
//     to DEAD seconds while the connection is down (dead_conn_timeout) and
//     to retry a request unanswered for TIMEOUT seconds on the next
//     connection instead of failing it;
//   - listens for the kernel's NBD_CMD_LINK_DEAD of its device, connects
//     again (fixed newstyle handshake, NBD_OPT_GO of the same export),
//     checks the export still has the size the device has, and
//     hands the socket to the kernel (NBD_CMD_RECONFIGURE, NBD_ATTR_SOCKETS).
// bootsrv keeps a named session's data and version across its restarts and
// refuses a connection to a session that ended (saying why), so a reconnect
// finds the same disk or none; the size check is a second guard against
// being handed another disk. Writes the kernel retries are idempotent.
//
// It marks itself as a root-storage daemon (argv[0] starts with '@') so
// that systemd does not kill it at switch-root or shutdown, and talks to
// the kernel's log (/dev/kmsg) so that its reconnects sit beside the
// kernel's own lines. Kernel line options: bootfleet.nbd.dead=SECONDS
// (default 300), bootfleet.nbd.timeout=SECONDS (default 10).
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/netlink.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "nbd/protocol.h"
#include "nbd_client_proto.h"

namespace {

namespace nbd = bootfleet::nbd;
using bootfleet::client::NbdFamily;

struct Target {
  std::string host, port = "10809", name, device;
  int index = -1;  // N of /dev/nbdN
};

// The kernel's log when we can write to it (root, /dev mounted), else stderr.
void log(const std::string& line) {
  static int kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
  std::string text = "bootfleet-nbd-client: " + line + "\n";
  if (kmsg < 0 || write(kmsg, text.data(), text.size()) < 0) fputs(text.c_str(), stderr);
}

std::runtime_error sys_error(const std::string& what) { return std::runtime_error(what + ": " + strerror(errno)); }

// nbd-client's arguments as the hook passes them
// (HOST -N NAME PORT /dev/nbdN -swap -persist -systemd-mark): the words that
// are not options are HOST, [PORT,] DEVICE. With --probe (first = 2), HOST
// [PORT] and no device.
Target parse_args(int argc, char** argv, int first = 1) {
  static const char* const kWithValue[] = {"-N", "-name", "--name", "-b", "-block-size", "--block-size",
                                           "-t", "-timeout", "--timeout", "-C", "-connections", "--connections",
                                           "-B", "-size", "--size", "-i", "-identifier", "--identifier",
                                           "-F", "-certfile", "--certfile", "-K", "-keyfile", "--keyfile",
                                           "-A", "-cacertfile", "--cacertfile", "-H", "-tlshostname", "--tlshostname"};
  Target t;
  std::vector<std::string> words;
  bool probe = first > 1;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    bool takes_value = false;
    for (const char* o : kWithValue) takes_value |= a == o;
    if (takes_value) {
      if (i + 1 >= argc) throw std::runtime_error("option " + a + " needs a value");
      if (a == "-N" || a == "-name" || a == "--name") t.name = argv[i + 1];
      ++i;
    } else if (a.rfind("-", 0) == 0) {
      continue;  // a flag of nbd-client's (-swap, -persist, ...)
    } else {
      words.push_back(a);
    }
  }
  if (probe && (words.size() == 1 || words.size() == 2)) {
    t.host = words[0];
    if (words.size() == 2) t.port = words[1];
  } else if (probe) {
    throw std::runtime_error("--probe takes HOST [PORT], got " + std::to_string(words.size()) + " words");
  } else if (words.size() == 3) {
    t.host = words[0], t.port = words[1], t.device = words[2];
  } else if (words.size() == 2) {
    t.host = words[0], t.device = words[1];
  } else {
    throw std::runtime_error("expected HOST [PORT] /dev/nbdN among the arguments, got " +
                             std::to_string(words.size()) + " words");
  }
  if (t.name.empty()) throw std::runtime_error("no export name (-N NAME): bootsrv needs IMAGE/CLIENT");
  if (probe) return t;
  if (sscanf(t.device.c_str(), "/dev/nbd%d", &t.index) != 1 || t.index < 0)
    throw std::runtime_error("device '" + t.device + "' is not /dev/nbdN");
  return t;
}

uint64_t cmdline_seconds(const std::string& key, uint64_t fallback) {
  std::ifstream in("/proc/cmdline");
  std::string word;
  while (in >> word)
    if (word.rfind(key + "=", 0) == 0) return std::stoull(word.substr(key.size() + 1));
  return fallback;
}

// ---- the NBD handshake (fixed newstyle, NBD_OPT_GO) ----

void read_all(int fd, void* buf, size_t n) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw std::runtime_error(r == 0 ? "the server closed the connection" : strerror(errno));
    p += r, n -= r;
  }
}
void write_all(int fd, const void* buf, size_t n) {
  auto* p = static_cast<const uint8_t*>(buf);
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw sys_error("write");
    p += w, n -= w;
  }
}
// A connected, negotiated socket to the export; its size in `size`.
int connect_export(const Target& t, uint64_t& size) {
  addrinfo hints{}, *ai = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (int e = getaddrinfo(t.host.c_str(), t.port.c_str(), &hints, &ai))
    throw std::runtime_error(t.host + ":" + t.port + ": " + gai_strerror(e));
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    auto error = sys_error("connect to " + t.host + ":" + t.port);
    freeaddrinfo(ai);
    if (fd >= 0) close(fd);
    throw error;
  }
  freeaddrinfo(ai);
  try {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // A server that accepts and then says nothing must not hang us.
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t hello[18];
    read_all(fd, hello, sizeof hello);
    bool no_zeroes = bootfleet::client::parse_hello(hello).no_zeroes;
    uint32_t flags = htonl(nbd::kClientFixedNewstyle | (no_zeroes ? nbd::kClientNoZeroes : 0));
    write_all(fd, &flags, 4);
    // NBD_OPT_GO rather than EXPORT_NAME: a refusal comes with the
    // server's reason (bootsrv: "session ... has ended (reset) ...").
    auto go = bootfleet::client::go_request(t.name);
    write_all(fd, go.data(), go.size());
    bootfleet::client::GoReplies replies;
    for (bool done = false; !done;) {
      uint8_t header[20];
      read_all(fd, header, sizeof header);
      auto reply = bootfleet::client::parse_option_reply(header, nbd::kOptGo);
      std::vector<uint8_t> data(reply.length);
      read_all(fd, data.data(), data.size());
      done = replies.add(reply.type, data);
    }
    size = replies.size();
    timeval none{0, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    return fd;
  } catch (...) {
    close(fd);
    throw;
  }
}

// ---- generic netlink, by hand (no libnl in the initramfs to rely on) ----

class Message {
 public:
  Message(uint16_t family, uint8_t cmd, uint16_t flags) {
    buf_.resize(NLMSG_HDRLEN + GENL_HDRLEN);
    auto* h = reinterpret_cast<nlmsghdr*>(buf_.data());
    h->nlmsg_type = family;
    h->nlmsg_flags = NLM_F_REQUEST | flags;
    auto* g = reinterpret_cast<genlmsghdr*>(buf_.data() + NLMSG_HDRLEN);
    g->cmd = cmd;
    g->version = family == GENL_ID_CTRL ? 1 : NBD_GENL_VERSION;
  }
  void put(uint16_t type, const void* data, size_t n) {
    size_t at = buf_.size();
    buf_.resize(at + NLA_ALIGN(NLA_HDRLEN + n));
    auto* a = reinterpret_cast<nlattr*>(buf_.data() + at);
    a->nla_type = type;
    a->nla_len = uint16_t(NLA_HDRLEN + n);
    memcpy(buf_.data() + at + NLA_HDRLEN, data, n);
  }
  void put_u32(uint16_t type, uint32_t v) { put(type, &v, 4); }
  void put_u64(uint16_t type, uint64_t v) { put(type, &v, 8); }
  size_t begin_nest(uint16_t type) {
    size_t at = buf_.size();
    put(uint16_t(type | NLA_F_NESTED), nullptr, 0);
    return at;
  }
  void end_nest(size_t at) { reinterpret_cast<nlattr*>(buf_.data() + at)->nla_len = uint16_t(buf_.size() - at); }
  std::vector<uint8_t>& finish() {
    reinterpret_cast<nlmsghdr*>(buf_.data())->nlmsg_len = uint32_t(buf_.size());
    return buf_;
  }

 private:
  std::vector<uint8_t> buf_;
};

int netlink_socket() {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd < 0) throw sys_error("netlink socket");
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) < 0) throw sys_error("netlink bind");
  return fd;
}

// Sends `m` and reads replies until the kernel's ack; calls `each` with the
// attributes (after the genl header) of every reply that is not the ack.
template <typename F>
void transact(int fd, Message& m, F each) {
  auto& out = m.finish();
  if (send(fd, out.data(), out.size(), 0) < 0) throw sys_error("netlink send");
  std::vector<uint8_t> in(65536);
  for (;;) {
    ssize_t r = recv(fd, in.data(), in.size(), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw sys_error("netlink recv");
    size_t left = size_t(r);
    for (auto* h = reinterpret_cast<nlmsghdr*>(in.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_ERROR) {
        int error = reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
        if (error) {
          errno = -error;
          throw sys_error("the kernel refused the request");
        }
        return;
      }
      if (h->nlmsg_type == NLMSG_DONE) return;
      if (h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN) continue;
      each(std::span<const uint8_t>(static_cast<uint8_t*>(NLMSG_DATA(h)) + GENL_HDRLEN,
                                    h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN));
    }
  }
}

NbdFamily resolve_nbd(int fd) {
  Message m(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, NLM_F_ACK);
  m.put(CTRL_ATTR_FAMILY_NAME, NBD_GENL_FAMILY_NAME, sizeof NBD_GENL_FAMILY_NAME);
  NbdFamily f;
  transact(fd, m, [&](std::span<const uint8_t> attributes) {
    NbdFamily got = bootfleet::client::parse_family(attributes);
    if (got.id) f.id = got.id;
    if (got.group) f.group = got.group;
  });
  if (!f.id || !f.group) throw std::runtime_error("the kernel's nbd driver has no netlink interface");
  return f;
}

// NBD_CMD_RECONFIGURE of device `index`: timeouts, and/or a new socket.
void reconfigure(int fd, const NbdFamily& f, int index, std::optional<uint64_t> dead, std::optional<uint64_t> timeout,
                 int sock = -1) {
  Message m(f.id, NBD_CMD_RECONFIGURE, NLM_F_ACK);
  m.put_u32(NBD_ATTR_INDEX, uint32_t(index));
  if (timeout) m.put_u64(NBD_ATTR_TIMEOUT, *timeout);
  if (dead) m.put_u64(NBD_ATTR_DEAD_CONN_TIMEOUT, *dead);
  if (sock >= 0) {
    size_t socks = m.begin_nest(NBD_ATTR_SOCKETS);
    size_t item = m.begin_nest(NBD_SOCK_ITEM);
    m.put_u32(NBD_SOCK_FD, uint32_t(sock));
    m.end_nest(item);
    m.end_nest(socks);
  }
  transact(fd, m, [](std::span<const uint8_t>) {});
}

uint64_t device_bytes(const Target& t) {
  std::ifstream in("/sys/block/nbd" + std::to_string(t.index) + "/size");
  uint64_t sectors = 0;
  if (!(in >> sectors)) throw std::runtime_error("cannot read the size of " + t.device);
  return sectors * 512;
}

// The kernel no longer takes a socket for the device.
struct DeviceGone : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Connects again until the kernel has the new socket; the kernel holds
// requests meanwhile (up to the dead-connection timeout).
void reconnect(int nl, const NbdFamily& f, const Target& t, uint64_t want_size) {
  auto begin = std::chrono::steady_clock::now();
  std::string last_error;
  for (int tries = 1;; ++tries) {
    try {
      uint64_t size = 0;
      int sock = connect_export(t, size);
      if (size != want_size) {
        close(sock);
        throw std::runtime_error("the export has " + std::to_string(size) + " bytes, the device " +
                                 std::to_string(want_size) + ": not the same disk, not attached");
      }
      try {
        reconfigure(nl, f, t.index, std::nullopt, std::nullopt, sock);
      } catch (const std::exception& e) {
        // The device was disconnected on purpose (nbd-client -d, a
        // shutdown): there is nothing left to reconnect.
        close(sock);
        throw DeviceGone(e.what());
      }
      close(sock);  // the kernel holds its own reference
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      char text[64];
      snprintf(text, sizeof text, "%.2f s", seconds);
      log(t.device + ": reconnected to " + t.host + ":" + t.port + " export '" + t.name + "' after " + text + " (" +
          std::to_string(tries) + (tries == 1 ? " try)" : " tries)"));
      return;
    } catch (const DeviceGone&) {
      throw;
    } catch (const std::exception& e) {
      // Said once per different reason, not once per try.
      if (e.what() != last_error) log(t.device + ": reconnecting to " + t.host + ":" + t.port + ": " + e.what());
      last_error = e.what();
    }
    // Every 0.1 s for the first 10 s (a restart), then every second (an
    // outage); a refused connection costs the server next to nothing.
    bool early = std::chrono::steady_clock::now() - begin < std::chrono::seconds(10);
    std::this_thread::sleep_for(std::chrono::milliseconds(early ? 100 : 1000));
  }
}

[[noreturn]] void watch(const Target& t, uint64_t dead, uint64_t timeout) {
  int nl = netlink_socket();
  NbdFamily f = resolve_nbd(nl);
  int events = netlink_socket();
  if (setsockopt(events, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &f.group, sizeof f.group) < 0)
    throw sys_error("joining the nbd multicast group");
  reconfigure(nl, f, t.index, dead, timeout);
  uint64_t size = device_bytes(t);
  log(t.device + ": watching " + t.host + ":" + t.port + " export '" + t.name + "'; requests wait up to " +
      std::to_string(dead) + " s for a reconnect");
  std::vector<uint8_t> in(65536);
  for (;;) {
    ssize_t r = recv(events, in.data(), in.size(), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == ENOBUFS) {
      // Events were lost, ours perhaps among them. Connecting costs little:
      // a kernel whose link is alive ignores the new socket (no dead one to
      // replace), and a dead one gets it instead of failing requests later.
      log(t.device + ": kernel events were lost; reconnecting in case the link died");
      reconnect(nl, f, t, size);
      continue;
    }
    if (r < 0) throw sys_error("netlink recv");
    size_t left = size_t(r);
    for (auto* h = reinterpret_cast<nlmsghdr*>(in.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type != f.id || h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN) continue;
      auto* g = static_cast<genlmsghdr*>(NLMSG_DATA(h));
      if (g->cmd != NBD_CMD_LINK_DEAD) continue;
      int index = bootfleet::client::parse_link_dead(std::span<const uint8_t>(
          reinterpret_cast<uint8_t*>(g) + GENL_HDRLEN, h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN));
      if (index != t.index) continue;
      log(t.device + ": connection lost; reconnecting");
      reconnect(nl, f, t, size);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    printf(
        "Usage: bootfleet-nbd-client HOST -N EXPORT [PORT] /dev/nbdN [nbd-client options]\n\n"
        "Runs nbd-client (BOOTFLEET_NBD_CLIENT, default /sbin/nbd-client) with the same\n"
        "arguments, then stays as a daemon that keeps /dev/nbdN's requests waiting while\n"
        "the connection is down and reconnects to the same export (NBD_CMD_RECONFIGURE),\n"
        "so a root on NBD rides through a restart of the server. Debian's initramfs nbd\n"
        "hook runs it as $NBDCLIENT (docs/network-boot.md). Kernel line options:\n"
        "bootfleet.nbd.dead=SECONDS (how long requests wait, default 300),\n"
        "bootfleet.nbd.timeout=SECONDS (an unanswered request is sent again, default 10).\n\n"
        "       bootfleet-nbd-client --probe HOST -N EXPORT [PORT]\n\n"
        "Connects to EXPORT as a reconnect would, prints its size and exits: 0 when the\n"
        "server takes the connection, 1 when it refuses it (with the server's reason:\n"
        "an unknown export, an ended session), 2 on wrong arguments.\n");
    return 0;
  }
  if (argc >= 2 && std::string(argv[1]) == "--probe") {
    Target t;
    try {
      t = parse_args(argc, argv, 2);
    } catch (const std::exception& e) {
      fprintf(stderr, "bootfleet-nbd-client: %s\nUsage: bootfleet-nbd-client --probe HOST -N EXPORT [PORT]\n", e.what());
      return 2;
    }
    try {
      uint64_t size = 0;
      close(connect_export(t, size));
      printf("%s:%s export '%s': %llu bytes\n", t.host.c_str(), t.port.c_str(), t.name.c_str(),
             static_cast<unsigned long long>(size));
      return 0;
    } catch (const std::exception& e) {
      fprintf(stderr, "bootfleet-nbd-client: %s:%s export '%s': %s\n", t.host.c_str(), t.port.c_str(),
              t.name.c_str(), e.what());
      return 1;
    }
  }
  Target target;
  try {
    target = parse_args(argc, argv);
  } catch (const std::exception& e) {
    fprintf(stderr, "bootfleet-nbd-client: %s\nUsage: bootfleet-nbd-client HOST -N EXPORT [PORT] /dev/nbdN [...]\n",
            e.what());
    return 2;
  }
  const char* real = getenv("BOOTFLEET_NBD_CLIENT");
  std::string nbd_client = real && *real ? real : "/sbin/nbd-client";
  pid_t child = fork();
  if (child < 0) return perror("bootfleet-nbd-client: fork"), 1;
  if (child == 0) {
    argv[0] = const_cast<char*>(nbd_client.c_str());
    execv(argv[0], argv);
    fprintf(stderr, "bootfleet-nbd-client: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return WIFEXITED(status) ? WEXITSTATUS(status) : 1;

  uint64_t dead = 300, timeout = 10;
  try {
    dead = cmdline_seconds("bootfleet.nbd.dead", dead);
    timeout = cmdline_seconds("bootfleet.nbd.timeout", timeout);
  } catch (const std::exception&) {
    log("bootfleet.nbd.dead and bootfleet.nbd.timeout take whole seconds; using 300 and 10");
  }
  // The hook goes on at once; the watcher lives on beyond switch-root.
  pid_t daemon = fork();
  if (daemon < 0) return perror("bootfleet-nbd-client: fork"), 1;
  if (daemon > 0) return 0;
  setsid();
  if (argv[0][0]) argv[0][0] = '@';  // systemd: a root-storage daemon, not to be killed
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) dup2(null, 0);
  try {
    watch(target, dead, timeout);
  } catch (const DeviceGone& e) {
    log(target.device + ": the kernel took no new connection (" + e.what() + "): the device was disconnected; stopping");
    return 0;
  } catch (const std::exception& e) {
    log(target.device + ": " + e.what() + "; the device will not reconnect");
    return 1;
  }
}
