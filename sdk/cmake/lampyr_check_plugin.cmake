# Post-build check of a plugin made by lampyr_add_plugin (cmake -P script):
#   cmake -DFILE=libx.so [-DREADELF=readelf] -P lampyr_check_plugin.cmake
# Fails the build - and deletes the file, so the next build relinks and checks
# again - when the host's reload gate would refuse the library anyway:
#   - an STB_GNU_UNIQUE symbol (usually a static library built without
#     -fno-gnu-unique): glibc would never unload it;
#   - an import of __cxa_thread_atexit(_impl) (a thread_local with a
#     destructor): it pins the library while the thread lives;
#   - an import of pthread_create, thrd_create or std::thread's start: a
#     thread of the plugin's own outlives its generation (use the host's work);
#   - a defined export other than lampyr_plugin_entry, or no entry at all.
# Better to learn it from the build than from a refused reload in production.
cmake_minimum_required(VERSION 3.17)
if(NOT READELF)
  set(READELF readelf)
endif()
execute_process(COMMAND ${READELF} --dyn-syms -W ${FILE} OUTPUT_VARIABLE syms ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(WARNING "lampyr_check_plugin: cannot run ${READELF} on ${FILE} (${err}); check skipped")
  return()
endif()
set(problems "")
set(exports "")
string(REPLACE "\n" ";" lines "${syms}")
set(entry FALSE)
foreach(line IN LISTS lines)
  # "   Num:    Value          Size Type    Bind   Vis      Ndx Name"
  if(NOT line MATCHES "^ *[0-9]+: +[0-9a-f]+ +[0-9]+ +([A-Z_]+) +([A-Z_]+) +([A-Z_]+) +([A-Z0-9_]+) +([^ ]+)")
    continue()
  endif()
  set(bind ${CMAKE_MATCH_2})
  set(vis ${CMAKE_MATCH_3})
  set(ndx ${CMAKE_MATCH_4})
  set(name ${CMAKE_MATCH_5})
  string(REGEX REPLACE "@.*" "" name "${name}")
  if(bind STREQUAL "UNIQUE")
    list(APPEND problems "symbol ${name} is STB_GNU_UNIQUE (inline/template static data compiled without -fno-gnu-unique, often in a static library)")
  elseif(ndx STREQUAL "UND" AND name MATCHES "^__cxa_thread_atexit")
    list(APPEND problems "imports ${name}: a thread_local with a destructor pins the library")
  elseif(ndx STREQUAL "UND" AND (name STREQUAL "pthread_create" OR name STREQUAL "thrd_create" OR name MATCHES "^_ZNSt6thread15_M_start_thread"))
    list(APPEND problems "imports ${name}: plugins may not start threads; use the host's \"work\" (Plugin::work)")
  elseif(NOT ndx STREQUAL "UND" AND vis STREQUAL "DEFAULT" AND (bind STREQUAL "GLOBAL" OR bind STREQUAL "WEAK"))
    if(name STREQUAL "lampyr_plugin_entry")
      set(entry TRUE)
    else()
      list(APPEND exports "${name}")
    endif()
  endif()
endforeach()
list(LENGTH exports n)
if(n GREATER 0)
  list(SUBLIST exports 0 3 shown)
  list(JOIN shown ", " shown)
  if(n GREATER 3)
    string(APPEND shown " and ${n} more")
  endif()
  list(APPEND problems "exports more than lampyr_plugin_entry: ${shown} (build with lampyr_add_plugin's flags)")
endif()
if(NOT entry)
  list(APPEND problems "does not export lampyr_plugin_entry (LAMPYR_PLUGIN missing?)")
endif()
if(problems)
  file(REMOVE ${FILE})
  list(JOIN problems "\n  - " text)
  message(FATAL_ERROR "${FILE} would be refused by the Lampyr host:\n  - ${text}\n(docs/plugins.md, \"Rules\")")
endif()
