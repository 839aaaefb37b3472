/* The unit test program: every suite in one runner. */
#include <stdlib.h>

#include <check.h>

#include "suites.h"

int main(void)
{
	SRunner *sr = srunner_create(header_suite());
	srunner_add_suite(sr, pax_suite());
	srunner_add_suite(sr, sparse_suite());
	srunner_add_suite(sr, block_suite());
	srunner_add_suite(sr, block_write_suite());
	srunner_add_suite(sr, index_suite());
	srunner_add_suite(sr, kv_suite());
	srunner_add_suite(sr, index_file_suite());
	srunner_add_suite(sr, window_suite());
	srunner_add_suite(sr, decomp_suite());
	srunner_add_suite(sr, index_cache_suite());
	srunner_add_suite(sr, tar_writer_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
