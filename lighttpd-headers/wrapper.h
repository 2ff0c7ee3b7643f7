/*
 * What bindgen reads (see build.rs for the allowlist): the lighttpd headers a
 * plugin needs, in the order lighttpd's own modules include them, plus the
 * project's shim for macros. h2.h is left out on purpose (it pulls in
 * ls-hpack, which is not needed to read request_st).
 */
#include "first.h"

#include "base.h"
#include "array.h"
#include "buffer.h"
#include "configfile.h"
#include "log.h"
#include "plugin.h"
#include "plugin_config.h"
#include "request.h"

#include "shim.h"
