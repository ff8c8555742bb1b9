#include "util/file_send.h"

#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>

namespace bootfleet::util {

void append_span(std::vector<FileSpan>& spans, FileSpan span) {
  if (span.length == 0) return;
  if (!spans.empty()) {
    FileSpan& last = spans.back();
    bool continues = last.fd == span.fd && (span.fd < 0 || last.offset + last.length == span.offset);
    if (continues) {
      last.length += span.length;
      return;
    }
  }
  spans.push_back(span);
}

void slice_spans(std::span<const FileSpan> spans, uint64_t from, uint64_t length, std::vector<FileSpan>& out) {
  for (const FileSpan& s : spans) {
    if (length == 0) break;
    if (from >= s.length) {
      from -= s.length;
      continue;
    }
    uint64_t n = std::min(length, s.length - from);
    append_span(out, {s.fd, s.fd < 0 ? 0 : s.offset + from, n});
    from = 0;
    length -= n;
  }
}

namespace {

bool page_cached(int fd, uint64_t offset) {
  uint8_t byte;
  iovec iov{&byte, 1};
  while (true) {
    ssize_t n = ::preadv2(fd, &iov, 1, static_cast<off_t>(offset), RWF_NOWAIT);
    if (n >= 0) return true;  // 0: past the end; sendfile will say so
    if (errno != EINTR) return false;  // EAGAIN, or no nowait reads here: take the safe path
  }
}

// Zeros come from one static page: send() copies them into the socket.
constexpr size_t kZeroPage = 64u << 10;
const uint8_t zero_page[kZeroPage] = {};

bool send_all(int socket, const void* data, size_t length, bool more) {
  auto* p = static_cast<const uint8_t*>(data);
  while (length > 0) {
    ssize_t n = ::send(socket, p, length, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    length -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

bool spans_cached(std::span<const FileSpan> spans) {
  for (const FileSpan& s : spans) {
    if (s.fd < 0 || s.length == 0) continue;
    if (!page_cached(s.fd, s.offset)) return false;
    if (s.length > 4096 && !page_cached(s.fd, s.offset + s.length - 1)) return false;
  }
  return true;
}

bool send_spans(int socket, const void* head, size_t head_length, std::span<const FileSpan> spans) {
  if (head_length > 0 && !send_all(socket, head, head_length, !spans.empty())) return false;
  for (size_t i = 0; i < spans.size(); ++i) {
    const FileSpan& s = spans[i];
    const bool more_after = i + 1 < spans.size();
    if (s.fd < 0) {
      for (uint64_t left = s.length; left > 0;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, kZeroPage));
        if (!send_all(socket, zero_page, n, more_after || left > n)) return false;
        left -= n;
      }
      continue;
    }
    off_t offset = static_cast<off_t>(s.offset);
    for (uint64_t left = s.length; left > 0;) {
      ssize_t n = ::sendfile(socket, s.fd, &offset, static_cast<size_t>(std::min<uint64_t>(left, 1u << 30)));
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      if (n == 0) {  // the file is shorter than its span: never true of a checked chain
        errno = EIO;
        return false;
      }
      left -= static_cast<uint64_t>(n);
    }
  }
  return true;
}

}  // namespace bootfleet::util
