# lampyr_add_plugin(<name> SOURCES src... [DEFINITIONS def...] [LIBRARIES lib...]
#                   [INCLUDE_DIRECTORIES dir...] [OUTPUT_NAME n] [NO_CHECK])
#
# Builds lib<name>.so (or lib<OUTPUT_NAME>.so), a MODULE the Lampyr host can
# load and hot-reload. The flags are not optional: each one prevents a way a
# generation could outlive its unload (docs/plugins.md, "Rules"):
#   -fvisibility=hidden -fvisibility-inlines-hidden : nothing exported by default
#   -fno-gnu-unique (g++) : inline/template statics would be STB_GNU_UNIQUE,
#        which makes glibc keep the library forever and bind the next
#        generation to the old one's data
#   version script    : exports only lampyr_plugin_entry, even libstdc++'s
#        weak inline instantiations
#   -Wl,-z,defs (g++) : an unresolved symbol fails the build, not the dlopen
# Static libraries linked in must be built with -fno-gnu-unique too.
# After each link, lampyr_check_plugin.cmake fails the build (and deletes the
# file) if the host's gate would refuse it: UNIQUE symbols, a thread_local
# with a destructor, exports besides the entry. NO_CHECK skips that (for
# tests of the gate itself).
if(CMAKE_VERSION VERSION_LESS 3.17)  # CMAKE_CURRENT_FUNCTION_LIST_DIR
  message(FATAL_ERROR "LampyrSDK needs CMake 3.17 or newer")
endif()
include_guard(GLOBAL)

function(lampyr_add_plugin name)
  cmake_parse_arguments(P "NO_CHECK" "OUTPUT_NAME" "SOURCES;DEFINITIONS;LIBRARIES;INCLUDE_DIRECTORIES" ${ARGN})
  if(NOT P_SOURCES)
    message(FATAL_ERROR "lampyr_add_plugin(${name}): SOURCES is required")
  endif()
  if(P_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "lampyr_add_plugin(${name}): unknown arguments ${P_UNPARSED_ARGUMENTS}")
  endif()
  set(map "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/lampyr_plugin.map")
  set(check "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/lampyr_check_plugin.cmake")
  add_library(${name} MODULE ${P_SOURCES})
  target_link_libraries(${name} PRIVATE LampyrSDK::sdk ${P_LIBRARIES})
  if(P_DEFINITIONS)
    target_compile_definitions(${name} PRIVATE ${P_DEFINITIONS})
  endif()
  if(P_INCLUDE_DIRECTORIES)
    target_include_directories(${name} PRIVATE ${P_INCLUDE_DIRECTORIES})
  endif()
  set_target_properties(${name} PROPERTIES
    PREFIX "lib"
    SUFFIX ".so"
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON
    LINK_DEPENDS "${map}")
  if(P_OUTPUT_NAME)
    set_target_properties(${name} PROPERTIES OUTPUT_NAME ${P_OUTPUT_NAME})
  endif()
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANG_AND_ID:CXX,GNU>:-fno-gnu-unique>)
  target_link_options(${name} PRIVATE
    "LINKER:--version-script=${map}"
    $<$<CXX_COMPILER_ID:GNU>:LINKER:-z,defs>)
  if(NOT P_NO_CHECK)
    set(readelf readelf)
    if(CMAKE_READELF)
      set(readelf ${CMAKE_READELF})
    endif()
    add_custom_command(TARGET ${name} POST_BUILD
      COMMAND ${CMAKE_COMMAND} -DFILE=$<TARGET_FILE:${name}> -DREADELF=${readelf} -P ${check}
      VERBATIM)
  endif()
endfunction()
