/* test_no_entry: a shared object with no lampyr_plugin_entry symbol at all.
 * The host must refuse it ("no entry symbol") and keep the old generation. */
int lampyr_test_not_the_entry(int x);
int lampyr_test_not_the_entry(int x) { return x + 1; }
