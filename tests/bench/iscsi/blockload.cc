// blockload: one load generator for both block protocols, so iSCSI and NBD
// figures come from the same client code: libiscsi for iscsi:// URLs,
// libnbd for nbd:// URLs, both driven asynchronously from one poll loop.
//
//   blockload URL [--sessions N] [--depth D] [--bs BYTES] [--rw MODE]
//             [--seconds S] [--span BYTES]
//
// MODE is read, randread, write or randwrite. With --sessions N each session
// opens its own connection; "%d" in URL is replaced by the session number
// (1..N), so each can be its own named session ("…:lab:c%d", "lab/c%d").
// Prints one JSON line: MiB/s, IOPS, latency p50/p99/max in microseconds,
// errors, and the number of requests completed.
//
// Both libraries read replies into the slot's own buffer, as real
// initiators do (QEMU hands libiscsi its request's iovec; libnbd always
// reads into the caller's buffer). Without the iovec libiscsi allocates
// every Data-In segment and copies it into a task buffer it grows: at
// 256 KiB segments that is an mmap, page faults and a copy per segment,
// which slowed the client and with it every iSCSI figure here.
#include <poll.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <libnbd.h>
}

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string url;
  int sessions = 1;
  int depth = 16;
  uint32_t bs = 4096;
  std::string rw = "randread";
  double seconds = 10;
  uint64_t span = 0;  // 0: the whole disk
};

struct Stats {
  std::vector<uint32_t> latencies_us;
  uint64_t bytes = 0;
  uint64_t errors = 0;
};

struct Session;
struct Slot {
  Session* session = nullptr;
  std::vector<uint8_t> buffer;
  scsi_iovec iov{};  // libiscsi reads Data-In straight into `buffer` through this
  Clock::time_point started;
};

struct Session {
  const Options* options = nullptr;
  Stats* stats = nullptr;
  iscsi_context* iscsi = nullptr;
  int lun = 0;
  nbd_handle* nbd = nullptr;
  uint64_t size = 0;
  uint64_t next_sequential = 0;
  std::mt19937_64 random{std::random_device{}()};
  std::vector<Slot> slots;
  bool stopping = false;
  int in_flight = 0;
  std::vector<Slot*> ready;  // NBD: libnbd's callbacks may not call libnbd, so re-issue after them

  uint64_t next_offset() {
    const uint64_t span = options->span ? std::min(options->span, size) : size;
    const uint64_t slots_in_span = span / options->bs;
    if (options->rw == "randread" || options->rw == "randwrite") return (random() % slots_in_span) * options->bs;
    uint64_t at = next_sequential;
    next_sequential = (next_sequential + options->bs) % (slots_in_span * options->bs);
    return at;
  }
  bool writing() const { return options->rw == "write" || options->rw == "randwrite"; }
  void issue(Slot& slot);
  void done(Slot& slot, bool ok) {
    --in_flight;
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - slot.started).count();
    stats->latencies_us.push_back(static_cast<uint32_t>(us));
    if (ok) stats->bytes += options->bs;
    else ++stats->errors;
    if (stopping) return;
    if (nbd) ready.push_back(&slot);
    else issue(slot);
  }
};

void iscsi_done(iscsi_context*, int status, void* command_data, void* private_data) {
  auto* slot = static_cast<Slot*>(private_data);
  auto* task = static_cast<scsi_task*>(command_data);
  if (task) scsi_free_scsi_task(task);
  slot->session->done(*slot, status == SCSI_STATUS_GOOD);
}

int nbd_done(void* user_data, int* error) {
  auto* slot = static_cast<Slot*>(user_data);
  slot->session->done(*slot, *error == 0);
  return 1;
}

void Session::issue(Slot& slot) {
  slot.started = Clock::now();
  const uint64_t offset = next_offset();
  ++in_flight;
  if (iscsi) {
    scsi_task* t = writing()
                       ? iscsi_write16_task(iscsi, lun, offset / 512, slot.buffer.data(), options->bs, 512, 0, 0, 0, 0, 0,
                                            iscsi_done, &slot)
                       : iscsi_read16_iov_task(iscsi, lun, offset / 512, options->bs, 512, 0, 0, 0, 0, 0, iscsi_done, &slot,
                                               &slot.iov, 1);
    if (t == nullptr) {
      --in_flight;
      ++stats->errors;
    }
    return;
  }
  nbd_completion_callback cb = {.callback = nbd_done, .user_data = &slot, .free = nullptr};
  int64_t cookie = writing() ? nbd_aio_pwrite(nbd, slot.buffer.data(), options->bs, offset, cb, 0)
                             : nbd_aio_pread(nbd, slot.buffer.data(), options->bs, offset, cb, 0);
  if (cookie < 0) {
    --in_flight;
    ++stats->errors;
  }
}

