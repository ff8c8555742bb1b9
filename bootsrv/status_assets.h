// The status page's files (bootsrv/status_assets/), compiled into bootsrv
// by embed_assets.cmake: the page needs no files at run time and no CDN.
#pragma once

#include <optional>
#include <string_view>

namespace bootfleet::bootsrv {

// The contents of status_assets/NAME ("index.html", "app.js", "style.css").
std::optional<std::string_view> status_asset(std::string_view name);

}  // namespace bootfleet::bootsrv
