/*
 * config.h for compiling against the headers of a lighttpd that was built
 * elsewhere (the Debian package) without running its ./configure here.
 *
 * Only defines that change the layout of structs this module touches, or
 * the declarations it uses, matter. Each is what Debian's autotools build of
 * lighttpd 1.4.x on Linux defines (see `lighttpd -V` and debian/rules). If
 * your lighttpd was built differently, configure its tree and point
 * LIGHTTPD_CONFIG_H at the generated config.h instead (build.rs picks up
 * $LIGHTTPD_SRC/config.h by itself when the tree was configured in place).
 *
 * The list covers every HAVE_* that wrapper.h and shim.c reach in 1.4.69:
 *   gcc -H -fsyntax-only -DHAVE_CONFIG_H -I... lighttpd-headers/wrapper.h
 * lists the headers; grep HAVE_ in them. Re-check it for a new release.
 *
 * LIGHTTPD_VERSION_ID is deliberately absent: build.rs derives it.
 */
#ifndef MOD_BW_COUNTER_DEBIAN_CONFIG_H
#define MOD_BW_COUNTER_DEBIAN_CONFIG_H

#define _GNU_SOURCE 1

/* sock_addr.h: size of sock_addr (inside connection and server_socket). */
#define HAVE_IPV6 1
#define HAVE_SYS_UN_H 1

/* base.h / plugin_config.h / configfile.h: server, cond_match_t and
 * data_config members. */
#define HAVE_PCRE2_H 1

/* chunk.h: chunk.file.view (AC_CHECK_FUNCS([mmap]); not --enable-mmap). */
#define HAVE_MMAP 1

/* chunk.h: splice() helpers; log.h: monotonic clock declarations. */
#define HAVE_SPLICE 1
#define HAVE_CLOCK_GETTIME 1

/* first.h: integer types. */
#define HAVE_STDINT_H 1
#define HAVE_INTTYPES_H 1

/* sys-socket.h, sys-time.h: glibc has these; without the defines the headers
 * declare fallbacks that clash with glibc's own. */
#define HAVE_SOCKLEN_T 1
#define HAVE_SYS_TIME_H 1
#define HAVE_GMTIME_R 1
#define HAVE_LOCALTIME_R 1
#define HAVE_TIMEGM 1

#endif
