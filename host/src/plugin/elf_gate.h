// The gate a plugin file passes before anything loads it (DESIGN §6).
//
// dlopen runs the library's constructors and may make it impossible to
// unload, so the checks read the ELF file itself: a shared object that
//  - defines STB_GNU_UNIQUE symbols (glibc marks it NODELETE and a new
//    generation binds to the old one's data),
//  - imports __cxa_thread_atexit(_impl) (a thread_local with a destructor
//    pins the library),
//  - imports thread creation (pthread_create, thrd_create, std::thread): a
//    thread of its own would outlive its generation; plugins use "work",
//  - is linked with -z nodelete (DF_1_NODELETE),
//  - or exports more than the entry symbol
// is refused with a message that says which symbol and how to fix it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/status.h"

namespace lampyr::plugin {

// Checks an in-memory image of the file (parsing only; never trusts sizes).
Status CheckPluginImage(const unsigned char* data, size_t size, const std::string& entry_symbol);
// Reads `path` and checks it.
Status CheckPluginFile(const std::string& path, const std::string& entry_symbol);
// The whole file (a regular file of at most `max_bytes`), read once.
Status ReadWholeFile(const std::string& path, size_t max_bytes, std::string* out);

}  // namespace lampyr::plugin
