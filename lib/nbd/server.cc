#include "nbd/server.h"

namespace bootfleet::nbd {

Server::Server(ExportResolver& resolver, ConnectionOptions connection_options, util::PeerLimits::Options limits)
    : server_(std::move(limits), [&resolver, connection_options](const util::StreamServer::Connection& c) {
        ConnectionOptions options = connection_options;
        options.stopping = c.stopping;
        options.on_established = c.established;
        serve_connection(c.fd, resolver, c.peer, options);
      }) {}

}  // namespace bootfleet::nbd
