// The version of this build (cmake/LampyrVersion.cmake): "0.1.0+git149.8ad7b44e2f".
// Kept in one translation unit so a new commit recompiles one file.
#pragma once

namespace lampyr {

const char* Version();
// "1.0": the plugin ABI (LAMPYR_ABI_MAJOR.MINOR of sdk/include/lampyr/plugin.h)
// this host accepts; a plugin's major must match, its minor be at most this.
const char* SdkAbiVersion();

}  // namespace lampyr
