# Builds TARGET in BINARY_DIR; succeeds only if the build fails and its output matches EXPECTED.
execute_process(
  COMMAND "${CMAKE_COMMAND}" --build "${BINARY_DIR}" --target "${TARGET}"
  RESULT_VARIABLE result
  OUTPUT_VARIABLE out
  ERROR_VARIABLE out)
if(result EQUAL 0)
  message(FATAL_ERROR "${TARGET} compiled, but it must not")
endif()
if(NOT out MATCHES "${EXPECTED}")
  message(FATAL_ERROR "${TARGET} failed for another reason (expected /${EXPECTED}/):\n${out}")
endif()
message(STATUS "${TARGET} failed to compile as expected")
