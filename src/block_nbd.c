/* NBD exports through libnbd.  Placeholder until the NBD backend lands: refuses clearly. */
#include "config.h"

#include "block.h"

struct tm_block *tm_block_nbd_open(const char *uri, const struct tm_block_options *opts,
				   struct tm_block_error *err)
{
	(void)uri, (void)opts;
	tm_block_fail(err, TM_BLOCK_INVALID, 0, "NBD sources are not supported yet");
	return NULL;
}
