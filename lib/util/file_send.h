// Sending file data to a socket without copying it through our memory: the
// read path NBD replies and iSCSI Data-In share.
//
// Design note. A cached 1 MiB read served the ordinary way is copied twice
// by the CPU: pread() from the page cache into our buffer, send() from our
// buffer into the socket. sendfile() hands the page-cache pages to the
// socket instead, so on loopback the only copy left is the client's own
// recv(). What a protocol sends is a header it built (bytes in memory)
// followed by the data, which the disk layer describes as spans: a range of
// an open file, or zeros (a sparse block, which no file holds). The header
// goes out with MSG_MORE, so it shares a segment with the data that follows.
//
// What is given up: once the header is out, a read error can no longer be
// reported in the reply (the protocols close the connection instead, as a
// lost server would look). So the caller sends from files only when their
// pages are likely cached (spans_cached) and otherwise takes its blocking
// path, which reads first and reports errors properly. Only immutable files
// may be sent this way (version files): a range that may be rewritten while
// the kernel reads it (a write cache's slots) must be copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace bootfleet::util {

struct FileSpan {
  int fd = -1;           // < 0: the span reads as zeros
  uint64_t offset = 0;   // in the file
  uint64_t length = 0;
};

// Appends a span, merging it with the last one when it continues it.
void append_span(std::vector<FileSpan>& spans, FileSpan span);

// The bytes [from, from+length) of what `spans` describe, as spans
// appended to `out` (a PDU's share of a mapped read).
void slice_spans(std::span<const FileSpan> spans, uint64_t from, uint64_t length, std::vector<FileSpan>& out);

// True when the first and last page of every file span are in the page
// cache (a probe of one byte each with RWF_NOWAIT). Readahead fills files
// front to back, so this is a good guess at "sendfile will not wait for a
// disk", not a promise; a guess wrong costs one wait, never wrong data.
bool spans_cached(std::span<const FileSpan> spans);

// Sends `head` and then the bytes of every span, in order, blocking until
// all is on the socket. False when the socket or a file failed (errno says
// which error); what was sent is then unknown and the caller must close.
bool send_spans(int socket, const void* head, size_t head_length, std::span<const FileSpan> spans);

}  // namespace bootfleet::util
