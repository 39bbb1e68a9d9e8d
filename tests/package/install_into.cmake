# cmake -D PREFIX=<dir> -D BUILD_DIR=<build tree> -D CONFIG=<config> -P install_into.cmake
# Installs the build tree into an empty PREFIX, so the consumer test sees exactly this install.
foreach(var PREFIX BUILD_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install_into.cmake: ${var} is not set")
  endif()
endforeach()
file(REMOVE_RECURSE "${PREFIX}")
set(config_args "")
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()
execute_process(
  COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" ${config_args}
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${result})")
endif()
file(GLOB_RECURSE configs "${PREFIX}/*/durable_execution-config.cmake")
if(NOT configs)
  message(FATAL_ERROR "the install put no durable_execution-config.cmake under ${PREFIX}")
endif()
