// The control API's error answer is the wire layer's (api/error.h): the
// readers of request bodies there throw it too. bootsrv's files name it
// ApiError, as they always did.
#pragma once

#include "api/error.h"

namespace bootfleet::bootsrv {

using api::ApiError;

}  // namespace bootfleet::bootsrv
