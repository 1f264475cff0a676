#include "core/version.h"

#include "lampyr/plugin.h"
#include "lampyr_version.h"  // generated into the build tree at every build

#define LAMPYR_VERSION_STR2_(x) #x
#define LAMPYR_VERSION_STR_(x) LAMPYR_VERSION_STR2_(x)

namespace lampyr {

const char* Version() { return LAMPYR_VERSION; }
const char* SdkAbiVersion() { return LAMPYR_VERSION_STR_(LAMPYR_ABI_MAJOR) "." LAMPYR_VERSION_STR_(LAMPYR_ABI_MINOR); }

}  // namespace lampyr
