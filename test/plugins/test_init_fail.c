/* test_init_fail: named "room"; a plain C plugin whose init returns an error
 * with a reason. Also shows that a C plugin (cxx11abi=none) is accepted. */
#include <stdio.h>

#include <lampyr/plugin.h>

static int init(const lampyr_init_args* args, void** ctx, char* err, size_t cap) {
  (void)args;
  *ctx = NULL;
  snprintf(err, cap, "test_init_fail: refusing to start on purpose");
  return LAMPYR_ERR;
}
static void destroy(void* ctx) { (void)ctx; }

static const lampyr_plugin_desc desc = {
    sizeof(lampyr_plugin_desc), LAMPYR_ABI_MAJOR, LAMPYR_ABI_MINOR, LAMPYR_SDK_SIGNATURE, "room", "init-fail", 1,
    init, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, destroy,
};

__attribute__((visibility("default"))) const lampyr_plugin_desc* lampyr_plugin_entry(void) { return &desc; }
