/* test_abi_major: named "room", but built against ABI major 99. The host
 * must refuse it from the descriptor alone, before calling init. */
#include <lampyr/plugin.h>

static int init(const lampyr_init_args* args, void** ctx, char* err, size_t cap) {
  (void)args;
  (void)ctx;
  (void)err;
  (void)cap;
  return LAMPYR_ERR; /* never reached when the host checks the ABI first */
}
static void destroy(void* ctx) { (void)ctx; }

static const lampyr_plugin_desc desc = {
    sizeof(lampyr_plugin_desc), 99, 0, LAMPYR_SDK_SIGNATURE, "room", "abi99", 1,
    init, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, destroy,
};

__attribute__((visibility("default"))) const lampyr_plugin_desc* lampyr_plugin_entry(void) { return &desc; }
