/* Fallback config.h for the fuzz targets when the tree has not been configured (build.sh
 * uses the configured one when there is one).  The core (src/block*.c, tar_*.c, index*.c,
 * kv.c) needs nothing from it but the package name. */
#define PACKAGE "tarmount"
#define PACKAGE_NAME "tarmount"
#define PACKAGE_VERSION "0.1.0"
#define PACKAGE_STRING "tarmount 0.1.0"
#define VERSION "0.1.0"
