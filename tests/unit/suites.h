/* The Check suites of the unit test program; check_main.c runs them all. */
#ifndef TM_SUITES_H
#define TM_SUITES_H

#include <check.h>

Suite *header_suite(void);
Suite *pax_suite(void);
Suite *sparse_suite(void);
Suite *block_suite(void);
Suite *block_write_suite(void);
Suite *index_suite(void);
Suite *kv_suite(void);
Suite *index_file_suite(void);
Suite *window_suite(void);
Suite *decomp_suite(void);
Suite *index_cache_suite(void);
Suite *tar_writer_suite(void);

#endif
