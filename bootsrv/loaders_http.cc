#include "loaders_http.h"

#include <string>
#include <variant>

#include "util/error.h"
#include "util/file.h"

namespace bootfleet::bootsrv {

namespace {
constexpr char kPrefix[] = "/loaders/";
}

bool LoaderRoute::owns(const std::string& target) { return target.rfind(kPrefix, 0) == 0; }

http::Response LoaderRoute::handle(const http::Request& request) const {
  if (request.method != "GET" && request.method != "HEAD") {
    http::Response no = http::Response::text(405, "loaders are fetched with GET or HEAD");
    no.headers.emplace_back("Allow", "GET, HEAD");
    return no;
  }
  auto segments = http::split_path(request.target);
  if (!segments || segments->size() != 2 || (*segments)[1].empty() || (*segments)[1].front() == '.') {
    return http::Response::text(404, "not found; loaders are /loaders/NAME, a file of bootsrv's TFTP root " +
                                          root_.path() + " (e.g. /loaders/snponly.efi)");
  }
  const std::string& name = (*segments)[1];
  auto normalized = tftp::Root::normalize(name, root_.path());
  if (auto* refusal = std::get_if<tftp::Refusal>(&normalized)) {
    return http::Response::text(404, "loader '" + name + "': " + refusal->message);
  }
  auto opened = root_.open(std::get<std::string>(normalized));
  if (auto* refusal = std::get_if<tftp::Refusal>(&opened)) {
    return http::Response::text(404, "loader '" + name + "' in " + root_.path() + ": " + refusal->message);
  }
  const util::UniqueFd& fd = std::get<util::UniqueFd>(opened);
  const std::string path = root_.path() + "/" + name;
  uint64_t size = util::file_size(fd.get(), path);
  if (size > kMaxBytes) {
    return http::Response::text(404, "loader '" + name + "' is " + std::to_string(size) +
                                          " bytes, more than a loader should be (32 MiB)");
  }
  http::Response r;
  r.content_type = name.ends_with(".efi") ? "application/efi" : "application/octet-stream";
  r.body.resize(size);
  util::pread_full(fd.get(), r.body.data(), size, 0, path);
  return r;
}

}  // namespace bootfleet::bootsrv
