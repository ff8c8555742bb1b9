// The control API's maintenance routes (docs/api.md, "Maintenance
// sessions"): list, show, start, commit and discard an image's session.
// Which method and path reaches each is the route table's (Api::routes).
//
// Design note. The catalog record is read and changed through the
// server's shared store connection; a commit, which reads the whole cache
// and writes a version file, uses a store connection of its own (as upload
// commits do), so boots and other API calls are not held up behind it.
// The session's cache is the server's own (StoreExports::sessions()): only
// the server that holds the cache directory can commit it.
#pragma once

#include "api_routes.h"

namespace bootfleet::bootsrv {

// The maintenance routes of the table in api.cc. Errors are ApiError (400
// bad body, 404 unknown image, client, version or session, 409 conflicts).
ApiAnswer maintenance_list(ApiCall& call);     // GET    maintenance
ApiAnswer maintenance_show(ApiCall& call);     // GET    images/{image}/maintenance
ApiAnswer maintenance_start(ApiCall& call);    // POST   images/{image}/maintenance
ApiAnswer maintenance_commit(ApiCall& call);   // POST   images/{image}/maintenance/commit
ApiAnswer maintenance_discard(ApiCall& call);  // DELETE images/{image}/maintenance

}  // namespace bootfleet::bootsrv
