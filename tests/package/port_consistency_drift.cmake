# cmake -D SOURCE_DIR=<repository root> -D VERSION=<project version> -D WORK_DIR=<scratch dir>
#       -P port_consistency_drift.cmake
#
# Tests the port check itself: each case copies ports/durable-execution, makes one edit that
# lets the port drift from the build, and expects port_consistency.cmake to fail and name it.
foreach(var SOURCE_DIR VERSION WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "port_consistency_drift.cmake: ${var} is not set")
  endif()
endforeach()

set(failures "")
# drift(<case> <file in the port> <text> <replacement> <expected message regex>)
function(drift name file text replacement expected)
  set(port "${WORK_DIR}/${name}")
  file(REMOVE_RECURSE "${port}")
  file(COPY "${SOURCE_DIR}/ports/durable-execution/" DESTINATION "${port}")
  file(READ "${port}/${file}" content)
  string(FIND "${content}" "${text}" at)
  if(at EQUAL -1)
    set(failures "${failures}  - ${name}: '${text}' is not in ${file}; update this case\n"
        PARENT_SCOPE)
    return()
  endif()
  string(REPLACE "${text}" "${replacement}" content "${content}")
  file(WRITE "${port}/${file}" "${content}")
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -D "SOURCE_DIR=${SOURCE_DIR}" -D "VERSION=${VERSION}"
            -D "PORT_DIR=${port}" -P "${CMAKE_CURRENT_LIST_DIR}/port_consistency.cmake"
    RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(result EQUAL 0)
    set(failures "${failures}  - ${name}: the check passed a drifted port\n" PARENT_SCOPE)
  elseif(NOT out MATCHES "${expected}")
    set(failures "${failures}  - ${name}: the check failed without saying '${expected}':\n${out}\n"
        PARENT_SCOPE)
  endif()
endfunction()

drift(version vcpkg.json "\"version\": \"${VERSION}\"" "\"version\": \"${VERSION}.1\""
      "version is '${VERSION}.1'")
drift(extra_feature vcpkg.json "\"features\": {" "\"features\": {\"redis\": {\"description\": \"x\"},"
      "features are 'postgres;redis;sqlite'")
drift(default_features vcpkg.json "\"sqlite\"\n  ]" "\"sqlite\", \"postgres\"\n  ]"
      "default-features are 'postgres;sqlite'")
drift(feature_dependency vcpkg.json "\"libpqxx\"" "\"libpq\""
      "feature 'postgres' depends on 'libpq'")
drift(core_dependency vcpkg.json "\"fmt\"," "\"fmt\", \"boost-asio\","
      "dependencies are 'boost-asio;fmt")
drift(missing_core_dependency vcpkg.json "\"spdlog\"," "" "dependencies are 'fmt;nlohmann-json'")
drift(host_dependency vcpkg.json "\"name\": \"vcpkg-cmake-config\"" "\"name\": \"vcpkg-tool-meson\""
      "host dependencies are")
drift(feature_option portfile.cmake "postgres DE_WITH_POSTGRES" "postgres DE_WITH_PG"
      "maps feature 'postgres' to DE_WITH_PG")
drift(unmapped_feature portfile.cmake "postgres DE_WITH_POSTGRES" ""
      "vcpkg_check_features maps 'sqlite'")
drift(unknown_option portfile.cmake "-DDE_BUILD_BENCH=OFF" "-DDE_BUILD_BENCHMARKS=OFF"
      "-DDE_BUILD_BENCHMARKS, which is not an option")
drift(config_path portfile.cmake "CONFIG_PATH lib/cmake/durable_execution"
      "CONFIG_PATH share/durable_execution" "vcpkg_cmake_config_fixup")
drift(usage usage "durable_execution::postgres" "durable_execution::pg"
      "usage does not name the target durable_execution::postgres")

file(REMOVE_RECURSE "${WORK_DIR}")
if(failures)
  message(FATAL_ERROR "The port check missed drift:\n${failures}")
endif()
message(STATUS "the port check caught every drift case")
