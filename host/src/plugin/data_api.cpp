// The data layer's host functions ("data_*"): none yet.
#include "plugin/plugin_host.h"

namespace lampyr::plugin {

void* LookupDataFunction(const char*) { return nullptr; }

}  // namespace lampyr::plugin
