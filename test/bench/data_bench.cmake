# lampyr-data-bench (docs/data.md, "Performance"): include() this from
# test/bench/CMakeLists.txt. Needs the services of scripts/services.sh at run time.
add_executable(lampyr-data-bench ${CMAKE_CURRENT_LIST_DIR}/data_bench.cpp)
target_link_libraries(lampyr-data-bench PRIVATE lampyr_host)