std::string with_number(const std::string& url, int n) {
  auto at = url.find("%d");
  if (at == std::string::npos) return url;
  return url.substr(0, at) + std::to_string(n) + url.substr(at + 2);
}

bool open_session(Session& s, const std::string& url, int number) {
  if (url.rfind("iscsi://", 0) == 0) {
    std::string initiator = "iqn.2026-11.org.bootfleet:blockload:" + std::to_string(number);
    s.iscsi = iscsi_create_context(initiator.c_str());
    iscsi_url* u = iscsi_parse_full_url(s.iscsi, url.c_str());
    if (u == nullptr) {
      std::fprintf(stderr, "blockload: %s: %s\n", url.c_str(), iscsi_get_error(s.iscsi));
      return false;
    }
    iscsi_set_targetname(s.iscsi, u->target);
    iscsi_set_session_type(s.iscsi, ISCSI_SESSION_NORMAL);
    iscsi_set_header_digest(s.iscsi, ISCSI_HEADER_DIGEST_NONE);
    s.lun = u->lun;
    if (iscsi_full_connect_sync(s.iscsi, u->portal, u->lun) != 0) {
      std::fprintf(stderr, "blockload: %s: %s\n", url.c_str(), iscsi_get_error(s.iscsi));
      iscsi_destroy_url(u);
      return false;
    }
    iscsi_destroy_url(u);
    scsi_task* t = iscsi_readcapacity16_sync(s.iscsi, s.lun);
    if (t == nullptr || t->status != SCSI_STATUS_GOOD) return false;
    auto* rc = static_cast<scsi_readcapacity16*>(scsi_datain_unmarshall(t));
    s.size = (rc->returned_lba + 1) * rc->block_length;
    scsi_free_scsi_task(t);
    return true;
  }
  s.nbd = nbd_create();
  if (nbd_connect_uri(s.nbd, url.c_str()) != 0) {
    std::fprintf(stderr, "blockload: %s: %s\n", url.c_str(), nbd_get_error());
    return false;
  }
  s.size = static_cast<uint64_t>(nbd_get_size(s.nbd));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "blockload: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--sessions") o.sessions = std::stoi(value());
    else if (a == "--depth") o.depth = std::stoi(value());
    else if (a == "--bs") o.bs = static_cast<uint32_t>(std::stoul(value()));
    else if (a == "--rw") o.rw = value();
    else if (a == "--seconds") o.seconds = std::stod(value());
    else if (a == "--span") o.span = std::stoull(value());
    else if (a == "--help" || a == "-h") {
      std::printf("usage: blockload URL [--sessions N] [--depth D] [--bs BYTES] [--rw read|randread|write|randwrite] "
                  "[--seconds S] [--span BYTES]\n");
      return 0;
    } else if (o.url.empty()) o.url = a;
    else {
      std::fprintf(stderr, "blockload: unexpected '%s'\n", a.c_str());
      return 2;
    }
  }
  if (o.url.empty() || o.sessions < 1 || o.depth < 1 || o.bs % 512 || o.bs == 0 ||
      (o.rw != "read" && o.rw != "randread" && o.rw != "write" && o.rw != "randwrite")) {
    std::fprintf(stderr, "blockload: usage: blockload URL [--sessions N] [--depth D] [--bs BYTES (a multiple of 512)] "
                         "[--rw read|randread|write|randwrite] [--seconds S]\n");
    return 2;
  }
  Stats stats;
  std::vector<Session> sessions(static_cast<size_t>(o.sessions));
  for (int n = 0; n < o.sessions; ++n) {
    Session& s = sessions[static_cast<size_t>(n)];
    s.options = &o;
    s.stats = &stats;
    if (!open_session(s, with_number(o.url, n + 1), n + 1)) return 1;
    s.next_sequential = (s.size / o.sessions / o.bs * o.bs) * static_cast<uint64_t>(n) % std::max<uint64_t>(o.bs, s.size);
    s.slots.resize(static_cast<size_t>(o.depth));
    for (auto& slot : s.slots) {
      slot.session = &s;
      slot.buffer.assign(o.bs, static_cast<uint8_t>(0x5a + n));
      slot.iov = {slot.buffer.data(), slot.buffer.size()};
    }
  }
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  for (auto& s : sessions)
    for (auto& slot : s.slots) s.issue(slot);
  std::vector<pollfd> fds(sessions.size());
  bool stopping = false;
  while (true) {
    if (!stopping && Clock::now() >= end) {
      stopping = true;
      for (auto& s : sessions) s.stopping = true;
    }
    int busy = 0;
    for (size_t i = 0; i < sessions.size(); ++i) {
      Session& s = sessions[i];
      busy += s.in_flight;
      if (s.iscsi) {
        fds[i] = {iscsi_get_fd(s.iscsi), static_cast<short>(iscsi_which_events(s.iscsi)), 0};
      } else {
        int dir = nbd_aio_get_direction(s.nbd);
        short ev = 0;
        if (dir & LIBNBD_AIO_DIRECTION_READ) ev |= POLLIN;
        if (dir & LIBNBD_AIO_DIRECTION_WRITE) ev |= POLLOUT;
        fds[i] = {nbd_aio_get_fd(s.nbd), ev, 0};
      }
    }
    if (stopping && busy == 0) break;
    if (sessions.size() == 1 && sessions[0].nbd) {
      // One NBD session: libnbd's own poll, which knows its state machine best.
      Session& s = sessions[0];
      if (nbd_poll(s.nbd, 1000) < 0) {
        std::fprintf(stderr, "blockload: %s\n", nbd_get_error());
        return 1;
      }
      std::vector<Slot*> again;
      again.swap(s.ready);
      for (Slot* slot : again) s.issue(*slot);
      continue;
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0) continue;
    for (size_t i = 0; i < sessions.size(); ++i) {
      Session& s = sessions[i];
      if (fds[i].revents == 0) continue;
      if (s.iscsi) {
        if (iscsi_service(s.iscsi, fds[i].revents) < 0) {
          std::fprintf(stderr, "blockload: session %zu: %s\n", i + 1, iscsi_get_error(s.iscsi));
          return 1;
        }
      } else {
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) nbd_aio_notify_read(s.nbd);
        if (fds[i].revents & POLLOUT) nbd_aio_notify_write(s.nbd);
        std::vector<Slot*> again;
        again.swap(s.ready);
        for (Slot* slot : again) s.issue(*slot);
      }
    }
    if (Clock::now() > end + std::chrono::seconds(30)) {
      std::fprintf(stderr, "blockload: requests still in flight 30 s after the end\n");
      return 1;
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  auto& l = stats.latencies_us;
  std::sort(l.begin(), l.end());
  auto pct = [&](double p) { return l.empty() ? 0u : l[std::min(l.size() - 1, static_cast<size_t>(p * l.size()))]; };
  // The initiator's own CPU per request: on a shared machine a heavier
  // client library leaves the server less CPU, which the IOPS then show.
  rusage self{};
  ::getrusage(RUSAGE_SELF, &self);
  const double client_cpu_us = (self.ru_utime.tv_sec + self.ru_stime.tv_sec) * 1e6 + self.ru_utime.tv_usec + self.ru_stime.tv_usec;
  std::printf("{\"mib_s\": %.1f, \"iops\": %.0f, \"p50_us\": %u, \"p99_us\": %u, \"max_us\": %u, \"errors\": %llu, \"requests\": %zu, "
              "\"client_cpu_us_per_request\": %.1f}\n",
              stats.bytes / elapsed / (1 << 20), l.size() / elapsed, pct(0.5), pct(0.99), l.empty() ? 0u : l.back(),
              static_cast<unsigned long long>(stats.errors), l.size(), l.empty() ? 0.0 : client_cpu_us / l.size());
  for (auto& s : sessions) {
    if (s.iscsi) {
      iscsi_logout_sync(s.iscsi);
      iscsi_destroy_context(s.iscsi);
    }
    if (s.nbd) {
      nbd_shutdown(s.nbd, 0);
      nbd_close(s.nbd);
    }
  }
  return stats.errors ? 1 : 0;
}
