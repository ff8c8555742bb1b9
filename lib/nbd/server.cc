#include "nbd/server.h"

namespace bootfleet::nbd {

Server::Server(ExportResolver& resolver, ConnectionOptions connection_options)
    : server_("NBD", [&resolver, connection_options](int fd, const std::string& peer, const std::atomic<bool>* stopping) {
        ConnectionOptions options = connection_options;
        options.stopping = stopping;
        serve_connection(fd, resolver, peer, options);
      }) {}

}  // namespace bootfleet::nbd
