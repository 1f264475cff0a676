# find_package(LampyrSDK) for an installed SDK: <prefix>/lib/cmake/LampyrSDK/.
# Provides the INTERFACE target LampyrSDK::sdk (the headers) and
# lampyr_add_plugin() (LampyrPlugin.cmake) and lampyr_add_plugin_test()
# (LampyrTesting.cmake).
get_filename_component(_lampyr_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET LampyrSDK::sdk)
  add_library(LampyrSDK::sdk INTERFACE IMPORTED)
  set_target_properties(LampyrSDK::sdk PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_lampyr_prefix}/include"
    INTERFACE_COMPILE_FEATURES cxx_std_17)
endif()
include("${CMAKE_CURRENT_LIST_DIR}/LampyrPlugin.cmake")
# lampyr_add_plugin_test() (lampyr/testing.hpp); GoogleTest is looked up
# only when a project calls it.
include("${CMAKE_CURRENT_LIST_DIR}/LampyrTesting.cmake")
set(LampyrSDK_INCLUDE_DIRS "${_lampyr_prefix}/include")
unset(_lampyr_prefix)
