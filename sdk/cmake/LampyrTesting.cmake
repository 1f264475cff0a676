# lampyr_add_plugin_test(<name> PLUGIN <plugin-target> SOURCES src...
#                        [PLUGIN_NAME n] [CONFIG <json object>] [HOST <lampyr>]
#                        [LIBRARIES lib...])
#
# A GoogleTest executable, registered with CTest, whose tests run the plugin
# in a real Lampyr host (lampyr/testing.hpp: PluginTest, Host, Client).
#   PLUGIN_NAME  the name the plugin declares in LAMPYR_PLUGIN (default: the target name)
#   CONFIG       its config object, as JSON (default {})
#   HOST         the lampyr executable (default: the `lampyr` target of this
#                build, else the one installed next to this SDK, else PATH);
#                the environment variable LAMPYR_TEST_HOST_BINARY overrides it at run time.
include_guard(GLOBAL)
set(_LAMPYR_TESTING_DIR "${CMAKE_CURRENT_LIST_DIR}")

function(lampyr_add_plugin_test name)
  cmake_parse_arguments(T "" "PLUGIN;PLUGIN_NAME;CONFIG;HOST" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT T_PLUGIN OR NOT T_SOURCES)
    message(FATAL_ERROR "lampyr_add_plugin_test(${name}): PLUGIN and SOURCES are required")
  endif()
  if(T_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "lampyr_add_plugin_test(${name}): unknown arguments ${T_UNPARSED_ARGUMENTS}")
  endif()
  find_package(GTest REQUIRED)
  if(NOT T_PLUGIN_NAME)
    set(T_PLUGIN_NAME ${T_PLUGIN})
  endif()
  if(NOT T_CONFIG)
    set(T_CONFIG "{}")
  endif()
  if(T_HOST)
    set(host "${T_HOST}")
  elseif(TARGET lampyr)
    set(host "$<TARGET_FILE:lampyr>")
  else()
    get_filename_component(_prefix "${_LAMPYR_TESTING_DIR}/../../.." ABSOLUTE)
    find_program(LAMPYR_HOST_EXECUTABLE lampyr HINTS "${_prefix}/bin" /usr/bin)
    if(NOT LAMPYR_HOST_EXECUTABLE)
      message(FATAL_ERROR "lampyr_add_plugin_test(${name}): no lampyr host found (install the lampyr package or pass HOST)")
    endif()
    set(host "${LAMPYR_HOST_EXECUTABLE}")
  endif()
  set(config_file "${CMAKE_CURRENT_BINARY_DIR}/${name}.plugin-config.json")
  file(WRITE "${config_file}" "${T_CONFIG}\n")
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE LampyrSDK::sdk GTest::gtest_main ${T_LIBRARIES})
  target_compile_features(${name} PRIVATE cxx_std_17)
  target_compile_definitions(${name} PRIVATE
    LAMPYR_TEST_HOST="${host}"
    LAMPYR_TEST_PLUGIN_NAME="${T_PLUGIN_NAME}"
    LAMPYR_TEST_PLUGIN_PATH="$<TARGET_FILE:${T_PLUGIN}>"
    LAMPYR_TEST_PLUGIN_CONFIG_FILE="${config_file}")
  add_dependencies(${name} ${T_PLUGIN})
  add_test(NAME ${name} COMMAND ${name})
endfunction()
